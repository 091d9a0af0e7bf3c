package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/scoring"
	"kadenz/store"
)

// campaignDB is a database holding two campaigns for n recipients: "a" to
// everyone, "b" to every third, both due for a first decision at due, and
// counters that make campaign a's evidence and review share matter: its
// first 400 or so releases are held for review, the later ones not.
func campaignDB(t *testing.T, n int, due time.Time) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "kadenz.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fa := scoring.Features{Subject: "Winter sale", Campaign: "a", Priority: 60, Terms: []string{"winter", "boots"}}
	fb := scoring.Features{Subject: "Gloves", Campaign: "b", Priority: 40, Topics: []string{"gloves"}}
	for i, c := range []struct {
		f     scoring.Features
		every int
	}{{fa, 1}, {fb, 3}} {
		raw, err := json.Marshal(c.f)
		if err != nil {
			t.Fatal(err)
		}
		var rcpts []string
		for r := 0; r < n; r += c.every {
			rcpts = append(rcpts, fmt.Sprintf("r%05d@example.test", r))
		}
		msg := store.Message{ID: fmt.Sprintf("m%d", i), From: "news@shop.test", Received: due.Add(-time.Hour),
			Class: "marketing", Features: raw}
		held := func(_ int, e *store.Envelope) { e.State, e.Due = store.StateHeld, due }
		if _, err := db.AcceptWith(msg, []byte("Subject: x\r\n\r\nbody\r\n"), rcpts, due.Add(-time.Hour), held); err != nil {
			t.Fatal(err)
		}
	}
	key := scoring.QualityKey(&fa)
	counters := map[string]int64{
		qualityCounter(key, "released"): 400, qualityCounter(key, "opens"): 90, qualityCounter(key, "clicks"): 12,
		qualityCounter(key, "released-min"): 400 * due.Add(-48*time.Hour).Unix() / 60,
		decidedCounter("a"):                 800, suppressedCounter("a"): 600, // 75%: under 50% after 400 releases
	}
	if err := db.ApplyDecisions(store.Decided{Recipient: "nobody@example.test", Counters: counters}); err != nil {
		t.Fatal(err)
	}
	return db
}

// outcome is everything a decision writes for one envelope, as bytes.
func outcomes(t *testing.T, db *store.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := db.Envelopes(func(e store.Envelope) bool {
		recs, err := db.Decisions(e.ID)
		if err != nil {
			t.Fatal(err)
		}
		profile, err := db.Profile(e.To)
		if err != nil {
			t.Fatal(err)
		}
		out[e.ID] = fmt.Sprintf("%s due %s updated %s\n%s\nprofile %x", e.State, e.Due.Format(time.RFC3339Nano),
			e.Updated.Format(time.RFC3339Nano), recs, profile)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The loop's pipelined, growing rounds decide a campaign exactly as
// DecideDue's rounds of RecipientsPerRound, committed one after the other,
// do: every envelope's state, due time and decision record, every profile,
// and the counters (the review rule and campaign evidence read them while
// the previous round is still being written).
func TestPipelinedRoundsDecideAsSerialRounds(t *testing.T) {
	for _, mode := range []string{config.ModeEnforce, config.ModeShadow} {
		t.Run(mode, func(t *testing.T) { testPipelinedRounds(t, mode) })
	}
}

func testPipelinedRounds(t *testing.T, mode string) {
	const n = 1500
	now := monday10
	cfg := config.Default()
	cfg.Governor.Mode = mode
	cfg.Governor.CampaignRules = []config.CampaignRule{
		{Campaign: "a", Review: config.ReviewRule{SuppressionShare: 0.5, MinDecisions: 20}},
	}
	serialDB, loopDB := campaignDB(t, n, now), campaignDB(t, n, now)
	clock := func() time.Time { return now }

	serial, err := New(Options{Governor: &cfg.Governor, Store: serialDB, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	for rounds := 0; ; rounds++ {
		if rounds > n {
			t.Fatal("DecideDue does not finish")
		}
		got, err := serial.DecideDue(now)
		if err != nil {
			t.Fatal(err)
		}
		if got < RecipientsPerRound {
			break
		}
	}

	loop, err := New(Options{Governor: &cfg.Governor, Store: loopDB, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	loop.Start()
	deadline := time.Now().Add(60 * time.Second)
	for {
		due, err := loopDB.DueRecipients(now, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the loop did not decide the campaign")
		}
		time.Sleep(5 * time.Millisecond)
	}
	loop.Shutdown()
	if loop.overlapped.Load() == 0 {
		t.Error("no round was computed while another was being written: the pipeline was not exercised")
	}

	want, got := outcomes(t, serialDB), outcomes(t, loopDB)
	if len(want) != len(got) {
		t.Fatalf("%d envelopes, want %d", len(got), len(want))
	}
	states := map[string]int{}
	for id, w := range want {
		if got[id] != w {
			t.Fatalf("envelope %s:\n loop:   %s\n serial: %s", id, got[id], w)
		}
		states[w[:bytes.IndexByte([]byte(w), ' ')]]++
	}
	t.Logf("states: %v; rounds computed while another was written: %d", states, loop.overlapped.Load())
	var names []string
	for _, f := range qualityFields {
		names = append(names, qualityCounter(scoring.QualityKey(&scoring.Features{Campaign: "a"}), f))
	}
	names = append(names, decidedCounter("a"), suppressedCounter("a"))
	for _, f := range forecastFields { // shadow mode's forecast
		names = append(names, forecastCounter("all", f))
	}
	wantC, err := serialDB.Counters(names...)
	if err != nil {
		t.Fatal(err)
	}
	gotC, err := loopDB.Counters(names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if gotC[name] != wantC[name] {
			t.Errorf("counter %s = %d, want %d", name, gotC[name], wantC[name])
		}
	}
}
