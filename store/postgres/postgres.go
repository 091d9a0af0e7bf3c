// Package postgres is the store backend for several Kadenz nodes sharing one
// state: SQL over the PostgreSQL wire protocol, with pgx. It implements
// store.Store and passes the same conformance suite as the bbolt store
// (store/storetest); store/store.go and its neighbours are the reference
// for what each method means.
//
// How it keeps the contract:
//
//   - Plain tables and B-tree indexes (schema.go), so the same SQL runs on
//     PostgreSQL, CockroachDB and YugabyteDB. Ordered keys (envelope and
//     message IDs) are TEXT COLLATE "C" so that they sort by bytes as
//     bbolt's keys do, whatever the database's locale (CockroachDB sorts
//     by bytes already and refuses the clause: it is left out there).
//   - Every write (a decision round's apply, a feedback batch, a claim)
//     is one SERIALIZABLE transaction, run again when the database reports a
//     serialization failure (SQLSTATE 40001) or a deadlock (40P01): that
//     retry loop is what serializable databases require of a client
//     (write, below). Functions a caller hands in (Apply, Change, Stop)
//     may therefore run more than once, as the bbolt store's group commit
//     may run them more than once too.
//   - A write returns once COMMIT returned. With synchronous_commit at its
//     default (on) PostgreSQL has flushed the commit record to its WAL by
//     then; where an administrator turned it off, each new session of the
//     store turns it back on (ensureSyncCommit). CockroachDB and
//     YugabyteDB commit through their consensus log and have no such
//     switch.
//   - Delivery claims due envelopes with SELECT ... FOR UPDATE SKIP LOCKED:
//     two nodes claiming at once take disjoint envelopes instead of
//     waiting for each other or failing. A claim records its time and the
//     node that took it; RecoverStale is then the lease takeover: an
//     envelope claimed before the cutoff by any node is due again.
//     Recover (at start) takes back only the claims of this node, since
//     the other nodes are alive and delivering theirs; and an outcome
//     that comes back after its claim was taken over is dropped.
//   - Reads that must be consistent across several statements (a
//     recipient's held mail and profile) run in one REPEATABLE READ,
//     read-only transaction (a snapshot). Loading a recipient and applying
//     the round are two transactions, as on bbolt: that two nodes never
//     decide one recipient at once is for the relay to ensure; it decides
//     on one node at a time, under a lease (governor/cluster.go,
//     docs/scale.md). Long walks (Envelopes, Records)
//     read in pages by key instead of holding one transaction open, so
//     each page is consistent but the walk as a whole is not a snapshot.
//
// What has no SQL meaning: the bbolt store overwrites its freed pages
// after an erasure (ScrubFreePages). Here an erasure is DELETEs (and
// suppression entries and event IDs re-keyed by an HMAC of the address,
// as in bbolt); the old row versions stay in the table files until VACUUM
// reclaims them and the WAL segments holding them are recycled. docs/scale.md
// says what an operator runs for that.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"kadenz/store"
)

// Options tune a Store.
type Options struct {
	// Node names this process in claims and leases; the host name when
	// empty. Two live nodes must not share a name: Recover takes back the
	// claims made under it.
	Node string
	// Password, if set, is used instead of any password in the URL (it
	// comes from a file or the environment, see config).
	Password string
	// Timeout bounds each operation, retries included (default 30 s), so a
	// database that stopped answering is an error, not a hang.
	Timeout time.Duration
	// MaxConns bounds the connection pool (default 20). Commits of
	// concurrent sessions share WAL flushes only if they reach the
	// database together: a pool as small as pgxpool's default (4 on two
	// cores) would queue SMTP sessions behind each other.
	MaxConns int32
}

// Store is a store.Store kept in a PostgreSQL-compatible database. It is
// safe for concurrent use, by several goroutines and several processes.
type Store struct {
	pool    *pgxpool.Pool
	node    string
	timeout time.Duration

	// secret is the pseudonym secret once read or made: it never changes.
	secretMu sync.Mutex
	secret   []byte

	// retries counts transactions run again after a serialization failure.
	retries stats

	// keptTallies: triggers keep the tallies (tallies.go).
	keptTallies bool
}

