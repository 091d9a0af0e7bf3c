package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"kadenz/store"
)

var _ store.RecipientsLoader = (*Store)(nil)

// LoadRecipients reads several recipients' held mail, messages, profiles
// and tombstones in one snapshot and one round trip of three queries,
// instead of a transaction per recipient.
func (s *Store) LoadRecipients(rcpts []string) ([]store.Recipient, error) {
	var out []store.Recipient
	err := s.read(func(ctx context.Context, tx pgx.Tx) error {
		secret, err := s.secretIn(ctx, tx, false)
		if err != nil {
			return err
		}
		keys := make([]string, len(rcpts))
		var hashes [][]byte
		for i, r := range rcpts {
			keys[i] = store.NormalizeAddress(r)
			if secret != nil {
				hashes = append(hashes, store.AddressHash(secret, r))
			}
		}
		held := map[string][]store.Envelope{}
		messages := map[string]store.Message{}
		profiles := map[string][]byte{}
		forgotten := map[string]time.Time{}
		b := &pgx.Batch{}
		b.Queue(`SELECT e.rcpt, e.data, m.data FROM envelopes e LEFT JOIN messages m ON m.id = e.message_id
			WHERE e.rcpt = ANY($1) AND e.state = 'held' ORDER BY e.rcpt, e.id`, keys).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var rcpt string
				var ed, md []byte
				if err := rows.Scan(&rcpt, &ed, &md); err != nil {
					return err
				}
				e, err := unmarshalEnvelope(ed)
				if err != nil {
					return err
				}
				if md == nil {
					return notFound("message %s", e.MessageID)
				}
				held[rcpt] = append(held[rcpt], e)
				if _, ok := messages[e.MessageID]; !ok {
					var m store.Message
					if err := json.Unmarshal(md, &m); err != nil {
						return err
					}
					messages[e.MessageID] = m
				}
			}
			return rows.Err()
		})
		b.Queue(`SELECT rcpt, profile FROM profiles WHERE rcpt = ANY($1)`, keys).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var rcpt string
				var p []byte
				if err := rows.Scan(&rcpt, &p); err != nil {
					return err
				}
				profiles[rcpt] = p
			}
			return rows.Err()
		})
		if secret != nil {
			b.Queue(`SELECT hash, at FROM forgotten WHERE hash = ANY($1)`, hashes).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var h []byte
					var at int64
					if err := rows.Scan(&h, &at); err != nil {
						return err
					}
					forgotten[string(h)] = time.Unix(0, at).UTC()
				}
				return rows.Err()
			})
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		out = make([]store.Recipient, len(rcpts))
		for i, r := range rcpts {
			rec := store.Recipient{Address: r, Messages: map[string]store.Message{}, Held: held[keys[i]], Profile: profiles[keys[i]]}
			for _, e := range rec.Held {
				rec.Messages[e.MessageID] = messages[e.MessageID]
			}
			if secret != nil {
				rec.Forgotten = forgotten[string(store.AddressHash(secret, r))]
			}
			out[i] = rec
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
