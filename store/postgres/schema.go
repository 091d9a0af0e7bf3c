package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The schema and its versions.
//
// kadenz_schema holds one row per migration applied: its number, when,
// and what it did. Open applies the missing ones in order, each in a
// transaction of its own together with its row, and refuses a database
// whose highest version is above the last one this code knows: an older
// kadenz must not write to tables whose meaning it does not know.
//
// Several nodes starting at once may race to migrate; every statement is
// CREATE ... IF NOT EXISTS and the version row has a primary key, so the
// loser fails, retries, and finds the work done.
//
// Layout (version 1), by what the bbolt store keeps in buckets:
//
//	meta(key, value)                      pseudonym secret
//	messages(id, header_id, data)         Message as JSON; header_id indexed
//	bodies(message_id, body)              raw message, purged on retention
//	envelopes(id, message_id, to_addr, rcpt, state, lane, due, updated,
//	          claimed_by, data)           Envelope as JSON, plus the columns
//	                                      the schedule and lookups use
//	decisions(envelope_id, records)       decision records: JSON elements
//	                                      joined by commas (appended in SQL)
//	profiles(rcpt, profile)               opaque profile bytes
//	counters(name, shard, value)          a counter is the sum of its shards
//	suppressions(key, data)               key: address, or 0x00 + HMAC
//	event_ids(key, seen, tag)             seen event IDs (idempotency)
//	mailboxes(name, uid_validity, last_uid)
//	forgotten(hash, at)                   erasure tombstones (HMAC keys)
//	suspended_campaigns(key, data)
//	leases(name, owner, expires)          singletons across nodes
//
// Version 2 adds tallies(hour, kind, state, class, holdout, label, shard,
// n), the per-hour counts of statistics and the overview, and the
// triggers that keep it (tallies.go); on CockroachDB only the table.
//
// Version 3 adds campaign_tallies(campaign, kind, state, holdout,
// deferred, label, shard, n) and campaign_messages(campaign, message_id,
// subject), what campaign reports and a campaign's page of envelopes read,
// with the triggers that keep them (campaigns.go); on CockroachDB only the
// tables.
//
// envelopes.lane is the schedule an envelope is in, NULL when final:
// 'x' express mail waiting for delivery, 'q' other mail waiting for
// delivery (queued or deferred), 'h' held, 'r' review, 'd' being
// delivered. The partial index on (lane, due, id) is each of bbolt's index
// buckets at once.
var migrations = []struct {
	note string
	sql  []string
	// triggers run after sql where the database has triggers with
	// transition tables (PostgreSQL, not CockroachDB).
	triggers []string
}{
	{"the first layout", []string{
		`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS messages (
			id TEXT COLLATE "C" PRIMARY KEY,
			header_id TEXT COLLATE "C",
			data BYTEA NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS messages_header_id ON messages (header_id, id)`,
		`CREATE TABLE IF NOT EXISTS bodies (message_id TEXT COLLATE "C" PRIMARY KEY, body BYTEA NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS envelopes (
			id TEXT COLLATE "C" PRIMARY KEY,
			message_id TEXT COLLATE "C" NOT NULL,
			to_addr TEXT NOT NULL,
			rcpt TEXT COLLATE "C" NOT NULL,
			state TEXT NOT NULL,
			lane TEXT,
			due BIGINT NOT NULL,
			updated BIGINT NOT NULL,
			claimed_by TEXT,
			data BYTEA NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS envelopes_schedule ON envelopes (lane, due, id) WHERE lane IS NOT NULL`,
		`CREATE INDEX IF NOT EXISTS envelopes_recipient ON envelopes (rcpt, state, id)`,
		`CREATE INDEX IF NOT EXISTS envelopes_message ON envelopes (message_id, id)`,
		`CREATE TABLE IF NOT EXISTS decisions (envelope_id TEXT COLLATE "C" PRIMARY KEY, records BYTEA NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS profiles (rcpt TEXT COLLATE "C" PRIMARY KEY, profile BYTEA NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS counters (name TEXT NOT NULL, shard INT NOT NULL, value BIGINT NOT NULL, PRIMARY KEY (name, shard))`,
		`CREATE TABLE IF NOT EXISTS suppressions (key BYTEA PRIMARY KEY, data BYTEA NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS event_ids (key BYTEA PRIMARY KEY, seen BIGINT NOT NULL, tag BYTEA)`,
		`CREATE INDEX IF NOT EXISTS event_ids_seen ON event_ids (seen)`,
		`CREATE TABLE IF NOT EXISTS mailboxes (name TEXT PRIMARY KEY, uid_validity BIGINT NOT NULL, last_uid BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS forgotten (hash BYTEA PRIMARY KEY, at BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS suspended_campaigns (key TEXT PRIMARY KEY, data BYTEA NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires BIGINT NOT NULL)`,
	}, nil},
	{"tallies per hour kept by triggers (tallies.go)", []string{talliesTable}, talliesMigration()},
	{"campaign tallies and campaign message lists kept by triggers (campaigns.go)", campaignsTables, campaignsMigration()},
}

