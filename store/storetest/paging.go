package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"kadenz/store"
)

// testStatePages walks each state's envelopes in pages of two, each page
// starting after the cursor of the last envelope of the one before, and
// checks that the pages put together are the whole walk, in its order:
// held and review mail with due times that tie, queued mail in both lanes
// (express and not), mail in delivery, final mail, and every envelope.
func testStatePages(t *testing.T, b Backend) {
	s := fresh(t, b)
	for i := range 7 {
		due := t0.Add(time.Duration(i%3) * time.Minute) // ties broken by ID
		accept(t, s, fmt.Sprintf("h%d", i), []string{"ann@example.test", "bob@example.test"}, t0, held(due))
	}
	for i := range 5 {
		accept(t, s, fmt.Sprintf("q%d", i), []string{"cid@example.test"}, t0, func(_ int, e *store.Envelope) {
			e.Due, e.Express = t0.Add(time.Duration(i%2)*time.Hour), i%2 == 0
		})
	}
	claimed, err := s.Claim(t0, 3)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claim: %d %v", len(claimed), err)
	}
	claimed[0].State = store.StateDelivered
	if _, err := s.Settle(claimed[:1], t0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition([]string{"h0-1", "h1-2", "h2-1"}, func(e *store.Envelope, _ []byte) ([]byte, []byte, error) {
		e.State, e.Due = store.StateReview, t0
		return nil, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, st := range []store.State{store.StateHeld, store.StateReview, store.StateQueued, store.StateDelivering, store.StateDelivered, ""} {
		var whole []string
		if err := s.EnvelopesInState(st, func(e store.Envelope) bool { whole = append(whole, e.ID); return true }); err != nil {
			t.Fatal(err)
		}
		if len(whole) == 0 {
			t.Fatalf("state %q: nothing to page through", st)
		}
		var paged []string
		after := store.EnvelopeCursor{}
		for page := 0; ; page++ {
			if page > len(whole) {
				t.Fatalf("state %q: the pages do not end: %v", st, paged)
			}
			var got []store.Envelope
			if err := s.EnvelopesInStateAfter(st, after, func(e store.Envelope) bool { got = append(got, e); return len(got) < 2 }); err != nil {
				t.Fatal(err)
			}
			for _, e := range got {
				paged = append(paged, e.ID)
			}
			if len(got) < 2 {
				break
			}
			after = store.CursorOf(got[len(got)-1])
		}
		if !slices.Equal(paged, whole) {
			t.Errorf("state %q in pages of two: %v, want %v", st, paged, whole)
		}
	}
}

// testSuppressionPages reads the suppression list in pages of three and
// checks that they make up the whole list, in its order.
func testSuppressionPages(t *testing.T, b Backend) {
	s := fresh(t, b)
	for i := range 7 {
		if _, err := s.Suppress(false, store.Suppression{Address: fmt.Sprintf("u%d@example.test", i), Reason: "unsubscribed", At: t0}); err != nil {
			t.Fatal(err)
		}
	}
	whole, err := s.Suppressions()
	if err != nil || len(whole) != 7 {
		t.Fatalf("Suppressions: %d %v", len(whole), err)
	}
	var paged []store.Suppression
	var after []byte
	for page := 0; ; page++ {
		list, next, err := s.SuppressionsAfter(after, 3)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, list...)
		if next == nil {
			if len(list) == 3 && page == 2 {
				t.Errorf("a full last page of a list of 7")
			}
			break
		}
		if page > 7 || len(list) != 3 {
			t.Fatalf("page %d: %d entries with a next key", page, len(list))
		}
		after = next
	}
	if len(paged) != len(whole) {
		t.Fatalf("pages hold %d entries, the list %d", len(paged), len(whole))
	}
	for i := range whole {
		if paged[i].Address != whole[i].Address {
			t.Errorf("entry %d: %s in the pages, %s in the list", i, paged[i].Address, whole[i].Address)
		}
	}
}

// testRecipientPages pages through each recipient's envelopes two at a
// time and checks the pages against a walk of every record: the same
// envelopes, with their decisions, the highest ID first, the address
// compared without case; and again after an erasure of one recipient and
// a reopening (the index is kept in the store, not in memory).
func testRecipientPages(t *testing.T, b Backend) {
	dir := t.TempDir()
	s := b.Open(t, dir)
	addrs := []string{"ann@example.test", "Bob@Example.test", "cid@example.test"}
	for i := range 7 {
		rcpts := []string{addrs[i%3], addrs[(i+1)%3]}
		if i%2 == 0 {
			rcpts = append(rcpts, "bob@example.test") // bob twice in one message, as written
		}
		accept(t, s, fmt.Sprintf("m%d", i), rcpts, t0.Add(time.Duration(i)*time.Minute), held(t0))
	}
	r, err := s.LoadRecipient("ann@example.test")
	if err != nil || len(r.Held) == 0 {
		t.Fatalf("load: %v %v", r.Held, err)
	}
	d := store.Decided{Recipient: "ann@example.test", Records: map[string][]byte{}}
	for _, e := range r.Held[:2] {
		e.State = store.StateQueued
		d.Envelopes = append(d.Envelopes, e)
		d.Records[e.ID] = []byte(`{"action":"release","reasons":["fresh"]}`)
	}
	if err := s.ApplyDecisions(d); err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		for _, addr := range append(addrs, "BOB@example.test", "nobody@example.test") {
			var want []store.EnvelopeRecord
			if err := s.Records(func(rec store.EnvelopeRecord) bool {
				if store.NormalizeAddress(rec.Envelope.To) == store.NormalizeAddress(addr) {
					want = append(want, rec)
				}
				return true
			}); err != nil {
				t.Fatal(err)
			}
			slices.Reverse(want)
			var got []store.EnvelopeRecord
			before, pages := "", 0
			for {
				p, err := s.RecipientEnvelopes(addr, before, 2)
				if err != nil {
					t.Fatalf("%s: %s after %q: %v", step, addr, before, err)
				}
				if p.Total != len(want) {
					t.Fatalf("%s: %s: total %d, want %d", step, addr, p.Total, len(want))
				}
				if len(p.Records) > 2 || (p.Next != "" && len(p.Records) != 2) {
					t.Fatalf("%s: %s: a page of %d with next %q", step, addr, len(p.Records), p.Next)
				}
				got = append(got, p.Records...)
				pages++
				if p.Next == "" {
					break
				}
				before = p.Next
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %s: %d envelopes in %d pages, want %d", step, addr, len(got), pages, len(want))
			}
			for i := range want {
				g, w := got[i], want[i]
				if g.Envelope.ID != w.Envelope.ID || g.Envelope.State != w.Envelope.State || string(g.Decisions) != string(w.Decisions) ||
					g.Message == nil || g.Message.ID != w.Message.ID {
					t.Fatalf("%s: %s: envelope %d is %s %s %s, want %s %s %s", step, addr, i,
						g.Envelope.ID, g.Envelope.State, g.Decisions, w.Envelope.ID, w.Envelope.State, w.Decisions)
				}
			}
		}
	}
	check("written")
	rules := store.ForgetRules{Keep: func(store.Envelope, store.Message) bool { return false }, HardStop: func([]byte) bool { return false }}
	if _, err := s.Forget("cid@example.test", t0, rules); err != nil {
		t.Fatal(err)
	}
	check("after an erasure")
	s.Close()
	s = open(t, b, dir)
	check("reopened")
}

