package postgres

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"kadenz/store"
)

// Erasure (GDPR Art. 17), retention, pseudonyms and the record walk.
//
// Forget does what the bbolt store's Forget does, in one SERIALIZABLE
// transaction: it deletes the recipient's envelopes (except those the
// rules keep), their decision records, what is left of their messages,
// the profile; it re-keys the suppression entry and the seen event IDs by
// an HMAC of the address; and it leaves a tombstone, keyed by the same
// HMAC, when the address had asked for no marketing mail. A DELETE in
// PostgreSQL leaves the old row version in the table file until VACUUM
// reclaims the space (and in WAL segments until they are recycled): the
// equivalent of bbolt's freed pages, for which the bbolt store has
// ScrubFreePages. docs/scale.md says what to run.

var finalStates = []string{string(store.StateDelivered), string(store.StateFailed), string(store.StateSuppressed)}

// Forget erases everything stored about the recipient addr (compared
// without regard to case), in one transaction, except envelopes
// rules.Keep protects.
func (s *Store) Forget(addr string, now time.Time, rules store.ForgetRules) (store.ForgetReport, error) {
	var rep store.ForgetReport
	key := store.NormalizeAddress(addr)
	err := s.write(func(ctx context.Context, tx pgx.Tx) error {
		rep = store.ForgetReport{}
		victims, messages, err := forgetVictims(ctx, tx, key, addr, rules, &rep)
		if err != nil {
			return err
		}
		if err := eraseEnvelopes(ctx, tx, victims, messages, &rep); err != nil {
			return err
		}
		return s.erasePerson(ctx, tx, key, addr, now, rules, &rep)
	})
	return rep, err
}

