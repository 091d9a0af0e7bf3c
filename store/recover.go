package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Recovery copies what can be read from a damaged file into a new one,
// with the same bounds-checked reader the check uses (check.go), so it
// works where bbolt itself would crash: truncated files, garbled pages, a
// garbled meta page (it reads from the valid one). What it cannot read it
// reports. Then it makes the copy consistent for Kadenz: the schedule
// indexes are rebuilt from the envelopes (an index page lost must not
// strand mail that is still there), and an envelope whose message or body
// was lost is marked failed with the reason, so that "explain" and the
// report name it instead of it waiting forever.

// RecoverReport says what Recover copied and what it could not.
type RecoverReport struct {
	// Source is the check of the damaged file, listing unreadable pages.
	Source *Report
	// Copied counts the keys written to the new file per bucket.
	Copied map[string]int
	// Waiting counts the envelopes in the copy still to be delivered or
	// decided, by state.
	Waiting map[State]int
	// Lost names each envelope whose mail could not be recovered, with why.
	Lost []string
	// Orphans names messages whose envelopes were all lost (their
	// recipients are unknown).
	Orphans []string
	// Scavenged counts the records found outside the tree (scavenge.go)
	// per bucket, and Review names the waiting envelopes among them, put
	// in review for a person.
	Scavenged map[string]int
	Review    []string
}

// String is the report for a person.
func (r *RecoverReport) String() string {
	var b strings.Builder
	b.WriteString(r.Source.String())
	names := make([]string, 0, len(r.Copied))
	for n := range r.Copied {
		names = append(names, n)
	}
	sort.Strings(names)
	b.WriteString("copied:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  bucket %s: %d keys\n", n, r.Copied[n])
	}
	total := 0
	states := make([]string, 0, len(r.Waiting))
	for s, n := range r.Waiting {
		total += n
		states = append(states, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(states)
	fmt.Fprintf(&b, "envelopes waiting in the copy: %d (%s)\n", total, strings.Join(states, ", "))
	fmt.Fprintf(&b, "envelopes lost (marked failed in the copy): %d\n", len(r.Lost))
	for _, l := range r.Lost {
		fmt.Fprintf(&b, "  - %s\n", l)
	}
	if len(r.Scavenged) > 0 {
		fmt.Fprintf(&b, "found outside the tree (pages the damage cut off from it): %d messages, %d bodies, %d envelopes\n",
			r.Scavenged["messages"], r.Scavenged["bodies"], r.Scavenged["envelopes"])
		fmt.Fprintf(&b, "envelopes put in review, as they may be stale (sent or erased since): %d\n", len(r.Review))
		for _, e := range r.Review {
			fmt.Fprintf(&b, "  - %s\n", e)
		}
	}
	if len(r.Orphans) > 0 {
		fmt.Fprintf(&b, "messages whose envelopes were lost (recipients unknown): %d\n", len(r.Orphans))
		for _, o := range r.Orphans {
			fmt.Fprintf(&b, "  - %s\n", o)
		}
	}
	if r.Source.OK() && len(r.Lost) == 0 && len(r.Orphans) == 0 {
		b.WriteString("nothing was lost\n")
	} else {
		b.WriteString("keys on unreadable pages are not counted above: see the problems listed\n")
	}
	return b.String()
}

// recoverCommitBytes bounds one write transaction of the copy.
const recoverCommitBytes = 32 << 20

// Recover copies what can be read from the database file src into a new
// file dst, which must not exist. It never opens src with bbolt and never
// writes to it. The error is for a copy that could not be made at all; a
// damaged source is described in the report.
func Recover(src, dst string, now time.Time) (*RecoverReport, error) {
	if _, err := os.Stat(dst); err == nil {
		return nil, fmt.Errorf("%s already exists: recover writes a new file", dst)
	}
	f, size, done, err := openForReading(src)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return nil, err
	}
	// Without a readable meta page there is no tree to follow: say so
	// rather than write an empty "recovered" file.
	if metas, pageSize := readMetas(f, size); pageSize == 0 || size == 0 {
		return nil, fmt.Errorf("nothing in %s can be read (%d bytes; meta page 0: %v; meta page 1: %v): restore the latest backup",
			src, size, metas[0].err, metas[1].err)
	}
	out, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", dst, err)
	}
	rep := &RecoverReport{Source: &Report{Path: src, Size: size, Keys: map[string]int{}},
		Copied: map[string]int{}, Waiting: map[State]int{}}
	c := &copier{db: out}
	_, w, walkErr := walkFile(f, size, rep.Source, c.bucket, c.put)
	if err := errors.Join(walkErr, c.commit()); err != nil {
		out.Close()
		return nil, fmt.Errorf("copying into %s: %w", dst, err)
	}
	if !rep.Source.OK() && w != nil {
		rep.Scavenged, rep.Review, err = scavengeInto(c, scavenge(w.r, w.seen), now)
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("copying into %s: %w", dst, err)
		}
	}
	if err := out.Update(func(tx *bolt.Tx) error { return repair(tx, rep, now) }); err != nil {
		out.Close()
		return nil, fmt.Errorf("repairing %s: %w", dst, err)
	}
	err = out.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			rep.Copied[fmt.Sprintf("%q", name)] = b.Stats().KeyN
			return nil
		})
	})
	if err == nil {
		err = out.Sync()
	}
	if err := errors.Join(err, out.Close()); err != nil {
		return nil, err
	}
	return rep, nil
}

// copier writes what the walk reads into the new file, committing every
// recoverCommitBytes.
type copier struct {
	db      *bolt.DB
	tx      *bolt.Tx
	pending int
}

