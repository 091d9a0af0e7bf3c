package postgres

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"kadenz/store"
)

// Profiles, the suppression list, seen event IDs, applying feedback, and
// the feedback mailboxes' cursors.

// querier is what both the pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getProfile(ctx context.Context, q querier, key string) ([]byte, error) {
	var p []byte
	err := q.QueryRow(ctx, `SELECT profile FROM profiles WHERE rcpt = $1`, key).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return p, err
}

const upsertProfile = `INSERT INTO profiles (rcpt, profile) VALUES ($1, $2)
	ON CONFLICT (rcpt) DO UPDATE SET profile = excluded.profile`

func putProfile(ctx context.Context, q querier, rcpt string, profile []byte) error {
	if profile == nil {
		profile = []byte{}
	}
	_, err := q.Exec(ctx, upsertProfile, store.NormalizeAddress(rcpt), profile)
	return err
}

func queueProfile(b *pgx.Batch, rcpt string, profile []byte) {
	if profile == nil {
		profile = []byte{}
	}
	b.Queue(upsertProfile, store.NormalizeAddress(rcpt), profile)
}

// Profile returns a recipient's stored profile, or nil.
func (s *Store) Profile(rcpt string) ([]byte, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	return getProfile(ctx, s.pool, store.NormalizeAddress(rcpt))
}

// PutProfile replaces a recipient's profile.
func (s *Store) PutProfile(rcpt string, profile []byte) error {
	return s.write(func(ctx context.Context, tx pgx.Tx) error { return putProfile(ctx, tx, rcpt, profile) })
}

// UpdateProfile replaces a recipient's profile with what change makes of
// the stored one, in one transaction.
func (s *Store) UpdateProfile(rcpt string, change func(old []byte) ([]byte, error)) error {
	return s.write(func(ctx context.Context, tx pgx.Tx) error {
		old, err := getProfile(ctx, tx, store.NormalizeAddress(rcpt))
		if err != nil {
			return err
		}
		updated, err := change(old)
		if err != nil {
			return err
		}
		return putProfile(ctx, tx, rcpt, updated)
	})
}

// The pseudonym secret (see store/privacy.go) lives in meta. Once read it
// is kept in memory: it never changes.
const secretKey = "pseudonym_key"

// secretIn returns the pseudonym secret as q sees it, creating it if
// create is set and there is none (nil, nil without). A secret created
// inside a transaction is not remembered until a later call reads it
// committed.
func (s *Store) secretIn(ctx context.Context, q querier, create bool) ([]byte, error) {
	s.secretMu.Lock()
	known := s.secret
	s.secretMu.Unlock()
	if known != nil {
		return known, nil
	}
	var v []byte
	err := q.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, secretKey).Scan(&v)
	switch {
	case err == nil:
		s.secretMu.Lock()
		s.secret = v
		s.secretMu.Unlock()
		return v, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, err
	case !create:
		return nil, nil
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	// Another node may make one at the same moment: the first wins, and
	// the loser's transaction reads the winner's (after its retry).
	if _, err := q.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, secretKey, secret); err != nil {
		return nil, err
	}
	err = q.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, secretKey).Scan(&v)
	return v, err
}

// pseudonymSecret reads the secret outside any transaction.
func (s *Store) pseudonymSecret(create bool) ([]byte, error) {
	if !create {
		ctx, cancel := s.ctx()
		defer cancel()
		return s.secretIn(ctx, s.pool, false)
	}
	var secret []byte
	err := s.write(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		secret, err = s.secretIn(ctx, tx, true)
		return err
	})
	return secret, err
}

// erasedSuppressionKey is an erased address's key on the list, nil while
// there is no secret (nothing was erased then).
func erasedSuppressionKey(secret []byte, addr string) []byte {
	if secret == nil {
		return nil
	}
	return append([]byte{0}, store.AddressHash(secret, store.NormalizeAddress(addr))...)
}

