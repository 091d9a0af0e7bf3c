// Package storetest is the store's conformance suite: the behaviour every
// backend of store.Store must have, written once against the interface so
// that bbolt (store.DB) and any later backend run the very same tests.
//
// A backend's test calls Run with a Backend that opens a store in a
// directory. Run's subtests each start from a fresh directory; the ones
// about durability close the store and open the same directory again.
//
// It checks contracts the relay relies on, not how a backend keeps them:
// IDs and states after accept, the schedule (express first, due order,
// limits), crash recovery, per-recipient load-decide-apply being atomic,
// feedback batches being all-or-nothing and idempotent, the suppression
// list's case rules, mailbox cursors, counters and retention, and, for a
// backend that streams bodies (store.BodyStreams), that they come back
// byte for byte.
package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"kadenz/store"
)

// Backend opens stores for the suite.
type Backend struct {
	// Open opens (creating if needed) the store kept in dir. The suite
	// closes what it opens.
	Open func(t *testing.T, dir string) store.Store
}

// t0 is the suite's clock: a fixed instant, moved by hand.
var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// Run runs every conformance test against b.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"AcceptAndReadBack", testAcceptAndReadBack},
		{"AcceptSurvivesReopen", testAcceptSurvivesReopen},
		{"ClaimOrder", testClaimOrder},
		{"SettleAndRecover", testSettleAndRecover},
		{"HeldRecipients", testHeldRecipients},
		{"DecisionsAtomic", testDecisionsAtomic},
		{"DecisionsAllIsolatesFailures", testDecisionsAllIsolatesFailures},
		{"Transition", testTransition},
		{"FeedbackAllOrNothing", testFeedbackAllOrNothing},
		{"FeedbackIdempotentAndStops", testFeedbackIdempotentAndStops},
		{"SuppressionList", testSuppressionList},
		{"MailboxCursor", testMailboxCursor},
		{"CampaignsAndCounters", testCampaignsAndCounters},
		{"Retention", testRetention},
		{"BodyStreams", testBodyStreams},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

func open(t *testing.T, b Backend, dir string) store.Store {
	t.Helper()
	s := b.Open(t, dir)
	t.Cleanup(func() { s.Close() })
	return s
}

func fresh(t *testing.T, b Backend) store.Store { return open(t, b, t.TempDir()) }

func accept(t *testing.T, s store.Store, id string, rcpts []string, at time.Time, prepare func(int, *store.Envelope)) []store.Envelope {
	t.Helper()
	if prepare == nil {
		prepare = func(int, *store.Envelope) {}
	}
	msg := store.Message{ID: id, From: "shop@example.test", Received: at, HeaderID: id + "@example.test", Class: "transactional"}
	envs, err := s.AcceptWith(msg, []byte("Subject: "+id+"\r\n\r\nbody of "+id+"\r\n"), rcpts, at, prepare)
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

func held(due time.Time) func(int, *store.Envelope) {
	return func(_ int, e *store.Envelope) { e.State, e.Due = store.StateHeld, due }
}

func ids(envs []store.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.ID
	}
	return out
}

