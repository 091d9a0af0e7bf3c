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
// limits, a message's express recipients claimed together), crash
// recovery, per-recipient load-decide-apply being atomic, feedback batches
// being all-or-nothing and idempotent, the suppression list's case rules,
// mailbox cursors, counters and retention, the walks (order, early stop),
// concurrent claims never handing one envelope out twice, concurrent
// profile updates never lost, and erasure (what goes, what stays as a
// keyed hash, what is still suppressed), and leases (store.Leases, which
// every backend implements too: one holder at a time, renewal, expiry,
// release), and, for a backend that streams bodies (store.BodyStreams),
// that they come back byte for byte; that the tallies equal a walk of the
// records after every kind of write (tallies.go), and that the queue's and
// the suppression list's pages make up the whole walk (paging.go).
package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
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
		{"FeedbackCounters", testFeedbackCounters},
		{"SuppressionList", testSuppressionList},
		{"MailboxCursor", testMailboxCursor},
		{"CampaignsAndCounters", testCampaignsAndCounters},
		{"Retention", testRetention},
		{"OptionalAbilities", testOptionalAbilities},
		{"ExpressSiblings", testExpressSiblings},
		{"Walks", testWalks},
		{"ConcurrentClaims", testConcurrentClaims},
		{"ConcurrentProfileUpdates", testConcurrentProfileUpdates},
		{"Erasure", testErasure},
		{"PseudonymKey", testPseudonymKey},
		{"Leases", testLeases},
		{"LoadRecipients", testLoadRecipients},
		{"DecisionsAllSameRecipientTwice", testDecisionsAllTwice},
		{"BodyStreams", testBodyStreams},
		{"Tallies", testTallies},
		{"StatePages", testStatePages},
		{"SuppressionPages", testSuppressionPages},
		{"RecipientPages", testRecipientPages},
		{"CampaignPages", testCampaignPages},
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

