package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Erasure beyond the envelopes (see Forget in privacy.go).
//
// A recipient's suppression entry and the IDs of events about them cannot
// simply be deleted: the entry is what keeps marketing mail away from an
// address that asked for none, and a seen event ID is what stops a
// sender's retry from being applied twice. So Forget re-keys both by a
// keyed hash (HMAC-SHA256 with the database's pseudonym secret, the one
// tombstones use): the address and the ID leave the file, lookups by
// someone who knows them still match.
//
// Deleting keys from bbolt does not remove their bytes from the file: the
// pages that held them go to the freelist and keep their contents until
// reused, and the file never shrinks. ScrubFreePages overwrites them.

// erasedSuppressionKey is the key of an erased recipient's suppression
// entry, or nil while the database has no pseudonym secret (then nothing
// was erased yet).
func erasedSuppressionKey(tx *bolt.Tx, addr string) ([]byte, error) {
	secret, err := pseudonymSecret(tx, false)
	if err != nil || secret == nil {
		return nil, err
	}
	return append([]byte{0}, hashAddress(secret, NormalizeAddress(addr))...), nil
}

// erasedEventKey is the key an event ID is kept under once the recipient
// it was about is erased.
func erasedEventKey(secret []byte, id string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("event\x00"))
	h.Write([]byte(id))
	return append([]byte{0}, h.Sum(nil)...)
}

// recipientTagLen is how much of a recipient's hash an event ID's value
// carries: enough to find a recipient's IDs, not a way to test addresses
// without the secret.
const recipientTagLen = 16

// eventIDValue is what an event ID is stored with: when it was first seen
// and whom it was about.
func eventIDValue(now time.Time, secret []byte, rcpt string) []byte {
	v := make([]byte, 8, 8+recipientTagLen)
	binary.BigEndian.PutUint64(v, uint64(now.UnixNano()))
	if rcpt == "" {
		return v
	}
	return append(v, hashAddress(secret, NormalizeAddress(rcpt))[:recipientTagLen]...)
}

// eraseSuppression replaces addr's suppression entry by one keyed by its
// hash, without the address (also where the reason quotes it), and
// reports whether the address is on the list in either form.
func eraseSuppression(tx *bolt.Tx, addr string, rep *ForgetReport) (bool, error) {
	b := tx.Bucket(bucketSuppressions)
	plain := []byte(NormalizeAddress(addr))
	v := b.Get(plain)
	secret, err := pseudonymSecret(tx, v != nil)
	if err != nil {
		return false, err
	}
	if v == nil {
		if secret == nil {
			return false, nil
		}
		return b.Get(append([]byte{0}, hashAddress(secret, string(plain))...)) != nil, nil
	}
	var s Suppression
	if err := json.Unmarshal(v, &s); err != nil {
		return false, fmt.Errorf("suppression entry: %w", err)
	}
	key := append([]byte{0}, hashAddress(secret, string(plain))...)
	s.Address = ""
	s.Pseudonym = hex.EncodeToString(key[1:9])
	s.Reason = withoutAddress(s.Reason, string(plain))
	nv, err := json.Marshal(s)
	if err != nil {
		return false, err
	}
	if err := b.Delete(plain); err != nil {
		return false, err
	}
	rep.Suppressions++
	return true, b.Put(key, nv)
}

// withoutAddress removes every spelling of addr from text.
func withoutAddress(text, addr string) string {
	return regexp.MustCompile("(?i)"+regexp.QuoteMeta(addr)).ReplaceAllString(text, "[erased address]")
}