func (c *copier) target(path [][]byte) (*bolt.Bucket, error) {
	if c.tx == nil {
		tx, err := c.db.Begin(true)
		if err != nil {
			return nil, err
		}
		c.tx = tx
	}
	b, err := c.tx.CreateBucketIfNotExists(path[0])
	for _, name := range path[1:] {
		if err != nil {
			return nil, err
		}
		b, err = b.CreateBucketIfNotExists(name)
	}
	return b, err
}

func (c *copier) bucket(path [][]byte, sequence uint64) error {
	b, err := c.target(path)
	if err != nil {
		return err
	}
	return b.SetSequence(sequence)
}

func (c *copier) put(path [][]byte, k, v []byte) error {
	b, err := c.target(path)
	if err != nil {
		return err
	}
	// Put keeps references until commit; the walk's page buffers are
	// fresh for each page, so copying is not needed.
	if err := b.Put(k, v); err != nil {
		return fmt.Errorf("bucket %s, key %q: %w", pathName(path), k, err)
	}
	c.pending += len(k) + len(v)
	if c.pending >= recoverCommitBytes {
		return c.commit()
	}
	return nil
}

func (c *copier) commit() error {
	if c.tx == nil {
		return nil
	}
	err := c.tx.Commit()
	c.tx, c.pending = nil, 0
	return err
}

// repair makes the copy whole for Kadenz: every bucket present, the
// schema version set, envelopes that lost their message marked failed,
// and the schedule indexes rebuilt from the envelopes.
func repair(tx *bolt.Tx, rep *RecoverReport, now time.Time) (err error) {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	// Last: the tallies count what was recovered, not what was copied.
	defer func() {
		if err == nil {
			err = buildTallies(tx)
		}
	}()
	if tx.Bucket(bucketMeta).Get([]byte("schema")) == nil {
		if err := tx.Bucket(bucketMeta).Put([]byte("schema"), []byte(fmt.Sprint(SchemaVersion))); err != nil {
			return err
		}
	}
	for _, name := range [][]byte{bucketDue, bucketDueExpress, bucketHeld, bucketInflight, bucketHeldByRecipient, bucketReview, bucketByRecipient} {
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	msgs := tx.Bucket(bucketMessages)
	hasEnvelope := map[string]bool{}
	var envs []Envelope
	var unreadable [][]byte
	err = tx.Bucket(bucketEnvelopes).ForEach(func(k, v []byte) error {
		var e Envelope
		if err := decodeEnvelope(v, &e); err != nil || e.ID != string(k) {
			unreadable = append(unreadable, append([]byte(nil), k...))
			return nil
		}
		envs = append(envs, e)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range unreadable {
		rep.Lost = append(rep.Lost, fmt.Sprintf("envelope %s: its record is unreadable (removed)", k))
		if err := tx.Bucket(bucketEnvelopes).Delete(k); err != nil {
			return err
		}
	}
	for i := range envs {
		e := &envs[i]
		hasEnvelope[e.MessageID] = true
		if !e.State.Final() {
			why := ""
			switch {
			case msgs.Get([]byte(e.MessageID)) == nil:
				why = "its message record was lost"
			case !hasBody(tx, e.MessageID):
				why = "its message body was lost"
			}
			if why != "" {
				rep.Lost = append(rep.Lost, fmt.Sprintf("envelope %s (%s, to %s): %s", e.ID, e.State, e.To, why))
				e.State, e.LastError, e.Updated = StateFailed, "lost in database recovery: "+why, now
			}
		}
		if err := putEnvelope(tx, nil, e); err != nil {
			return err
		}
		if !e.State.Final() {
			rep.Waiting[e.State]++
		}
	}
	return msgs.ForEach(func(k, _ []byte) error {
		if !hasEnvelope[string(k)] {
			rep.Orphans = append(rep.Orphans, string(k))
		}
		return nil
	})
}

// boltCheck runs bbolt's own consistency check. Only call it on a file
// that passed Check: bbolt checks in a goroutine of its own, where a panic
// on a damaged page could not be recovered.
func boltCheck(b *bolt.DB) error {
	return b.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

// Backup writes a consistent copy of the database to w from one read
// transaction: writers go on while it runs (bbolt's Tx.WriteTo). size, if
// not nil, learns the copy's size before the first byte is written. It
// returns that size.
func (db *DB) Backup(w io.Writer, size func(int64)) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Size()
		if size != nil {
			size(n)
		}
		_, err := tx.WriteTo(w)
		return err
	})
	return n, err
}

// BackupFile copies the database file src, which no running kadenz may
// have open, to dst through a read-only bbolt transaction, after checking
// it; dst appears only when complete and synced.
func BackupFile(src, dst string) (int64, error) {
	rep, err := Check(src)
	if err != nil {
		return 0, err
	}
	if !rep.OK() {
		return 0, &DamagedError{Path: src, Reason: "it is damaged; a backup would copy the damage", Report: rep}
	}
	b, err := bolt.Open(src, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return 0, fmt.Errorf("%s is locked by a running kadenz: back up through its admin API instead", src)
		}
		return 0, err
	}
	defer b.Close()
	return WriteFileAtomic(dst, func(w io.Writer) (int64, error) {
		var n int64
		err := b.View(func(tx *bolt.Tx) error {
			var err error
			n, err = tx.WriteTo(w)
			return err
		})
		return n, err
	})
}

// WriteFileAtomic writes dst through write into a temporary file beside
// it, syncs it and renames it into place, so that dst is either complete
// or absent.
func WriteFileAtomic(dst string, write func(io.Writer) (int64, error)) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".*.tmp")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if err := errors.Join(err, tmp.Close()); err != nil {
		return n, err
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return n, err
	}
	return n, os.Rename(tmp.Name(), dst)
}
