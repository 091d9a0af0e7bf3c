package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Review, operator actions and counters.
//
// An envelope in StateReview waits for a person: the engine put it there
// instead of releasing it (a rule asked for review), or an operator did.
// It is indexed like held mail, so listing what waits for review does not
// scan the database. Transition applies an operator's change to a set of
// envelopes in one transaction: all of them or none.
//
// Counters are named integers the engine keeps beside its decisions (how
// many of a campaign's decisions were suppressions, for one). They change
// in the same transaction as the decisions they count.

// ErrState is returned when an envelope is not in a state the requested
// change applies to.
var ErrState = errors.New("not in a state this applies to")

// EnvelopesInState calls fn for each envelope in state s until fn returns
// false. States with an index (queued and deferred together, held,
// review, delivering) are read from it, earliest due first; the others by
// a scan in ID order. An empty s means every envelope.
func (db *DB) EnvelopesInState(s State, fn func(Envelope) bool) error {
	return db.EnvelopesInStateAfter(s, EnvelopeCursor{}, fn)
}

// EnvelopesInStateAfter is EnvelopesInState from the first envelope after
// the cursor (paging.go): a seek in the state's index, so a later page
// costs what an early one does.
func (db *DB) EnvelopesInStateAfter(s State, after EnvelopeCursor, fn func(Envelope) bool) error {
	idx := s.index()
	if s == "" || idx == nil {
		return db.envelopesByIDAfter(s, after, fn)
	}
	// The first key after the cursor: in-flight mail is keyed by ID alone,
	// the other indexes by due time and ID.
	var from []byte
	if after != (EnvelopeCursor{}) {
		if s == StateDelivering {
			from = []byte(after.ID)
		} else {
			from = dueKey(after.Due, after.ID)
		}
	}
	seek := func(c *bolt.Cursor) []byte {
		if from == nil {
			k, _ := c.First()
			return k
		}
		k, _ := c.Seek(from)
		if k != nil && bytes.Equal(k, from) {
			k, _ = c.Next()
		}
		return k
	}
	return db.view(func(tx *bolt.Tx) error {
		// Mail waiting for delivery is in two lanes (express and the
		// rest): walk both at once, earliest key first.
		a := tx.Bucket(idx).Cursor()
		b := tx.Bucket(bucketDueExpress).Cursor()
		ka := seek(a)
		var kb []byte
		if bytes.Equal(idx, bucketDue) {
			kb = seek(b)
		}
		for ka != nil || kb != nil {
			var k []byte
			if kb == nil || ka != nil && bytes.Compare(ka, kb) <= 0 {
				k = ka
				ka, _ = a.Next()
			} else {
				k = kb
				kb, _ = b.Next()
			}
			id := k
			if s != StateDelivering {
				id = k[8:]
			}
			e, err := getEnvelope(tx, string(id))
			if err != nil {
				return err
			}
			if e.State != s { // queued and deferred share an index
				continue
			}
			if !fn(e) {
				return nil
			}
		}
		return nil
	})
}

// envelopesByIDAfter is EnvelopesInStateAfter for a state without an index
// of its own (or every state): a walk of the envelopes in ID order.
func (db *DB) envelopesByIDAfter(s State, after EnvelopeCursor, fn func(Envelope) bool) error {
	return db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEnvelopes).Cursor()
		k, v := c.First()
		if after.ID != "" {
			k, v = c.Seek([]byte(after.ID))
			if k != nil && string(k) == after.ID {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			var e Envelope
			if err := decodeEnvelope(v, &e); err != nil {
				return fmt.Errorf("envelope %s: %w", k, err)
			}
			if s != "" && e.State != s {
				continue
			}
			if !fn(e) {
				return nil
			}
		}
		return nil
	})
}

// Change is what an operator action does to one envelope: it edits e in
// place, and may return a decision record to append to the envelope's
// list. profile is the recipient's stored profile (nil if none); a non-nil
// newProfile replaces it. An error aborts the whole Transition.
type Change func(e *Envelope, profile []byte) (newProfile, record []byte, err error)

// Transition applies change to each of the envelopes ids names, in one
// transaction, and returns the changed envelopes. An unknown ID fails
// with ErrNotFound, and nothing is changed.
func (db *DB) Transition(ids []string, change Change) ([]Envelope, error) {
	var out []Envelope
	err := db.update(func(tx *bolt.Tx) error {
		out = out[:0] // the committer may run this again
		profiles := tx.Bucket(bucketProfiles)
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			e, err := getEnvelope(tx, id)
			if err != nil {
				return err
			}
			old := e
			newProfile, record, err := change(&e, bytes.Clone(profiles.Get(profileKey(e.To))))
			if err != nil {
				return fmt.Errorf("envelope %s: %w", id, err)
			}
			if err := putEnvelope(tx, &old, &e); err != nil {
				return err
			}
			if newProfile != nil {
				if err := profiles.Put(profileKey(e.To), newProfile); err != nil {
					return err
				}
			}
			if record != nil {
				if err := appendRecords(tx, map[string][]byte{id: record}, nil); err != nil {
					return err
				}
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Counters returns the current values of the named counters (0 for one
// never counted).
func (db *DB) Counters(names ...string) (map[string]int64, error) {
	vals := make(map[string]int64, len(names))
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounters)
		for _, n := range names {
			if v := b.Get([]byte(n)); len(v) == 8 {
				vals[n] = int64(binary.BigEndian.Uint64(v))
			} else {
				vals[n] = 0
			}
		}
		return nil
	})
	return vals, err
}

// addCounters adds deltas to the named counters.
//
// In a transaction of the commit loop (one that keeps tallies) the changes
// are added up and written once, when the transaction ends (flushTallies):
// nothing reads the counters bucket inside a write transaction, and a
// failed writer's changes go with the rest of its attempt, as the commit
// loop retries the batch without it. Elsewhere they are written at once.
func addCounters(tx *bolt.Tx, deltas map[string]int64) error {
	if len(deltas) == 0 {
		return nil
	}
	if k := keeperOf(tx); k != nil {
		t := k.touched(tx)
		if t.counters == nil {
			t.counters = make(map[string]int64, 2*len(deltas))
		}
		for n, d := range deltas {
			t.counters[n] += d
		}
		return nil
	}
	return putCounters(tx, deltas)
}

// putCounters adds deltas to the stored counters.
func putCounters(tx *bolt.Tx, deltas map[string]int64) error {
	b := tx.Bucket(bucketCounters)
	for n, d := range deltas {
		var cur int64
		if v := b.Get([]byte(n)); len(v) == 8 {
			cur = int64(binary.BigEndian.Uint64(v))
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, uint64(cur+d))
		if err := b.Put([]byte(n), v); err != nil {
			return err
		}
	}
	return nil
}
