package postgres_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"kadenz/store"
	"kadenz/store/postgres"
)

// checkCampaign fails unless a campaign's kept tallies equal the walk's.
func checkCampaign(t *testing.T, s *postgres.Store, name string) store.CampaignTally {
	t.Helper()
	kept, ok, err := s.CampaignTally(name)
	if err != nil || !ok {
		t.Fatalf("campaign %s: %v %v", name, ok, err)
	}
	walked, err := store.WalkCampaignTallies(s)
	if err != nil {
		t.Fatal(err)
	}
	if walked[name] == nil || !reflect.DeepEqual(kept, *walked[name]) {
		t.Fatalf("campaign %s: kept tallies differ from the walk:\nkept   %+v\nwalked %+v", name, kept, walked[name])
	}
	return kept
}

// A database of schema version 2, which kept no campaign tallies, gets
// them and its campaigns' message lists from what it holds when it is
// migrated, and triggers keep them from then on.
func TestCampaignTalliesBuiltWhenMigrated(t *testing.T) {
	url := freshURL(t)
	s, err := postgres.Open(context.Background(), url, postgres.Options{Node: "a"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	for i := range n {
		id := fmt.Sprintf("m%03d", i)
		features := fmt.Sprintf(`{"campaign":"spring","subject":"Spring %d"}`, i)
		if _, err := s.AcceptWith(store.Message{ID: id, From: "shop@example.test", Class: "marketing", Features: []byte(features)}, []byte("x"),
			[]string{fmt.Sprintf("r%d@example.test", i), "all@example.test"}, t0, func(j int, e *store.Envelope) {
				e.State, e.Due, e.Holdout = store.StateHeld, t0, j == 1
			}); err != nil {
			t.Fatal(err)
		}
	}
	decideFirst(t, s, n/2, store.StateSuppressed, `{"action":"suppress","reasons":["fatigue"]}`)
	s.Close()

	// Make it what version 2 left.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	dropCampaignTallies(t, conn)
	if _, err := conn.Exec(ctx, `DELETE FROM kadenz_schema WHERE version > 2`); err != nil {
		t.Fatal(err)
	}

	s = open(t, url, postgres.Options{Node: "a"})
	got := checkCampaign(t, s, "spring")
	want := store.CampaignTally{Campaign: "spring", Subject: fmt.Sprintf("Spring %d", n-1), Messages: n,
		Envelopes: []store.CampaignEnvelopeTally{{State: store.StateHeld, N: n / 2}, {State: store.StateHeld, Holdout: true, N: n},
			{State: store.StateSuppressed, N: n / 2}},
		Reasons: []store.CampaignReasonTally{{Reason: "fatigue", N: n / 2}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("built campaign tallies: %+v, want %+v", got, want)
	}
	p, err := s.CampaignEnvelopes("spring", "", 3)
	if err != nil || len(p.Records) != 3 || p.Records[0].Envelope.ID != "m011-2" || p.Next != "m010-2" {
		t.Fatalf("first page after the migration: %+v, %v", p, err)
	}
	if _, err := s.AcceptWith(store.Message{ID: "m999", From: "shop@example.test", Features: []byte(`{"campaign":"spring","subject":"Later"}`)},
		[]byte("x"), []string{"later@example.test"}, t0, func(int, *store.Envelope) {}); err != nil {
		t.Fatal(err)
	}
	if got := checkCampaign(t, s, "spring"); got.Subject != "Later" || got.Messages != n+1 {
		t.Fatalf("after an accept: %+v", got)
	}
}

// dropCampaignTallies takes away what schema version 3 added.
func dropCampaignTallies(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	for _, q := range []string{
		`DROP TABLE campaign_tallies, campaign_messages`,
		`DROP TRIGGER kadenz_ctally_envelopes_insert ON envelopes`, `DROP TRIGGER kadenz_ctally_envelopes_update ON envelopes`,
		`DROP TRIGGER kadenz_ctally_envelopes_delete ON envelopes`, `DROP TRIGGER kadenz_ctally_decisions_insert ON decisions`,
		`DROP TRIGGER kadenz_ctally_decisions_update ON decisions`, `DROP TRIGGER kadenz_ctally_decisions_delete ON decisions`,
		`DROP TRIGGER kadenz_ctally_messages_insert ON messages`, `DROP TRIGGER kadenz_ctally_messages_delete ON messages`,
		`DROP TYPE kadenz_ctally_change CASCADE`,
	} {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// What a campaign report and a campaign's page cost on PostgreSQL: the
// kept campaign tallies and one page of 500 envelopes, against the walk of
// every envelope they replace, over one campaign of one-recipient messages
// (20,000 unless KADENZ_BENCH_N says otherwise; bench/campaign.sh's shape),
// a quarter of them decided.
//
//	KADENZ_BENCH_N=100000 go test -run '^$' -bench CampaignRead -benchtime 5x -timeout 30m ./store/postgres/
func BenchmarkCampaignRead(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("KADENZ_BENCH_N")); err == nil && v > 0 {
		n = v
	}
	url := freshURL(b)
	s := open(b, url, postgres.Options{Node: "bench"})
	features := []byte(`{"campaign":"winter-sale","subject":"Winter sale"}`)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				id := fmt.Sprintf("f%07d", i)
				if _, err := s.AcceptWith(store.Message{ID: id, Class: "marketing", Features: features}, []byte("x"),
					[]string{fmt.Sprintf("r%d@example.test", i)}, t0, func(_ int, e *store.Envelope) { e.State, e.Due = store.StateHeld, t0 }); err != nil {
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
	for len(ds) > 0 {
		k := min(len(ds), 512)
		for _, err := range s.ApplyDecisionsAll(ds[:k]) {
			if err != nil {
				b.Fatal(err)
			}
		}
		ds = ds[k:]
	}
	for _, c := range []struct {
		name string
		read func() (int, error)
	}{
		{"kept", func() (int, error) {
			t, _, err := s.CampaignTally("winter-sale")
			if err != nil {
				return 0, err
			}
			p, err := s.CampaignEnvelopes("winter-sale", "", 500)
			if len(p.Records) != 500 {
				return 0, fmt.Errorf("a page of %d", len(p.Records))
			}
			return t.Messages, err
		}},
		{"walk", func() (int, error) {
			all, err := store.WalkCampaignTallies(s)
			if err != nil || all["winter-sale"] == nil {
				return 0, err
			}
			return all["winter-sale"].Messages, nil
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				if m, err := c.read(); err != nil || m != n {
					b.Fatalf("%d messages, want %d: %v", m, n, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/read")
		})
	}
}
