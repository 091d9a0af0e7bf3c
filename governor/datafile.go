package governor

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"kadenz/store"
)

// The database file of a data directory, for the commands that work on the
// file itself (kadenz db check, recover, backup) and for serve's report of
// a damaged one. The command line reaches the file through these, never
// through the store package: the relay owns where and how its data lives.
// They are for the embedded bbolt store; a SQL store is checked and backed
// up with the database's own tools.

// DamagedError is New's error when the database is damaged or missing
// where a marker says it existed: a person must decide, never a silent
// fresh start.
type DamagedError = store.DamagedError

// DatabaseReport is what CheckDatabase found; RecoverReport what
// RecoverDatabase copied and lost. Both print as text for a person.
type (
	DatabaseReport = store.Report
	RecoverReport  = store.RecoverReport
)

// DatabaseMarker names the file that says a data directory held a
// database (so a missing one is damage, not a first start).
const DatabaseMarker = store.MarkerName

// DatabasePath is where the relay keeps its database in dataDir.
func DatabasePath(dataDir string) string { return filepath.Join(dataDir, "kadenz.db") }

// CheckDatabase reads the file at path and reports its state and any
// damage, without writing; no relay may have it open.
func CheckDatabase(path string) (*DatabaseReport, error) { return store.Check(path) }

// RecoverDatabase copies what can be read of src into the new file dst
// and reports what was lost; src is not changed.
func RecoverDatabase(src, dst string, now time.Time) (*RecoverReport, error) {
	return store.Recover(src, dst, now)
}

// CompactReport is what CompactDatabase did.
type CompactReport = store.CompactReport

// CompactDatabase rewrites the database file at path, which no running
// relay may have open, into a fresh file of only its live data and puts
// it in place (store.Compact).
func CompactDatabase(path string) (CompactReport, error) { return store.Compact(path) }

// BackupDatabase copies the database file src, which no running relay may
// have open, to dst after checking it.
// It refuses while the event journal beside src holds events not known to
// be applied (checkEventJournal).
func BackupDatabase(src, dst string) (int64, error) {
	if err := checkEventJournal(src); err != nil {
		return 0, err
	}
	return store.BackupFile(src, dst)
}

// ReceiveBackup writes a copy streamed from a running relay (GET
// /v1/db/backup) to dst: it appears only when complete, synced and found
// sound, so a backup that cannot be read never replaces anything. size is
// the announced length, or -1 when unknown.
func ReceiveBackup(dst string, from io.Reader, size int64) (int64, error) {
	return store.WriteFileAtomic(dst, func(w io.Writer) (int64, error) {
		n, err := io.Copy(w, from)
		if err == nil && size >= 0 && n != size {
			err = fmt.Errorf("backup cut short: %d of %d bytes", n, size)
		}
		if err != nil {
			return n, err
		}
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
