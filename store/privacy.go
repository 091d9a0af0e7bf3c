package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// What the operator surface needs from the store: erasure of a recipient
// (GDPR Art. 17), retention purges, and walks over envelopes for reports.

// bucketForgotten holds tombstones of erased recipients who had asked for
// no marketing mail: HMAC-SHA256(meta "pseudonym_key", lower-cased
// address) -> JSON {"at": time}. It holds no address, only a keyed hash,
// so a later message to the same address can still be recognised and
// suppressed.
var bucketForgotten = []byte("forgotten")

// pseudonymKey is the meta key of the secret for tombstone hashes.
var pseudonymKey = []byte("pseudonym_key")

// ForgetReport counts what an erasure removed and what it had to keep.
type ForgetReport struct {
	Envelopes int `json:"envelopes"`
	// Held, Queued and Final break Envelopes down by the state they were in.
	Held      int `json:"held"`
	Queued    int `json:"queued"`
	Final     int `json:"final"`
	Decisions int `json:"decision_records"`
	Messages  int `json:"messages"`
	Bodies    int `json:"bodies"`
	HeaderIDs int `json:"header_ids"`
	Profiles  int `json:"profiles"`
	// Tombstone: a hashed marker was kept so that marketing mail stays
	// suppressed for this address.
	Tombstone bool `json:"tombstone"`
	// Kept counts envelopes left alone because they are being delivered or
	// are transactional mail still to be delivered; run forget again once
	// they are final.
	Kept int `json:"kept"`
	// SharedBodies counts bodies kept because other recipients' copies of
	// the message are still to be delivered.
	SharedBodies int `json:"shared_bodies_kept"`
	// Suppressions counts suppression entries now keyed by a hash of the
	// address instead of the address (they still suppress it).
	Suppressions int `json:"suppressions_pseudonymised"`
	// EventIDs counts seen event IDs about the recipient now kept as hashes.
	EventIDs int `json:"event_ids_pseudonymised"`
	// EnvelopeIDs are the erased envelopes, for files named after them
	// (the outbox).
	EnvelopeIDs []string `json:"-"`
}

// ForgetRules are the governor's policy for an erasure.
type ForgetRules struct {
	// Keep reports whether an envelope must survive the erasure.
	Keep func(e Envelope, m Message) bool
	// HardStop reports whether a stored profile asked for no marketing
	// mail, which earns the address a tombstone.
	HardStop func(profile []byte) bool
}

// Forget erases everything stored about the recipient addr (compared
// without regard to case), in one transaction, except envelopes rules.Keep
// protects.
func (db *DB) Forget(addr string, now time.Time, rules ForgetRules) (ForgetReport, error) {
	var rep ForgetReport
	err := db.update(func(tx *bolt.Tx) error {
		rep = ForgetReport{} // the committer may run this again
		victims, messages, err := forgetVictims(tx, addr, rules, &rep)
		if err != nil {
			return err
		}
		if err := eraseEnvelopes(tx, victims, messages, &rep); err != nil {
			return err
		}
		return erasePerson(tx, addr, now, rules, victims, &rep)
	})
	return rep, err
}

// forgetVictims reads the envelopes to addr (without regard to case) with
// their messages, and returns those the rules do not keep, counting the
// kept ones in rep.
func forgetVictims(tx *bolt.Tx, addr string, rules ForgetRules, rep *ForgetReport) ([]Envelope, map[string]Message, error) {
	var victims []Envelope
	messages := map[string]Message{}
	c := tx.Bucket(bucketEnvelopes).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var e Envelope
		if err := decodeEnvelope(v, &e); err != nil {
			return nil, nil, fmt.Errorf("envelope %s: %w", k, err)
		}
		if !strings.EqualFold(e.To, addr) {
			continue
		}
		m, ok := messages[e.MessageID]
		if !ok {
			var err error
			if m, err = getMessage(tx, e.MessageID); err != nil {
				return nil, nil, err
			}
			messages[e.MessageID] = m
		}
		if rules.Keep(e, m) {
			rep.Kept++
			continue
		}
		victims = append(victims, e)
	}
	return victims, messages, nil
}

