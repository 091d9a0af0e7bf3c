package postgres_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kadenz/store"
	"kadenz/store/postgres"
)

// checkTallies fails unless the kept tallies of a wide span equal the walk
// and count n envelopes.
func checkTallies(t *testing.T, s *postgres.Store, n int) {
	t.Helper()
	since, until := t0.Add(-48*time.Hour), t0.Add(48*time.Hour)
	kept, err := s.Tallies(since, until)
	if err != nil {
		t.Fatal(err)
	}
	walked, err := store.WalkTallies(s, since, until)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(kept, walked) {
		t.Fatalf("kept tallies differ from the walk:\nkept   %+v\nwalked %+v", kept, walked)
	}
	total := 0
	for _, e := range kept.Envelopes {
		total += e.N
	}
	if total != n {
		t.Fatalf("the tallies count %d envelopes, want %d", total, n)
	}
}

// A database of schema version 1, which kept no tallies, gets them from
// what it holds when it is migrated, and triggers keep them from then on.
func TestTalliesBuiltWhenMigrated(t *testing.T) {
	url := freshURL(t)
	s, err := postgres.Open(context.Background(), url, postgres.Options{Node: "a"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	acceptN(t, s, "m", n, func(_ int, e *store.Envelope) {
		e.State, e.Due, e.Holdout = store.StateHeld, t0, e.To == "r3@example.test"
	})
	decideFirst(t, s, n/2, store.StateQueued, `{"action":"release","reasons":["fresh"]}`)
	s.Close()

	// Make it what version 1 left: no tally table, no triggers.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	dropCampaignTallies(t, conn) // version 3's, which uses version 2's types
	for _, q := range []string{
		`DROP TABLE tallies`,
		`DROP TRIGGER kadenz_tally_envelopes_insert ON envelopes`, `DROP TRIGGER kadenz_tally_envelopes_update ON envelopes`,
		`DROP TRIGGER kadenz_tally_envelopes_delete ON envelopes`, `DROP TRIGGER kadenz_tally_decisions_insert ON decisions`,
		`DROP TRIGGER kadenz_tally_decisions_update ON decisions`, `DROP TRIGGER kadenz_tally_decisions_delete ON decisions`,
		`DROP TRIGGER kadenz_tally_messages_insert ON messages`, `DROP TRIGGER kadenz_tally_messages_delete ON messages`,
		`DROP TYPE kadenz_tally_change, kadenz_tally_records, kadenz_tally_class, kadenz_tally_env CASCADE`,
		`DELETE FROM kadenz_schema WHERE version > 1`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	s = open(t, url, postgres.Options{Node: "a"})
	if !s.TalliesKept() {
		t.Fatal("the migrated database keeps no tallies")
	}
	var rows int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM tallies`).Scan(&rows); err != nil || rows == 0 {
		t.Fatalf("the migration built %d tally rows (%v)", rows, err)
	}
	checkTallies(t, s, n)
	acceptN(t, s, "later", 5, func(_ int, e *store.Envelope) { e.State, e.Due = store.StateHeld, t0 })
	checkTallies(t, s, n+5)
}

// Sessions accepting one campaign at once, on two nodes, count in one key
// of one hour; each adds to its own connection's shard, so the tallies
// come out exact and spread over several rows.
func TestTalliesConcurrentAccepts(t *testing.T) {
	url := freshURL(t)
	nodes := []*postgres.Store{open(t, url, postgres.Options{Node: "a"}), open(t, url, postgres.Options{Node: "b"})}
	const sessions, each = 8, 25
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := nodes[i%2]
			for j := range each {
				id := fmt.Sprintf("c%02d-%03d", i, j)
				if _, err := s.AcceptWith(store.Message{ID: id, From: "shop@example.test", Class: "marketing"}, []byte("x"),
					[]string{id + "@example.test"}, t0, func(_ int, e *store.Envelope) { e.State, e.Due = store.StateHeld, t0 }); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	checkTallies(t, nodes[0], sessions*each)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var shards int
	if err := conn.QueryRow(ctx, `SELECT count(DISTINCT shard) FROM tallies WHERE kind = 'e'`).Scan(&shards); err != nil {
		t.Fatal(err)
	}
	if shards < 2 {
		t.Errorf("%d concurrent sessions added to %d shard(s)", sessions, shards)
	}
	var commits, retries int64
	for _, s := range nodes {
		c, r := s.Retries()
		commits, retries = commits+c, retries+r
	}
	// An accept reads nothing and adds to a row no other session adds to:
	// nothing for serializable isolation to fail.
	if retries != 0 {
		t.Errorf("%d of %d accepts were retried", retries, commits)
	}
	t.Logf("%d shards; commits %d, retries %d", shards, commits, retries)
}

// What statistics and the overview cost on PostgreSQL: the kept tallies
// against the walk of every envelope they replace, over one campaign of
// 20,000 held envelopes (a quarter of them decided).
//
//	go test -run '^$' -bench TalliesRead -benchtime 5x ./store/postgres/
func BenchmarkTalliesRead(b *testing.B) {
	url := freshURL(b)
	s := open(b, url, postgres.Options{Node: "bench"})
	const n = 20000
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				id := fmt.Sprintf("f%07d", i)
				if _, err := s.AcceptWith(store.Message{ID: id, Class: "marketing"}, []byte("x"), []string{fmt.Sprintf("r%d@example.test", i)}, t0,
					func(_ int, e *store.Envelope) { e.State, e.Due = store.StateHeld, t0 }); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var ds []store.Decided
	for i := range n / 4 {
		rcpt := fmt.Sprintf("r%d@example.test", i)
		r, err := s.LoadRecipient(rcpt)
		if err != nil || len(r.Held) != 1 {
			b.Fatalf("%s: %v %v", rcpt, r.Held, err)
		}
		e := r.Held[0]
		e.State = store.StateQueued
		ds = append(ds, store.Decided{Recipient: rcpt, Envelopes: []store.Envelope{e},
			Records: map[string][]byte{e.ID: []byte(`{"action":"release","reasons":["fresh"]}`)}})
	}
	for _, err := range s.ApplyDecisionsAll(ds) {
		if err != nil {
			b.Fatal(err)
		}
	}
	since, until := t0.Add(-24*time.Hour), t0.Add(24*time.Hour)
	for _, c := range []struct {
		name string
		read func() (store.Tallies, error)
	}{
		{"kept", func() (store.Tallies, error) { return s.Tallies(since, until) }},
		{"walk", func() (store.Tallies, error) { return store.WalkTallies(s, since, until) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				t, err := c.read()
				if err != nil || len(t.Envelopes) == 0 {
					b.Fatalf("%+v %v", t, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/read")
		})
	}
}

// decideFirst decides the one held envelope of each of recipients r0 to
// r<k-1>: state, with record as its decision record.
func decideFirst(t *testing.T, s *postgres.Store, k int, state store.State, record string) {
	t.Helper()
	for i := range k {
		rcpt := fmt.Sprintf("r%d@example.test", i)
		r, err := s.LoadRecipient(rcpt)
		if err != nil || len(r.Held) != 1 {
			t.Fatalf("load %s: %v %v", rcpt, r.Held, err)
		}
		e := r.Held[0]
		e.State = state
		if err := s.ApplyDecisions(store.Decided{Recipient: rcpt, Envelopes: []store.Envelope{e},
			Records: map[string][]byte{e.ID: []byte(record)}}); err != nil {
			t.Fatal(err)
		}
	}
}