// testCampaignPages pages through a campaign's envelopes two and three at a
// time and checks that the pages put together are all of them, the latest
// message first and each message's envelopes by ID, highest first, with
// their messages and records; mail of another campaign and without one is
// left out, and an erased envelope leaves the list.
func testCampaignPages(t *testing.T, b Backend) {
	s := fresh(t, b)
	rcpts := []string{"ann@example.test", "bob@example.test", "cid@example.test"}
	for i := range 7 {
		features := `{"campaign":"spring"}`
		switch i % 3 {
		case 1:
			features = `{"campaign":"fall"}`
		case 2:
			if i == 5 {
				features = `{"subject":"no campaign"}`
			}
		}
		msg := store.Message{ID: fmt.Sprintf("c%d", i), From: "shop@example.test", Received: t0, Class: "marketing", Features: []byte(features)}
		if _, err := s.AcceptWith(msg, []byte("Subject: x\r\n\r\nbody\r\n"), rcpts[:1+i%3], t0, held(t0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ApplyDecisions(store.Decided{Recipient: "ann@example.test", Envelopes: []store.Envelope{}, Records: map[string][]byte{"c3-1": []byte(`{"action":"defer"}`)}}); err != nil {
		t.Fatal(err)
	}
	want := func() []string {
		var out []string
		s.Records(func(r store.EnvelopeRecord) bool {
			if c, _ := store.CampaignOf(r.Message.Features); c == "spring" {
				out = append(out, r.Envelope.ID)
			}
			return true
		})
		slices.SortFunc(out, func(a, b string) int {
			if ma, mb := store.EnvelopeMessageID(a), store.EnvelopeMessageID(b); ma != mb {
				return strings.Compare(mb, ma)
			}
			return strings.Compare(b, a)
		})
		return out
	}
	check := func(what string) {
		t.Helper()
		whole := want()
		if len(whole) < 4 {
			t.Fatalf("%s: too few envelopes to page through: %v", what, whole)
		}
		for _, size := range []int{2, 3} {
			var paged []string
			before := ""
			for page := 0; ; page++ {
				if page > len(whole) {
					t.Fatalf("%s: the pages do not end: %v", what, paged)
				}
				p, err := s.CampaignEnvelopes("spring", before, size)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range p.Records {
					paged = append(paged, r.Envelope.ID)
					if r.Message == nil || r.Message.ID != r.Envelope.MessageID {
						t.Fatalf("%s: %s comes with message %+v", what, r.Envelope.ID, r.Message)
					}
					if r.Envelope.ID == "c3-1" && !strings.Contains(string(r.Decisions), "defer") {
						t.Fatalf("%s: c3-1 comes without its record: %q", what, r.Decisions)
					}
				}
				if p.Next == "" {
					break
				}
				before = p.Next
			}
			if !slices.Equal(paged, whole) {
				t.Fatalf("%s: pages of %d give %v, want %v", what, size, paged, whole)
			}
		}
	}
	check("as accepted")
	if _, err := s.Forget("cid@example.test", t0, store.ForgetRules{Keep: func(store.Envelope, store.Message) bool { return false },
		HardStop: func([]byte) bool { return false }}); err != nil {
		t.Fatal(err)
	}
	check("after an erasure")
	if p, err := s.CampaignEnvelopes("summer", "", 5); err != nil || len(p.Records) != 0 || p.Next != "" {
		t.Fatalf("a campaign never sent: %+v, %v", p, err)
	}
}