// eraseEnvelopes deletes the victims with their decision records, and
// what is left of their messages, counting each in rep.
func eraseEnvelopes(tx *bolt.Tx, victims []Envelope, messages map[string]Message, rep *ForgetReport) error {
	for i := range victims {
		e := &victims[i]
		switch {
		case e.State == StateHeld:
			rep.Held++
		case e.State.Final():
			rep.Final++
		default:
			rep.Queued++
		}
		if tx.Bucket(bucketDecisions).Get([]byte(e.ID)) != nil {
			rep.Decisions++
		}
		if err := deleteEnvelope(tx, e); err != nil {
			return err
		}
		rep.Envelopes++
		rep.EnvelopeIDs = append(rep.EnvelopeIDs, e.ID)
	}
	touched := map[string]bool{}
	for _, e := range victims {
		touched[e.MessageID] = true
	}
	for id := range touched {
		if err := forgetMessage(tx, messages[id], rep); err != nil {
			return fmt.Errorf("message %s: %w", id, err)
		}
	}
	return nil
}

// erasePerson deletes the profiles (every spelling of the address), the
// held-mail index entries the victims left, the suppression entry (kept,
// keyed by hash) and the event IDs of addr, and leaves a tombstone when
// mail to it must stay stopped: a hard stop in a profile, a suppression,
// or an earlier erasure.
func erasePerson(tx *bolt.Tx, addr string, now time.Time, rules ForgetRules, victims []Envelope, rep *ForgetReport) error {
	// Profiles are keyed by the address as first seen; erase every
	// spelling of it.
	stop := false
	var keys [][]byte
	pc := tx.Bucket(bucketProfiles).Cursor()
	for k, v := pc.First(); k != nil; k, v = pc.Next() {
		if strings.EqualFold(string(k), addr) {
			keys = append(keys, bytes.Clone(k))
			stop = stop || rules.HardStop(v)
		}
	}
	for _, k := range keys {
		if err := tx.Bucket(bucketProfiles).Delete(k); err != nil {
			return err
		}
		rep.Profiles++
	}
	// Any held-mail index entry left under her address (a kept envelope
	// keeps its own).
	if err := eraseHeldIndex(tx, addr, victims); err != nil {
		return err
	}
	listed, err := eraseSuppression(tx, addr, rep)
	if err != nil {
		return err
	}
	stop = stop || listed
	if err := eraseEventIDs(tx, addr, rep); err != nil {
		return err
	}
	if !stop {
		at, err := forgottenAt(tx, addr)
		if err != nil {
			return err
		}
		stop = !at.IsZero() // forgotten before: keep honouring it
	}
	if !stop {
		return nil
	}
	key, err := tombstoneKey(tx, addr)
	if err != nil {
		return err
	}
	v, _ := json.Marshal(struct {
		At time.Time `json:"at"`
	}{now})
	if err := tx.Bucket(bucketForgotten).Put(key, v); err != nil {
		return err
	}
	rep.Tombstone = true
	return nil
}

// forgetMessage removes what is left of a message after some of its
// envelopes were erased: all of it when none remain; its body when the
// rest are final (nobody else is waiting for it).
func forgetMessage(tx *bolt.Tx, m Message, rep *ForgetReport) error {
	remaining, allFinal := 0, true
	prefix := []byte(m.ID + "-")
	c := tx.Bucket(bucketEnvelopes).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var e Envelope
		if err := decodeEnvelope(v, &e); err != nil {
			return err
		}
		remaining++
		allFinal = allFinal && e.State.Final()
	}
	if remaining > 0 && !allFinal {
		if hasBody(tx, m.ID) {
			rep.SharedBodies++
		}
		return nil
	}
	if had, err := deleteBody(tx, m.ID); err != nil {
		return err
	} else if had {
		rep.Bodies++
	}
	if remaining > 0 {
		return nil
	}
	if m.HeaderID != "" {
		h := tx.Bucket(bucketHeaderIDs)
		if string(h.Get([]byte(m.HeaderID))) == m.ID {
			if err := h.Delete([]byte(m.HeaderID)); err != nil {
				return err
			}
			rep.HeaderIDs++
		}
		if h.Get(headerKey(m.HeaderID, m.ID)) != nil {
			if err := h.Delete(headerKey(m.HeaderID, m.ID)); err != nil {
				return err
			}
			rep.HeaderIDs++
		}
	}
	rep.Messages++
	return tx.Bucket(bucketMessages).Delete([]byte(m.ID))
}