func exists(ctx context.Context, q querier, query string, args ...any) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (`+query+`)`, args...).Scan(&ok)
	return ok, err
}

func putSuppression(ctx context.Context, tx pgx.Tx, secret []byte, sup store.Suppression, replace bool) (bool, error) {
	sup.Address = store.NormalizeAddress(sup.Address)
	if sup.Address == "" {
		return false, fmt.Errorf("store: suppression without an address")
	}
	plain := []byte(sup.Address)
	if !replace {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM suppressions WHERE key = $1`, plain); err != nil || ok {
			return false, err // the first reason stays: it is why the address stopped
		}
	}
	if hashed := erasedSuppressionKey(secret, sup.Address); hashed != nil {
		if !replace {
			if ok, err := exists(ctx, tx, `SELECT 1 FROM suppressions WHERE key = $1`, hashed); err != nil || ok {
				return false, err // erased, and still suppressed
			}
		} else if _, err := tx.Exec(ctx, `DELETE FROM suppressions WHERE key = $1`, hashed); err != nil {
			return false, err
		}
	}
	v, err := json.Marshal(sup)
	if err != nil {
		return false, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO suppressions (key, data) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET data = excluded.data`, plain, v)
	return err == nil, err
}

// Suppress adds entries in one transaction; a listed address keeps its
// first entry unless replace is set. It returns how many were written.
func (s *Store) Suppress(replace bool, list ...store.Suppression) (int, error) {
	n := 0
	err := s.write(func(ctx context.Context, tx pgx.Tx) error {
		n = 0
		secret, err := s.secretIn(ctx, tx, false)
		if err != nil {
			return err
		}
		for _, sup := range list {
			added, err := putSuppression(ctx, tx, secret, sup, replace)
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

// Unsuppress removes an address from the list and lets profile change the
// recipient's stored profile in the same transaction.
func (s *Store) Unsuppress(addr string, profile func(old []byte) ([]byte, error)) (bool, error) {
	addr = store.NormalizeAddress(addr)
	found := false
	err := s.write(func(ctx context.Context, tx pgx.Tx) error {
		secret, err := s.secretIn(ctx, tx, false)
		if err != nil {
			return err
		}
		ct, err := tx.Exec(ctx, `DELETE FROM suppressions WHERE key = $1`, []byte(addr))
		if err != nil {
			return err
		}
		found = ct.RowsAffected() > 0
		if hashed := erasedSuppressionKey(secret, addr); hashed != nil {
			ct, err := tx.Exec(ctx, `DELETE FROM suppressions WHERE key = $1`, hashed)
			if err != nil {
				return err
			}
			found = found || ct.RowsAffected() > 0
		}
		if profile == nil {
			return nil
		}
		old, err := getProfile(ctx, tx, addr)
		if err != nil || old == nil {
			return err
		}
		updated, err := profile(old)
		if err != nil || updated == nil {
			return err
		}
		return putProfile(ctx, tx, addr, updated)
	})
	return found, err
}

// SuppressionOf returns an address's entry and whether there is one; an
// erased recipient's entry is found by its keyed hash.
func (s *Store) SuppressionOf(addr string) (store.Suppression, bool, error) {
	var sup store.Suppression
	var ok bool
	addr = store.NormalizeAddress(addr)
	err := s.read(func(ctx context.Context, tx pgx.Tx) error {
		secret, err := s.secretIn(ctx, tx, false)
		if err != nil {
			return err
		}
		keys := [][]byte{[]byte(addr)}
		if hashed := erasedSuppressionKey(secret, addr); hashed != nil {
			keys = append(keys, hashed)
		}
		var v []byte
		for _, k := range keys {
			err := tx.QueryRow(ctx, `SELECT data FROM suppressions WHERE key = $1`, k).Scan(&v)
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			break
		}
		if v == nil {
			return nil
		}
		ok = true
		if err := json.Unmarshal(v, &sup); err != nil {
			return err
		}
		sup.Address = addr
		return nil
	})
	return sup, ok, err
}

// Suppressions returns the whole list in key order: erased recipients'
// entries first, then by address.
func (s *Store) Suppressions() ([]store.Suppression, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT data FROM suppressions ORDER BY key`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []store.Suppression
	for rows.Next() {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		var sup store.Suppression
		if err := json.Unmarshal(v, &sup); err != nil {
			return nil, err
		}
		list = append(list, sup)
	}
	return list, rows.Err()
}

