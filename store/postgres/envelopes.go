package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"kadenz/store"
)

// Intake, the delivery queue and the reads over envelopes and messages.

// lane is the schedule e belongs to in its state (see schema.go), nil for
// a final envelope.
func lane(e *store.Envelope) any {
	switch e.State {
	case store.StateQueued, store.StateDeferred:
		if e.Express {
			return "x"
		}
		return "q"
	case store.StateHeld:
		return "h"
	case store.StateReview:
		return "r"
	case store.StateDelivering:
		return "d"
	}
	return nil
}

const (
	insertEnvelope = `INSERT INTO envelopes (id, message_id, to_addr, rcpt, state, lane, due, updated, claimed_by, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	updateEnvelope = `UPDATE envelopes SET state = $2, lane = $3, due = $4, updated = $5, claimed_by = $6, data = $7 WHERE id = $1`
)

// queuePut queues the write of e (an insert for a new envelope) on b. An
// update of an envelope that does not exist fails with ErrNotFound.
func (s *Store) queuePut(b *pgx.Batch, e *store.Envelope, insert bool) error {
	if e.State.Final() {
		e.Due = time.Time{}
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	var claimedBy any
	if e.State == store.StateDelivering {
		claimedBy = s.node
	}
	if insert {
		b.Queue(insertEnvelope, e.ID, e.MessageID, e.To, store.NormalizeAddress(e.To), string(e.State), lane(e),
			dueNanos(e.Due), nanos(e.Updated), claimedBy, data)
		return nil
	}
	id := e.ID
	b.Queue(updateEnvelope, id, string(e.State), lane(e), dueNanos(e.Due), nanos(e.Updated), claimedBy, data).
		Exec(func(ct pgconn.CommandTag) error {
			if ct.RowsAffected() == 0 {
				return notFound("envelope %s", id)
			}
			return nil
		})
	return nil
}

// putEnvelopes writes changed envelopes over their stored versions.
func (s *Store) putEnvelopes(ctx context.Context, tx pgx.Tx, envs []store.Envelope) error {
	if len(envs) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for i := range envs {
		if err := s.queuePut(b, &envs[i], false); err != nil {
			return err
		}
	}
	return tx.SendBatch(ctx, b).Close()
}

// Accept stores a message and one queued envelope per recipient, due at
// now, and returns after the commit.
func (s *Store) Accept(msg store.Message, body []byte, rcpts []string, now time.Time) ([]store.Envelope, error) {
	return s.AcceptWith(msg, body, rcpts, now, func(int, *store.Envelope) {})
}

// AcceptWith is Accept with a hook that may change each new envelope
// before it is written.
func (s *Store) AcceptWith(msg store.Message, body []byte, rcpts []string, now time.Time, prepare func(i int, e *store.Envelope)) ([]store.Envelope, error) {
	if len(rcpts) == 0 {
		return nil, errors.New("store: message without recipients")
	}
	envs := make([]store.Envelope, len(rcpts))
	for i, to := range rcpts {
		envs[i] = store.Envelope{
			ID: fmt.Sprintf("%s-%d", msg.ID, i+1), MessageID: msg.ID, From: msg.From, To: to,
			State: store.StateQueued, Created: now, Updated: now, Due: now,
		}
		prepare(i, &envs[i])
	}
	msgJSON, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	if body == nil {
		body = []byte{} // the column is NOT NULL; an empty body is still a body
	}
	var headerID any
	if msg.HeaderID != "" {
		headerID = msg.HeaderID
	}
	err = s.write(func(ctx context.Context, tx pgx.Tx) error {
		b := &pgx.Batch{}
		if s.keptTallies {
			queueAcceptTallies(b, msg, envs)
			queueAcceptCampaignTallies(b, msg, envs)
		}
		b.Queue(`INSERT INTO messages (id, header_id, data) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`, msg.ID, headerID, msgJSON).
			Exec(func(ct pgconn.CommandTag) error {
				if ct.RowsAffected() == 0 {
					return fmt.Errorf("store: message ID %s already exists", msg.ID)
				}
				return nil
			})
		b.Queue(`INSERT INTO bodies (message_id, body) VALUES ($1, $2)`, msg.ID, body)
		for i := range envs {
			e := envs[i] // queuePut normalises; the caller gets what was written
			if err := s.queuePut(b, &e, true); err != nil {
				return err
			}
			envs[i] = e
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, err
	}
	return envs, nil
}

// Claim moves up to limit envelopes due at now into StateDelivering and
// returns them, express mail first, then earliest due first.
func (s *Store) Claim(now time.Time, limit int) ([]store.Envelope, error) {
	return s.Settle(nil, now, limit)
}

// claimQuery selects due envelopes of one lane, skipping those another
// transaction (another node's claim) has locked: two claimers get
// disjoint sets without waiting for each other.
const claimQuery = `SELECT data FROM envelopes WHERE lane = $1 AND due <= $2 ORDER BY due, id LIMIT $3 FOR UPDATE SKIP LOCKED`

// Settle writes the outcomes of finished deliveries and claims up to limit
// more, in one transaction. An outcome counts only while the envelope is
// still claimed by this node (putOutcomes). In the express lane the limit does not split a
// message: the last claimed message's other express envelopes due at the
// same time come along, up to store.MaxSiblings more (as in the bbolt
// store).
func (s *Store) Settle(outcomes []store.Envelope, now time.Time, limit int) ([]store.Envelope, error) {
	var claimed []store.Envelope
	err := s.write(func(ctx context.Context, tx pgx.Tx) error {
		claimed = claimed[:0]
		if err := s.putOutcomes(ctx, tx, outcomes); err != nil {
			return err
		}
		if limit <= 0 {
			return nil
		}
		at := dueNanos(now)
		express, err := queryEnvelopes(ctx, tx, claimQuery, "x", at, limit)
		if err != nil {
			return err
		}
		claimed = append(claimed, express...)
		if n := len(express); n > 0 && n >= limit {
			last := express[n-1]
			more, err := queryEnvelopes(ctx, tx, `SELECT data FROM envelopes
				WHERE lane = 'x' AND message_id = $1 AND due = $2 AND id > $3
				ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED`, last.MessageID, dueNanos(last.Due), last.ID, store.MaxSiblings)
			if err != nil {
				return err
			}
			claimed = append(claimed, more...)
		}
		if len(claimed) < limit {
			rest, err := queryEnvelopes(ctx, tx, claimQuery, "q", at, limit-len(claimed))
			if err != nil {
				return err
			}
			claimed = append(claimed, rest...)
		}
		for i := range claimed {
			claimed[i].State, claimed[i].Updated = store.StateDelivering, now
		}
		return s.putEnvelopes(ctx, tx, claimed)
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// putOutcomes writes the outcomes of deliveries, each only if its
// envelope is still in delivery under this node's claim: when the claim
// was taken over (RecoverStale on another node, after this one stalled
// past its lease), the envelope now belongs to whoever claimed it next,
// and a late outcome from here (a deferral, say) must not overwrite what
// that delivery recorded. Such outcomes are dropped and counted
// (StaleOutcomes); an unknown envelope is still ErrNotFound.
func (s *Store) putOutcomes(ctx context.Context, tx pgx.Tx, outcomes []store.Envelope) error {
	if len(outcomes) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	var stale []string
	for i := range outcomes {
		e := &outcomes[i]
		if e.State.Final() {
			e.Due = time.Time{}
		}
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		var claimedBy any
		if e.State == store.StateDelivering {
			claimedBy = s.node
		}
		id := e.ID
		b.Queue(updateEnvelope+` AND lane = 'd' AND claimed_by = $8`,
			id, string(e.State), lane(e), dueNanos(e.Due), nanos(e.Updated), claimedBy, data, s.node).
			Exec(func(ct pgconn.CommandTag) error {
				if ct.RowsAffected() == 0 {
					stale = append(stale, id)
				}
				return nil
			})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	if len(stale) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT id FROM envelopes WHERE id = ANY($1)`, stale)
	if err != nil {
		return err
	}
	known, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, id := range stale {
		if !slices.Contains(known, id) {
			return notFound("envelope %s", id)
		}
	}
	s.retries.mu.Lock()
	s.retries.stale += int64(len(stale))
	s.retries.mu.Unlock()
	return nil
}