// deleteEnvelope removes an envelope, its index entries and its decisions.
func deleteEnvelope(tx *bolt.Tx, e *Envelope) error {
	countStateChange(tx, e.State, "")
	if err := touchDeleted(tx, e); err != nil {
		return err
	}
	noteWritten(tx, e.ID, nil)
	if idx := e.index(); idx != nil {
		if err := tx.Bucket(idx).Delete(indexKey(e)); err != nil {
			return err
		}
	}
	if e.State == StateHeld {
		if err := tx.Bucket(bucketHeldByRecipient).Delete(recipientKey(e.To, e.ID)); err != nil {
			return err
		}
	}
	if err := indexRecipient(tx, e, nil); err != nil {
		return err
	}
	if err := tx.Bucket(bucketDecisions).Delete([]byte(e.ID)); err != nil {
		return err
	}
	return tx.Bucket(bucketEnvelopes).Delete([]byte(e.ID))
}

func getMessage(tx *bolt.Tx, id string) (Message, error) {
	var m Message
	v := tx.Bucket(bucketMessages).Get([]byte(id))
	if v == nil {
		return m, fmt.Errorf("message %s: %w", id, ErrNotFound)
	}
	err := decodeMessage(v, &m)
	return m, err
}

// tombstoneKey is the keyed hash of an address, creating the key on first
// use. The key lives in the same file, so this is pseudonymisation, not
// anonymisation: it keeps the address out of backups and dumps, and a
// reader must hold the whole database and a candidate address to test it.
func tombstoneKey(tx *bolt.Tx, addr string) ([]byte, error) {
	secret, err := pseudonymSecret(tx, true)
	if err != nil {
		return nil, err
	}
	return hashAddress(secret, addr), nil
}

func hashAddress(secret []byte, addr string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(strings.ToLower(addr)))
	return h.Sum(nil)
}

func pseudonymSecret(tx *bolt.Tx, create bool) ([]byte, error) {
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(pseudonymKey); v != nil {
		return bytes.Clone(v), nil
	}
	if !create {
		return nil, nil
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	return secret, meta.Put(pseudonymKey, secret)
}

// forgottenAt returns when addr was forgotten with a tombstone, or zero.
func forgottenAt(tx *bolt.Tx, addr string) (time.Time, error) {
	secret, err := pseudonymSecret(tx, false)
	if err != nil || secret == nil {
		return time.Time{}, err
	}
	v := tx.Bucket(bucketForgotten).Get(hashAddress(secret, addr))
	if v == nil {
		return time.Time{}, nil
	}
	var t struct {
		At time.Time `json:"at"`
	}
	err = json.Unmarshal(v, &t)
	return t.At, err
}

// Forgotten returns when addr was erased while it asked for no marketing
// mail (so it must still get none), or the zero time.
func (db *DB) Forgotten(addr string) (time.Time, error) {
	var at time.Time
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		at, err = forgottenAt(tx, addr)
		return err
	})
	return at, err
}

// EnvelopeRecord is an envelope with its message and decision records,
// as walked by Records.
type EnvelopeRecord struct {
	Envelope  Envelope
	Message   *Message // shared by the records of one message
	Decisions json.RawMessage
}

// Records calls fn for every envelope with its message and decisions, in
// order of arrival, until fn returns false. The records are copies; fn
// may keep them.
func (db *DB) Records(fn func(EnvelopeRecord) bool) error {
	return db.view(func(tx *bolt.Tx) error {
		var m *Message
		decisions := tx.Bucket(bucketDecisions)
		c := tx.Bucket(bucketEnvelopes).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var rec EnvelopeRecord
			if err := decodeEnvelope(v, &rec.Envelope); err != nil {
				return fmt.Errorf("envelope %s: %w", k, err)
			}
			if m == nil || m.ID != rec.Envelope.MessageID {
				msg, err := getMessage(tx, rec.Envelope.MessageID)
				if err != nil {
					return err
				}
				m = &msg
			}
			rec.Message = m
			var err error
			if rec.Decisions, err = getDecisions(decisions, k); err != nil {
				return err
			}
			if !fn(rec) {
				return nil
			}
		}
		return nil
	})
}

// HasBody reports whether a message's body is still stored.
func (db *DB) HasBody(messageID string) (bool, error) {
	var ok bool
	err := db.view(func(tx *bolt.Tx) error {
		ok = hasBody(tx, messageID)
		return nil
	})
	return ok, err
}

