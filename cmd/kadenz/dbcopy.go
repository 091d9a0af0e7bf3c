package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"kadenz/store"
	"kadenz/store/postgres"
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

	took, err := copyToPostgres(srcPath, url, postgres.Options{Password: password, Node: *node}, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "kadenz db copy: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "copied %s in %s; set store.backend: postgres and store.postgres.url, then start kadenz\n", srcPath, took.Round(time.Millisecond))
	return 0
}

// errMismatch says the copy's counts differ from the source's.
var errMismatch = errors.New("the copy does not match the source (see MISMATCH above)")

// copyToPostgres copies the bbolt file at srcPath into the empty database
// at url, prints the counts of both to out, and fails if they differ.
// (It is the part of db copy that touches the store: it belongs beside
// the other database-file functions the CLI calls.)
func copyToPostgres(srcPath, url string, opts postgres.Options, out io.Writer) (time.Duration, error) {
	src, err := store.Open(srcPath, store.Options{})
	if err != nil {
		return 0, err
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	dst, err := postgres.Open(ctx, url, opts)
	cancel()
	if err != nil {
		return 0, err
	}
	defer dst.Close()
	im, err := dst.NewImporter()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := src.Export(im); err != nil {
		return 0, fmt.Errorf("%w (the destination holds a partial copy: drop its tables or use a new database before trying again)", err)
	}
	if err := im.Flush(); err != nil {
		return 0, fmt.Errorf("%w (the destination holds a partial copy: drop its tables or use a new database before trying again)", err)
	}
	took := time.Since(start)
	return took, verifyCopy(src, dst, im.Counts, out)
}

// verifyCopy prints what was read and what the database holds, per table
// and per envelope state, and fails unless they all agree.
func verifyCopy(src *store.DB, dst *postgres.Store, read map[string]int64, stdout io.Writer) error {
	have, err := dst.TableCounts()
	if err != nil {
		return fmt.Errorf("counting the copy: %w", err)
	}
	srcStates, err := src.CountByState()
	if err != nil {
		return fmt.Errorf("counting the source: %w", err)
	}
	dstStates, err := dst.CountByState()
	if err != nil {
		return fmt.Errorf("counting the copy: %w", err)
	}
	ok := true
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "what\tbbolt\tpostgres\t")
	row := func(what string, a, b int64) {
		mark := ""
		if a != b {
			mark, ok = "MISMATCH", false
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", what, a, b, mark)
	}
	for _, t := range postgres.Tables {
		if t == "leases" {
			continue // not copied: each node takes its own
		}
		row(t, read[t], have[t])
	}
	states := map[store.State]bool{}
	for s := range srcStates {
		states[s] = true
	}
	for s := range dstStates {
		states[s] = true
	}
	for _, s := range slices.Sorted(func(yield func(store.State) bool) {
		for s := range states {
			if !yield(s) {
				return
			}
		}
	}) {
		row("envelopes "+string(s), int64(srcStates[s]), int64(dstStates[s]))
	}
	w.Flush()
	if !ok {
		return errMismatch
	}
	return nil
}