// ApplyFeedback applies a batch in one transaction, all or none; changes
// whose event ID was seen before are skipped as duplicates.
func (s *Store) ApplyFeedback(now time.Time, changes []store.FeedbackChange) (applied, duplicates int, err error) {
	err = s.write(func(ctx context.Context, tx pgx.Tx) error {
		applied, duplicates = 0, 0
		var secret []byte
		for i := range changes {
			c := &changes[i]
			if c.EventID != "" {
				if secret == nil {
					var err error
					if secret, err = s.secretIn(ctx, tx, true); err != nil {
						return err
					}
				}
				dup, err := exists(ctx, tx, `SELECT 1 FROM event_ids WHERE key = $1 OR key = $2`,
					[]byte(c.EventID), store.ErasedEventKey(secret, c.EventID))
				if err != nil {
					return err
				}
				if dup {
					duplicates++
					continue
				}
				var tag []byte
				if c.Recipient != "" {
					tag = store.AddressHash(secret, store.NormalizeAddress(c.Recipient))[:store.RecipientTagLen]
				}
				if _, err := tx.Exec(ctx, `INSERT INTO event_ids (key, seen, tag) VALUES ($1, $2, $3)`,
					[]byte(c.EventID), nanos(now), tag); err != nil {
					return err
				}
			}
			if err := s.applyChange(ctx, tx, secret, now, c); err != nil {
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

func (s *Store) applyChange(ctx context.Context, tx pgx.Tx, secret []byte, now time.Time, c *store.FeedbackChange) error {
	key := store.NormalizeAddress(c.Recipient)
	old, err := getProfile(ctx, tx, key)
	if err != nil {
		return err
	}
	out, err := c.Apply(old)
	if err != nil {
		return err
	}
	if out.Profile != nil {
		if err := putProfile(ctx, tx, key, out.Profile); err != nil {
			return err
		}
	}
	if out.Suppress != nil {
		if secret == nil {
			if secret, err = s.secretIn(ctx, tx, false); err != nil {
				return err
			}
		}
		if _, err := putSuppression(ctx, tx, secret, *out.Suppress, false); err != nil {
			return err
		}
	}
	if len(out.Counters) > 0 {
		// Feedback adds to the named counters as decision rounds do: on
		// one shard, so concurrent writers seldom touch the same row.
		b := &pgx.Batch{}
		queueCounters(b, out.Counters, mrand.N(counterShards))
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
	}
	if out.Stop == nil {
		return nil
	}
	candidates, err := queryEnvelopes(ctx, tx, `SELECT data FROM envelopes
		WHERE (rcpt = $1 AND state = 'held') OR id = ANY($2) ORDER BY id`, key, out.StopAlso)
	if err != nil {
		return err
	}
	records := map[string][]byte{}
	var stopped []store.Envelope
	for _, e := range candidates {
		if store.NormalizeAddress(e.To) != key || (e.State != store.StateHeld && e.State != store.StateQueued && e.State != store.StateDeferred) {
			continue
		}
		rec := out.Stop(e)
		if rec == nil {
			continue
		}
		e.State, e.Updated = store.StateSuppressed, now
		stopped = append(stopped, e)
		records[e.ID] = rec
	}
	if err := s.putEnvelopes(ctx, tx, stopped); err != nil {
		return err
	}
	return appendRecords(ctx, tx, records)
}

// PruneEventIDs forgets event IDs first seen before cutoff.
func (s *Store) PruneEventIDs(cutoff time.Time) (int, error) {
	n := 0
	err := s.write(func(ctx context.Context, tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, `DELETE FROM event_ids WHERE seen < $1`, nanos(cutoff))
		n = int(ct.RowsAffected())
		return err
	})
	return n, err
}

// EventIDCount is how many event IDs the store remembers.
func (s *Store) EventIDCount() (int, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM event_ids`).Scan(&n)
	return n, err
}

// MailboxState is an IMAP feedback mailbox's cursor (zeros if none).
func (s *Store) MailboxState(name string) (uidValidity, lastUID uint32, err error) {
	if name == "" {
		return 0, 0, errors.New("store: mailbox without a name")
	}
	ctx, cancel := s.ctx()
	defer cancel()
	var v, u int64
	err = s.pool.QueryRow(ctx, `SELECT uid_validity, last_uid FROM mailboxes WHERE name = $1`, name).Scan(&v, &u)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	return uint32(v), uint32(u), err
}

// SetMailboxState records a feedback mailbox's cursor.
func (s *Store) SetMailboxState(name string, uidValidity, lastUID uint32) error {
	if name == "" {
		return errors.New("store: mailbox without a name")
	}
	return s.write(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO mailboxes (name, uid_validity, last_uid) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET uid_validity = excluded.uid_validity, last_uid = excluded.last_uid`,
			name, int64(uidValidity), int64(lastUID))
		return err
	})
}

// SuppressionsAfter reads one page of the list in key order, after a key.
func (s *Store) SuppressionsAfter(after []byte, limit int) ([]store.Suppression, []byte, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	if after == nil {
		after = []byte{}
	}
	rows, err := s.pool.Query(ctx, `SELECT key, data FROM suppressions WHERE key > $1 ORDER BY key LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var list []store.Suppression
	var last, next []byte
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, nil, err
		}
		if len(list) == limit { // one more exists
			next = last
			break
		}
		var sup store.Suppression
		if err := json.Unmarshal(v, &sup); err != nil {
			return nil, nil, err
		}
		list = append(list, sup)
		last = k
	}
	return list, next, rows.Err()
}
