package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTest(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kadenz.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestAcceptStoresBodyOnceAndEnvelopePerRecipient(t *testing.T) {
	db, _ := openTest(t)
	envs, err := db.Accept(Message{ID: "m1", From: "crm@shop.test"}, []byte("body"), []string{"a@x.test", "b@x.test"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(envs) != 2 || envs[0].ID != "m1-1" || envs[1].ID != "m1-2" || envs[1].To != "b@x.test" {
		t.Fatalf("envelopes: %+v", envs)
	}
	for _, e := range envs {
		got, err := db.Envelope(e.ID)
		if err != nil || got.State != StateQueued || !got.Due.Equal(t0) {
			t.Errorf("stored envelope %+v, %v", got, err)
		}
	}
	if b, err := db.Body("m1"); err != nil || string(b) != "body" {
		t.Errorf("body %q, %v", b, err)
	}
	if _, err := db.Accept(Message{ID: "m1"}, nil, []string{"c@x.test"}, t0); err == nil {
		t.Error("a second message with the same ID was accepted")
	}
	if _, err := db.Body("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown body: %v", err)
	}
}

func TestClaimTakesOnlyDueEnvelopesInOrder(t *testing.T) {
	db, _ := openTest(t)
	for i, due := range []time.Time{t0.Add(time.Minute), t0, t0.Add(-time.Minute)} {
		id := fmt.Sprintf("m%d", i)
		if _, err := db.AcceptWith(Message{ID: id}, nil, []string{"a@x.test"}, t0, func(_ int, e *Envelope) { e.Due = due }); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := db.Claim(t0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 2 || claimed[0].ID != "m2-1" || claimed[1].ID != "m1-1" {
		t.Fatalf("claimed %+v, want m2-1 then m1-1", claimed)
	}
	if claimed[0].State != StateDelivering {
		t.Errorf("claimed state %s", claimed[0].State)
	}
	if again, _ := db.Claim(t0, 10); len(again) != 0 {
		t.Errorf("claimed twice: %+v", again)
	}
	next, ok, err := db.NextDue()
	if err != nil || !ok || !next.Equal(t0.Add(time.Minute)) {
		t.Errorf("NextDue = %v %v %v", next, ok, err)
	}
	if limited, _ := db.Claim(t0.Add(time.Hour), 0); len(limited) != 0 {
		t.Errorf("limit 0 claimed %d", len(limited))
	}
}

func TestUpdateMovesIndexes(t *testing.T) {
	db, _ := openTest(t)
	db.Accept(Message{ID: "m"}, nil, []string{"a@x.test"}, t0)
	claimed, _ := db.Claim(t0, 1)
	e := claimed[0]
	e.State, e.Due, e.Attempts, e.LastError = StateDeferred, t0.Add(time.Hour), 1, "451 later"
	if err := db.Update(e); err != nil {
		t.Fatal(err)
	}
	if c, _ := db.Claim(t0.Add(time.Minute), 10); len(c) != 0 {
		t.Error("deferred envelope claimed before its due time")
	}
	if c, _ := db.Claim(t0.Add(time.Hour), 10); len(c) != 1 {
		t.Error("deferred envelope not claimed at its due time")
	}
	e.State = StateDelivered
	if err := db.Update(e); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.NextDue(); ok {
		t.Error("a delivered envelope is still scheduled")
	}
	if n, _ := db.Recover(t0); n != 0 {
		t.Errorf("recovered %d after final state", n)
	}
	got, _ := db.Envelope("m-1")
	if got.State != StateDelivered || !got.Due.IsZero() || got.Attempts != 1 {
		t.Errorf("final envelope %+v", got)
	}
}

func TestRecoverAfterReopen(t *testing.T) {
	db, path := openTest(t)
	db.Accept(Message{ID: "m"}, nil, []string{"a@x.test"}, t0)
	db.Accept(Message{ID: "n"}, nil, []string{"b@x.test"}, t0)
	if c, _ := db.Claim(t0, 1); len(c) != 1 {
		t.Fatal("claim failed")
	}
	db.Close()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := db.Recover(t0.Add(time.Second))
	if err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want 1", n, err)
	}
	if c, _ := db.Claim(t0.Add(time.Second), 10); len(c) != 2 {
		t.Errorf("after recovery %d due, want 2", len(c))
	}
}

func TestSchemaVersionMismatchRefused(t *testing.T) {
	db, path := openTest(t)
	db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte("99"))
	})
	db.Close()
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("opening a newer schema: %v", err)
	}
}