// forgetVictims reads the envelopes to addr (exactly, without regard to
// case) with their messages, and returns those the rules do not keep,
// counting the kept ones in rep.
func forgetVictims(ctx context.Context, tx pgx.Tx, key, addr string, rules store.ForgetRules, rep *store.ForgetReport) ([]store.Envelope, map[string]store.Message, error) {
	rows, err := tx.Query(ctx, `SELECT e.data, m.data FROM envelopes e LEFT JOIN messages m ON m.id = e.message_id
		WHERE e.rcpt = $1 ORDER BY e.id`, key)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var victims []store.Envelope
	messages := map[string]store.Message{}
	for rows.Next() {
		var ed, md []byte
		if err := rows.Scan(&ed, &md); err != nil {
			return nil, nil, err
		}
		e, err := unmarshalEnvelope(ed)
		if err != nil {
			return nil, nil, err
		}
		if !strings.EqualFold(e.To, addr) {
			continue
		}
		m, ok := messages[e.MessageID]
		if !ok {
			if md == nil {
				return nil, nil, notFound("message %s", e.MessageID)
			}
			if err := json.Unmarshal(md, &m); err != nil {
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
	return victims, messages, rows.Err()
}

// eraseEnvelopes deletes the victims, their decision records and what is
// left of their messages, counting each in rep.
func eraseEnvelopes(ctx context.Context, tx pgx.Tx, victims []store.Envelope, messages map[string]store.Message, rep *store.ForgetReport) error {
	victimIDs := make([]string, len(victims))
	touched := map[string]bool{}
	var touchedIDs []string
	for i, e := range victims {
		switch {
		case e.State == store.StateHeld:
			rep.Held++
		case e.State.Final():
			rep.Final++
		default:
			rep.Queued++
		}
		victimIDs[i] = e.ID
		if !touched[e.MessageID] {
			touched[e.MessageID] = true
			touchedIDs = append(touchedIDs, e.MessageID)
		}
	}
	if len(victims) > 0 {
		ct, err := tx.Exec(ctx, `DELETE FROM decisions WHERE envelope_id = ANY($1)`, victimIDs)
		if err != nil {
			return err
		}
		rep.Decisions = int(ct.RowsAffected())
		if _, err := tx.Exec(ctx, `DELETE FROM envelopes WHERE id = ANY($1)`, victimIDs); err != nil {
			return err
		}
		rep.Envelopes = len(victims)
		rep.EnvelopeIDs = victimIDs
	}
	for _, id := range touchedIDs {
		if err := forgetMessage(ctx, tx, messages[id], rep); err != nil {
			return fmt.Errorf("message %s: %w", id, err)
		}
	}
	return nil
}

// erasePerson deletes the profile, the suppression entry (keeping it keyed
// by hash) and the event IDs of the address, and leaves a tombstone when
// mail to it must stay stopped: a hard stop in the profile, a suppression,
// or an earlier erasure.
func (s *Store) erasePerson(ctx context.Context, tx pgx.Tx, key, addr string, now time.Time, rules store.ForgetRules, rep *store.ForgetReport) error {
	stop := false
	profile, err := getProfile(ctx, tx, key)
	if err != nil {
		return err
	}
	if profile != nil {
		stop = rules.HardStop(profile)
		if _, err := tx.Exec(ctx, `DELETE FROM profiles WHERE rcpt = $1`, key); err != nil {
			return err
		}
		rep.Profiles++
	}
	listed, err := s.eraseSuppression(ctx, tx, key, rep)
	if err != nil {
		return err
	}
	stop = stop || listed
	if err := s.eraseEventIDs(ctx, tx, key, rep); err != nil {
		return err
	}
	if !stop {
		secret, err := s.secretIn(ctx, tx, false)
		if err != nil {
			return err
		}
		at, err := forgottenAt(ctx, tx, secret, addr)
		if err != nil {
			return err
		}
		stop = !at.IsZero() // forgotten before: keep honouring it
	}
	if !stop {
		return nil
	}
	secret, err := s.secretIn(ctx, tx, true)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO forgotten (hash, at) VALUES ($1, $2)
		ON CONFLICT (hash) DO UPDATE SET at = excluded.at`, store.AddressHash(secret, addr), nanos(now)); err != nil {
		return err
	}
	rep.Tombstone = true
	return nil
}

// forgetMessage removes what is left of a message after some of its
// envelopes were erased: all of it when none remain; its body when the
// rest are final.
func forgetMessage(ctx context.Context, tx pgx.Tx, m store.Message, rep *store.ForgetReport) error {
	var remaining, waiting int
	if err := tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state <> ALL($2)) FROM envelopes WHERE message_id = $1`,
		m.ID, finalStates).Scan(&remaining, &waiting); err != nil {
		return err
	}
	if remaining > 0 && waiting > 0 {
		has, err := exists(ctx, tx, `SELECT 1 FROM bodies WHERE message_id = $1`, m.ID)
		if err != nil {
			return err
		}
		if has {
			rep.SharedBodies++
		}
		return nil
	}
	ct, err := tx.Exec(ctx, `DELETE FROM bodies WHERE message_id = $1`, m.ID)
	if err != nil {
		return err
	}
	rep.Bodies += int(ct.RowsAffected())
	if remaining > 0 {
		return nil
	}
	if m.HeaderID != "" {
		rep.HeaderIDs++ // the header_id column goes with the row
	}
	ct, err = tx.Exec(ctx, `DELETE FROM messages WHERE id = $1`, m.ID)
	if err != nil {
		return err
	}
	rep.Messages += int(ct.RowsAffected())
	return nil
}

// eraseSuppression replaces addr's suppression entry by one keyed by its
// hash, without the address, and reports whether the address is listed in
// either form.
func (s *Store) eraseSuppression(ctx context.Context, tx pgx.Tx, addr string, rep *store.ForgetReport) (bool, error) {
	var v []byte
	err := tx.QueryRow(ctx, `SELECT data FROM suppressions WHERE key = $1`, []byte(addr)).Scan(&v)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, err
	}
	secret, err := s.secretIn(ctx, tx, v != nil)
	if err != nil {
		return false, err
	}
	if v == nil {
		if secret == nil {
			return false, nil
		}
		return exists(ctx, tx, `SELECT 1 FROM suppressions WHERE key = $1`, erasedSuppressionKey(secret, addr))
	}
	var sup store.Suppression
	if err := json.Unmarshal(v, &sup); err != nil {
		return false, fmt.Errorf("suppression entry: %w", err)
	}
	hashed := erasedSuppressionKey(secret, addr)
	sup.Address = ""
	sup.Pseudonym = hex.EncodeToString(hashed[1:9])
	sup.Reason = store.WithoutAddress(sup.Reason, addr)
	nv, err := json.Marshal(sup)
	if err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM suppressions WHERE key = $1`, []byte(addr)); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO suppressions (key, data) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET data = excluded.data`, hashed, nv); err != nil {
		return false, err
	}
	rep.Suppressions++
	return true, nil
}