// StaleOutcomes is how many delivery outcomes were dropped because the
// envelope's claim had been taken over (see Settle).
func (s *Store) StaleOutcomes() int64 {
	s.retries.mu.Lock()
	defer s.retries.mu.Unlock()
	return s.retries.stale
}

// queryEnvelopes runs a query whose only column is an envelope's data.
func queryEnvelopes(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) ([]store.Envelope, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	var out []store.Envelope
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			rows.Close()
			return nil, err
		}
		e, err := unmarshalEnvelope(data)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("envelope: %w", err)
		}
		out = append(out, e)
	}
	rows.Close()
	return out, rows.Err()
}

// Update writes envelopes the caller read and changed.
func (s *Store) Update(envs ...store.Envelope) error {
	envs = append([]store.Envelope(nil), envs...) // queuePut normalises in place
	return s.write(func(ctx context.Context, tx pgx.Tx) error { return s.putEnvelopes(ctx, tx, envs) })
}

// Recover makes this node's envelopes in delivery due again at now (after
// a crash: delivery is at-least-once) and returns how many. Claims of
// other nodes are theirs while they live; RecoverStale takes them over
// once their lease has run out.
func (s *Store) Recover(now time.Time) (int, error) {
	return s.recover(now, `SELECT data FROM envelopes WHERE lane = 'd' AND claimed_by = $1 ORDER BY id FOR UPDATE`, s.node)
}