// FeedbackOutcome.Counters are added in the feedback's transaction: once
// per applied change, not for a duplicate, not at all for a failed batch.
func testFeedbackCounters(t *testing.T, b Backend) {
	s := fresh(t, b)
	count := func(old []byte) (store.FeedbackOutcome, error) {
		return store.FeedbackOutcome{Profile: []byte(`{}`), Counters: map[string]int64{"q/c1/clicks": 1, "q/c1/opens": 2}}, nil
	}
	bad := func(old []byte) (store.FeedbackOutcome, error) { return store.FeedbackOutcome{}, fmt.Errorf("broken") }
	if _, _, err := s.ApplyFeedback(t0, []store.FeedbackChange{
		{EventID: "k1", Recipient: "ann@example.test", Apply: count},
		{EventID: "k1", Recipient: "ann@example.test", Apply: count}, // a duplicate
		{EventID: "k2", Recipient: "bob@example.test", Apply: count},
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ApplyFeedback(t0, []store.FeedbackChange{
		{EventID: "k3", Recipient: "ann@example.test", Apply: count},
		{EventID: "k4", Recipient: "bob@example.test", Apply: bad},
	}); err == nil {
		t.Fatal("a batch with a failing change succeeded")
	}
	got, err := s.Counters("q/c1/clicks", "q/c1/opens")
	if err != nil {
		t.Fatal(err)
	}
	if got["q/c1/clicks"] != 2 || got["q/c1/opens"] != 4 {
		t.Errorf("counters %v, want clicks 2 and opens 4 (two applied changes)", got)
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

// testOptionalAbilities checks the abilities a backend may have beyond
// store.Store (store/backend.go), each only where the backend has it: a
// backend without one passes by not offering it.
func testOptionalAbilities(t *testing.T, b Backend) {
	s := fresh(t, b)
	accept(t, s, "m1", []string{"Ann@Example.test"}, t0, nil)
	if gc, ok := s.(store.GroupCommitter); ok {
		c1, w1 := gc.CommitStats()
		accept(t, s, "m2", []string{"bob@example.test"}, t0, nil)
		if c2, w2 := gc.CommitStats(); c2 <= c1 || w2 <= w1 {
			t.Errorf("commit counts after a write: %d/%d, before %d/%d", c2, w2, c1, w1)
		}
	}
	if snap, ok := s.(store.Snapshotter); ok {
		var buf bytes.Buffer
		told := int64(-1)
		n, err := snap.Backup(&buf, func(size int64) { told = size })
		if err != nil || n == 0 || n != int64(buf.Len()) || told != n {
			t.Errorf("backup: %d bytes (announced %d, written %d), %v", n, told, buf.Len(), err)
		}
	}
	if kl, ok := s.(store.AddressKeyLowerer); ok {
		// Everything written through the contract is keyed in lower case
		// already: there is nothing to move, and asking twice is harmless.
		for range 2 {
			moved, merged, err := kl.LowerAddressKeys(func(kept, _ []byte) ([]byte, error) { return kept, nil })
			if err != nil || moved+merged != 0 {
				t.Errorf("lowering keys written through the contract: moved %d, merged %d, %v", moved, merged, err)
			}
		}
	}
	if sc, ok := s.(store.FreePageScrubber); ok {
		rules := store.ForgetRules{Keep: func(store.Envelope, store.Message) bool { return false }, HardStop: func([]byte) bool { return false }}
		if _, err := s.Forget("ann@example.test", t0, rules); err != nil {
			t.Fatal(err)
		}
		if _, err := sc.ScrubFreePages(); err != nil {
			t.Errorf("scrubbing after an erasure: %v", err)
		}
	}
}

func testExpressSiblings(t *testing.T, b Backend) {
	s := fresh(t, b)
	rcpts := []string{"a@example.test", "b@example.test", "c@example.test", "d@example.test"}
	accept(t, s, "m1", rcpts, t0, func(_ int, e *store.Envelope) { e.Express = true })
	accept(t, s, "m2", rcpts, t0, func(_ int, e *store.Envelope) { e.Due = t0.Add(time.Second) })
	// The limit does not split an express message: its other recipients
	// come along, so delivery can send them in one transaction.
	got, err := s.Claim(t0.Add(time.Minute), 2)
	if err != nil || !slices.Equal(ids(got), []string{"m1-1", "m1-2", "m1-3", "m1-4"}) {
		t.Errorf("express claim with limit 2: %v %v, want all four of m1", ids(got), err)
	}
	// Other mail is delivered copy by copy: the limit holds.
	if got, _ := s.Claim(t0.Add(time.Minute), 2); !slices.Equal(ids(got), []string{"m2-1", "m2-2"}) {
		t.Errorf("ordinary claim with limit 2: %v, want m2-1 m2-2", ids(got))
	}
}

func testWalks(t *testing.T, b Backend) {
	s := fresh(t, b)
	accept(t, s, "m1", []string{"a@example.test", "b@example.test"}, t0, func(i int, e *store.Envelope) { e.Due = t0.Add(time.Duration(2-i) * time.Minute) })
	accept(t, s, "m2", []string{"c@example.test"}, t0, func(_ int, e *store.Envelope) { e.Due, e.Express = t0.Add(90*time.Second), true })
	accept(t, s, "m3", []string{"d@example.test", "e@example.test"}, t0, held(t0.Add(time.Hour)))
	deferred := mustEnvelope(t, s, "m1-1")
	deferred.State, deferred.Attempts = store.StateDeferred, 1
	done := mustEnvelope(t, s, "m3-2")
	done.State = store.StateSuppressed
	if err := s.ApplyDecisions(store.Decided{Recipient: "e@example.test", Envelopes: []store.Envelope{done},
		Records: map[string][]byte{"m3-2": []byte(`{ "action": "suppress" }`)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(deferred); err != nil {
		t.Fatal(err)
	}
	var all []string
	if err := s.Envelopes(func(e store.Envelope) bool { all = append(all, e.ID); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(all, []string{"m1-1", "m1-2", "m2-1", "m3-1", "m3-2"}) {
		t.Errorf("Envelopes walked %v, want ID order", all)
	}
	var first []string
	s.Envelopes(func(e store.Envelope) bool { first = append(first, e.ID); return len(first) < 2 })
	if len(first) != 2 {
		t.Errorf("a walk told to stop went on: %v", first)
	}
	inState := func(st store.State) []string {
		var out []string
		if err := s.EnvelopesInState(st, func(e store.Envelope) bool { out = append(out, e.ID); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Queued mail in both lanes, earliest due first: m1-2 (t0+1m), m2-1 (t0+90s, express).
	if got := inState(store.StateQueued); !slices.Equal(got, []string{"m1-2", "m2-1"}) {
		t.Errorf("queued: %v, want m1-2 m2-1", got)
	}
	if got := inState(store.StateDeferred); !slices.Equal(got, []string{"m1-1"}) {
		t.Errorf("deferred: %v", got)
	}
	if got := inState(store.StateHeld); !slices.Equal(got, []string{"m3-1"}) {
		t.Errorf("held: %v", got)
	}
	if got := inState(store.StateSuppressed); !slices.Equal(got, []string{"m3-2"}) {
		t.Errorf("suppressed: %v", got)
	}
	if got := inState(""); len(got) != 5 {
		t.Errorf("every state: %v", got)
	}
	want := map[store.State]int{store.StateQueued: 2, store.StateDeferred: 1, store.StateHeld: 1, store.StateSuppressed: 1}
	if n, err := s.CountByState(); err != nil || !mapsEqual(n, want) {
		t.Errorf("CountByState %v %v, want %v", n, err, want)
	}
	if n := s.StateCounts(); !mapsEqual(n, want) {
		t.Errorf("StateCounts %v, want %v", n, want)
	}
	var recs []store.EnvelopeRecord
	if err := s.Records(func(r store.EnvelopeRecord) bool { recs = append(recs, r); return true }); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 || recs[0].Message == nil || recs[0].Message.ID != "m1" || recs[4].Envelope.ID != "m3-2" {
		t.Fatalf("Records: %d records", len(recs))
	}
	// Decision records come back as a JSON array of what was written (compacted).
	if string(recs[4].Decisions) != `[{"action":"suppress"}]` || recs[3].Decisions != nil {
		t.Errorf("records' decisions: %q and %q", recs[4].Decisions, recs[3].Decisions)
	}
}

// mapsEqual compares counts, a missing state being zero.
func mapsEqual(a, b map[store.State]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func testConcurrentClaims(t *testing.T, b Backend) {
	s := fresh(t, b)
	const messages, workers = 40, 4
	for i := range messages {
		accept(t, s, fmt.Sprintf("m%02d", i), []string{"a@example.test", "b@example.test"}, t0, nil)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 * messages { // bounded: 80 envelopes, at least one each round until empty
				got, err := s.Claim(t0, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, e := range got {
					seen[e.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 2*messages {
		t.Errorf("%d envelopes claimed, want %d", len(seen), 2*messages)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
}

func testConcurrentProfileUpdates(t *testing.T, b Backend) {
	s := fresh(t, b)
	const writers, each = 4, 10
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				err := s.UpdateProfile("Ann@example.test", func(old []byte) ([]byte, error) {
					return append(old, 'x'), nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p, _ := s.Profile("ann@example.test"); len(p) != writers*each {
		t.Errorf("profile has %d updates, want %d: an update was lost", len(p), writers*each)
	}
}

func testErasure(t *testing.T, b Backend) {
	s := fresh(t, b)
	accept(t, s, "m1", []string{"Ann@example.test", "bob@example.test"}, t0, held(t0.Add(time.Hour)))
	accept(t, s, "m2", []string{"ann@example.test"}, t0, func(_ int, e *store.Envelope) { e.Express = true })
	accept(t, s, "m3", []string{"ann@example.test"}, t0, nil)
	m3 := mustEnvelope(t, s, "m3-1")
	m3.State = store.StateDelivered
	if err := s.ApplyDecisions(store.Decided{Recipient: "ann@example.test", Envelopes: []store.Envelope{m3},
		Records: map[string][]byte{"m3-1": []byte(`{"action":"release"}`)}, Profile: []byte(`{"stop":true}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Suppress(false, store.Suppression{Address: "ann@example.test", Reason: "550 <ann@example.test> unknown", At: t0}); err != nil {
		t.Fatal(err)
	}
	nothing := func([]byte) (store.FeedbackOutcome, error) { return store.FeedbackOutcome{}, nil }
	events := []store.FeedbackChange{
		{EventID: "open-1", Recipient: "ann@example.test", Apply: nothing},
		{EventID: "click-ann@example.test", Apply: nothing},
		{EventID: "open-2", Recipient: "bob@example.test", Apply: nothing},
	}
	if _, _, err := s.ApplyFeedback(t0, events); err != nil {
		t.Fatal(err)
	}
	rules := store.ForgetRules{
		Keep:     func(e store.Envelope, _ store.Message) bool { return e.Express && !e.State.Final() }, // a receipt still to go
		HardStop: func(p []byte) bool { return string(p) == `{"stop":true}` },
	}
	rep, err := s.Forget("ANN@example.test", t0.Add(time.Minute), rules)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Envelopes != 2 || rep.Held != 1 || rep.Final != 1 || rep.Kept != 1 || rep.Decisions != 1 || rep.Profiles != 1 ||
		rep.Messages != 1 || rep.Bodies != 1 || rep.SharedBodies != 1 || rep.Suppressions != 1 || rep.EventIDs != 2 || !rep.Tombstone {
		t.Errorf("report %+v", rep)
	}
	if got := slices.Sorted(slices.Values(rep.EnvelopeIDs)); !slices.Equal(got, []string{"m1-1", "m3-1"}) {
		t.Errorf("erased envelope IDs %v", got)
	}
	for _, id := range []string{"m1-1", "m3-1"} {
		if _, err := s.Envelope(id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s after erasure: %v", id, err)
		}
	}
	if _, err := s.Message("m3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("message m3 (no envelope left) after erasure: %v", err)
	}
	if has, _ := s.HasBody("m1"); !has {
		t.Error("m1's body went, though bob's copy is still held")
	}
	if e := mustEnvelope(t, s, "m2-1"); e.State != store.StateQueued {
		t.Errorf("the kept receipt is %s", e.State)
	}
	if p, _ := s.Profile("ann@example.test"); p != nil {
		t.Errorf("profile after erasure: %q", p)
	}
	if at, err := s.Forgotten("ann@example.test"); err != nil || !at.Equal(t0.Add(time.Minute)) {
		t.Errorf("Forgotten: %v %v", at, err)
	}
	if r, _ := s.LoadRecipient("ann@example.test"); !r.Forgotten.Equal(t0.Add(time.Minute)) {
		t.Errorf("LoadRecipient's Forgotten: %v", r.Forgotten)
	}
	if at, _ := s.Forgotten("bob@example.test"); !at.IsZero() {
		t.Errorf("bob is forgotten at %v", at)
	}
	// Still suppressed, found by the address, listed without it.
	sup, listed, err := s.SuppressionOf("ann@example.test")
	if err != nil || !listed || sup.Address != "ann@example.test" || sup.Reason != "550 <[erased address]> unknown" {
		t.Errorf("SuppressionOf after erasure: %+v %v %v", sup, listed, err)
	}
	if list, _ := s.Suppressions(); len(list) != 1 || list[0].Address != "" || len(list[0].Pseudonym) != 16 {
		t.Errorf("list after erasure: %+v", list)
	}
	if n, _ := s.Suppress(false, store.Suppression{Address: "ann@example.test", Reason: "again", At: t0}); n != 0 {
		t.Error("an erased address got a second, plain entry")
	}
	// Her events are still duplicates (kept as hashes), bob's too.
	if applied, dups, err := s.ApplyFeedback(t0, events); err != nil || applied != 0 || dups != 3 {
		t.Errorf("replayed events: applied %d duplicates %d %v", applied, dups, err)
	}
	// Erasing again finds nothing new but keeps the tombstone.
	if rep, err := s.Forget("ann@example.test", t0.Add(2*time.Minute), rules); err != nil || rep.Envelopes != 0 || !rep.Tombstone {
		t.Errorf("second erasure: %+v %v", rep, err)
	}
	if found, err := s.Unsuppress("ann@example.test", nil); err != nil || !found {
		t.Errorf("Unsuppress of an erased entry: %v %v", found, err)
	}
}

func testPseudonymKey(t *testing.T, b Backend) {
	dir := t.TempDir()
	s := b.Open(t, dir)
	k1, err := s.PseudonymKey("log")
	if err != nil || len(k1) == 0 {
		t.Fatalf("PseudonymKey: %x %v", k1, err)
	}
	if k2, _ := s.PseudonymKey("other"); slices.Equal(k1, k2) {
		t.Error("two purposes share a key")
	}
	s.Close()
	s = open(t, b, dir)
	if k, _ := s.PseudonymKey("log"); !slices.Equal(k, k1) {
		t.Error("the key changed across a reopen: pseudonyms would not match")
	}
}

func testLeases(t *testing.T, b Backend) {
	st := fresh(t, b)
	s, ok := st.(store.Leases)
	if !ok {
		t.Fatalf("%T does not implement store.Leases", st)
	}
	const ttl = time.Minute
	l, held, err := s.AcquireLease("mailbox:bounces", "node-a", t0, ttl)
	if err != nil || !held || l.Owner != "node-a" || !l.Expires.Equal(t0.Add(ttl)) {
		t.Fatalf("first acquire: %+v %v %v", l, held, err)
	}
	if l, held, _ := s.AcquireLease("mailbox:bounces", "node-b", t0.Add(30*time.Second), ttl); held || l.Owner != "node-a" {
		t.Errorf("b acquired a's live lease: %+v %v", l, held)
	}
	// The holder renews before it runs out.
	if l, held, _ := s.AcquireLease("mailbox:bounces", "node-a", t0.Add(50*time.Second), ttl); !held || !l.Expires.Equal(t0.Add(110*time.Second)) {
		t.Errorf("renewal: %+v %v", l, held)
	}
	if _, held, _ := s.AcquireLease("mailbox:bounces", "node-b", t0.Add(100*time.Second), ttl); held {
		t.Error("b took a renewed lease before it expired")
	}
	// a dies: once the lease expires, b takes over.
	if l, held, _ := s.AcquireLease("mailbox:bounces", "node-b", t0.Add(110*time.Second), ttl); !held || l.Owner != "node-b" {
		t.Errorf("takeover after expiry: %+v %v", l, held)
	}
	if ok, _ := s.ReleaseLease("mailbox:bounces", "node-a"); ok {
		t.Error("a released b's lease")
	}
	if _, held, _ := s.AcquireLease("chore:retention", "node-a", t0, ttl); !held {
		t.Error("another lease's name is not independent")
	}
	if list, err := s.LeaseList(); err != nil || len(list) != 2 || list[0].Name != "chore:retention" || list[1].Owner != "node-b" {
		t.Errorf("LeaseList: %+v %v", list, err)
	}
	if ok, _ := s.ReleaseLease("mailbox:bounces", "node-b"); !ok {
		t.Error("b could not release its lease")
	}
	if _, held, _ := s.AcquireLease("mailbox:bounces", "node-a", t0.Add(111*time.Second), ttl); !held {
		t.Error("a released lease could not be acquired at once")
	}
	if _, _, err := s.AcquireLease("", "node-a", t0, ttl); err == nil {
		t.Error("a lease without a name was acquired")
	}
	// Many contenders at once: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, held, err := s.AcquireLease("chore:sweep", fmt.Sprintf("node-%d", i), t0, ttl)
			if err != nil {
				t.Error(err)
			}
			if held {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if winners != 1 {
		t.Errorf("%d contenders hold one lease", winners)
	}
}

// testLoadRecipients checks the optional store.RecipientsLoader where a
// backend has it: the same answer as LoadRecipient for each, in order.
func testLoadRecipients(t *testing.T, b Backend) {
	s := fresh(t, b)
	l, ok := s.(store.RecipientsLoader)
	if !ok {
		return
	}
	accept(t, s, "m1", []string{"Ann@example.test", "bob@example.test"}, t0, held(t0))
	accept(t, s, "m2", []string{"ann@example.test"}, t0, held(t0.Add(time.Hour)))
	accept(t, s, "m3", []string{"eve@example.test"}, t0, held(t0))
	s.PutProfile("bob@example.test", []byte(`{"b":1}`))
	s.Suppress(false, store.Suppression{Address: "eve@example.test", Reason: "complaint", At: t0})
	rules := store.ForgetRules{Keep: func(store.Envelope, store.Message) bool { return false }, HardStop: func([]byte) bool { return false }}
	if _, err := s.Forget("eve@example.test", t0, rules); err != nil {
		t.Fatal(err)
	}
	rcpts := []string{"bob@example.test", "ANN@example.test", "nobody@example.test", "eve@example.test"}
	got, err := l.LoadRecipients(rcpts)
	if err != nil || len(got) != len(rcpts) {
		t.Fatalf("LoadRecipients: %d, %v", len(got), err)
	}
	for i, rcpt := range rcpts {
		want, err := s.LoadRecipient(rcpt)
		if err != nil {
			t.Fatal(err)
		}
		g := got[i]
		if g.Address != want.Address || !slices.Equal(ids(g.Held), ids(want.Held)) || string(g.Profile) != string(want.Profile) ||
			!g.Forgotten.Equal(want.Forgotten) || len(g.Messages) != len(want.Messages) {
			t.Errorf("%s: LoadRecipients gave %+v, LoadRecipient %+v", rcpt, g, want)
		}
	}
	if len(got[1].Held) != 2 || got[3].Forgotten.IsZero() {
		t.Errorf("ann's held %v, eve's tombstone %v", ids(got[1].Held), got[3].Forgotten)
	}
}

// Two rounds for one recipient in one ApplyDecisionsAll apply in order,
// as two ApplyDecisions would: the second's profile wins, both records
// stay, counters add up.
func testDecisionsAllTwice(t *testing.T, b Backend) {
	s := fresh(t, b)
	accept(t, s, "m1", []string{"ann@example.test"}, t0, held(t0))
	e := mustEnvelope(t, s, "m1-1")
	first := e
	first.Due = t0.Add(time.Minute)
	second := e
	second.State, second.Due = store.StateQueued, t0.Add(time.Hour)
	errs := s.ApplyDecisionsAll([]store.Decided{
		{Recipient: "ann@example.test", Envelopes: []store.Envelope{first}, Profile: []byte(`{"n":1}`),
			Records: map[string][]byte{"m1-1": []byte(`{"round":1}`)}, Counters: map[string]int64{"c": 1}},
		{Recipient: "ann@example.test", Envelopes: []store.Envelope{second}, Profile: []byte(`{"n":2}`),
			Records: map[string][]byte{"m1-1": []byte(`{"round":2}`)}, Counters: map[string]int64{"c": 2}},
	})
	if len(errs) != 2 || errs[0] != nil || errs[1] != nil {
		t.Fatalf("errors %v", errs)
	}
	if got := mustEnvelope(t, s, "m1-1"); got.State != store.StateQueued || !got.Due.Equal(t0.Add(time.Hour)) {
		t.Errorf("envelope after two rounds: %s due %v, want the second round's", got.State, got.Due)
	}
	if p, _ := s.Profile("ann@example.test"); string(p) != `{"n":2}` {
		t.Errorf("profile %s, want the second round's", p)
	}
	if got := records(t, s, "m1-1"); !slices.Equal(got, []string{`{"round":1}`, `{"round":2}`}) {
		t.Errorf("records %v, want both in order", got)
	}
	if c, _ := s.Counters("c"); c["c"] != 3 {
		t.Errorf("counter %d, want 3", c["c"])
	}
}