// eraseEventIDs re-keys the IDs of events about addr, and any ID that
// contains the address, by their hash.
func eraseEventIDs(tx *bolt.Tx, addr string, rep *ForgetReport) error {
	secret, err := pseudonymSecret(tx, false)
	if err != nil || secret == nil {
		return err // no secret: no event ID was ever stored with a tag
	}
	tag := hashAddress(secret, NormalizeAddress(addr))[:recipientTagLen]
	lower := bytes.ToLower([]byte(NormalizeAddress(addr)))
	b := tx.Bucket(bucketEventIDs)
	type kv struct{ k, v []byte }
	var found []kv
	err = b.ForEach(func(k, v []byte) error {
		if len(k) > 0 && k[0] == 0 {
			return nil // already a hash
		}
		if len(v) >= 8+recipientTagLen && bytes.Equal(v[8:8+recipientTagLen], tag) || bytes.Contains(bytes.ToLower(k), lower) {
			found = append(found, kv{bytes.Clone(k), bytes.Clone(v[:min(len(v), 8)])})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range found {
		if err := b.Delete(e.k); err != nil {
			return err
		}
		if err := b.Put(erasedEventKey(secret, string(e.k)), e.v); err != nil {
			return err
		}
		rep.EventIDs++
	}
	return nil
}

// view runs fn in a read transaction, counted so that ScrubFreePages
// knows when no reader can be looking at a freed page.
func (db *DB) view(fn func(*bolt.Tx) error) error {
	db.readers.Add(1)
	defer db.readers.Add(-1)
	return db.bolt.View(fn)
}

// eraseHeldIndex deletes held-mail index entries under addr whose envelope
// was erased or no longer exists.
func eraseHeldIndex(tx *bolt.Tx, addr string, erased []Envelope) error {
	gone := map[string]bool{}
	for _, e := range erased {
		gone[e.ID] = true
	}
	b := tx.Bucket(bucketHeldByRecipient)
	prefix := recipientKey(addr, "")
	var stale [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		id := string(k[len(prefix):])
		if gone[id] || tx.Bucket(bucketEnvelopes).Get([]byte(id)) == nil {
			stale = append(stale, bytes.Clone(k))
		}
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// ErrScrubBusy is returned by ScrubFreePages when read transactions stayed
// open throughout its attempts.
var ErrScrubBusy = errors.New("store: read transactions kept the free pages in use; try again")

// ScrubReport says what ScrubFreePages overwrote.
type ScrubReport struct {
	// Pages were free (or past the last page in use) and held data.
	Pages int `json:"pages"`
	// FreePages were free in all.
	FreePages int `json:"free_pages"`
}

// ScrubFreePages overwrites with zeros every page of the file that no
// transaction can read: pages on the freelist, and the file's tail past
// the last page in use. After an erasure it leaves no byte of what was
// deleted in the file.
//
// It runs in a write transaction (so nothing is allocated meanwhile) that
// it rolls back, and writes the pages through a second file descriptor;
// bbolt maps the file shared, so the mapping sees the zeros. A page freed
// by a recent commit may still be read by a read transaction that started
// before that commit, so the scrub only proceeds when no read transaction
// is open — the store counts its own (view) from before they begin, since
// bbolt's count is updated just after — trying again for a while (attempts of up to a few milliseconds
// each) before it gives up with ErrScrubBusy. New read transactions begun
// during the scrub read the last committed tree, which uses no free page.
//
// The alternative, bbolt's Compact into a new file and a swap, would have
// to stop every reader and writer for the time of a full copy and reopen
// the handle under them; overwriting in place costs a walk of the page
// headers and a write per dirty free page.
func (db *DB) ScrubFreePages() (ScrubReport, error) {
	delay := time.Millisecond
	for attempt := 0; attempt < 100; attempt++ {
		rep, err := db.scrubOnce()
		if !errors.Is(err, ErrScrubBusy) {
			return rep, err
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
	return ScrubReport{}, ErrScrubBusy
}

func (db *DB) scrubOnce() (ScrubReport, error) {
	var rep ScrubReport
	tx, err := db.bolt.Begin(true)
	if err != nil {
		return rep, err
	}
	defer tx.Rollback()
	// Our own count is raised before a read transaction begins, so when
	// it reads 0 no reader can hold an older tree; bbolt's count covers
	// any read transaction begun elsewhere.
	if db.readers.Load() > 0 || db.bolt.Stats().OpenTxN > 0 {
		return rep, ErrScrubBusy
	}
	f, err := os.OpenFile(db.bolt.Path(), os.O_RDWR, 0)
	if err != nil {
		return rep, fmt.Errorf("store: scrub: %w", err)
	}
	defer f.Close()
	pageSize := int64(db.bolt.Info().PageSize)
	inUse := tx.Size() / pageSize // the high-water mark
	buf := make([]byte, pageSize)
	zero := make([]byte, pageSize)
	wipe := func(off int64, n int) error {
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return err
		}
		if bytes.Equal(buf[:n], zero[:n]) {
			return nil
		}
		rep.Pages++
		_, err := f.WriteAt(zero[:n], off)
		return err
	}
	for id := int64(2); id < inUse; id++ { // pages 0 and 1 are the meta pages
		info, err := tx.Page(int(id))
		if err != nil {
			return rep, fmt.Errorf("store: scrub: page %d: %w", id, err)
		}
		if info == nil {
			break
		}
		if info.Type != "free" {
			id += int64(info.OverflowCount) // the rest of a live value
			continue
		}
		rep.FreePages++
		if err := wipe(id*pageSize, int(pageSize)); err != nil {
			return rep, fmt.Errorf("store: scrub: %w", err)
		}
	}
	st, err := f.Stat()
	if err != nil {
		return rep, err
	}
	for off := inUse * pageSize; off < st.Size(); off += pageSize {
		if err := wipe(off, int(min(pageSize, st.Size()-off))); err != nil {
			return rep, fmt.Errorf("store: scrub: %w", err)
		}
	}
	if rep.Pages > 0 {
		if err := f.Sync(); err != nil {
			return rep, fmt.Errorf("store: scrub: %w", err)
		}
	}
	return rep, nil
}
