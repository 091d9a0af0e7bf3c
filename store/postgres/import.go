package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"kadenz/store"
)

// Importing another store's contents (kadenz db copy): an Importer is the
// store.Sink the bbolt store's Export writes to. It writes in transactions
// of importBatch rows, into a database that must be empty, and counts what
// it wrote per table so that the copy can be checked (TableCounts).

const importBatch = 500

// Importer writes exported items into a Store. Call Flush at the end.
type Importer struct {
	s       *Store
	pending []queued
	// Counts are the rows written (or queued) per table.
	Counts map[string]int64
}

type queued struct {
	sql  string
	args []any
}

// ErrNotEmpty is returned by NewImporter for a database that holds data.
var ErrNotEmpty = errors.New("the database already holds Kadenz data")

// NewImporter checks that the database holds no data and returns an
// importer into it.
func (s *Store) NewImporter() (*Importer, error) {
	counts, err := s.TableCounts()
	if err != nil {
		return nil, err
	}
	for table, n := range counts {
		if n > 0 && table != "meta" && table != "leases" {
			return nil, fmt.Errorf("store: postgres: %w (%s has %d rows); copy into an empty database", ErrNotEmpty, table, n)
		}
	}
	return &Importer{s: s, Counts: map[string]int64{}}, nil
}

func (im *Importer) add(table, sql string, args ...any) error {
	for i, a := range args { // the exporter's slices are only lent
		if b, ok := a.([]byte); ok {
			args[i] = bytes.Clone(b)
		}
	}
	im.pending = append(im.pending, queued{sql, args})
	im.Counts[table]++
	if len(im.pending) >= importBatch {
		return im.Flush()
	}
	return nil
}

// Flush writes what is queued, in one transaction.
func (im *Importer) Flush() error {
	if len(im.pending) == 0 {
		return nil
	}
	err := im.s.write(func(ctx context.Context, tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, q := range im.pending {
			b.Queue(q.sql, q.args...)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("store: postgres: import: %w", err)
	}
	im.pending = im.pending[:0]
	return nil
}

// Secret stores the pseudonym secret; a database that has another one
// already is an error (its hashes would not match).
func (im *Importer) Secret(secret []byte) error {
	if err := im.Flush(); err != nil {
		return err
	}
	err := im.s.write(func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, secretKey, secret); err != nil {
			return err
		}
		var got []byte
		if err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, secretKey).Scan(&got); err != nil {
			return err
		}
		if !bytes.Equal(got, secret) {
			return errors.New("store: postgres: the database has a pseudonym secret of its own; copy into a new database")
		}
		return nil
	})
	if err == nil {
		im.Counts["meta"]++
	}
	return err
}

func (im *Importer) Message(m store.Message, body []byte) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var headerID any
	if m.HeaderID != "" {
		headerID = m.HeaderID
	}
	if err := im.add("messages", `INSERT INTO messages (id, header_id, data) VALUES ($1, $2, $3)`, m.ID, headerID, data); err != nil {
		return err
	}
	if body == nil {
		return nil
	}
	return im.add("bodies", `INSERT INTO bodies (message_id, body) VALUES ($1, $2)`, m.ID, body)
}

func (im *Importer) Envelope(e store.Envelope) error {
	b := &pgx.Batch{}
	if err := im.s.queuePut(b, &e, true); err != nil {
		return err
	}
	q := b.QueuedQueries[0]
	return im.add("envelopes", q.SQL, q.Arguments...)
}

func (im *Importer) Decisions(envelopeID string, records json.RawMessage) error {
	var list []json.RawMessage
	if err := json.Unmarshal(records, &list); err != nil {
		return fmt.Errorf("decisions of %s: %w", envelopeID, err)
	}
	if len(list) == 0 {
		return nil
	}
	var joined bytes.Buffer
	for i, r := range list {
		if i > 0 {
			joined.WriteByte(',')
		}
		if err := json.Compact(&joined, r); err != nil {
			return fmt.Errorf("decisions of %s: %w", envelopeID, err)
		}
	}
	return im.add("decisions", `INSERT INTO decisions (envelope_id, records) VALUES ($1, $2)`, envelopeID, joined.Bytes())
}

// Profile stores a profile under its lower-case key; two spellings of one
// address (a file from before keys were lower case, not yet opened by a
// newer kadenz) would collide, and the copy fails rather than drop one.
func (im *Importer) Profile(rcpt string, profile []byte) error {
	if profile == nil {
		profile = []byte{}
	}
	return im.add("profiles", `INSERT INTO profiles (rcpt, profile) VALUES ($1, $2)`, store.NormalizeAddress(rcpt), profile)
}

func (im *Importer) Counter(name string, value int64) error {
	return im.add("counters", `INSERT INTO counters (name, shard, value) VALUES ($1, 0, $2)`, name, value)
}

func (im *Importer) Suppression(key []byte, sup store.Suppression) error {
	data, err := json.Marshal(sup)
	if err != nil {
		return err
	}
	return im.add("suppressions", `INSERT INTO suppressions (key, data) VALUES ($1, $2)`, key, data)
}

func (im *Importer) EventID(key []byte, seen time.Time, tag []byte) error {
	return im.add("event_ids", `INSERT INTO event_ids (key, seen, tag) VALUES ($1, $2, $3)`, key, nanos(seen), tag)
}

func (im *Importer) Mailbox(name string, uidValidity, lastUID uint32) error {
	return im.add("mailboxes", `INSERT INTO mailboxes (name, uid_validity, last_uid) VALUES ($1, $2, $3)`,
		name, int64(uidValidity), int64(lastUID))
}

func (im *Importer) Tombstone(hash []byte, at time.Time) error {
	return im.add("forgotten", `INSERT INTO forgotten (hash, at) VALUES ($1, $2)`, hash, nanos(at))
}

func (im *Importer) SuspendedCampaign(key string, c store.SuspendedCampaign) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return im.add("suspended_campaigns", `INSERT INTO suspended_campaigns (key, data) VALUES ($1, $2)`, key, data)
}

var _ store.Sink = (*Importer)(nil)

// Tables are the tables TableCounts counts.
var Tables = []string{"meta", "messages", "bodies", "envelopes", "decisions", "profiles", "counters",
	"suppressions", "event_ids", "mailboxes", "forgotten", "suspended_campaigns", "leases"}

// TableCounts returns the number of rows of each table.
func (s *Store) TableCounts() (map[string]int64, error) {
	out := map[string]int64{}
	err := s.read(func(ctx context.Context, tx pgx.Tx) error {
		for _, t := range Tables {
			var n int64
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+t).Scan(&n); err != nil {
				return err
			}
			out[t] = n
		}
		return nil
	})
	return out, err
}