// eraseEventIDs re-keys the IDs of events about addr, and any ID that
// contains the address, by their hash. Like the bbolt store it reads every
// plain ID: erasure is rare and the IDs are pruned.
func (s *Store) eraseEventIDs(ctx context.Context, tx pgx.Tx, addr string, rep *store.ForgetReport) error {
	secret, err := s.secretIn(ctx, tx, false)
	if err != nil || secret == nil {
		return err
	}
	tag := store.AddressHash(secret, addr)[:store.RecipientTagLen]
	lower := bytes.ToLower([]byte(addr))
	rows, err := tx.Query(ctx, `SELECT key, seen, tag FROM event_ids`)
	if err != nil {
		return err
	}
	type seenID struct {
		key  []byte
		seen int64
	}
	var found []seenID
	for rows.Next() {
		var k, t []byte
		var seen int64
		if err := rows.Scan(&k, &seen, &t); err != nil {
			rows.Close()
			return err
		}
		if len(k) > 0 && k[0] == 0 {
			continue // already a hash
		}
		if bytes.Equal(t, tag) || bytes.Contains(bytes.ToLower(k), lower) {
			found = append(found, seenID{k, seen})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, f := range found {
		if _, err := tx.Exec(ctx, `DELETE FROM event_ids WHERE key = $1`, f.key); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO event_ids (key, seen, tag) VALUES ($1, $2, NULL) ON CONFLICT (key) DO NOTHING`,
			store.ErasedEventKey(secret, string(f.key)), f.seen); err != nil {
			return err
		}
		rep.EventIDs++
	}
	return nil
}

// forgottenAt returns when addr was forgotten with a tombstone, or zero.
func forgottenAt(ctx context.Context, q querier, secret []byte, addr string) (time.Time, error) {
	if secret == nil {
		return time.Time{}, nil
	}
	var at int64
	err := q.QueryRow(ctx, `SELECT at FROM forgotten WHERE hash = $1`, store.AddressHash(secret, addr)).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, at).UTC(), nil
}

// Forgotten returns when addr was erased while it asked for no marketing
// mail, or the zero time.
func (s *Store) Forgotten(addr string) (time.Time, error) {
	var at time.Time
	err := s.read(func(ctx context.Context, tx pgx.Tx) error {
		secret, err := s.secretIn(ctx, tx, false)
		if err != nil {
			return err
		}
		at, err = forgottenAt(ctx, tx, secret, addr)
		return err
	})
	return at, err
}

// purgeBatch bounds one purge transaction, as in the bbolt store.
const purgeBatch = 256

// PurgeBodies deletes the bodies of messages whose envelopes are all
// final and were last changed before before, and returns how many.
func (s *Store) PurgeBodies(before time.Time) (int, error) {
	return s.purge(`DELETE FROM bodies WHERE message_id IN (
		SELECT b.message_id FROM bodies b
		WHERE b.message_id > $2 AND NOT EXISTS (
			SELECT 1 FROM envelopes e WHERE e.message_id = b.message_id AND (e.state <> ALL($3) OR e.updated >= $1))
		ORDER BY b.message_id LIMIT $4)
		RETURNING message_id`, before)
}

// PurgeDecisions deletes the decision records of envelopes that reached a
// final state before before (or no longer exist), and returns how many
// envelopes' records it deleted.
func (s *Store) PurgeDecisions(before time.Time) (int, error) {
	return s.purge(`DELETE FROM decisions WHERE envelope_id IN (
		SELECT d.envelope_id FROM decisions d LEFT JOIN envelopes e ON e.id = d.envelope_id
		WHERE d.envelope_id > $2 AND (e.id IS NULL OR (e.state = ANY($3) AND e.updated < $1))
		ORDER BY d.envelope_id LIMIT $4)
		RETURNING envelope_id`, before)
}

// purge runs a DELETE ... RETURNING key in transactions of purgeBatch
// rows, each checking its rows again, moving on by key.
func (s *Store) purge(query string, before time.Time) (int, error) {
	total, after := 0, ""
	for {
		var keys []string
		err := s.write(func(ctx context.Context, tx pgx.Tx) error {
			rows, err := tx.Query(ctx, query, nanos(before), after, finalStates, purgeBatch)
			if err != nil {
				return err
			}
			keys, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if err != nil {
			return total, err
		}
		total += len(keys)
		if len(keys) < purgeBatch {
			return total, nil
		}
		for _, k := range keys {
			after = max(after, k)
		}
	}
}

// PseudonymKey returns a key for pseudonymising addresses for purpose,
// derived from the database's secret (made on first use).
func (s *Store) PseudonymKey(purpose string) ([]byte, error) {
	secret, err := s.pseudonymSecret(true)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(purpose))
	return mac.Sum(nil), nil
}

// Records calls fn for every envelope with its message and decisions, in
// ID order, until fn returns false. It reads in pages, as Envelopes does.
func (s *Store) Records(fn func(store.EnvelopeRecord) bool) error {
	after := ""
	var m *store.Message
	for {
		ctx, cancel := s.ctx()
		rows, err := s.pool.Query(ctx, `SELECT e.id, e.data, m.data, d.records FROM envelopes e
			LEFT JOIN messages m ON m.id = e.message_id
			LEFT JOIN decisions d ON d.envelope_id = e.id
			WHERE e.id > $1 ORDER BY e.id LIMIT $2`, after, pageSize)
		if err != nil {
			cancel()
			return err
		}
		var page []store.EnvelopeRecord
		for rows.Next() {
			var id string
			var ed, md, recs []byte
			if err := rows.Scan(&id, &ed, &md, &recs); err != nil {
				rows.Close()
				cancel()
				return err
			}
			var rec store.EnvelopeRecord
			if err := json.Unmarshal(ed, &rec.Envelope); err != nil {
				rows.Close()
				cancel()
				return fmt.Errorf("envelope %s: %w", id, err)
			}
			if m == nil || m.ID != rec.Envelope.MessageID {
				if md == nil {
					rows.Close()
					cancel()
					return notFound("message %s", rec.Envelope.MessageID)
				}
				var msg store.Message
				if err := json.Unmarshal(md, &msg); err != nil {
					rows.Close()
					cancel()
					return err
				}
				m = &msg
			}
			rec.Message = m
			rec.Decisions = recordsArray(recs)
			page = append(page, rec)
			after = id
		}
		rows.Close()
		cancel()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, rec := range page {
			if !fn(rec) {
				return nil
			}
		}
		if len(page) < pageSize {
			return nil
		}
	}
}

// RecipientEnvelopes is one page of the envelopes to rcpt, the highest ID
// first, read through the envelopes_recipient index in one snapshot.
func (s *Store) RecipientEnvelopes(rcpt, before string, limit int) (store.RecipientPage, error) {
	var p store.RecipientPage
	key := store.NormalizeAddress(rcpt)
	err := s.read(func(ctx context.Context, tx pgx.Tx) error {
		p = store.RecipientPage{}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM envelopes WHERE rcpt = $1`, key).Scan(&p.Total); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT e.id, e.data, m.data, d.records FROM envelopes e
			LEFT JOIN messages m ON m.id = e.message_id
			LEFT JOIN decisions d ON d.envelope_id = e.id
			WHERE e.rcpt = $1 AND ($2 = '' OR e.id < $2) ORDER BY e.id DESC LIMIT $3`, key, before, limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		var m *store.Message
		for rows.Next() {
			var id string
			var ed, md, recs []byte
			if err := rows.Scan(&id, &ed, &md, &recs); err != nil {
				return err
			}
			if len(p.Records) == limit {
				p.Next = p.Records[len(p.Records)-1].Envelope.ID
				break
			}
			var rec store.EnvelopeRecord
			if err := json.Unmarshal(ed, &rec.Envelope); err != nil {
				return fmt.Errorf("envelope %s: %w", id, err)
			}
			if m == nil || m.ID != rec.Envelope.MessageID {
				if md == nil {
					return notFound("message %s", rec.Envelope.MessageID)
				}
				var msg store.Message
				if err := json.Unmarshal(md, &msg); err != nil {
					return err
				}
				m = &msg
			}
			rec.Message = m
			rec.Decisions = recordsArray(recs)
			p.Records = append(p.Records, rec)
		}
		return rows.Err()
	})
	return p, err
}