// SchemaVersion is the schema this code reads and writes.
var SchemaVersion = len(migrations)

// ErrSchemaNewer is returned by Open for a database migrated by a newer
// kadenz.
var ErrSchemaNewer = errors.New("the database's schema is newer than this kadenz")

// SchemaVersionOf reads the schema version of the database (0 if none).
func (s *Store) SchemaVersionOf(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM kadenz_schema`).Scan(&v)
	return v, err
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS kadenz_schema (
		version INT PRIMARY KEY,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
		note TEXT NOT NULL)`); err != nil && !isAlreadyThere(err) {
		return fmt.Errorf("store: postgres: creating kadenz_schema: %w", err)
	}
	for attempt := 0; ; attempt++ {
		err := s.migrateOnce(ctx)
		if err == nil || attempt >= 5 || !(Retryable(err) || isAlreadyThere(err)) {
			return err
		}
	}
}

// byteOrderedByDefault reports whether the database compares strings by
// their bytes without being told: CockroachDB does, and refuses columns
// declared COLLATE "C" (it knows only ICU locales as column collations).
func (s *Store) byteOrderedByDefault(ctx context.Context) bool {
	var v string
	if err := s.pool.QueryRow(ctx, `SELECT version()`).Scan(&v); err != nil {
		return false
	}
	return strings.Contains(v, "CockroachDB")
}

// ddlFor adapts a migration statement to the database: without the
// COLLATE "C" clauses where strings are byte-ordered anyway.
func ddlFor(q string, byteOrdered bool) string {
	if byteOrdered {
		return strings.ReplaceAll(q, ` COLLATE "C"`, "")
	}
	return q
}

func (s *Store) migrateOnce(ctx context.Context) error {
	have, err := s.SchemaVersionOf(ctx)
	if err != nil {
		return fmt.Errorf("store: postgres: reading the schema version: %w", err)
	}
	if have > SchemaVersion {
		return fmt.Errorf("store: postgres: %w: the database is at version %d, this kadenz knows versions up to %d; run the newer kadenz (or restore a backup from before it migrated)",
			ErrSchemaNewer, have, SchemaVersion)
	}
	byteOrdered := have < SchemaVersion && s.byteOrderedByDefault(ctx)
	for v := have + 1; v <= SchemaVersion; v++ {
		m := migrations[v-1]
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
			stmts := m.sql
			if !byteOrdered {
				stmts = append(slices.Clone(stmts), m.triggers...)
			}
			for _, q := range stmts {
				if _, err := tx.Exec(ctx, ddlFor(q, byteOrdered)); err != nil {
					return fmt.Errorf("%s: %w", firstLine(q), err)
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO kadenz_schema (version, note) VALUES ($1, $2)`, v, m.note)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: postgres: migrating to schema version %d (%s): %w", v, m.note, err)
		}
	}
	return nil
}

// isAlreadyThere says a create lost a race with another node's: a unique
// violation in the catalog (23505), or the table (42P07) or index (42710)
// appearing between IF NOT EXISTS's check and the create, which
// PostgreSQL does not serialize.
func isAlreadyThere(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "23505" || pg.Code == "42P07" || pg.Code == "42710")
}

func firstLine(q string) string {
	for i, c := range q {
		if c == '\n' || c == '(' {
			return q[:i]
		}
	}
	return q
}
