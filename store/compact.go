package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Compaction. A bbolt file grows to the most it ever held and never
// shrinks: pages freed by retention (purged bodies, old decision records)
// are reused by later writes, but not given back to the file system. After
// a large campaign has been purged, Compact rewrites the live data into a
// fresh file and puts it in place of the old one, so the file is as big as
// what it holds. The relay must be stopped: bbolt's exclusive lock makes
// Compact fail at once while kadenz runs.

// CompactReport says what Compact did.
type CompactReport struct {
	Path          string
	Before, After int64          // file sizes in bytes
	Keys          map[string]int // keys per top-level bucket, equal in both files
}

// String is the report for a person.
func (r CompactReport) String() string {
	keys := 0
	for _, n := range r.Keys {
		keys += n
	}
	return fmt.Sprintf("%s: %d keys in %d buckets; %d bytes before, %d after (%.0f%% of the old size)\n",
		r.Path, keys, len(r.Keys), r.Before, r.After, 100*float64(r.After)/float64(max(r.Before, 1)))
}

// compactTxBytes bounds each write transaction of the copy, so the copy's
// dirty pages never pile up in memory beyond it.
const compactTxBytes = 32 << 20

// Compact rewrites the database at path into path+".compact", checks that
// every bucket holds as many keys as before, and renames the copy over
// path. A failure at any step leaves the original file as it was.
func Compact(path string) (CompactReport, error) {
	rep := CompactReport{Path: path}
	info, err := os.Stat(path)
	if err != nil {
		return rep, fmt.Errorf("compact: %w", err)
	}
	rep.Before = info.Size()
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return rep, fmt.Errorf("compact: %s is locked by another process (stop kadenz first)", path)
		}
		return rep, fmt.Errorf("compact: open %s: %w", path, err)
	}
	defer src.Close()
	if err := boltCheck(src); err != nil {
		return rep, &DamagedError{Path: path, Reason: "bbolt's consistency check failed: " + err.Error()}
	}

	tmp := path + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, fmt.Errorf("compact: %w", err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return rep, fmt.Errorf("compact: create %s: %w", tmp, err)
	}
	fail := func(err error) (CompactReport, error) {
		dst.Close()
		os.Remove(tmp)
		return rep, fmt.Errorf("compact: %w", err)
	}
	if err := bolt.Compact(dst, src, compactTxBytes); err != nil {
		return fail(err)
	}
	want, err := countKeys(src)
	if err != nil {
		return fail(err)
	}
	got, err := countKeys(dst)
	if err != nil {
		return fail(err)
	}
	for name, n := range want {
		if got[name] != n {
			return fail(fmt.Errorf("the copy has %d keys in bucket %s, the original %d: original kept", got[name], name, n))
		}
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return rep, fmt.Errorf("compact: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return rep, fmt.Errorf("compact: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return rep, fmt.Errorf("compact: %w", err)
	}
	rep.Keys = want
	if info, err := os.Stat(path); err == nil {
		rep.After = info.Size()
	}
	return rep, nil
}

// countKeys counts the keys under each top-level bucket, nested buckets'
// keys included.
func countKeys(db *bolt.DB) (map[string]int, error) {
	counts := map[string]int{}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			n, err := bucketKeys(b)
			counts[string(name)] = n
			return err
		})
	})
	return counts, err
}

func bucketKeys(b *bolt.Bucket) (int, error) {
	n := 0
	err := b.ForEach(func(k, v []byte) error {
		n++
		if v == nil { // a nested bucket
			m, err := bucketKeys(b.Bucket(k))
			n += m
			return err
		}
		return nil
	})
	return n, err
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