func mustEnvelope(t *testing.T, s store.Store, id string) store.Envelope {
	t.Helper()
	e, err := s.Envelope(id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func records(t *testing.T, s store.Store, envelopeID string) []string {
	t.Helper()
	raw, err := s.Decisions(envelopeID)
	if err != nil {
		t.Fatal(err)
	}
	if raw == nil {
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatalf("decisions of %s: %v", envelopeID, err)
	}
	out := make([]string, len(list))
	for i, r := range list {
		out[i] = string(r)
	}
	return out
}

func testAcceptAndReadBack(t *testing.T, b Backend) {
	s := fresh(t, b)
	envs := accept(t, s, "m1", []string{"ann@example.test", "bob@example.test"}, t0, nil)
	if got := ids(envs); !slices.Equal(got, []string{"m1-1", "m1-2"}) {
		t.Errorf("envelope IDs %v, want m1-1 m1-2", got)
	}
	e := mustEnvelope(t, s, "m1-2")
	if e.State != store.StateQueued || !e.Due.Equal(t0) || e.To != "bob@example.test" || e.MessageID != "m1" || e.From != "shop@example.test" {
		t.Errorf("stored envelope %+v", e)
	}
	body, err := s.Body("m1")
	if err != nil || string(body) != "Subject: m1\r\n\r\nbody of m1\r\n" {
		t.Errorf("body %q, %v", body, err)
	}
	if m, err := s.Message("m1"); err != nil || m.HeaderID != "m1@example.test" || m.Class != "transactional" {
		t.Errorf("message %+v, %v", m, err)
	}
	// A Message-ID several messages carry (a client that resubmits) finds
	// them all, the latest first for a single answer.
	s.Accept(store.Message{ID: "m1b", HeaderID: "m1@example.test"}, []byte("x"), []string{"c@example.test"}, t0)
	if all, err := s.MessagesByHeaderID("m1@example.test"); err != nil || !slices.Equal(all, []string{"m1", "m1b"}) {
		t.Errorf("MessagesByHeaderID: %v, %v; want m1 m1b", all, err)
	}
	if id, err := s.MessageByHeaderID("m1@example.test"); err != nil || id != "m1b" {
		t.Errorf("MessageByHeaderID with two: %q, %v; want the latest, m1b", id, err)
	}
	if of, err := s.EnvelopesOf("m1"); err != nil || !slices.Equal(ids(of), []string{"m1-1", "m1-2"}) {
		t.Errorf("EnvelopesOf: %v, %v", ids(of), err)
	}
	if _, err := s.Accept(store.Message{ID: "m1"}, []byte("x"), []string{"c@example.test"}, t0); err == nil {
		t.Error("a second message with ID m1 was accepted")
	}
	if _, err := s.Accept(store.Message{ID: "m2"}, []byte("x"), nil, t0); err == nil {
		t.Error("a message without recipients was accepted")
	}
	if _, err := s.Envelope("nope-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown envelope: %v, want ErrNotFound", err)
	}
	if _, err := s.Body("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown body: %v, want ErrNotFound", err)
	}
	if n, err := s.CountByState(); err != nil || n[store.StateQueued] != 3 {
		t.Errorf("CountByState %v, %v", n, err)
	}
}

func testAcceptSurvivesReopen(t *testing.T, b Backend) {
	dir := t.TempDir()
	s := b.Open(t, dir)
	accept(t, s, "m1", []string{"ann@example.test"}, t0, nil)
	accept(t, s, "m2", []string{"bob@example.test"}, t0, held(t0.Add(time.Hour)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, b, dir)
	if e := mustEnvelope(t, s, "m1-1"); e.State != store.StateQueued {
		t.Errorf("after reopen m1-1 is %s, want queued", e.State)
	}
	if at, ok, err := s.NextHeld(); err != nil || !ok || !at.Equal(t0.Add(time.Hour)) {
		t.Errorf("after reopen NextHeld = %v %v %v", at, ok, err)
	}
	if body, err := s.Body("m2"); err != nil || len(body) == 0 {
		t.Errorf("after reopen body of m2: %q %v", body, err)
	}
}

func testClaimOrder(t *testing.T, b Backend) {
	s := fresh(t, b)
	accept(t, s, "m1", []string{"late@example.test"}, t0, func(_ int, e *store.Envelope) { e.Due = t0.Add(2 * time.Minute) })
	accept(t, s, "m2", []string{"early@example.test"}, t0, func(_ int, e *store.Envelope) { e.Due = t0.Add(time.Minute) })
	accept(t, s, "m3", []string{"receipt@example.test"}, t0, func(_ int, e *store.Envelope) { e.Due, e.Express = t0.Add(3*time.Minute), true })
	accept(t, s, "m4", []string{"future@example.test"}, t0, func(_ int, e *store.Envelope) { e.Due = t0.Add(time.Hour) })
	accept(t, s, "m5", []string{"held@example.test"}, t0, held(t0))

	if at, ok, err := s.NextDue(); err != nil || !ok || !at.Equal(t0.Add(time.Minute)) {
		t.Errorf("NextDue = %v %v %v, want t0+1m", at, ok, err)
	}
	now := t0.Add(5 * time.Minute)
	got, err := s.Claim(now, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), []string{"m3-1", "m2-1"}) {
		t.Errorf("first claim %v, want the express one then the earliest due (m3-1 m2-1)", ids(got))
	}
	for _, e := range got {
		if e.State != store.StateDelivering {
			t.Errorf("claimed %s is %s", e.ID, e.State)
		}
	}
	got, err = s.Claim(now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), []string{"m1-1"}) {
		t.Errorf("second claim %v, want only m1-1 (m4 is not due, m5 is held)", ids(got))
	}
	if got, _ := s.Claim(now, 10); len(got) != 0 {
		t.Errorf("third claim %v, want nothing", ids(got))
	}
	var delivering []string
	s.EnvelopesInState(store.StateDelivering, func(e store.Envelope) bool { delivering = append(delivering, e.ID); return true })
	slices.Sort(delivering)
	if !slices.Equal(delivering, []string{"m1-1", "m2-1", "m3-1"}) {
		t.Errorf("in delivery: %v", delivering)
	}
}

