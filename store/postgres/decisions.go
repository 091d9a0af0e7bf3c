package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"kadenz/store"
)

// The decision engine's load-decide-apply, operator transitions, counters
// and campaign suspension.

// DueRecipients lists up to limit distinct recipients with held mail due
// at now, earliest first, each as written on its earliest envelope.
func (s *Store) DueRecipients(now time.Time, limit int) ([]string, error) {
	var rcpts []string
	seen := map[string]bool{}
	afterDue, afterID := int64(-1), ""
	for len(rcpts) < limit {
		ctx, cancel := s.ctx()
		rows, err := s.pool.Query(ctx, `SELECT due, id, to_addr, rcpt FROM envelopes
			WHERE lane = 'h' AND due <= $1 AND (due > $2 OR (due = $2 AND id > $3))
			ORDER BY due, id LIMIT $4`, dueNanos(now), afterDue, afterID, pageSize)
		if err != nil {
			cancel()
			return nil, err
		}
		n := 0
		for rows.Next() {
			var to, rcpt string
			if err := rows.Scan(&afterDue, &afterID, &to, &rcpt); err != nil {
				rows.Close()
				cancel()
				return nil, err
			}
			n++
			if !seen[rcpt] && len(rcpts) < limit {
				seen[rcpt] = true
				rcpts = append(rcpts, to)
			}
		}
		rows.Close()
		cancel()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if n < pageSize {
			break
		}
	}
	return rcpts, nil
}

// NextHeld is the earliest due time of held mail.
func (s *Store) NextHeld() (time.Time, bool, error) {
	return s.earliest(`SELECT (SELECT due FROM envelopes WHERE lane = 'h' ORDER BY due LIMIT 1), NULL::BIGINT`)
}

// LoadRecipient reads a recipient's held mail (due or not), its messages,
// the profile and any erasure tombstone in one snapshot, the queries sent
// together.
func (s *Store) LoadRecipient(rcpt string) (store.Recipient, error) {
	var r store.Recipient
	key := store.NormalizeAddress(rcpt)
	err := s.read(func(ctx context.Context, tx pgx.Tx) error {
		r = store.Recipient{Address: rcpt, Messages: map[string]store.Message{}}
		secret, err := s.secretIn(ctx, tx, false)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		b.Queue(`SELECT e.data, m.data FROM envelopes e LEFT JOIN messages m ON m.id = e.message_id
			WHERE e.rcpt = $1 AND e.state = 'held' ORDER BY e.id`, key).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var ed, md []byte
				if err := rows.Scan(&ed, &md); err != nil {
					return err
				}
				e, err := unmarshalEnvelope(ed)
				if err != nil {
					return err
				}
				if md == nil {
					return notFound("message %s", e.MessageID)
				}
				r.Held = append(r.Held, e)
				if _, ok := r.Messages[e.MessageID]; !ok {
					var m store.Message
					if err := json.Unmarshal(md, &m); err != nil {
						return err
					}
					r.Messages[e.MessageID] = m
				}
			}
			return rows.Err()
		})
		b.Queue(`SELECT profile FROM profiles WHERE rcpt = $1`, key).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				if err := rows.Scan(&r.Profile); err != nil {
					return err
				}
			}
			return rows.Err()
		})
		if secret != nil {
			b.Queue(`SELECT at FROM forgotten WHERE hash = $1`, store.AddressHash(secret, rcpt)).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var at int64
					if err := rows.Scan(&at); err != nil {
						return err
					}
					r.Forgotten = time.Unix(0, at).UTC()
				}
				return rows.Err()
			})
		}
		return tx.SendBatch(ctx, b).Close()
	})
	return r, err
}

// ApplyDecisions writes a decision round atomically, its statements sent
// to the database together (one round trip).
func (s *Store) ApplyDecisions(d store.Decided) error {
	return s.write(func(ctx context.Context, tx pgx.Tx) error {
		b := &pgx.Batch{}
		if err := s.queueDecided(b, d, rand.N(counterShards)); err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	})
}

// roundsPerTx bounds how many rounds ApplyDecisionsAll commits together.
const roundsPerTx = 256

// errRoundFailed says a round of a shared transaction failed.
var errRoundFailed = errors.New("a round failed")

