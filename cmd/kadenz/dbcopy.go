package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"kadenz/governor"
)

// kadenz db copy moves a bbolt database into an empty PostgreSQL-compatible
// database, then compares what it read with what the database holds, table
// by table and envelopes by state.

const dbCopyUsage = `  kadenz db copy --from bbolt:PATH --to postgres:URL [--password-file FILE | --password-env VAR] [--node NAME]
      Copy a bbolt database (the file, or the data directory holding
      kadenz.db) into an empty database for the postgres backend, and check
      the copy by counting both. Stop kadenz first, or copy from a backup
      (kadenz db backup). Envelopes in delivery are recorded as claimed by
      --node (default: this host's name): that node takes them back when it
      starts, any other after the claim's lease.
`

func dbCopy(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("db copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage:\n"+dbCopyUsage+"\nExample:\n  kadenz db copy --from bbolt:/var/lib/kadenz --to postgres:postgres://kadenz@db.example.com/kadenz --password-file /etc/kadenz/db-password\n\nFlags:\n")
		fs.PrintDefaults()
	}
	from := fs.String("from", "", "source: bbolt:PATH, a database file or the data directory holding kadenz.db")
	to := fs.String("to", "", "destination: postgres:URL (a postgres:// URL without a password)")
	pwFile := fs.String("password-file", "", "`file` holding the database password")
	pwEnv := fs.String("password-env", "", "environment `variable` holding the database password")
	node := fs.String("node", "", "node `name` the envelopes in delivery are claimed under (default: host name)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	srcPath, ok := strings.CutPrefix(*from, "bbolt:")
	url, ok2 := strings.CutPrefix(*to, "postgres:")
	if !ok || !ok2 || srcPath == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	if fi, err := os.Stat(srcPath); err == nil && fi.IsDir() {
		srcPath = filepath.Join(srcPath, "kadenz.db")
	}
	if _, err := os.Stat(srcPath); err != nil {
		fmt.Fprintf(stderr, "kadenz db copy: %v\n", err)
		return 2
	}
	password := ""
	switch {
	case *pwFile != "" && *pwEnv != "":
		fmt.Fprintln(stderr, "kadenz db copy: give --password-file or --password-env, not both")
		return 2
	case *pwFile != "":
		raw, err := os.ReadFile(*pwFile)
		if err != nil {
			fmt.Fprintf(stderr, "kadenz db copy: %v\n", err)
			return 2
		}
		password = strings.TrimSpace(string(raw))
	case *pwEnv != "":
		if password = os.Getenv(*pwEnv); password == "" {
			fmt.Fprintf(stderr, "kadenz db copy: environment variable %s is not set or empty\n", *pwEnv)
			return 2
		}
	}

	took, err := governor.CopyToPostgres(srcPath, url, password, *node, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "kadenz db copy: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "copied %s in %s; set store.backend: postgres and store.postgres.url, then start kadenz\n", srcPath, took.Round(time.Millisecond))
	return 0
}