func testSettleAndRecover(t *testing.T, b Backend) {
	dir := t.TempDir()
	s := b.Open(t, dir)
	accept(t, s, "m1", []string{"a@example.test", "b@example.test", "c@example.test"}, t0, nil)
	claimed, err := s.Claim(t0, 10)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claim: %v %v", ids(claimed), err)
	}
	done := claimed[0]
	done.State, done.Attempts = store.StateDelivered, 1
	retry := claimed[1]
	retry.State, retry.Due, retry.LastError = store.StateDeferred, t0.Add(10*time.Minute), "451 4.3.0 try later"
	more, err := s.Settle([]store.Envelope{done, retry}, t0.Add(time.Minute), 10)
	if err != nil || len(more) != 0 {
		t.Fatalf("settle: %v %v", ids(more), err)
	}
	if e := mustEnvelope(t, s, done.ID); e.State != store.StateDelivered || !e.Due.IsZero() {
		t.Errorf("delivered envelope %+v: final states have no due time", e)
	}
	if e := mustEnvelope(t, s, retry.ID); e.State != store.StateDeferred || e.LastError != "451 4.3.0 try later" {
		t.Errorf("deferred envelope %+v", e)
	}
	if got, _ := s.Claim(t0.Add(10*time.Minute), 10); !slices.Equal(ids(got), []string{retry.ID}) {
		t.Errorf("claim at the retry time: %v, want %s", ids(got), retry.ID)
	}
	// A crash: two envelopes in delivery. A stale-only recovery takes the
	// one claimed before the cutoff; a restart's recovery takes the rest.
	if n, err := s.RecoverStale(t0.Add(11*time.Minute), t0.Add(5*time.Minute)); err != nil || n != 1 {
		t.Errorf("RecoverStale = %d, %v; want 1 (claimed[2], claimed at t0)", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, b, dir)
	if n, err := s.Recover(t0.Add(12 * time.Minute)); err != nil || n != 1 {
		t.Errorf("Recover = %d, %v; want 1 (the retry, claimed at t0+10m)", n, err)
	}
	for _, id := range []string{claimed[1].ID, claimed[2].ID} {
		if e := mustEnvelope(t, s, id); e.State != store.StateQueued {
			t.Errorf("%s after recovery: %s, want queued", id, e.State)
		}
	}
	if got, _ := s.Claim(t0.Add(12*time.Minute), 10); len(got) != 2 {
		t.Errorf("recovered mail is not due: claimed %v", ids(got))
	}
}

