package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Export hands a database's contents to another backend (kadenz db copy):
// what is stored, not the indexes, which the receiver builds its own way.

// Sink receives what Export reads, item by item. The byte slices it is
// handed are valid only during the call: a sink that keeps one copies it.
type Sink interface {
	// Secret is the pseudonym secret: the keyed hashes of erasure
	// (tombstones, erased suppression entries and event IDs) only match
	// with it.
	Secret(secret []byte) error
	// Message comes with its body, nil once purged.
	Message(m Message, body []byte) error
	Envelope(e Envelope) error
	// Decisions are an envelope's records, a JSON array.
	Decisions(envelopeID string, records json.RawMessage) error
	Profile(rcpt string, profile []byte) error
	Counter(name string, value int64) error
	// Suppression comes with its key: the address, or 0x00 and a keyed
	// hash for an erased recipient.
	Suppression(key []byte, s Suppression) error
	// EventID is a seen event ID's key (the ID, or 0x00 and a keyed hash),
	// when it was seen, and its recipient tag (nil if none).
	EventID(key []byte, seen time.Time, tag []byte) error
	Mailbox(name string, uidValidity, lastUID uint32) error
	Tombstone(hash []byte, at time.Time) error
	SuspendedCampaign(key string, c SuspendedCampaign) error
}

// Export reads the whole database in one read transaction (a consistent
// snapshot) and hands each item to sink, stopping at its first error.
// Messages come before their envelopes, envelopes before their decisions.
func (db *DB) Export(sink Sink) error {
	return db.view(func(tx *bolt.Tx) error {
		if secret, err := pseudonymSecret(tx, false); err != nil {
			return err
		} else if secret != nil {
			if err := sink.Secret(secret); err != nil {
				return err
			}
		}
		bodies := tx.Bucket(bucketBodies)
		steps := []struct {
			bucket []byte
			fn     func(k, v []byte) error
		}{
			{bucketMessages, func(k, v []byte) error {
				var m Message
				if err := decodeMessage(v, &m); err != nil {
					return err
				}
				var body []byte
				if v := bodies.Get(k); v != nil {
					var err error
					if body, err = decodeBody(nil, v); err != nil { // the export holds bodies as received
						return fmt.Errorf("body: %w", err)
					}
				}
				return sink.Message(m, body)
			}},
			{bucketEnvelopes, func(_, v []byte) error {
				var e Envelope
				if err := decodeEnvelope(v, &e); err != nil {
					return err
				}
				return sink.Envelope(e)
			}},
			{bucketDecisions, func(k, v []byte) error {
				list, err := decisionsJSON(v)
				if err != nil {
					return err
				}
				return sink.Decisions(string(k), list)
			}},
			{bucketProfiles, func(k, v []byte) error { return sink.Profile(string(k), v) }},
			{bucketCounters, func(k, v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("%d bytes", len(v))
				}
				return sink.Counter(string(k), int64(binary.BigEndian.Uint64(v)))
			}},
			{bucketSuppressions, func(k, v []byte) error {
				var s Suppression
				if err := json.Unmarshal(v, &s); err != nil {
					return err
				}
				return sink.Suppression(k, s)
			}},
			{bucketEventIDs, func(k, v []byte) error {
				if len(v) < 8 {
					return fmt.Errorf("%d bytes", len(v))
				}
				var tag []byte
				if len(v) >= 8+recipientTagLen {
					tag = v[8 : 8+recipientTagLen]
				}
				return sink.EventID(k, time.Unix(0, int64(binary.BigEndian.Uint64(v))), tag)
			}},
			{bucketMailboxes, func(k, v []byte) error {
				var st mailboxState
				if err := json.Unmarshal(v, &st); err != nil {
					return err
				}
				return sink.Mailbox(string(k), st.UIDValidity, st.LastUID)
			}},
			{bucketForgotten, func(k, v []byte) error {
				var t struct {
					At time.Time `json:"at"`
				}
				if err := json.Unmarshal(v, &t); err != nil {
					return err
				}
				return sink.Tombstone(k, t.At)
			}},
			{bucketSuspended, func(k, v []byte) error {
				var c SuspendedCampaign
				if err := json.Unmarshal(v, &c); err != nil {
					return err
				}
				return sink.SuspendedCampaign(string(k), c)
			}},
		}
		for _, st := range steps {
			if err := tx.Bucket(st.bucket).ForEach(func(k, v []byte) error {
				if err := st.fn(k, v); err != nil {
					return fmt.Errorf("store: export %s %q: %w", st.bucket, k, err)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
}
