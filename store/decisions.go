package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// What the decision engine reads and writes. The store keeps profiles and
// decision records as opaque JSON: their shape belongs to the engine and
// the scoring model, and the store imports neither.

// DueRecipients returns up to limit distinct recipients who have held mail
// due for a decision at now, earliest first.
func (db *DB) DueRecipients(now time.Time, limit int) ([]string, error) {
	var rcpts []string
	err := db.view(func(tx *bolt.Tx) error {
		seen := map[string]bool{}
		end := dueKey(now, "")
		c := tx.Bucket(bucketHeld).Cursor()
		for k, _ := c.First(); k != nil && len(rcpts) < limit && bytes.Compare(k[:8], end[:8]) <= 0; k, _ = c.Next() {
			to, err := envelopeRecipient(tx, k[8:])
			if err != nil {
				return err
			}
			if k := NormalizeAddress(to); !seen[k] {
				seen[k] = true
				rcpts = append(rcpts, to)
			}
		}
		return nil
	})
	return rcpts, err
}

// envelopeRecipient reads only an envelope's recipient: the decision loop
// asks for the recipients of up to a thousand held envelopes a round.
func envelopeRecipient(tx *bolt.Tx, id []byte) (string, error) {
	v := tx.Bucket(bucketEnvelopes).Get(id)
	if v == nil {
		return "", fmt.Errorf("envelope %s: %w", id, ErrNotFound)
	}
	return envelopeTo(v)
}

// NextHeld returns the earliest time a held envelope is due for a
// decision, and false if nothing is held.
func (db *DB) NextHeld() (time.Time, bool, error) {
	var t time.Time
	var ok bool
	err := db.view(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketHeld).Cursor().First(); k != nil {
			t, ok = time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))), true
		}
		return nil
	})
	return t, ok, err
}

// Recipient is what the engine needs to decide for one recipient: all of
// their held envelopes (due or not: held mail competes), the messages
// those belong to, and their profile (nil if none yet).
type Recipient struct {
	Address  string
	Held     []Envelope
	Messages map[string]Message
	Profile  []byte
	// Forgotten is when the address was erased while it asked for no
	// marketing mail (see Forget), or zero.
	Forgotten time.Time
}

// LoadRecipient reads a recipient's held mail and profile in one
// consistent view.
func (db *DB) LoadRecipient(rcpt string) (Recipient, error) {
	var r Recipient
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		r, err = loadRecipient(tx, rcpt)
		return err
	})
	return r, err
}

func loadRecipient(tx *bolt.Tx, rcpt string) (Recipient, error) {
	r := Recipient{Address: rcpt, Messages: map[string]Message{}}
	prefix := recipientKey(rcpt, "")
	c := tx.Bucket(bucketHeldByRecipient).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		e, err := getEnvelope(tx, string(k[len(prefix):]))
		if err != nil {
			return r, err
		}
		r.Held = append(r.Held, e)
		if _, ok := r.Messages[e.MessageID]; !ok {
			v := tx.Bucket(bucketMessages).Get([]byte(e.MessageID))
			if v == nil {
				return r, fmt.Errorf("message %s: %w", e.MessageID, ErrNotFound)
			}
			var m Message
			if err := decodeMessage(v, &m); err != nil {
				return r, err
			}
			r.Messages[e.MessageID] = m
		}
	}
	if v := tx.Bucket(bucketProfiles).Get(profileKey(rcpt)); v != nil {
		r.Profile = bytes.Clone(v)
	}
	var err error
	r.Forgotten, err = forgottenAt(tx, rcpt)
	return r, err
}

// Decided is the outcome of one decision round for one recipient.
type Decided struct {
	Recipient string
	// Profile replaces the stored profile (nil leaves it).
	Profile []byte
	// Envelopes are the changed envelopes (released, deferred, suppressed).
	Envelopes []Envelope
	// Records maps an envelope ID to one decision record (JSON object),
	// appended to that envelope's list.
	Records map[string][]byte
	// Counters are added to the named counters (see AddCounters).
	Counters map[string]int64
}

// ApplyDecisions writes a decision round atomically: envelopes, profile
// and records commit together or not at all.
func (db *DB) ApplyDecisions(d Decided) error {
	return db.update(applyDecided(d, nil))
}

