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

	"kadenz/store"
)

// The db commands work on the database file itself, so they are the one
// place the CLI uses the store package: check and recover read a file no
// daemon may have open (a damaged one the daemon refused), and backup goes
// through the running daemon when there is one, because it owns the file.

const dbUsage = `Usage: kadenz db check|recover|backup|copy [FLAGS] ...

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
	path := filepath.Join(*data, "kadenz.db")
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
		if _, merr := os.Stat(filepath.Join(filepath.Dir(path), store.MarkerName)); merr == nil {
			fmt.Fprintf(stderr, "%s says this directory held a database: restore it from a backup\n", store.MarkerName)
			return 1
		}
		return 2
	}
	rep, err := store.Check(path)
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
		src = filepath.Join(*data, "kadenz.db")
	}
	rep, err := store.Recover(src, fs.Arg(0), time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "kadenz db recover: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, rep.String())
	fmt.Fprintf(stdout, "wrote %s; with kadenz stopped, move it to %s (keep the damaged file) and start kadenz\n",
		fs.Arg(0), filepath.Join(filepath.Dir(src), "kadenz.db"))
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
	n, err := store.BackupFile(filepath.Join(*data, "kadenz.db"), dst)
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
	return store.WriteFileAtomic(dst, func(w io.Writer) (int64, error) {
		n, err := io.Copy(w, resp.Body)
		if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
			err = fmt.Errorf("backup cut short: %d of %d bytes", n, resp.ContentLength)
		}
		if err != nil {
			return n, err
		}
		// Check the copy before it replaces anything: a backup that
		// cannot be read is worse than none.
		f, ok := w.(*os.File)
		if !ok {
			return n, nil
		}
		if err := f.Sync(); err != nil {
			return n, err
		}
		rep, err := store.Check(f.Name())
		if err != nil {
			return n, err
		}
		if !rep.OK() {
			return n, fmt.Errorf("the copy received is damaged:\n%s", rep)
		}
		return n, nil
	})
}
