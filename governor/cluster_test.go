package governor

import (
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/store"
	"kadenz/store/postgres/pgtest"
)

// Two lease keepers on one store's leases stand for two nodes: one holds
// a singleton at a time, the other takes it when the holder gives it up
// or stops renewing (its lease expired on the shared clock).
func TestLeaseKeeperOneHolderAtATime(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "kadenz.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := &clock{t: monday10}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	const ttl = 15 * time.Second
	a := newLeaseKeeper(db, "node-a", ttl, c.Now, log)
	b := newLeaseKeeper(db, "node-b", ttl, c.Now, log)

	if !a.Hold("decider") {
		t.Fatal("a free lease was not granted")
	}
	if b.Hold("decider") {
		t.Fatal("both nodes hold the decider lease")
	}
	// b asks again within a third of the lease: not even asked.
	c.advance(time.Second)
	if b.Hold("decider") {
		t.Fatal("b holds the lease a renewed")
	}
	// a renews by holding (less than two thirds left), so b cannot take it
	// when the first term would have ended.
	c.advance(5 * time.Second)
	if !a.Hold("decider") {
		t.Fatal("the holder lost its own lease")
	}
	c.advance(10 * time.Second) // past the first term, inside the renewed one
	if b.Hold("decider") {
		t.Fatal("b took a renewed lease")
	}
	// a stops renewing (it died): once the lease has expired, b takes it,
	// and a, coming back, finds it lost.
	c.advance(ttl)
	if !b.Hold("decider") {
		t.Fatal("the expired lease was not taken over")
	}
	if a.Hold("decider") || a.Holds("decider") {
		t.Fatal("a still holds the lease b took over")
	}
	// b shuts down: the lease is released at once, and a takes it without
	// waiting for it to expire.
	b.shutdown()
	c.advance(ttl / 3)
	if !a.Hold("decider") {
		t.Fatal("a released lease was not granted")
	}
	ls, err := db.LeaseList()
	if err != nil || len(ls) != 1 || ls[0].Owner != "node-a" {
		t.Fatalf("leases = %+v, %v; want decider held by node-a", ls, err)
	}
	a.shutdown()
	if ls, _ := db.LeaseList(); len(ls) != 0 {
		t.Fatalf("leases left after shutdown: %+v", ls)
	}
}

// A campaign suspended through one node's admin API holds on the node that
// decides: the decider reads the suspended campaigns from the shared
// database, not only from its own engine's memory.
func TestSuspensionOnOneNodeHoldsOnTheDecider(t *testing.T) {
	url := pgtest.URL(t)
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	node := func(name string) *config.Config {
		cfg := governedConfig(t, up.addr)
		cfg.Admin.Listen = "127.0.0.1:0"
		// A lease far longer than the test's clock steps: the first node
		// stays the decider.
		cfg.Store = config.Store{Backend: config.BackendPostgres, Postgres: config.StorePostgres{URL: url, Node: name, Lease: 24 * time.Hour}}
		return cfg
	}
	a := startRelayAt(t, node("a"), c)
	waitFor(t, "node a to take the decider lease", func() bool { return a.leases.Holds("decider") })
	b := startRelayAt(t, node("b"), c)

	var res api.CampaignChange
	if code, body := queueDo(t, b, "POST", "/v1/campaigns/winter/suspend", "", &res); code != http.StatusOK || !res.Suspended {
		t.Fatalf("suspend on b: %d %s", code, body)
	}
	late := marketing("Winter sale", "X-Kadenz-Campaign: Winter\r\n")
	if err := submit(t, dial(t, b), "news@shop.test", []string{"carl@example.test"}, late); err != nil {
		t.Fatal(err)
	}
	c.advance(5 * time.Minute)
	a.timeMoved()
	b.timeMoved()
	var carl store.Envelope
	waitFor(t, "carl's mail decided", func() bool {
		carl = envelopeOf(t, a.DB(), "carl@example.test", 0)
		return carl.State != store.StateHeld
	})
	recs := decisionsOf(t, a.DB(), carl.ID)
	if last := recs[len(recs)-1]; carl.State != store.StateReview || !slices.Contains(last.Reasons, "campaign-suspended") {
		t.Fatalf("mail of a campaign suspended on b, decided on a: %s, %+v", carl.State, last)
	}
	if b.leases.Holds("decider") {
		t.Error("both nodes hold the decider lease")
	}
}

// GET /v1/leases shows who does what: on one node, it holds the decider
// lease and each chore's.
func TestLeasesListed(t *testing.T) {
	up := startUpstream(t, nil)
	cfg := governedConfig(t, up.addr)
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Governor.Chores.Sweep = "@every 1s"
	r := startRelay(t, cfg)
	var list []store.Lease
	waitFor(t, "the decider and sweep leases", func() bool {
		list = nil
		if code, body := queueDo(t, r, "GET", "/v1/leases", "", &list); code != http.StatusOK {
			t.Fatalf("GET /v1/leases: %d %s", code, body)
		}
		names := map[string]bool{}
		for _, l := range list {
			names[l.Name] = l.Owner == r.leases.owner && l.Expires.After(time.Now())
		}
		return names["decider"] && names["chore:sweep"]
	})
}