// RecoverStale makes envelopes claimed before cutoff, by any node, due
// again at now: the claim's time is its lease.
func (s *Store) RecoverStale(now, cutoff time.Time) (int, error) {
	return s.recover(now, `SELECT data FROM envelopes WHERE lane = 'd' AND updated < $1 ORDER BY id FOR UPDATE`, nanos(cutoff))
}

func (s *Store) recover(now time.Time, query string, arg any) (int, error) {
	n := 0
	err := s.write(func(ctx context.Context, tx pgx.Tx) error {
		stale, err := queryEnvelopes(ctx, tx, query, arg)
		if err != nil {
			return err
		}
		for i := range stale {
			stale[i].State, stale[i].Due, stale[i].Updated = store.StateQueued, now, now
		}
		n = len(stale)
		return s.putEnvelopes(ctx, tx, stale)
	})
	return n, err
}

// NextDue is the earliest due time of mail waiting for delivery.
func (s *Store) NextDue() (time.Time, bool, error) {
	return s.earliest(`SELECT (SELECT due FROM envelopes WHERE lane = 'x' ORDER BY due LIMIT 1),
		(SELECT due FROM envelopes WHERE lane = 'q' ORDER BY due LIMIT 1)`)
}

// earliest runs a query returning two nullable times, and returns the
// earlier.
func (s *Store) earliest(query string) (time.Time, bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var a, b *int64
	if err := s.pool.QueryRow(ctx, query).Scan(&a, &b); err != nil {
		return time.Time{}, false, err
	}
	switch {
	case a == nil && b == nil:
		return time.Time{}, false, nil
	case a == nil:
		a = b
	case b != nil && *b < *a:
		a = b
	}
	return time.Unix(0, *a), true, nil
}

// Body returns a message's bytes as stored.
func (s *Store) Body(messageID string) ([]byte, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var body []byte
	err := s.pool.QueryRow(ctx, `SELECT body FROM bodies WHERE message_id = $1`, messageID).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("body of message %s", messageID)
	}
	return body, err
}

// HasBody reports whether a message's body is still stored.
func (s *Store) HasBody(messageID string) (bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM bodies WHERE message_id = $1)`, messageID).Scan(&ok)
	return ok, err
}

// Envelope returns one envelope.
func (s *Store) Envelope(id string) (store.Envelope, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	envs, err := queryEnvelopes(ctx, s.pool, `SELECT data FROM envelopes WHERE id = $1`, id)
	if err != nil {
		return store.Envelope{}, err
	}
	if len(envs) == 0 {
		return store.Envelope{}, notFound("envelope %s", id)
	}
	return envs[0], nil
}

// Message returns a message's metadata.
func (s *Store) Message(id string) (store.Message, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM messages WHERE id = $1`, id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Message{}, notFound("message %s", id)
	}
	if err != nil {
		return store.Message{}, err
	}
	var m store.Message
	err = json.Unmarshal(data, &m)
	return m, err
}

// MessageByHeaderID is the latest message carrying a Message-ID.
func (s *Store) MessageByHeaderID(headerID string) (string, error) {
	ids, err := s.MessagesByHeaderID(headerID)
	if err != nil {
		return "", err
	}
	return ids[len(ids)-1], nil
}

