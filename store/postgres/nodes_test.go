package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kadenz/store"
	"kadenz/store/postgres"
	"kadenz/store/postgres/pgtest"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func acceptN(t *testing.T, s *postgres.Store, prefix string, n int, prepare func(int, *store.Envelope)) {
	t.Helper()
	if prepare == nil {
		prepare = func(int, *store.Envelope) {}
	}
	for i := range n {
		id := fmt.Sprintf("%s%03d", prefix, i)
		if _, err := s.AcceptWith(store.Message{ID: id, From: "shop@example.test"}, []byte("x"),
			[]string{fmt.Sprintf("r%d@example.test", i)}, t0, prepare); err != nil {
			t.Fatal(err)
		}
	}
}

// Two nodes on one database claim disjoint envelopes; a restart takes back
// only its own node's claims; the other node's are taken over once their
// lease (the claim's time) is older than the cutoff.
func TestNodesClaimAndTakeOver(t *testing.T) {
	url := freshURL(t)
	a := open(t, url, postgres.Options{Node: "a"})
	b := open(t, url, postgres.Options{Node: "b"})
	acceptN(t, a, "m", 60, nil)

	var mu sync.Mutex
	owner := map[string]string{}
	var wg sync.WaitGroup
	for _, s := range []*postgres.Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 60 {
				got, err := s.Claim(t0, 4)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, e := range got {
					if prev, dup := owner[e.ID]; dup {
						t.Errorf("%s claimed by %s and again by %s", e.ID, prev, s.Node())
					}
					owner[e.ID] = s.Node()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(owner) != 60 {
		t.Fatalf("%d of 60 claimed", len(owner))
	}
	byA := 0
	for _, n := range owner {
		if n == "a" {
			byA++
		}
	}
	// Node a restarts: it takes back its own claims, not b's.
	if n, err := a.Recover(t0.Add(time.Minute)); err != nil || n != byA {
		t.Errorf("a's Recover took %d, %v; want a's %d", n, err, byA)
	}
	if got, _ := a.Claim(t0.Add(time.Minute), 100); len(got) != byA {
		t.Errorf("a reclaimed %d, want %d", len(got), byA)
	}
	// b dies; its claims (made at t0) expire when a's lease check runs
	// with a cutoff past t0. a's own fresh claims (t0+1m) stay.
	if n, err := a.RecoverStale(t0.Add(10*time.Minute), t0.Add(30*time.Second)); err != nil || n != 60-byA {
		t.Errorf("RecoverStale took %d, %v; want b's %d", n, err, 60-byA)
	}
	if got, _ := a.Claim(t0.Add(10*time.Minute), 100); len(got) != 60-byA {
		t.Errorf("after the takeover a claimed %d, want %d", len(got), 60-byA)
	}
}

// A node that stalls past its lease loses the envelope: another node takes
// it over and delivers it, and the first node's late outcome does not
// overwrite that delivery.
func TestLateOutcomeAfterTakeover(t *testing.T) {
	url := freshURL(t)
	a := open(t, url, postgres.Options{Node: "a"})
	b := open(t, url, postgres.Options{Node: "b"})
	acceptN(t, a, "m", 1, nil)
	mine, err := a.Claim(t0, 1)
	if err != nil || len(mine) != 1 {
		t.Fatalf("a's claim: %v %v", mine, err)
	}
	if n, _ := b.RecoverStale(t0.Add(10*time.Minute), t0.Add(5*time.Minute)); n != 1 {
		t.Fatalf("b's takeover recovered %d", n)
	}
	theirs, _ := b.Claim(t0.Add(10*time.Minute), 1)
	if len(theirs) != 1 {
		t.Fatalf("b's claim: %v", theirs)
	}
	done := theirs[0]
	done.State = store.StateDelivered
	if _, err := b.Settle([]store.Envelope{done}, t0.Add(11*time.Minute), 0); err != nil {
		t.Fatal(err)
	}
	late := mine[0]
	late.State, late.Due, late.LastError = store.StateDeferred, t0.Add(time.Hour), "451 timeout"
	if _, err := a.Settle([]store.Envelope{late}, t0.Add(12*time.Minute), 0); err != nil {
		t.Fatalf("a's late outcome: %v", err)
	}
	if e, _ := a.Envelope(late.ID); e.State != store.StateDelivered {
		t.Errorf("after a's late outcome the envelope is %s, want delivered (b's)", e.State)
	}
	if n := a.StaleOutcomes(); n != 1 {
		t.Errorf("StaleOutcomes %d, want 1", n)
	}
	ghost := store.Envelope{ID: "nope-1", State: store.StateDelivered}
	if _, err := a.Settle([]store.Envelope{ghost}, t0, 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("outcome of an unknown envelope: %v, want ErrNotFound", err)
	}
}

// Decision rounds of one campaign on two nodes at once add to the same
// counters; serialization failures are retried, nothing is lost.
func TestNodesDecideConcurrently(t *testing.T) {
	url := freshURL(t)
	a := open(t, url, postgres.Options{Node: "a"})
	b := open(t, url, postgres.Options{Node: "b"})
	const n = 40
	acceptN(t, a, "m", n, func(_ int, e *store.Envelope) { e.State, e.Due = store.StateHeld, t0 })
	var wg sync.WaitGroup
	for i, s := range []*postgres.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; j < n; j += 2 {
				rcpt := fmt.Sprintf("r%d@example.test", j)
				r, err := s.LoadRecipient(rcpt)
				if err != nil || len(r.Held) != 1 {
					t.Errorf("load %s: %v %v", rcpt, r.Held, err)
					return
				}
				e := r.Held[0]
				e.State, e.Due = store.StateQueued, t0.Add(time.Hour)
				if err := s.ApplyDecisions(store.Decided{Recipient: rcpt, Envelopes: []store.Envelope{e}, Profile: []byte(`{}`),
					Counters: map[string]int64{"campaign:x:released": 1, "released": 1},
					Records:  map[string][]byte{e.ID: []byte(`{"action":"release"}`)}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	c, err := a.Counters("campaign:x:released", "released")
	if err != nil || c["campaign:x:released"] != n || c["released"] != n {
		t.Errorf("counters %v %v, want %d each", c, err, n)
	}
	if got, _ := a.CountByState(); got[store.StateQueued] != n {
		t.Errorf("states %v", got)
	}
	ca, ra := a.Retries()
	cb, rb := b.Retries()
	t.Logf("commits %d+%d, retries %d+%d", ca, cb, ra, rb)
}

// A database migrated by a newer kadenz is refused, with a message that
// says what to do; a current one opens, even by several nodes at once.
func TestSchemaVersions(t *testing.T) {
	url := pgtest.URL(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), url, postgres.Options{})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d could not open a database migrated concurrently: %v", i, err)
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var versions []int
	rows, _ := conn.Query(ctx, `SELECT version FROM kadenz_schema ORDER BY version`)
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil || len(versions) != postgres.SchemaVersion || versions[len(versions)-1] != postgres.SchemaVersion {
		t.Errorf("kadenz_schema holds %v %v, want 1..%d once each", versions, err, postgres.SchemaVersion)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO kadenz_schema (version, note) VALUES ($1, 'from the future')`, postgres.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(ctx, url, postgres.Options{})
	if !errors.Is(err, postgres.ErrSchemaNewer) {
		t.Fatalf("a newer schema: %v, want ErrSchemaNewer", err)
	}
	t.Log(err)
}

// Open brings a session with synchronous_commit off back to on: a commit
// must be on disk before a 250 goes out.
func TestSynchronousCommitEnforced(t *testing.T) {
	url, err := pgtest.Require(t).CreateDatabase() // ALTER DATABASE: one of its own
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var db string
	conn.QueryRow(ctx, `SELECT current_database()`).Scan(&db)
	if _, err := conn.Exec(ctx, `ALTER DATABASE `+db+` SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	s := open(t, url, postgres.Options{})
	if v, err := s.Setting("synchronous_commit"); err != nil || v != "on" {
		t.Errorf("synchronous_commit in the store's sessions: %q %v, want on", v, err)
	}
}

// A password given apart from the URL (from a file or the environment,
// see config) is the one used: the right one connects, a wrong one does
// not, and neither is needed in the URL.
func TestPasswordOption(t *testing.T) {
	c := pgtest.Require(t)
	if err := c.CreatePasswordRole("s3cret"); err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(pgtest.URL(t), "postgres://postgres@", "postgres://"+pgtest.PasswordRole+"@", 1)
	if _, err := postgres.Open(context.Background(), url, postgres.Options{Password: "wrong"}); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	s := open(t, url, postgres.Options{Password: "s3cret"})
	if _, err := s.Accept(store.Message{ID: "m1"}, []byte("x"), []string{"a@example.test"}, t0); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.EnvelopesOf("m1"); len(got) != 1 || got[0].ID != "m1-1" {
		t.Errorf("EnvelopesOf %v", got)
	}
}
