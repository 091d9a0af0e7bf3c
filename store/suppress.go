package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"runtime"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Feedback: the suppression list, seen event IDs, and applying a batch of
// feedback to several recipients in one transaction.

var (
	// bucketSuppressions: lower-case address -> Suppression (JSON); for an
	// erased recipient (see erasure.go) 0x00 + HMAC of the lower-case
	// address -> Suppression without the address.
	bucketSuppressions = []byte("suppressions")
	// bucketEventIDs: event ID -> 8-byte big-endian Unix ns when first
	// seen, so that a repeated event is acknowledged but not applied twice,
	// then 16 bytes of the recipient's HMAC (so erasure finds the IDs of a
	// recipient's events). Erased recipients' IDs are kept as 0x00 + HMAC
	// of the ID -> the time alone.
	bucketEventIDs = []byte("event_ids")
)

// Suppression is one address on the suppression list: no marketing mail
// goes to it, whatever the model thinks. Transactional mail still does.
type Suppression struct {
	Address string    `json:"address"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	// Source says who put it there: imap, events, admin, import.
	Source string `json:"source,omitempty"`
	// Pseudonym replaces Address in the entry of an erased recipient: the
	// start of the keyed hash the entry is stored under. The address is
	// still suppressed; only someone who knows it can find its entry.
	Pseudonym string `json:"pseudonym,omitempty"`
}

// NormalizeAddress is how the suppression list compares addresses: trimmed
// and lower case (domains are case-insensitive and no mail system in use
// distinguishes local parts by case).
func NormalizeAddress(a string) string {
	return strings.ToLower(strings.TrimSpace(a))
}

func putSuppression(tx *bolt.Tx, s Suppression, replace bool) (bool, error) {
	s.Address = NormalizeAddress(s.Address)
	if s.Address == "" {
		return false, fmt.Errorf("store: suppression without an address")
	}
	b := tx.Bucket(bucketSuppressions)
	if !replace && b.Get([]byte(s.Address)) != nil {
		return false, nil // the first reason stays: it is why the address stopped
	}
	hashed, err := erasedSuppressionKey(tx, s.Address)
	if err != nil {
		return false, err
	}
	if hashed != nil && b.Get(hashed) != nil {
		if !replace {
			return false, nil // erased, and still suppressed
		}
		if err := b.Delete(hashed); err != nil {
			return false, err
		}
	}
	v, err := json.Marshal(s)
	if err != nil {
		return false, err
	}
	return true, b.Put([]byte(s.Address), v)
}

// Suppress adds addresses to the suppression list in one transaction.
// An address already listed keeps its entry unless replace is set. It
// returns how many entries were written.
func (db *DB) Suppress(replace bool, list ...Suppression) (int, error) {
	n := 0
	err := db.update(func(tx *bolt.Tx) error {
		n = 0
		for _, s := range list {
			added, err := putSuppression(tx, s, replace)
			if err != nil {
				return err
			}
			if added {
				n++
			}
		}
		return nil
	})
	return n, err
}

// Unsuppress removes an address from the list and, in the same
// transaction, lets profile change the recipient's stored profile (nil old
// means none; a nil result leaves it). It reports whether the address was
// listed.
func (db *DB) Unsuppress(addr string, profile func(old []byte) ([]byte, error)) (bool, error) {
	addr = NormalizeAddress(addr)
	found := false
	err := db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSuppressions)
		found = b.Get([]byte(addr)) != nil
		if err := b.Delete([]byte(addr)); err != nil {
			return err
		}
		hashed, err := erasedSuppressionKey(tx, addr)
		if err != nil {
			return err
		}
		if hashed != nil && b.Get(hashed) != nil {
			found = true
			if err := b.Delete(hashed); err != nil {
				return err
			}
		}
		if profile == nil {
			return nil
		}
		pb := tx.Bucket(bucketProfiles)
		old := bytes.Clone(pb.Get(profileKey(addr)))
		if old == nil {
			return nil
		}
		updated, err := profile(old)
		if err != nil || updated == nil {
			return err
		}
		return pb.Put(profileKey(addr), updated)
	})
	return found, err
}

// SuppressionOf returns an address's entry on the suppression list, and
// whether there is one. The entry of an erased recipient is found by its
// keyed hash, and returned with the address asked about.
func (db *DB) SuppressionOf(addr string) (Suppression, bool, error) {
	var s Suppression
	var ok bool
	addr = NormalizeAddress(addr)
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSuppressions)
		v := b.Get([]byte(addr))
		if v == nil {
			hashed, err := erasedSuppressionKey(tx, addr)
			if err != nil || hashed == nil {
				return err
			}
			if v = b.Get(hashed); v == nil {
				return nil
			}
		}
		ok = true
		if err := json.Unmarshal(v, &s); err != nil {
			return err
		}
		s.Address = addr
		return nil
	})
	return s, ok, err
}

// Suppressions returns the whole list in address order, erased
// recipients' entries (Address empty, Pseudonym set) first.
func (db *DB) Suppressions() ([]Suppression, error) {
	var list []Suppression
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSuppressions).ForEach(func(_, v []byte) error {
			var s Suppression
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			list = append(list, s)
			return nil
		})
	})
	return list, err
}

// SuppressionsAfter reads one page of the suppression list in key order:
// a seek, so a page deep into a long list costs what the first does.
func (db *DB) SuppressionsAfter(after []byte, limit int) ([]Suppression, []byte, error) {
	var list []Suppression
	var last, next []byte
	err := db.view(func(tx *bolt.Tx) error {
		list, last, next = list[:0], nil, nil // view may not run twice, but keep it plain
		c := tx.Bucket(bucketSuppressions).Cursor()
		k, v := c.First()
		if after != nil {
			if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			if len(list) == limit { // one more exists
				next = last
				return nil
			}
			var s Suppression
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			list = append(list, s)
			last = bytes.Clone(k)
		}
		return nil
	})
	return list, next, err
}

// FeedbackChange is what one piece of feedback does to one recipient.
type FeedbackChange struct {
	// EventID, if set, makes the change idempotent: a change whose ID was
	// seen before (in an earlier call or earlier in the same batch) is
	// skipped and counted as a duplicate.
	EventID   string
	Recipient string
	// Apply is given the recipient's stored profile (nil if none) and says
	// what to write. It runs inside the transaction.
	Apply func(old []byte) (FeedbackOutcome, error)
}

// FeedbackOutcome is what a FeedbackChange writes.
type FeedbackOutcome struct {
	// Profile replaces the stored profile; nil leaves it.
	Profile []byte
	// Suppress, if set, adds the recipient to the suppression list (an
	// existing entry is kept).
	Suppress *Suppression
	// Stop, if set, is asked about each of the recipient's held envelopes
	// and each waiting (queued or deferred) envelope in StopAlso (releases
	// planned but not yet sent); a non-nil decision record suppresses the
	// envelope and is appended to its records.
	Stop     func(e Envelope) []byte
	StopAlso []string
	// Counters are added to the named counters (as Decided.Counters), in
	// the same transaction: what the feedback adds to a campaign's
	// engagement counts, for instance. A duplicate change adds nothing.
	Counters map[string]int64
}

// ApplyFeedback applies changes in one transaction: all of them, or on
// error none. It returns how many were applied and how many skipped as
// duplicates. Functions in changes may run more than once (see commit.go).
//
// The expensive part of a change, decoding, updating and encoding the
// recipient's profile, runs first in the caller's goroutine against a read
// transaction (precompute). The write transaction, which all writers share
// one at a time, then only compares: where the stored profile is still the
// one the change was computed from, it writes the result; where another
// writer changed it meanwhile (or an earlier change of the batch was a
// duplicate), it computes again from what is stored. So concurrent callers
// spend their CPU in parallel, and the outcome is the same as computing
// everything inside the transaction.
func (db *DB) ApplyFeedback(now time.Time, changes []FeedbackChange) (applied, duplicates int, err error) {
	return db.applyFeedback(now, changes, nil)
}

// applyFeedback is ApplyFeedback; mark, if set, is written in the same
// transaction (ApplyJournalled's position in its journal).
func (db *DB) applyFeedback(now time.Time, changes []FeedbackChange, mark func(*bolt.Tx) error) (applied, duplicates int, err error) {
	pre, preSecret := db.precompute(now, changes)
	err = db.update(func(tx *bolt.Tx) error {
		applied, duplicates = 0, 0
		if mark != nil {
			if err := mark(tx); err != nil {
				return err
			}
		}
		seen := tx.Bucket(bucketEventIDs)
		// Erased recipients' IDs are kept under keys that start with 0x00,
		// which sort before any other: when the first key does not, there
		// are none, and looking each ID up among them would be a B+tree
		// search per event for nothing.
		first, _ := seen.Cursor().First()
		erasedIDs := len(first) > 0 && first[0] == 0
		var secret []byte
		for i := range changes {
			c, p := &changes[i], &pre[i]
			if c.EventID != "" {
				if secret == nil {
					var err error
					if secret, err = pseudonymSecret(tx, true); err != nil {
						return err
					}
					if !bytes.Equal(secret, preSecret) {
						eventIDKeys(now, secret, changes, pre)
					}
				}
				if seen.Get(p.id.plain) != nil || erasedIDs && seen.Get(p.id.erased) != nil {
					duplicates++
					continue
				}
				if err := seen.Put(p.id.plain, p.id.value); err != nil {
					return err
				}
			}
			if err := applyChange(tx, now, c, p); err != nil {
				return fmt.Errorf("feedback for %s: %w", c.Recipient, err)
			}
			applied++
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return applied, duplicates, nil
}

// precomputed is a change's outcome computed outside the write
// transaction, and the stored profile it was computed from; and the keys
// of its event ID.
type precomputed struct {
	ok   bool
	from []byte
	out  FeedbackOutcome
	id   eventIDKey
}

// eventIDKey is how an event ID is looked up and stored (see
// bucketEventIDs): under the ID itself, or under its keyed hash once its
// recipient was erased; value is what it is stored with.
type eventIDKey struct {
	plain, erased, value []byte
}

// eventIDPrefix starts what erasedEventKey hashes.
var eventIDPrefix = []byte("event\x00")

// eventIDKeys computes the keys of the changes' event IDs with secret into
// pre: the bytes erasedEventKey and eventIDValue give, computed with one
// keyed hash reset between uses and stored in one buffer for the batch.
// (Two keyed hashes per event, each with its own HMAC set-up, were a tenth
// of the events API's CPU.)
func eventIDKeys(now time.Time, secret []byte, changes []FeedbackChange, pre []precomputed) {
	size := 0
	for i := range changes {
		if id := changes[i].EventID; id != "" {
			size += len(id) + 1 + sha256.Size + 8 + recipientTagLen
		}
	}
	// Each key keeps its own part of buf: bbolt holds on to what is Put
	// until the commit.
	buf := make([]byte, 0, size)
	h := hmac.New(sha256.New, secret)
	var sum [sha256.Size]byte
	for i := range changes {
		c := &changes[i]
		if c.EventID == "" {
			continue
		}
		start := len(buf)
		buf = append(buf, c.EventID...)
		plain := buf[start:len(buf):len(buf)]

		start = len(buf)
		h.Reset()
		h.Write(eventIDPrefix)
		h.Write(plain)
		buf = h.Sum(append(buf, 0))
		erased := buf[start:len(buf):len(buf)]

		start = len(buf)
		buf = binary.BigEndian.AppendUint64(buf, uint64(now.UnixNano()))
		if c.Recipient != "" {
			h.Reset()
			h.Write([]byte(strings.ToLower(NormalizeAddress(c.Recipient)))) // as hashAddress
			buf = append(buf, h.Sum(sum[:0])[:recipientTagLen]...)
		}
		pre[i].id = eventIDKey{plain: plain, erased: erased, value: buf[start:len(buf):len(buf)]}
	}
}

// precompute runs each change's Apply against the profiles as they are now
// (and as the batch's earlier changes leave them), in a read transaction,
// and computes the event IDs' keys with the database's secret if it has
// one yet (which it returns). A change whose Apply fails is left for the
// write transaction to run and report.
//
// A large batch (the event journal's applier hands over thousands of
// events at once) is split by recipient over the processors, each part in
// its own read transaction: a recipient's changes stay in one part, in
// their order, so every change sees what it would have seen in one pass.
func (db *DB) precompute(now time.Time, changes []FeedbackChange) ([]precomputed, []byte) {
	pre := make([]precomputed, len(changes))
	var secret []byte
	db.view(func(tx *bolt.Tx) error {
		if s, err := pseudonymSecret(tx, false); err == nil && s != nil {
			secret = s
			eventIDKeys(now, secret, changes, pre)
		}
		return nil
	})
	parts := min(runtime.GOMAXPROCS(0), len(changes)/precomputeMin)
	if parts < 2 {
		db.view(func(tx *bolt.Tx) error {
			precomputePart(tx, changes, pre, nil)
			return nil
		})
		return pre, secret
	}
	which := make([][]int, parts)
	for i := range changes {
		h := fnv.New32a()
		h.Write(profileKey(changes[i].Recipient))
		p := int(h.Sum32() % uint32(parts))
		which[p] = append(which[p], i)
	}
	var wg sync.WaitGroup
	for _, idx := range which {
		wg.Go(func() {
			db.view(func(tx *bolt.Tx) error {
				precomputePart(tx, changes, pre, idx)
				return nil
			})
		})
	}
	wg.Wait()
	return pre, secret
}

// precomputeMin is how many changes each part of a split precompute has
// at least: below it, one pass.
const precomputeMin = 256

// precomputePart precomputes the changes at idx (all of them if idx is nil)
// in order, in tx.
func precomputePart(tx *bolt.Tx, changes []FeedbackChange, pre []precomputed, idx []int) {
	pb := tx.Bucket(bucketProfiles)
	batch := map[string][]byte{} // profiles written by earlier changes of the batch
	n := len(changes)
	if idx != nil {
		n = len(idx)
	}
	for k := range n {
		i := k
		if idx != nil {
			i = idx[k]
		}
		c, p := &changes[i], &pre[i]
		key := string(profileKey(c.Recipient))
		from, seen := batch[key]
		if !seen {
			from = bytes.Clone(pb.Get([]byte(key)))
		}
		out, err := c.Apply(bytes.Clone(from))
		if err != nil {
			continue
		}
		p.ok, p.from, p.out = true, from, out
		if out.Profile != nil {
			batch[key] = out.Profile
		} else {
			batch[key] = from
		}
	}
}

func applyChange(tx *bolt.Tx, now time.Time, c *FeedbackChange, pre *precomputed) error {
	pb := tx.Bucket(bucketProfiles)
	stored := pb.Get(profileKey(c.Recipient))
	out := pre.out
	if !pre.ok || !bytes.Equal(stored, pre.from) {
		var err error
		if out, err = c.Apply(bytes.Clone(stored)); err != nil {
			return err
		}
	}
	if out.Profile != nil {
		if err := pb.Put(profileKey(c.Recipient), out.Profile); err != nil {
			return err
		}
	}
	if out.Suppress != nil {
		if _, err := putSuppression(tx, *out.Suppress, false); err != nil {
			return err
		}
	}
	if err := addCounters(tx, out.Counters); err != nil {
		return err
	}
	if out.Stop == nil {
		return nil
	}
	ids := out.StopAlso
	prefix := recipientKey(c.Recipient, "")
	cur := tx.Bucket(bucketHeldByRecipient).Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		ids = append(ids, string(k[len(prefix):]))
	}
	records := map[string][]byte{}
	for _, id := range ids {
		if _, done := records[id]; done {
			continue
		}
		e, err := getEnvelope(tx, id)
		if err != nil {
			continue // a release whose envelope is gone: nothing to stop
		}
		if NormalizeAddress(e.To) != NormalizeAddress(c.Recipient) || (e.State != StateHeld && e.State != StateQueued && e.State != StateDeferred) {
			continue
		}
		rec := out.Stop(e)
		if rec == nil {
			continue
		}
		old := e
		e.State, e.Updated = StateSuppressed, now
		if err := putEnvelope(tx, &old, &e); err != nil {
			return err
		}
		records[id] = rec
	}
	return appendRecords(tx, records, nil)
}

// PruneEventIDs forgets event IDs first seen before cutoff, and returns how
// many it removed. A repeat of a forgotten event would be applied again.
func (db *DB) PruneEventIDs(cutoff time.Time) (int, error) {
	n := 0
	err := db.update(func(tx *bolt.Tx) error {
		n = 0
		b := tx.Bucket(bucketEventIDs)
		var old [][]byte
		b.ForEach(func(k, v []byte) error {
			if len(v) >= 8 && int64(binary.BigEndian.Uint64(v)) < cutoff.UnixNano() {
				old = append(old, bytes.Clone(k))
			}
			return nil
		})
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// EventIDCount is how many event IDs the store remembers.
func (db *DB) EventIDCount() (int, error) {
	n := 0
	err := db.view(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketEventIDs).Stats().KeyN
		return nil
	})
	return n, err
}