// MessagesByHeaderID returns every message that carries a Message-ID, in
// order of arrival (of their IDs, as in the bbolt store), or ErrNotFound.
func (s *Store) MessagesByHeaderID(headerID string) ([]string, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id FROM messages WHERE header_id = $1 ORDER BY id`, headerID)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, notFound("Message-ID %s", headerID)
	}
	return ids, nil
}

// EnvelopesOf returns a message's envelopes, in ID order.
func (s *Store) EnvelopesOf(messageID string) ([]store.Envelope, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	return queryEnvelopes(ctx, s.pool, `SELECT data FROM envelopes WHERE message_id = $1 ORDER BY id`, messageID)
}

// pageSize is how many rows a walk reads per statement.
const pageSize = 500

// Envelopes calls fn for every envelope in ID order until fn returns
// false. It reads in pages: fn runs outside any transaction and may use
// the store.
func (s *Store) Envelopes(fn func(store.Envelope) bool) error {
	return s.walkByID(`TRUE`, nil, store.EnvelopeCursor{}, fn)
}

// walkByID pages through the envelopes matching where (with args as $1...)
// in ID order.
func (s *Store) walkByID(where string, args []any, after store.EnvelopeCursor, fn func(store.Envelope) bool) error {
	n := len(args)
	query := fmt.Sprintf(`SELECT data FROM envelopes WHERE %s AND id > $%d ORDER BY id LIMIT %d`, where, n+1, pageSize)
	return s.walkPages(query, args, []any{after.ID}, func(last store.Envelope) []any { return []any{last.ID} }, fn)
}

// walkByDue pages through the envelopes matching where in (due, ID) order.
func (s *Store) walkByDue(where string, args []any, after store.EnvelopeCursor, fn func(store.Envelope) bool) error {
	n := len(args)
	query := fmt.Sprintf(`SELECT data FROM envelopes WHERE %s AND (due > $%d OR (due = $%d AND id > $%d)) ORDER BY due, id LIMIT %d`,
		where, n+1, n+1, n+2, pageSize)
	start := []any{int64(-1), ""}
	if after != (store.EnvelopeCursor{}) {
		start = []any{dueNanos(after.Due), after.ID}
	}
	return s.walkPages(query, args, start,
		func(last store.Envelope) []any { return []any{dueNanos(last.Due), last.ID} }, fn)
}

// walkPages runs query (a page of pageSize envelopes after a cursor) page
// after page, each in a short read of its own: args, then the cursor's
// values, start for the first page and after(last envelope) for the next.
func (s *Store) walkPages(query string, args, start []any, after func(store.Envelope) []any, fn func(store.Envelope) bool) error {
	n := len(args)
	cursor := start
	for {
		ctx, cancel := s.ctx()
		page, err := queryEnvelopes(ctx, s.pool, query, append(args[:n:n], cursor...)...)
		cancel()
		if err != nil {
			return err
		}
		for _, e := range page {
			if !fn(e) {
				return nil
			}
		}
		if len(page) < pageSize {
			return nil
		}
		cursor = after(page[len(page)-1])
	}
}

// EnvelopesInState calls fn for each envelope in state s until fn returns
// false: waiting, held and review mail earliest due first, mail in
// delivery and final mail in ID order. An empty s means every envelope.
func (s *Store) EnvelopesInState(st store.State, fn func(store.Envelope) bool) error {
	return s.EnvelopesInStateAfter(st, store.EnvelopeCursor{}, fn)
}

// EnvelopesInStateAfter is EnvelopesInState after a cursor: the same
// keyset pages, starting from the cursor instead of the beginning.
func (s *Store) EnvelopesInStateAfter(st store.State, after store.EnvelopeCursor, fn func(store.Envelope) bool) error {
	switch st {
	case "":
		return s.walkByID(`TRUE`, nil, after, fn)
	case store.StateQueued, store.StateDeferred:
		return s.walkByDue(`lane IN ('x', 'q') AND state = $1`, []any{string(st)}, after, fn)
	case store.StateHeld:
		return s.walkByDue(`lane = 'h'`, nil, after, fn)
	case store.StateReview:
		return s.walkByDue(`lane = 'r'`, nil, after, fn)
	case store.StateDelivering:
		return s.walkByID(`lane = 'd'`, nil, after, fn)
	}
	return s.walkByID(`state = $1`, []any{string(st)}, after, fn)
}

// CountByState returns how many envelopes are in each state.
func (s *Store) CountByState() (map[store.State]int, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM envelopes GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[store.State]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		counts[store.State(st)] = n
	}
	return counts, rows.Err()
}

// StateCounts is CountByState without the error (nil on one). Unlike the
// bbolt store, which keeps the counts in memory, it asks the database,
// because other nodes change the envelopes too: a count over the table,
// which a metrics scrape every few seconds can afford up to millions of
// envelopes (docs/scale.md).
func (s *Store) StateCounts() map[store.State]int {
	counts, err := s.CountByState()
	if err != nil {
		return nil
	}
	return counts
}