// ApplyDecisionsAll writes several rounds, each atomic on its own, sharing
// transactions: the rounds of a chunk go to the database as one batch in
// one transaction; if one of them fails, the chunk is rolled back and each
// of its rounds is written alone, so the others still commit (the bbolt
// store's group commit does the same). One error per round.
func (s *Store) ApplyDecisionsAll(ds []store.Decided) []error {
	errs := make([]error, len(ds))
	for start := 0; start < len(ds); start += roundsPerTx {
		chunk := ds[start:min(start+roundsPerTx, len(ds))]
		cerrs := errs[start : start+len(chunk)]
		err := s.write(func(ctx context.Context, tx pgx.Tx) error {
			b := &pgx.Batch{}
			if err := s.queueChunk(b, chunk); err != nil {
				return fmt.Errorf("%w: %w", errRoundFailed, err)
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil && !Retryable(err) {
				return fmt.Errorf("%w: %w", errRoundFailed, err)
			} else if err != nil {
				return err
			}
			return nil
		})
		switch {
		case errors.Is(err, errRoundFailed):
			for i := range chunk {
				cerrs[i] = s.ApplyDecisions(chunk[i])
			}
		case err != nil:
			for i := range cerrs {
				cerrs[i] = err
			}
		}
	}
	return errs
}

// errChunkShort says a chunk's envelope update touched fewer rows than it
// named: an unknown envelope (or one named twice), which one round's
// transaction of its own will report.
var errChunkShort = errors.New("fewer envelopes updated than named")

// queueChunk queues the writes of many rounds as four statements, one per
// table, each over arrays (unnest): a round's rows cost no statement of
// their own. Anything unusual — an unknown envelope, a recipient or an
// envelope twice in the chunk — makes a statement fail, and the chunk is
// then written round by round.
func (s *Store) queueChunk(b *pgx.Batch, chunk []store.Decided) error {
	var (
		ids, states      []string
		lanes, claimedBy []*string
		dues, updated    []int64
		data             [][]byte
		rcpts, recIDs    []string
		profiles, recs   [][]byte
		sums             = map[string]int64{}
	)
	for _, d := range chunk {
		for i := range d.Envelopes {
			e := d.Envelopes[i]
			if e.State.Final() {
				e.Due = time.Time{}
			}
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			ids = append(ids, e.ID)
			states = append(states, string(e.State))
			var ln, by *string
			if l, ok := lane(&e).(string); ok {
				ln = &l
			}
			if e.State == store.StateDelivering {
				by = &s.node
			}
			lanes, claimedBy = append(lanes, ln), append(claimedBy, by)
			dues, updated = append(dues, dueNanos(e.Due)), append(updated, nanos(e.Updated))
			data = append(data, v)
		}
		if d.Profile != nil {
			rcpts = append(rcpts, store.NormalizeAddress(d.Recipient))
			profiles = append(profiles, d.Profile)
		}
		for id, rec := range d.Records {
			var c bytes.Buffer
			if err := json.Compact(&c, rec); err != nil {
				return fmt.Errorf("decision record of %s: %w", id, err)
			}
			recIDs, recs = append(recIDs, id), append(recs, c.Bytes())
		}
		for n, v := range d.Counters {
			sums[n] += v
		}
	}
	if len(ids) > 0 {
		want := int64(len(ids))
		b.Queue(`UPDATE envelopes AS e SET state = u.state, lane = u.lane, due = u.due, updated = u.updated,
				claimed_by = u.claimed_by, data = u.data
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::bytea[])
				AS u(id, state, lane, due, updated, claimed_by, data)
			WHERE e.id = u.id`, ids, states, lanes, dues, updated, claimedBy, data).
			Exec(func(ct pgconn.CommandTag) error {
				if ct.RowsAffected() != want {
					return errChunkShort
				}
				return nil
			})
	}
	if len(rcpts) > 0 {
		b.Queue(`INSERT INTO profiles (rcpt, profile) SELECT * FROM unnest($1::text[], $2::bytea[])
			ON CONFLICT (rcpt) DO UPDATE SET profile = excluded.profile`, rcpts, profiles)
	}
	if len(recIDs) > 0 {
		b.Queue(`INSERT INTO decisions (envelope_id, records) SELECT * FROM unnest($1::text[], $2::bytea[])
			ON CONFLICT (envelope_id) DO UPDATE SET records = decisions.records || $3::bytea || excluded.records`,
			recIDs, recs, []byte{','})
	}
	// The rounds' counters are summed and added once: rounds of one
	// campaign would otherwise update one row hundreds of times.
	queueCounters(b, sums, rand.N(counterShards))
	return nil
}

// queueDecided queues a round's writes on b: envelopes, profile,
// counters, records.
func (s *Store) queueDecided(b *pgx.Batch, d store.Decided, shard int) error {
	for i := range d.Envelopes {
		e := d.Envelopes[i]
		if err := s.queuePut(b, &e, false); err != nil {
			return err
		}
	}
	if d.Profile != nil {
		queueProfile(b, d.Recipient, d.Profile)
	}
	queueCounters(b, d.Counters, shard)
	return queueRecords(b, d.Records)
}

// appendRecords appends one decision record per envelope.
func appendRecords(ctx context.Context, tx pgx.Tx, records map[string][]byte) error {
	if len(records) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	if err := queueRecords(b, records); err != nil {
		return err
	}
	return tx.SendBatch(ctx, b).Close()
}

// queueRecords queues the appending of decision records. The records of
// an envelope are kept as their JSON joined by commas, so that appending
// is one statement and reading one concatenation (Decisions).
func queueRecords(b *pgx.Batch, records map[string][]byte) error {
	ids := make([]string, 0, len(records))
	for id := range records {
		ids = append(ids, id)
	}
	slices.Sort(ids) // one order for every writer: no deadlocks between them
	for _, id := range ids {
		var rec bytes.Buffer
		if err := json.Compact(&rec, records[id]); err != nil {
			return fmt.Errorf("decision record of %s: %w", id, err)
		}
		b.Queue(`INSERT INTO decisions (envelope_id, records) VALUES ($1, $2)
			ON CONFLICT (envelope_id) DO UPDATE SET records = decisions.records || $3`,
			id, rec.Bytes(), append([]byte{','}, rec.Bytes()...))
	}
	return nil
}

// Decisions returns an envelope's decision records (a JSON array), or nil.
func (s *Store) Decisions(envelopeID string) (json.RawMessage, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var recs []byte
	err := s.pool.QueryRow(ctx, `SELECT records FROM decisions WHERE envelope_id = $1`, envelopeID).Scan(&recs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return recordsArray(recs), nil
}

func recordsArray(recs []byte) json.RawMessage {
	if recs == nil {
		return nil
	}
	out := make([]byte, 0, len(recs)+2)
	out = append(out, '[')
	out = append(out, recs...)
	return append(out, ']')
}

// Transition applies an operator's change to envelopes in one
// transaction: all or none.
func (s *Store) Transition(ids []string, change store.Change) ([]store.Envelope, error) {
	var out []store.Envelope
	err := s.write(func(ctx context.Context, tx pgx.Tx) error {
		out = out[:0]
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				continue
			}
			seen[id] = true
			envs, err := queryEnvelopes(ctx, tx, `SELECT data FROM envelopes WHERE id = $1`, id)
			if err != nil {
				return err
			}
			if len(envs) == 0 {
				return notFound("envelope %s", id)
			}
			e := envs[0]
			profile, err := getProfile(ctx, tx, store.NormalizeAddress(e.To))
			if err != nil {
				return err
			}
			newProfile, record, err := change(&e, profile)
			if err != nil {
				return fmt.Errorf("envelope %s: %w", id, err)
			}
			if err := s.putEnvelopes(ctx, tx, []store.Envelope{e}); err != nil {
				return err
			}
			if e.State.Final() {
				e.Due = time.Time{}
			}
			if newProfile != nil {
				if err := putProfile(ctx, tx, e.To, newProfile); err != nil {
					return err
				}
			}
			if record != nil {
				if err := appendRecords(ctx, tx, map[string][]byte{id: record}); err != nil {
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

// counterShards spreads each counter over rows: decision rounds of one
// campaign on several nodes would otherwise all update one row, and under
// SERIALIZABLE all but one of them would fail and retry. A transaction
// adds to one shard; a read sums them.
const counterShards = 64

func queueCounters(b *pgx.Batch, deltas map[string]int64, shard int) {
	names := make([]string, 0, len(deltas))
	for n := range deltas {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		b.Queue(`INSERT INTO counters (name, shard, value) VALUES ($1, $2, $3)
			ON CONFLICT (name, shard) DO UPDATE SET value = counters.value + excluded.value`, n, shard, deltas[n])
	}
}

// Counters reads named counters (zero when never written).
func (s *Store) Counters(names ...string) (map[string]int64, error) {
	vals := make(map[string]int64, len(names))
	for _, n := range names {
		vals[n] = 0
	}
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT name, sum(value)::BIGINT FROM counters WHERE name = ANY($1) GROUP BY name`, names)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		var v int64
		if err := rows.Scan(&n, &v); err != nil {
			return nil, err
		}
		vals[n] = v
	}
	return vals, rows.Err()
}

func campaignKey(name string) string { return strings.ToLower(name) }

// SuspendCampaign adds a campaign to the suspension set; suspending it
// again keeps the first time.
func (s *Store) SuspendCampaign(name string, at time.Time) error {
	v, err := json.Marshal(store.SuspendedCampaign{Campaign: name, At: at})
	if err != nil {
		return err
	}
	return s.write(func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO suspended_campaigns (key, data) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`,
			campaignKey(name), v)
		return err
	})
}

// ResumeCampaign removes a campaign from the suspension set; ErrNotFound
// if it was not suspended.
func (s *Store) ResumeCampaign(name string) error {
	return s.write(func(ctx context.Context, tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, `DELETE FROM suspended_campaigns WHERE key = $1`, campaignKey(name))
		if err == nil && ct.RowsAffected() == 0 {
			err = store.ErrNotFound
		}
		return err
	})
}

// SuspendedCampaigns returns the suspension set, keyed by lower-cased name.
func (s *Store) SuspendedCampaigns() (map[string]store.SuspendedCampaign, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT key, data FROM suspended_campaigns`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]store.SuspendedCampaign{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		var sc store.SuspendedCampaign
		if err := json.Unmarshal(v, &sc); err != nil {
			return nil, err
		}
		out[k] = sc
	}
	return out, rows.Err()
}