// ApplyDecisionsAll writes several recipients' rounds, each atomically as
// ApplyDecisions does, sharing commits: one commit for all of them when it
// succeeds; a round that fails is rolled back alone and the others still
// commit. It returns one error per round, in order.
//
// What needs no write transaction is done first, in the caller's goroutine:
// the summaries the tallies read of each record, and the tallies' look-up
// of each message's class and campaign (a read transaction warms the
// keeper's cache). Every write waits for the one commit loop; a decision
// round is written while the engine computes the next one, so work moved
// from the loop to here runs beside the loop instead of in it.
func (db *DB) ApplyDecisionsAll(ds []Decided) []error {
	db.warmMessageInfo(ds)
	fns := make([]func(*bolt.Tx) error, len(ds))
	for i := range ds {
		prepared := make(map[string]preparedRecord, len(ds[i].Records))
		for id, rec := range ds[i].Records {
			prepared[id] = prepareRecord(rec)
		}
		fns[i] = applyDecided(ds[i], prepared)
	}
	return db.updateAll(fns)
}

// preparedRecord is a decision record made ready for its list outside the
// write: in the form appended (canonicalRecord), or why it cannot be, and
// what the tallies read of it.
type preparedRecord struct {
	canonical []byte
	err       error
	summary   recordSummary
}

func prepareRecord(rec []byte) preparedRecord {
	c, err := canonicalRecord(rec)
	return preparedRecord{canonical: c, err: err, summary: summarize(rec)}
}

// warmMessageInfo reads into the tallies' cache the class and campaign of
// the messages ds change envelopes of. Messages never change, so what a
// read transaction sees is what the write will; a message deleted in
// between is one the cache could already hold from an earlier write.
func (db *DB) warmMessageInfo(ds []Decided) {
	k, ok := openTallies.Load(db.bolt)
	if !ok {
		return
	}
	keeper := k.(*tallyKeeper)
	_ = db.view(func(tx *bolt.Tx) error {
		for i := range ds {
			for j := range ds[i].Envelopes {
				if _, err := keeper.infoOf(tx, ds[i].Envelopes[j].MessageID); err != nil {
					return err // the write will meet and report it
				}
			}
		}
		return nil
	})
}

// applyDecided writes one recipient's round; prepared are its records as
// the caller prepared them (nil: prepared in the write).
func applyDecided(d Decided, prepared map[string]preparedRecord) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		for i := range d.Envelopes {
			old, err := getEnvelope(tx, d.Envelopes[i].ID)
			if err != nil {
				return err
			}
			if err := putEnvelope(tx, &old, &d.Envelopes[i]); err != nil {
				return err
			}
		}
		if d.Profile != nil {
			if err := tx.Bucket(bucketProfiles).Put(profileKey(d.Recipient), d.Profile); err != nil {
				return err
			}
		}
		if err := addCounters(tx, d.Counters); err != nil {
			return err
		}
		return appendRecords(tx, d.Records, prepared)
	}
}

// appendRecords appends a record to each envelope's list; prepared holds
// the records the caller prepared already (or nil).
func appendRecords(tx *bolt.Tx, records map[string][]byte, prepared map[string]preparedRecord) error {
	b := tx.Bucket(bucketDecisions)
	for id, rec := range records {
		if err := touchEnvelope(tx, id, "", nil); err != nil {
			return err
		}
		p, ok := prepared[id]
		if !ok {
			p = prepareRecord(rec)
		}
		noteRecords(tx, id, rec, p.summary)
		if p.err != nil {
			return fmt.Errorf("decisions of %s: %w", id, p.err)
		}
		list, err := decisionsJSON(b.Get([]byte(id)))
		if err != nil {
			return fmt.Errorf("decisions of %s: %w", id, err)
		}
		v, err := appendCanonical(list, p.canonical)
		if err != nil {
			return fmt.Errorf("decisions of %s: %w", id, err)
		}
		if err := b.Put([]byte(id), encodeDecisions(v)); err != nil {
			return err
		}
	}
	return nil
}