// purgeBatch bounds one purge transaction, so a big sweep never holds the
// writer (and with it every SMTP 250) for long.
const purgeBatch = 256

// PurgeBodies deletes the bodies of messages whose envelopes are all final
// and were last changed before before, and returns how many it deleted.
func (db *DB) PurgeBodies(before time.Time) (int, error) {
	total := 0
	for _, bucket := range [][]byte{bucketBodies, bucketBodyParts} { // in one piece, in parts
		n, err := db.purgeExpired(bucket, func(tx *bolt.Tx, id string) (bool, error) {
			return bodyExpired(tx, id, before)
		}, func(tx *bolt.Tx, id string) error {
			_, err := deleteBody(tx, id)
			return err
		})
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// purgeExpired deletes the keys of bucket that expired says are expired:
// found in one read transaction, then deleted in bounded batches, each key
// checked again in its batch, since a release or a retry may have come in
// between. del deletes a key (nil: deleting it from bucket).
func (db *DB) purgeExpired(bucket []byte, expired func(tx *bolt.Tx, key string) (bool, error), del func(tx *bolt.Tx, key string) error) (int, error) {
	if del == nil {
		del = func(tx *bolt.Tx, key string) error { return tx.Bucket(bucket).Delete([]byte(key)) }
	}
	var candidates []string
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if ok, err := expired(tx, string(k)); err != nil {
				return err
			} else if ok {
				candidates = append(candidates, string(k))
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return db.purge(candidates, func(tx *bolt.Tx, key string) (bool, error) {
		if ok, err := expired(tx, key); !ok || err != nil {
			return false, err
		}
		return true, del(tx, key)
	})
}

func bodyExpired(tx *bolt.Tx, messageID string, before time.Time) (bool, error) {
	prefix := []byte(messageID + "-")
	c := tx.Bucket(bucketEnvelopes).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var e Envelope
		if err := decodeEnvelope(v, &e); err != nil {
			return false, err
		}
		if !e.State.Final() || !e.Updated.Before(before) {
			return false, nil
		}
	}
	return true, nil
}

// PurgeDecisions deletes the decision records of envelopes that reached a
// final state before before (or no longer exist), and returns how many
// envelopes' records it deleted.
func (db *DB) PurgeDecisions(before time.Time) (int, error) {
	return db.purgeExpired(bucketDecisions, func(tx *bolt.Tx, id string) (bool, error) {
		return decisionsExpired(tx, id, before)
	}, func(tx *bolt.Tx, id string) error {
		// The envelope's last action and reasons go with its records.
		if err := touchEnvelope(tx, id, "", nil); err != nil {
			return err
		}
		noteRecords(tx, id, nil, recordSummary{})
		return tx.Bucket(bucketDecisions).Delete([]byte(id))
	})
}

func decisionsExpired(tx *bolt.Tx, envelopeID string, before time.Time) (bool, error) {
	v := tx.Bucket(bucketEnvelopes).Get([]byte(envelopeID))
	if v == nil {
		return true, nil
	}
	var e Envelope
	if err := decodeEnvelope(v, &e); err != nil {
		return false, err
	}
	return e.State.Final() && e.Updated.Before(before), nil
}

// purge runs del for each ID in write transactions of purgeBatch IDs and
// counts the deletions.
func (db *DB) purge(ids []string, del func(tx *bolt.Tx, id string) (bool, error)) (int, error) {
	total := 0
	for len(ids) > 0 {
		chunk := ids[:min(purgeBatch, len(ids))]
		ids = ids[len(chunk):]
		n := 0
		err := db.update(func(tx *bolt.Tx) error {
			n = 0
			for _, id := range chunk {
				ok, err := del(tx, id)
				if err != nil {
					return err
				}
				if ok {
					n++
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// PseudonymKey returns a key for pseudonymising addresses for purpose
// (e.g. "log"), derived from a random secret kept in the database and
// created on first use, so pseudonyms stay the same across restarts.
func (db *DB) PseudonymKey(purpose string) ([]byte, error) {
	var secret []byte
	err := db.update(func(tx *bolt.Tx) error {
		var err error
		secret, err = pseudonymSecret(tx, true)
		return err
	})
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(purpose))
	return mac.Sum(nil), nil
}