type stats struct {
	mu      sync.Mutex
	retries int64
	commits int64
	stale   int64 // outcomes dropped: the claim was taken over
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a libpq
// key=value string), brings its schema up to date (schema.go) and returns
// the store. A database whose schema is newer than this code is refused.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: postgres URL: %w", err)
	}
	if opts.Password != "" {
		cfg.ConnConfig.Password = opts.Password
	}
	cfg.MaxConns = 20
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if err := ensureSyncCommit(ctx, c); err != nil {
			return err
		}
		return setTallyShard(ctx, c)
	}
	if opts.Node == "" {
		if opts.Node, err = os.Hostname(); err != nil || opts.Node == "" {
			opts.Node = "kadenz"
		}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	s := &Store{pool: pool, node: opts.Node, timeout: opts.Timeout}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if s.keptTallies, err = s.talliesKept(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	return s, nil
}

// ensureSyncCommit makes a session's commits durable before COMMIT
// returns: synchronous_commit off would let a 250 go out for mail a
// database crash then loses. Other values (on, local, remote_write,
// remote_apply) all flush the local WAL first and are left as the
// administrator set them. A database without the setting (CockroachDB
// answers it for compatibility only) commits durably anyway.
func ensureSyncCommit(ctx context.Context, c *pgx.Conn) error {
	var v string
	if err := c.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&v); err != nil {
		return nil // no such setting: nothing to correct
	}
	if v == "off" {
		if _, err := c.Exec(ctx, "SET synchronous_commit = on"); err != nil {
			return fmt.Errorf("store: synchronous_commit is off and cannot be turned on: %w", err)
		}
	}
	return nil
}

// Close closes the connections; closing twice is harmless.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Node is the name this store claims work under.
func (s *Store) Node() string { return s.node }

// Retries reports how many transactions committed and how many times one
// was run again after a serialization failure or deadlock.
func (s *Store) Retries() (commits, retries int64) {
	s.retries.mu.Lock()
	defer s.retries.mu.Unlock()
	return s.retries.commits, s.retries.retries
}

// maxAttempts bounds the retry loop: a transaction that keeps losing to
// others for this long is reported rather than retried for ever.
const maxAttempts = 20

// write runs fn in a SERIALIZABLE transaction and commits it, running the
// whole transaction again (fn included) when the database asks for a
// retry. fn must reset whatever it collects.
func (s *Store) write(fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	return s.writeCtx(ctx, fn)
}

func (s *Store) writeCtx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	backoff := time.Millisecond
	for attempt := 1; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
			return fn(ctx, tx)
		})
		if err == nil {
			s.retries.mu.Lock()
			s.retries.commits++
			s.retries.mu.Unlock()
			return nil
		}
		if !Retryable(err) || attempt >= maxAttempts {
			return err
		}
		s.retries.mu.Lock()
		s.retries.retries++
		s.retries.mu.Unlock()
		if os.Getenv("KADENZ_PG_DEBUG") != "" {
			var pg *pgconn.PgError
			errors.As(err, &pg)
			fmt.Fprintf(os.Stderr, "retry: %s %s | %s | %s\n", pg.Code, pg.Message, pg.Detail, pg.Hint)
		}
		// Equal jitter: the transactions that collided must not collide
		// again in lockstep.
		d := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return fmt.Errorf("%w (after %d attempts: %v)", ctx.Err(), attempt, err)
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// read runs fn in one read-only REPEATABLE READ transaction: every
// statement in it sees the same snapshot.
func (s *Store) read(fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	backoff := time.Millisecond
	for attempt := 1; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			return fn(ctx, tx)
		})
		// Distributed databases may ask a reader to retry too.
		if err == nil || !Retryable(err) || attempt >= maxAttempts {
			return err
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// ctx is a context for a single statement outside a transaction.
func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// Retryable reports whether err asks the client to run its transaction
// again: a serialization failure (40001) or a deadlock (40P01).
func Retryable(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "40001" || pg.Code == "40P01"
	}
	return false
}

// Times are stored as Unix nanoseconds (BIGINT), clamped to what an int64
// holds: the zero time sorts first, a far future last.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func nanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// dueNanos is an envelope's place in a schedule; bbolt's due keys are
// unsigned, so a time before 1970 sorts as 1970 there, and here.
func dueNanos(t time.Time) int64 { return max(0, nanos(t)) }

// notFound wraps store.ErrNotFound as the bbolt store does.
func notFound(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, store.ErrNotFound)...)
}

func unmarshalEnvelope(data []byte) (store.Envelope, error) {
	var e store.Envelope
	err := json.Unmarshal(data, &e)
	return e, err
}

// Setting reads a server setting as the store's sessions see it.
func (s *Store) Setting(name string) (string, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var v string
	err := s.pool.QueryRow(ctx, `SELECT current_setting($1)`, name).Scan(&v)
	return v, err
}