func TestSecondOpenSaysLocked(t *testing.T) {
	_, path := openTest(t)
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second open: %v", err)
	}
}

// Many concurrent writers share commits, and a failing write in a batch
// does not take its neighbours down with it.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	db, _ := openTest(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("m%03d", i)
			if i%10 == 0 {
				id = "dup" // all but one of these collide
			}
			_, errs[i] = db.Accept(Message{ID: id}, []byte(id), []string{"a@x.test"}, t0)
		}()
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			if i%10 != 0 {
				t.Errorf("writer %d failed: %v", i, err)
			}
		}
	}
	if failed != n/10-1 {
		t.Errorf("%d writers failed, want %d (the duplicate IDs but one)", failed, n/10-1)
	}
	counts, _ := db.CountByState()
	if counts[StateQueued] != n-failed {
		t.Errorf("%d envelopes stored, want %d", counts[StateQueued], n-failed)
	}
}

func BenchmarkAcceptParallel(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "kadenz.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	body := []byte(strings.Repeat("x", 5000))
	var seq sync.Mutex
	i := 0
	b.SetParallelism(10) // 10 x GOMAXPROCS writers, like many SMTP sessions
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			seq.Lock()
			i++
			id := fmt.Sprintf("m%09d", i)
			seq.Unlock()
			if _, err := db.Accept(Message{ID: id}, body, []string{"a@x.test"}, t0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	commits, writes := db.CommitStats()
	b.ReportMetric(float64(writes)/float64(commits), "writes/commit")
}

func TestSettleRecordsOutcomesAndClaimsInOneTransaction(t *testing.T) {
	db, _ := openTest(t)
	for _, id := range []string{"m1", "m2"} {
		if _, err := db.Accept(Message{ID: id}, nil, []string{"a@x.test"}, t0); err != nil {
			t.Fatal(err)
		}
	}
	first, err := db.Settle(nil, t0, 1)
	if err != nil || len(first) != 1 || first[0].ID != "m1-1" {
		t.Fatalf("first claim: %+v, %v", first, err)
	}
	done := first[0]
	done.State, done.Attempts = StateDelivered, 1
	second, err := db.Settle([]Envelope{done}, t0, 5)
	if err != nil || len(second) != 1 || second[0].ID != "m2-1" {
		t.Fatalf("second round: %+v, %v", second, err)
	}
	if got, _ := db.Envelope("m1-1"); got.State != StateDelivered || got.Attempts != 1 {
		t.Errorf("outcome not recorded: %+v", got)
	}
	// An outcome for an envelope that is gone fails the round as a whole:
	// nothing is claimed, nothing half-written.
	m2 := second[0]
	m2.State = StateDelivered
	ghost := Envelope{ID: "gone-1", State: StateDelivered}
	if _, err := db.Settle([]Envelope{m2, ghost}, t0, 5); !errors.Is(err, ErrNotFound) {
		t.Fatalf("settle with an unknown envelope: %v", err)
	}
	if got, _ := db.Envelope("m2-1"); got.State != StateDelivering {
		t.Errorf("half-applied round: m2-1 is %s", got.State)
	}
	if counts, _ := db.CountByState(); counts[StateDelivering] != 1 || counts[StateDelivered] != 1 {
		t.Errorf("counts after the failed round: %v", counts)
	}
}

func TestReviewIsIndexedAndTransitionIsAllOrNothing(t *testing.T) {
	db, _ := openTest(t)
	if _, err := db.Accept(Message{ID: "m1"}, nil, []string{"a@x.test", "b@x.test"}, t0); err != nil {
		t.Fatal(err)
	}
	toReview := func(e *Envelope, _ []byte) ([]byte, []byte, error) {
		e.State, e.Due = StateReview, t0
		return nil, []byte(`{"action":"review"}`), nil
	}
	// One unknown ID: nothing changes.
	if _, err := db.Transition([]string{"m1-1", "nope"}, toReview); !errors.Is(err, ErrNotFound) {
		t.Fatalf("transition with an unknown ID: %v", err)
	}
	if e, _ := db.Envelope("m1-1"); e.State != StateQueued {
		t.Fatalf("m1-1 changed by a failed transition: %s", e.State)
	}
	if _, err := db.Transition([]string{"m1-1"}, toReview); err != nil {
		t.Fatal(err)
	}
	var inReview []string
	db.EnvelopesInState(StateReview, func(e Envelope) bool { inReview = append(inReview, e.ID); return true })
	if len(inReview) != 1 || inReview[0] != "m1-1" {
		t.Errorf("review index: %v", inReview)
	}
	if due, ok, _ := db.NextDue(); !ok || !due.Equal(t0) {
		t.Errorf("next due %v %v; want only m1-2 at t0", due, ok)
	}
	if c, _ := db.Claim(t0, 10); len(c) != 1 || c[0].ID != "m1-2" {
		t.Errorf("claimed %+v; an envelope in review must not be delivered", c)
	}
	if recs, _ := db.Decisions("m1-1"); string(recs) != `[{"action":"review"}]` {
		t.Errorf("records %s", recs)
	}
}

func TestCountersAddUp(t *testing.T) {
	db, _ := openTest(t)
	for range 3 {
		if err := db.ApplyDecisions(Decided{Recipient: "a@x.test", Counters: map[string]int64{"c/x": 2, "c/y": 1}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Counters("c/x", "c/y", "c/z")
	if err != nil || got["c/x"] != 6 || got["c/y"] != 3 || got["c/z"] != 0 {
		t.Errorf("counters %v, %v", got, err)
	}
}

// Several recipients' decision rounds share one commit, each still atomic:
// a round naming an unknown envelope fails alone and writes nothing, the
// others are written whole.
func TestApplyDecisionsAllSharesACommitAndIsolatesFailures(t *testing.T) {
	db, _ := openTest(t)
	heldRound := func(i int) Decided {
		id, rcpt := fmt.Sprintf("m%02d", i), fmt.Sprintf("r%02d@x.test", i)
		envs, err := db.AcceptWith(Message{ID: id}, nil, []string{rcpt}, t0, func(_ int, e *Envelope) {
			e.State, e.Due = StateHeld, t0
		})
		if err != nil {
			t.Fatal(err)
		}
		e := envs[0]
		e.State, e.Due = StateQueued, t0.Add(time.Hour)
		return Decided{
			Recipient: rcpt, Profile: []byte(`{"n":` + fmt.Sprint(i) + `}`), Envelopes: []Envelope{e},
			Records: map[string][]byte{e.ID: []byte(`{"action":"release"}`)}, Counters: map[string]int64{"released": 1},
		}
	}
	check := func(r Decided, written bool) {
		t.Helper()
		e, _ := db.Envelope(r.Envelopes[0].ID)
		p, _ := db.Profile(r.Recipient)
		recs, _ := db.Decisions(e.ID)
		if !written {
			if e.State != StateHeld || p != nil || recs != nil {
				t.Errorf("a failed round left %s, profile %s, records %s", e.State, p, recs)
			}
			return
		}
		if e.State != StateQueued || string(p) != string(r.Profile) || string(recs) != `[{"action":"release"}]` {
			t.Errorf("%s: %s, profile %s, records %s", r.Recipient, e.State, p, recs)
		}
	}

	const n = 40
	var good []Decided
	for i := range n {
		good = append(good, heldRound(i))
	}
	before, _ := db.CommitStats()
	for i, err := range db.ApplyDecisionsAll(good) {
		if err != nil {
			t.Errorf("round %d: %v", i, err)
		}
	}
	if after, _ := db.CommitStats(); after-before != 1 {
		t.Errorf("%d commits for %d rounds, want 1", after-before, n)
	}
	for _, r := range good {
		check(r, true)
	}

	// The middle round also names an envelope that does not exist.
	mixed := []Decided{heldRound(n), heldRound(n + 1), heldRound(n + 2)}
	mixed[1].Envelopes = append(mixed[1].Envelopes, Envelope{ID: "nope-1", State: StateQueued})
	errs := db.ApplyDecisionsAll(mixed)
	if errs[0] != nil || !errors.Is(errs[1], ErrNotFound) || errs[2] != nil {
		t.Errorf("errors %v, want only the middle round's", errs)
	}
	check(mixed[0], true)
	check(mixed[1], false)
	check(mixed[2], true)
	if c, _ := db.Counters("released"); c["released"] != n+2 {
		t.Errorf("counter %d, want %d", c["released"], n+2)
	}
}

// A claim does not split a message's recipients: past the limit it takes
// the rest of the last message's envelopes due at the same time, so that
// delivery can send them in one transaction; the next message waits.
func TestClaimTakesAMessagesRecipientsTogether(t *testing.T) {
	db, _ := openTest(t)
	var rcpts []string
	for i := range 12 { // IDs m-1 .. m-12: "m-10" sorts before "m-2"
		rcpts = append(rcpts, fmt.Sprintf("r%d@x.test", i))
	}
	express := func(_ int, e *Envelope) { e.Express = true }
	if _, err := db.AcceptWith(Message{ID: "m"}, nil, rcpts, t0, express); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AcceptWith(Message{ID: "n"}, nil, []string{"a@x.test"}, t0, express); err != nil {
		t.Fatal(err)
	}
	// Outside the express lane, the limit is the limit.
	if _, err := db.Accept(Message{ID: "o"}, nil, rcpts, t0.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	c, err := db.Claim(t0, 2)
	if err != nil || len(c) != 12 {
		t.Fatalf("claim with limit 2: %d envelopes (%v), want all 12 of message m", len(c), err)
	}
	for _, e := range c {
		if e.MessageID != "m" {
			t.Errorf("claimed %s of another message", e.ID)
		}
	}
	if c, _ := db.Claim(t0, 2); len(c) != 2 || c[0].MessageID != "n" || c[1].MessageID != "o" {
		t.Errorf("second claim: %v, want n's one envelope, then one of o's", c)
	}
}

// Several messages may carry one Message-ID (a resend, a report quoting
// it); all are found, in order of arrival, and so is one indexed by an
// older kadenz (Message-ID -> message ID, one only).
func TestMessagesByHeaderID(t *testing.T) {
	db, _ := openTest(t)
	for _, id := range []string{"m1", "m2"} {
		if _, err := db.Accept(Message{ID: id, HeaderID: "x@example.test"}, nil, []string{"a@x.test"}, t0); err != nil {
			t.Fatal(err)
		}
	}
	db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHeaderIDs).Put([]byte("old@example.test"), []byte("m0"))
	})
	if ids, err := db.MessagesByHeaderID("x@example.test"); err != nil || fmt.Sprint(ids) != "[m1 m2]" {
		t.Errorf("MessagesByHeaderID = %v, %v; want [m1 m2]", ids, err)
	}
	if id, err := db.MessageByHeaderID("x@example.test"); err != nil || id != "m2" {
		t.Errorf("MessageByHeaderID = %q, %v; want the latest, m2", id, err)
	}
	if id, err := db.MessageByHeaderID("old@example.test"); err != nil || id != "m0" {
		t.Errorf("an old-layout entry: %q, %v", id, err)
	}
	if _, err := db.MessagesByHeaderID("x@example"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a prefix of a Message-ID matched: %v", err)
	}
}

// A version-2 file's Message-ID entries are rewritten in the version-3
// layout and still found.
func TestSchemaUpgradeHeaderIDs(t *testing.T) {
	db, path := openTest(t)
	db.bolt.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketHeaderIDs).Put([]byte("v2@example.test"), []byte("m0")); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte("2"))
	})
	db.Close()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("opening a version-2 file: %v", err)
	}
	defer db.Close()
	db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketHeaderIDs).Get([]byte("v2@example.test")); v != nil {
			t.Errorf("old-layout entry left after the upgrade")
		}
		return nil
	})
	if ids, err := db.MessagesByHeaderID("v2@example.test"); err != nil || fmt.Sprint(ids) != "[m0]" {
		t.Errorf("after the upgrade: %v, %v", ids, err)
	}
}
