package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"kadenz/governor"
)

// The db commands work on the database file itself, through the governor's
// functions for it (governor/datafile.go): check and recover read a file no
// daemon may have open (a damaged one the daemon refused), and backup goes
// through the running daemon when there is one, because it owns the file.

const dbUsage = `Usage: kadenz db check|recover|backup|compact|copy [FLAGS] ...

  kadenz db check [--data DIR] [FILE]
      Read the database and report its state and any damage, without bbolt
      and without writing. Exit status 0: sound; 1: damaged; 2: unreadable or usage.
  kadenz db recover [--data DIR] [--from FILE] OUT
      Copy what can be read into the new file OUT, rebuild the schedule, and
      report what was lost. The damaged file is not changed. Stop kadenz first.
  kadenz db backup [--admin ADDR] [--token TOKEN] [--data DIR] [--offline] FILE
      Write a consistent copy of the database to FILE. Through the running
      daemon's admin API (while it serves); with --offline, or when no daemon
      answers, from the file in --data directly.
  kadenz db compact [--data DIR]
      Rewrite the database into a fresh file holding only live data and put
      it in place of the old one (bbolt files never shrink by themselves:
      space freed by retention is reused, not returned). Stop kadenz first.
` + dbCopyUsage + `
Examples:
  kadenz db check --data /var/lib/kadenz
  kadenz db recover --data /var/lib/kadenz /var/lib/kadenz/recovered.db
  kadenz db backup /backup/kadenz-backup.db
  kadenz db copy --from bbolt:/var/lib/kadenz --to postgres:postgres://kadenz@db.example.com/kadenz --password-env KADENZ_DB_PASSWORD
`

func runDB(args []string) int { return dbMain(args, os.Stdout, os.Stderr) }

func dbMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, dbUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "check":
		return dbCheck(args[1:], stdout, stderr)
	case "recover":
		return dbRecover(args[1:], stdout, stderr)
	case "backup":
		return dbBackup(args[1:], stdout, stderr)
	case "compact":
		return dbCompact(args[1:], stdout, stderr)
	case "copy":
		return dbCopy(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "kadenz db: unknown action %q\n\n%s", args[0], dbUsage)
	return 2
}

func dbFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("db "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, dbUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs, fs.String("data", "kadenz-data", "data `directory` holding kadenz.db")
}

func dbCheck(args []string, stdout, stderr io.Writer) int {
	fs, data := dbFlags("check", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	path := governor.DatabasePath(*data)
	switch fs.NArg() {
	case 0:
	case 1:
		path = fs.Arg(0)
	default:
		fs.Usage()
		return 2
	}
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(stderr, "kadenz db check: %v\n", err)
		if _, merr := os.Stat(filepath.Join(filepath.Dir(path), governor.DatabaseMarker)); merr == nil {
			fmt.Fprintf(stderr, "%s says this directory held a database: restore it from a backup\n", governor.DatabaseMarker)
			return 1
		}
		return 2
	}
	rep, err := governor.CheckDatabase(path)
	if err != nil {
		fmt.Fprintf(stderr, "kadenz db check: %v\n", err)
		return 2
	}
	fmt.Fprint(stdout, rep.String())
	if !rep.OK() {
		return 1
	}
	return 0
}

func dbCompact(args []string, stdout, stderr io.Writer) int {
	fs, data := dbFlags("compact", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	rep, err := governor.CompactDatabase(governor.DatabasePath(*data))
	if err != nil {
		fmt.Fprintf(stderr, "kadenz db compact: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, rep.String())
	return 0
}

func dbRecover(args []string, stdout, stderr io.Writer) int {
	fs, data := dbFlags("recover", stderr)
	from := fs.String("from", "", "damaged database `file` (default: DIR/kadenz.db)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	src := *from
	if src == "" {
		src = governor.DatabasePath(*data)
	}
	rep, err := governor.RecoverDatabase(src, fs.Arg(0), time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "kadenz db recover: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, rep.String())
	fmt.Fprintf(stdout, "wrote %s; with kadenz stopped, move it to %s (keep the damaged file) and start kadenz\n",
		fs.Arg(0), governor.DatabasePath(filepath.Dir(src)))
	return 0
}

func dbBackup(args []string, stdout, stderr io.Writer) int {
	fs, data := dbFlags("backup", stderr)
	admin := addAdminFlags(fs)
	offline := fs.Bool("offline", false, "copy the file in --data directly (no kadenz may be running)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	dst := fs.Arg(0)
	if !*offline {
		n, err := backupOnline(admin, dst)
		if err == nil {
			fmt.Fprintf(stdout, "wrote %s (%d bytes) from the running kadenz at %s\n", dst, n, *admin.addr)
			return 0
		}
		var nerr *net.OpError
		if !errors.As(err, &nerr) || nerr.Op != "dial" {
			fmt.Fprintf(stderr, "kadenz db backup: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "kadenz db backup: no kadenz answers at %s; copying %s directly\n", *admin.addr, *data)
	}
	n, err := governor.BackupDatabase(governor.DatabasePath(*data), dst)
	if err != nil {
		fmt.Fprintf(stderr, "kadenz db backup: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes) from %s\n", dst, n, *data)
	return 0
}

// backupOnline streams the running daemon's copy into dst, then checks it
// before putting it in place.
func backupOnline(a adminFlags, dst string) (int64, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+*a.addr+"/v1/db/backup", nil)
	if err != nil {
		return 0, err
	}
	if *a.token != "" {
		req.Header.Set("Authorization", "Bearer "+*a.token)
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("admin API: %s: %s", resp.Status, msg)
	}
	return governor.ReceiveBackup(dst, resp.Body, resp.ContentLength)
}