func testHeldRecipients(t *testing.T, b Backend) {
	s := fresh(t, b)
	accept(t, s, "m1", []string{"Ann@Example.test", "bob@example.test"}, t0, held(t0.Add(time.Minute)))
	accept(t, s, "m2", []string{"ann@example.test"}, t0, held(t0.Add(time.Hour)))
	accept(t, s, "m3", []string{"cid@example.test"}, t0, held(t0.Add(30*time.Second)))
	if err := s.PutProfile("ANN@example.test", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	got, err := s.DueRecipients(t0.Add(2*time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != "cid@example.test" {
		t.Errorf("due recipients %v, want three, cid first (earliest due)", got)
	}
	if got, _ := s.DueRecipients(t0.Add(2*time.Minute), 1); len(got) != 1 {
		t.Errorf("limit 1 gave %v", got)
	}
	r, err := s.LoadRecipient("ann@example.test")
	if err != nil {
		t.Fatal(err)
	}
	// Held mail competes: the not-yet-due m2 comes along, whatever the case of the address.
	if !slices.Equal(ids(r.Held), []string{"m1-1", "m2-1"}) || len(r.Messages) != 2 || string(r.Profile) != `{"v":1}` {
		t.Errorf("LoadRecipient: held %v, %d messages, profile %q", ids(r.Held), len(r.Messages), r.Profile)
	}
	if at, ok, _ := s.NextHeld(); !ok || !at.Equal(t0.Add(30*time.Second)) {
		t.Errorf("NextHeld %v %v", at, ok)
	}
}

func testDecisionsAtomic(t *testing.T, b Backend) {
	s := fresh(t, b)
	accept(t, s, "m1", []string{"ann@example.test"}, t0, held(t0))
	accept(t, s, "m2", []string{"ann@example.test"}, t0, held(t0))
	r, _ := s.LoadRecipient("ann@example.test")
	rel, sup := r.Held[0], r.Held[1]
	rel.State, rel.Due = store.StateQueued, t0.Add(time.Hour)
	sup.State = store.StateSuppressed
	err := s.ApplyDecisions(store.Decided{
		Recipient: "ann@example.test", Profile: []byte(`{"released":1}`), Envelopes: []store.Envelope{rel, sup},
		Records:  map[string][]byte{rel.ID: []byte(`{"action":"release"}`), sup.ID: []byte(`{"action":"suppress"}`)},
		Counters: map[string]int64{"campaign:x:suppressed": 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := s.LoadRecipient("ann@example.test"); len(r.Held) != 0 || string(r.Profile) != `{"released":1}` {
		t.Errorf("after the round: held %v, profile %q", ids(r.Held), r.Profile)
	}
	if got := records(t, s, sup.ID); !slices.Equal(got, []string{`{"action":"suppress"}`}) {
		t.Errorf("records of %s: %v", sup.ID, got)
	}
	if at, ok, _ := s.NextDue(); !ok || !at.Equal(t0.Add(time.Hour)) {
		t.Errorf("the release is not scheduled: NextDue %v %v", at, ok)
	}
	// A second round appends to the records.
	sup2 := mustEnvelope(t, s, sup.ID)
	if err := s.ApplyDecisions(store.Decided{Recipient: "ann@example.test", Envelopes: []store.Envelope{sup2},
		Records: map[string][]byte{sup.ID: []byte(`{"action":"again"}`)}}); err != nil {
		t.Fatal(err)
	}
	if got := records(t, s, sup.ID); len(got) != 2 {
		t.Errorf("records after two rounds: %v", got)
	}
	if c, _ := s.Counters("campaign:x:suppressed", "never"); c["campaign:x:suppressed"] != 1 || c["never"] != 0 {
		t.Errorf("counters %v", c)
	}
}

func testDecisionsAllIsolatesFailures(t *testing.T, b Backend) {
	s := fresh(t, b)
	accept(t, s, "m1", []string{"ann@example.test"}, t0, held(t0))
	accept(t, s, "m2", []string{"bob@example.test"}, t0, held(t0))
	ann, bob := mustEnvelope(t, s, "m1-1"), mustEnvelope(t, s, "m2-1")
	ann.State, bob.State = store.StateSuppressed, store.StateSuppressed
	ghost := store.Envelope{ID: "gone-1", State: store.StateSuppressed}
	errs := s.ApplyDecisionsAll([]store.Decided{
		{Recipient: "ann@example.test", Envelopes: []store.Envelope{ann}, Profile: []byte(`{"a":1}`)},
		{Recipient: "bob@example.test", Envelopes: []store.Envelope{bob, ghost}, Profile: []byte(`{"b":1}`)},
	})
	if len(errs) != 2 || errs[0] != nil || errs[1] == nil {
		t.Fatalf("errors %v, want nil for ann and one for bob's unknown envelope", errs)
	}
	if e := mustEnvelope(t, s, "m1-1"); e.State != store.StateSuppressed {
		t.Errorf("ann's round did not commit: %s", e.State)
	}
	if e := mustEnvelope(t, s, "m2-1"); e.State != store.StateHeld {
		t.Errorf("bob's failed round half-committed: envelope %s", e.State)
	}
	if p, _ := s.Profile("bob@example.test"); p != nil {
		t.Errorf("bob's failed round half-committed: profile %q", p)
	}
}

func testTransition(t *testing.T, b Backend) {
	s := fresh(t, b)
	accept(t, s, "m1", []string{"ann@example.test"}, t0, held(t0.Add(time.Hour)))
	release := func(e *store.Envelope, _ []byte) ([]byte, []byte, error) {
		if e.State != store.StateHeld {
			return nil, nil, store.ErrState
		}
		e.State, e.Due = store.StateQueued, t0
		return []byte(`{"p":1}`), []byte(`{"action":"operator"}`), nil
	}
	if _, err := s.Transition([]string{"m1-1", "nope-1"}, release); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("transition with an unknown ID: %v, want ErrNotFound", err)
	}
	if e := mustEnvelope(t, s, "m1-1"); e.State != store.StateHeld {
		t.Errorf("a failed transition changed m1-1 to %s", e.State)
	}
	out, err := s.Transition([]string{"m1-1"}, release)
	if err != nil || len(out) != 1 || out[0].State != store.StateQueued {
		t.Fatalf("transition: %+v %v", out, err)
	}
	if p, _ := s.Profile("ann@example.test"); string(p) != `{"p":1}` || len(records(t, s, "m1-1")) != 1 {
		t.Errorf("transition's profile %q or record not written", p)
	}
	if _, err := s.Transition([]string{"m1-1"}, release); !errors.Is(err, store.ErrState) {
		t.Errorf("second release: %v, want ErrState", err)
	}
}

func testFeedbackAllOrNothing(t *testing.T, b Backend) {
	s := fresh(t, b)
	ok := func(old []byte) (store.FeedbackOutcome, error) {
		return store.FeedbackOutcome{Profile: []byte(`{"ok":1}`)}, nil
	}
	bad := func(old []byte) (store.FeedbackOutcome, error) {
		return store.FeedbackOutcome{}, fmt.Errorf("broken profile")
	}
	_, _, err := s.ApplyFeedback(t0, []store.FeedbackChange{
		{EventID: "e1", Recipient: "ann@example.test", Apply: ok},
		{EventID: "e2", Recipient: "bob@example.test", Apply: bad},
	})
	if err == nil {
		t.Fatal("a batch with a failing change succeeded")
	}
	if p, _ := s.Profile("ann@example.test"); p != nil {
		t.Errorf("a failed batch wrote ann's profile %q", p)
	}
	if n, _ := s.EventIDCount(); n != 0 {
		t.Errorf("a failed batch remembered %d event IDs", n)
	}
	// The same event, retried alone, applies: its ID was not kept.
	if applied, dup, err := s.ApplyFeedback(t0, []store.FeedbackChange{{EventID: "e1", Recipient: "ann@example.test", Apply: ok}}); err != nil || applied != 1 || dup != 0 {
		t.Errorf("retry: applied %d dup %d err %v", applied, dup, err)
	}
}

func testFeedbackIdempotentAndStops(t *testing.T, b Backend) {
	s := fresh(t, b)
	accept(t, s, "m1", []string{"ann@example.test"}, t0, held(t0.Add(time.Hour)))
	accept(t, s, "m2", []string{"ann@example.test"}, t0, func(_ int, e *store.Envelope) { e.Due = t0.Add(time.Hour) }) // released, not sent
	accept(t, s, "m3", []string{"bob@example.test"}, t0, held(t0.Add(time.Hour)))
	stop := func(old []byte) (store.FeedbackOutcome, error) {
		return store.FeedbackOutcome{
			Profile:  append(old, 'x'),
			Suppress: &store.Suppression{Address: "ann@example.test", Reason: "complaint", At: t0, Source: "imap"},
			Stop:     func(store.Envelope) []byte { return []byte(`{"action":"suppress","reasons":["complained"]}`) },
			StopAlso: []string{"m2-1", "missing-1"},
		}, nil
	}
	applied, dup, err := s.ApplyFeedback(t0, []store.FeedbackChange{
		{EventID: "c1", Recipient: "ANN@example.test", Apply: stop},
		{EventID: "c1", Recipient: "ANN@example.test", Apply: stop}, // repeated within the batch
	})
	if err != nil || applied != 1 || dup != 1 {
		t.Fatalf("applied %d dup %d err %v, want 1 1", applied, dup, err)
	}
	if applied, dup, _ := s.ApplyFeedback(t0, []store.FeedbackChange{{EventID: "c1", Recipient: "ann@example.test", Apply: stop}}); applied != 0 || dup != 1 {
		t.Errorf("a repeat in a later batch: applied %d dup %d", applied, dup)
	}
	if p, _ := s.Profile("ann@example.test"); string(p) != "x" {
		t.Errorf("profile %q, want it changed once", p)
	}
	for _, id := range []string{"m1-1", "m2-1"} {
		if e := mustEnvelope(t, s, id); e.State != store.StateSuppressed || len(records(t, s, id)) != 1 {
			t.Errorf("%s after a complaint: %s with %d records, want suppressed with one", id, e.State, len(records(t, s, id)))
		}
	}
	if e := mustEnvelope(t, s, "m3-1"); e.State != store.StateHeld {
		t.Errorf("bob's mail stopped by ann's complaint: %s", e.State)
	}
	if _, listed, _ := s.SuppressionOf("ann@example.test"); !listed {
		t.Error("complaint did not list the address")
	}
	if n, _ := s.PruneEventIDs(t0.Add(time.Second)); n != 1 {
		t.Errorf("PruneEventIDs removed %d, want 1", n)
	}
	if n, _ := s.EventIDCount(); n != 0 {
		t.Errorf("%d event IDs after pruning", n)
	}
}

func testSuppressionList(t *testing.T, b Backend) {
	s := fresh(t, b)
	n, err := s.Suppress(false,
		store.Suppression{Address: " Ann@Example.TEST ", Reason: "unsubscribed", At: t0, Source: "events"},
		store.Suppression{Address: "ann@example.test", Reason: "complaint", At: t0.Add(time.Hour), Source: "imap"})
	if err != nil || n != 1 {
		t.Errorf("Suppress wrote %d, %v; want 1 (the second is the same address)", n, err)
	}
	sup, listed, err := s.SuppressionOf("ANN@example.test")
	if err != nil || !listed || sup.Reason != "unsubscribed" || sup.Address != "ann@example.test" {
		t.Errorf("SuppressionOf: %+v %v %v; want the first reason, normalised", sup, listed, err)
	}
	if n, _ := s.Suppress(true, store.Suppression{Address: "ann@example.test", Reason: "complaint", At: t0, Source: "admin"}); n != 1 {
		t.Errorf("replace wrote %d", n)
	}
	if sup, _, _ := s.SuppressionOf("ann@example.test"); sup.Reason != "complaint" {
		t.Errorf("after replace: %+v", sup)
	}
	if _, err := s.Suppress(false, store.Suppression{Address: "  ", Reason: "x"}); err == nil {
		t.Error("an empty address was listed")
	}
	s.Suppress(false, store.Suppression{Address: "bob@example.test", Reason: "hard bounce", At: t0})
	if list, err := s.Suppressions(); err != nil || len(list) != 2 {
		t.Errorf("Suppressions: %+v %v", list, err)
	}
	removed, err := s.Unsuppress("ANN@EXAMPLE.TEST", func(old []byte) ([]byte, error) { return old, nil })
	if err != nil || !removed {
		t.Errorf("Unsuppress: %v %v", removed, err)
	}
	if _, listed, _ := s.SuppressionOf("ann@example.test"); listed {
		t.Error("still listed after Unsuppress")
	}
	if removed, _ := s.Unsuppress("nobody@example.test", func(old []byte) ([]byte, error) { return old, nil }); removed {
		t.Error("Unsuppress of an unlisted address said it removed one")
	}
}

func testMailboxCursor(t *testing.T, b Backend) {
	dir := t.TempDir()
	s := b.Open(t, dir)
	if v, u, err := s.MailboxState("bounces"); err != nil || v != 0 || u != 0 {
		t.Errorf("new mailbox cursor %d %d %v, want zeros", v, u, err)
	}
	if err := s.SetMailboxState("bounces", 7, 42); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, b, dir)
	if v, u, err := s.MailboxState("bounces"); err != nil || v != 7 || u != 42 {
		t.Errorf("cursor after reopen %d %d %v, want 7 42", v, u, err)
	}
	if v, _, _ := s.MailboxState("replies"); v != 0 {
		t.Errorf("another mailbox shares the cursor: %d", v)
	}
}

func testCampaignsAndCounters(t *testing.T, b Backend) {
	s := fresh(t, b)
	if err := s.SuspendCampaign("Winter-Sale", t0); err != nil {
		t.Fatal(err)
	}
	sus, err := s.SuspendedCampaigns()
	if err != nil || len(sus) != 1 {
		t.Fatalf("suspended %v %v", sus, err)
	}
	if err := s.ResumeCampaign("winter-sale"); err != nil {
		t.Fatal(err)
	}
	if sus, _ := s.SuspendedCampaigns(); len(sus) != 0 {
		t.Errorf("resume (other case) left %v", sus)
	}
}

func testRetention(t *testing.T, b Backend) {
	s := fresh(t, b)
	accept(t, s, "old", []string{"ann@example.test"}, t0, nil)
	accept(t, s, "busy", []string{"bob@example.test", "cid@example.test"}, t0, nil)
	claimed, _ := s.Claim(t0, 10)
	var outcomes []store.Envelope
	for _, e := range claimed {
		if e.ID == "busy-2" {
			continue // still in delivery: its message's body must stay
		}
		e.State, e.Updated = store.StateDelivered, t0
		outcomes = append(outcomes, e)
	}
	if err := s.Update(outcomes...); err != nil {
		t.Fatal(err)
	}
	for _, e := range outcomes {
		s.ApplyDecisions(store.Decided{Recipient: e.To, Envelopes: []store.Envelope{mustEnvelope(t, s, e.ID)},
			Records: map[string][]byte{e.ID: []byte(`{"action":"release"}`)}})
	}
	if n, err := s.PurgeBodies(t0.Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("PurgeBodies = %d, %v; want 1 (only the message whose envelopes are all final)", n, err)
	}
	if has, _ := s.HasBody("old"); has {
		t.Error("body of a delivered message survived its retention")
	}
	if has, _ := s.HasBody("busy"); !has {
		t.Error("body of a message still in delivery was purged")
	}
	if n, err := s.PurgeDecisions(t0.Add(time.Hour)); err != nil || n != 2 {
		t.Errorf("PurgeDecisions = %d, %v; want 2", n, err)
	}
	if got := records(t, s, "old-1"); got != nil {
		t.Errorf("records of old-1 after the purge: %v", got)
	}
}
