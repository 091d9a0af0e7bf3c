package storetest

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"kadenz/store"
)

// testTallies runs a random workload through every kind of write that
// moves an envelope, its records or its message (accept, decision rounds,
// one that fails and is rolled back, operator transitions, delivery,
// feedback that stops mail, erasure, retention) and checks after each step
// that the backend's Tallies equal what walking the records gives
// (store.WalkTallies), for the whole span and for a part of it; then again
// after reopening the store.
func testTallies(t *testing.T, b Backend) {
	dir := t.TempDir()
	s := b.Open(t, dir)
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	rng := rand.New(rand.NewPCG(16, 1))
	addrs := []string{"ann@example.test", "Bob@example.test", "cid@example.test", "dee@example.test", "eve@example.test"}
	actions := []string{"release", "defer", "suppress", "review"}
	reasons := []string{"fatigue", "low_relevance", "quiet_hours", "cap_daily", "complained"}
	record := func() []byte {
		r := fmt.Sprintf(`{"action":%q,"reasons":[%q,%q]}`, actions[rng.IntN(len(actions))],
			reasons[rng.IntN(len(reasons))], reasons[rng.IntN(len(reasons))])
		if rng.IntN(4) == 0 { // shadow mode: the would counts
			r = fmt.Sprintf(`{"action":"release","would":%q,"reasons":[%q]}`, actions[rng.IntN(len(actions))], reasons[rng.IntN(len(reasons))])
		}
		return []byte(r)
	}
	now := t0
	check := func(step string) {
		t.Helper()
		for _, span := range [][2]time.Time{{t0.Add(-48 * time.Hour), t0.Add(48 * time.Hour)}, {t0.Add(90 * time.Minute), t0.Add(5 * time.Hour)}} {
			kept, err := s.Tallies(span[0], span[1])
			if err != nil {
				t.Fatalf("%s: Tallies: %v", step, err)
			}
			walked, err := store.WalkTallies(s, span[0], span[1])
			if err != nil {
				t.Fatalf("%s: WalkTallies: %v", step, err)
			}
			if !reflect.DeepEqual(kept, walked) {
				t.Fatalf("%s: tallies of %s-%s differ from the walk:\nkept   %+v\nwalked %+v", step, span[0], span[1], kept, walked)
			}
		}
		checkCampaigns(t, s, step)
	}
	msgs := 0
	for step := range 120 {
		switch op := rng.IntN(10); {
		case op < 4: // accept: held marketing mail (some holdout) or transactional mail
			msgs++
			at := t0.Add(time.Duration(rng.IntN(8*60)) * time.Minute)
			n := 1 + rng.IntN(3)
			rcpts := make([]string, n)
			for i := range rcpts {
				rcpts[i] = addrs[rng.IntN(len(addrs))]
			}
			class := "marketing"
			if rng.IntN(3) == 0 {
				class = "transactional"
			}
			msg := store.Message{ID: fmt.Sprintf("t%03d", msgs), From: "shop@example.test", Received: at, Class: class}
			// Campaigns, one named like another but for case, and some
			// messages without a subject: chosen by the count, so the
			// random sequence is the one the hourly tallies had.
			switch msgs % 5 {
			case 1, 2:
				msg.Features = []byte(fmt.Sprintf(`{"campaign":"spring","subject":"Spring %d"}`, msgs))
			case 3:
				msg.Features = []byte(`{"campaign":"Spring"}`)
			case 4:
				msg.Features = []byte(fmt.Sprintf(`{"campaign":"fall","subject":"Fall %d","links":3}`, msgs))
			}
			_, err := s.AcceptWith(msg, []byte("Subject: x\r\n\r\nbody\r\n"), rcpts, at, func(i int, e *store.Envelope) {
				if class == "marketing" {
					e.State, e.Due, e.Holdout = store.StateHeld, at, rng.IntN(4) == 0
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		case op < 6: // a decision round for each of a few recipients; sometimes one fails
			var rounds []store.Decided
			for _, addr := range addrs[:1+rng.IntN(len(addrs))] {
				r, err := s.LoadRecipient(addr)
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Held) == 0 {
					continue
				}
				d := store.Decided{Recipient: addr, Records: map[string][]byte{}}
				for _, e := range r.Held {
					e.State = []store.State{store.StateQueued, store.StateSuppressed, store.StateReview, store.StateHeld}[rng.IntN(4)]
					e.Due, e.Updated = now, now
					d.Envelopes = append(d.Envelopes, e)
					d.Records[e.ID] = record()
				}
				if rng.IntN(5) == 0 { // an unknown envelope fails this round alone
					d.Envelopes = append(d.Envelopes, store.Envelope{ID: "gone-1", State: store.StateSuppressed})
				}
				rounds = append(rounds, d)
			}
			s.ApplyDecisionsAll(rounds)
		case op == 6: // an operator releases mail in review or holds queued mail
			var list []string
			s.EnvelopesInState(store.StateReview, func(e store.Envelope) bool { list = append(list, e.ID); return len(list) < 3 })
			if len(list) > 0 {
				if _, err := s.Transition(list, func(e *store.Envelope, _ []byte) ([]byte, []byte, error) {
					e.State, e.Due = store.StateQueued, now
					return nil, []byte(`{"action":"release","reasons":["operator"]}`), nil
				}); err != nil {
					t.Fatal(err)
				}
			}
		case op == 7: // delivery: claim what is due, deliver or fail it
			claimed, err := s.Claim(now.Add(24*time.Hour), 4)
			if err != nil {
				t.Fatal(err)
			}
			for i := range claimed {
				claimed[i].State, claimed[i].Updated = store.StateDelivered, now
				if rng.IntN(3) == 0 {
					claimed[i].State = store.StateFailed
				}
			}
			if _, err := s.Settle(claimed, now, 0); err != nil {
				t.Fatal(err)
			}
		case op == 8: // a complaint stops a recipient's held mail
			addr := addrs[rng.IntN(len(addrs))]
			_, _, err := s.ApplyFeedback(now, []store.FeedbackChange{{Recipient: addr, Apply: func(old []byte) (store.FeedbackOutcome, error) {
				return store.FeedbackOutcome{Profile: []byte("p"),
					Stop: func(store.Envelope) []byte { return []byte(`{"action":"suppress","reasons":["complained"]}`) }}, nil
			}}})
			if err != nil {
				t.Fatal(err)
			}
		default: // erasure of one recipient, or retention of records
			if rng.IntN(2) == 0 {
				rules := store.ForgetRules{Keep: func(e store.Envelope, _ store.Message) bool { return e.State == store.StateDelivering },
					HardStop: func([]byte) bool { return false }}
				if _, err := s.Forget(addrs[rng.IntN(len(addrs))], now, rules); err != nil {
					t.Fatal(err)
				}
			} else if _, err := s.PurgeDecisions(now.Add(-time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		now = now.Add(time.Duration(1+rng.IntN(20)) * time.Minute)
		check(fmt.Sprintf("step %d", step))
	}
	before, err := s.Tallies(t0.Add(-48*time.Hour), t0.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Envelopes) == 0 || len(before.Reasons) == 0 || len(before.Messages) == 0 {
		t.Fatalf("the workload left nothing to count: %+v", before)
	}
	all, err := s.CampaignTallies("", 10)
	if err != nil {
		t.Fatal(err)
	}
	deferred, suppressed := false, false
	for _, c := range all {
		for _, e := range c.Envelopes {
			deferred = deferred || e.Deferred
		}
		suppressed = suppressed || len(c.Reasons) > 0
	}
	if len(all) != 3 || !deferred || !suppressed {
		t.Fatalf("the workload left too little in the campaign tallies: %+v", all)
	}
	s.Close()
	closed = true
	s = b.Open(t, dir)
	closed = false
	check("after reopening")
}

// checkCampaigns compares every campaign's kept tallies, read one by one
// and in pages of two, with what walking the records gives.
func checkCampaigns(t *testing.T, s store.Store, step string) {
	t.Helper()
	walked, err := store.WalkCampaignTallies(s)
	if err != nil {
		t.Fatalf("%s: WalkCampaignTallies: %v", step, err)
	}
	var names []string
	for name := range walked {
		names = append(names, name)
	}
	slices.Sort(names)
	var paged []store.CampaignTally
	after := ""
	for {
		page, err := s.CampaignTallies(after, 2)
		if err != nil {
			t.Fatalf("%s: CampaignTallies: %v", step, err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Campaign
	}
	if len(paged) != len(names) {
		t.Fatalf("%s: campaign tallies list %d campaigns, the walk %d:\nkept   %+v\nwalked %+v", step, len(paged), len(names), paged, walked)
	}
	for i, name := range names {
		one, ok, err := s.CampaignTally(name)
		if err != nil || !ok {
			t.Fatalf("%s: CampaignTally(%q): %v, %v", step, name, ok, err)
		}
		if !reflect.DeepEqual(one, *walked[name]) || !reflect.DeepEqual(paged[i], *walked[name]) {
			t.Fatalf("%s: campaign %q: kept tallies differ from the walk:\nkept   %+v\npaged  %+v\nwalked %+v", step, name, one, paged[i], *walked[name])
		}
	}
	if _, ok, err := s.CampaignTally("winter"); ok || err != nil {
		t.Fatalf("%s: CampaignTally of a campaign never sent: %v, %v", step, ok, err)
	}
}
