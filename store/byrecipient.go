package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Every envelope by its recipient, for a recipient's page in the admin API
// and the dashboard: without it that page read every envelope stored
// (seconds at 100,000 held newsletters) to find a handful.

// bucketByRecipient: recipient (NormalizeAddress) + 0x00 + envelope ID ->
// nil, for every envelope (bucketHeldByRecipient lists only held ones).
var bucketByRecipient = []byte("by_recipient")

// indexRecipient moves an envelope's entry from old's recipient to e's
// (either nil: the envelope is new, or deleted).
func indexRecipient(tx *bolt.Tx, old, e *Envelope) error {
	b := tx.Bucket(bucketByRecipient)
	if old != nil {
		if err := b.Delete(recipientKey(old.To, old.ID)); err != nil {
			return err
		}
	}
	if e != nil {
		return b.Put(recipientKey(e.To, e.ID), nil)
	}
	return nil
}

// buildRecipientIndex indexes the envelopes of a file written before the
// index (schema version 5 and older).
func buildRecipientIndex(tx *bolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists(bucketByRecipient)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketEnvelopes).ForEach(func(k, v []byte) error {
		to, err := envelopeTo(v) // JSON in a file this old; either form reads
		if err != nil {
			return fmt.Errorf("envelope %s: %w", k, err)
		}
		return b.Put(recipientKey(to, string(k)), nil)
	})
}

// RecipientEnvelopes is one page of the envelopes to rcpt, the highest ID
// first (RecipientPage).
func (db *DB) RecipientEnvelopes(rcpt, before string, limit int) (RecipientPage, error) {
	var p RecipientPage
	err := db.view(func(tx *bolt.Tx) error {
		prefix := recipientKey(rcpt, "")
		var ids []string
		c := tx.Bucket(bucketByRecipient).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			ids = append(ids, string(k[len(prefix):]))
		}
		p.Total = len(ids)
		var m *Message
		for i := len(ids) - 1; i >= 0; i-- {
			id := ids[i]
			if before != "" && id >= before {
				continue
			}
			if len(p.Records) == limit {
				p.Next = p.Records[len(p.Records)-1].Envelope.ID
				break
			}
			e, err := getEnvelope(tx, id)
			if err != nil {
				return err
			}
			if m == nil || m.ID != e.MessageID {
				msg, err := getMessage(tx, e.MessageID)
				if err != nil {
					return err
				}
				m = &msg
			}
			ds, err := getDecisions(tx.Bucket(bucketDecisions), []byte(id))
			if err != nil {
				return err
			}
			p.Records = append(p.Records, EnvelopeRecord{Envelope: e, Message: m, Decisions: ds})
		}
		return nil
	})
	return p, err
}