// appendRecord returns the JSON array list (nil: none yet) with rec added
// at its end, compacted and escaped as json.Marshal writes it. The list is
// not decoded and written again record by record: every list in the bucket
// was written here, so it is already in that form.
func appendRecord(list, rec []byte) ([]byte, error) {
	r, err := canonicalRecord(rec)
	if err != nil {
		return nil, err
	}
	return appendCanonical(list, r)
}

// canonicalRecord is rec compacted and escaped as json.Marshal writes it
// (rec itself when it is already), or why it is not JSON.
func canonicalRecord(rec []byte) ([]byte, error) {
	if canonicalJSON(rec) { // canonical.go: as Marshal would write it already
		return rec, nil
	}
	return json.Marshal(json.RawMessage(rec)) // checks, compacts, escapes
}

// appendCanonical is appendRecord for a record canonicalRecord returned.
func appendCanonical(list, r []byte) ([]byte, error) {
	if len(list) == 0 {
		list = []byte("[]")
	}
	if len(list) < 2 || list[0] != '[' || list[len(list)-1] != ']' {
		return nil, errors.New("not a JSON array")
	}
	out := make([]byte, 0, len(list)+len(r)+1)
	out = append(out, list[:len(list)-1]...)
	if len(list) > 2 {
		out = append(out, ',')
	}
	out = append(out, r...)
	return append(out, ']'), nil
}

// Profile returns a recipient's stored profile, or nil.
func (db *DB) Profile(rcpt string) ([]byte, error) {
	var p []byte
	err := db.view(func(tx *bolt.Tx) error {
		p = bytes.Clone(tx.Bucket(bucketProfiles).Get(profileKey(rcpt)))
		return nil
	})
	return p, err
}

// PutProfile replaces a recipient's profile.
func (db *DB) PutProfile(rcpt string, profile []byte) error {
	return db.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProfiles).Put(profileKey(rcpt), profile)
	})
}

// Decisions returns an envelope's decision records (a JSON array), or nil.
func (db *DB) Decisions(envelopeID string) (json.RawMessage, error) {
	var v []byte
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		v, err = getDecisions(tx.Bucket(bucketDecisions), []byte(envelopeID))
		return err
	})
	return v, err
}

// MessageByHeaderID finds a message by its Message-ID header: the latest
// to arrive, when several carry it.
func (db *DB) MessageByHeaderID(headerID string) (string, error) {
	ids, err := db.MessagesByHeaderID(headerID)
	if err != nil {
		return "", err
	}
	return ids[len(ids)-1], nil
}

// MessagesByHeaderID returns every message that carries a Message-ID
// header, in order of arrival, or ErrNotFound.
func (db *DB) MessagesByHeaderID(headerID string) ([]string, error) {
	var ids []string
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHeaderIDs)
		if v := b.Get([]byte(headerID)); v != nil { // the layout before several were kept
			ids = append(ids, string(v))
		}
		prefix := headerKey(headerID, "")
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			ids = append(ids, string(v))
		}
		if len(ids) == 0 {
			return fmt.Errorf("Message-ID %s: %w", headerID, ErrNotFound)
		}
		return nil
	})
	return ids, err
}

// headerKey is a message's key in bucketHeaderIDs.
func headerKey(headerID, messageID string) []byte {
	return []byte(headerID + "\x00" + messageID)
}

// EnvelopesOf returns a message's envelopes.
func (db *DB) EnvelopesOf(messageID string) ([]Envelope, error) {
	var envs []Envelope
	err := db.view(func(tx *bolt.Tx) error {
		prefix := []byte(messageID + "-")
		c := tx.Bucket(bucketEnvelopes).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e Envelope
			if err := decodeEnvelope(v, &e); err != nil {
				return err
			}
			envs = append(envs, e)
		}
		return nil
	})
	return envs, err
}

// UpdateProfile replaces a recipient's profile with what change makes of
// the stored one (nil if none), in one transaction, so that concurrent
// feedback for one recipient is never lost.
func (db *DB) UpdateProfile(rcpt string, change func(old []byte) ([]byte, error)) error {
	return db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProfiles)
		updated, err := change(bytes.Clone(b.Get(profileKey(rcpt))))
		if err != nil {
			return err
		}
		return b.Put(profileKey(rcpt), updated)
	})
}
