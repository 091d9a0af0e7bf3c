package store

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// appendMark is a FeedbackChange that appends mark to the recipient's
// stored bytes, so the stored result shows which changes were applied, in
// what order, and to what.
func appendMark(id, rcpt, mark string) FeedbackChange {
	return FeedbackChange{EventID: id, Recipient: rcpt, Apply: func(old []byte) (FeedbackOutcome, error) {
		return FeedbackOutcome{Profile: append(old, mark...)}, nil
	}}
}

// Changes are computed before the write transaction (precompute); the
// result must be what computing them inside it gives, also when an earlier
// change of the batch turns out to be a duplicate, or another writer
// changed the profile in between.
func TestApplyFeedbackPrecomputeMatchesSerialApply(t *testing.T) {
	db, _ := openTest(t)
	if _, _, err := db.ApplyFeedback(t0, []FeedbackChange{appendMark("e1", "ann@x.test", "a")}); err != nil {
		t.Fatal(err)
	}
	// e1 again is a duplicate: the batch's later change to the same
	// recipient was precomputed on top of it and must be computed again.
	applied, dups, err := db.ApplyFeedback(t0, []FeedbackChange{
		appendMark("e1", "ann@x.test", "a"),
		appendMark("e2", "Ann@X.test", "b"),
		appendMark("e3", "ann@x.test", "c"),
		appendMark("e3", "ann@x.test", "c"),
	})
	if err != nil || applied != 2 || dups != 2 {
		t.Fatalf("applied %d, duplicates %d, %v; want 2, 2", applied, dups, err)
	}
	if p, err := db.Profile("ann@x.test"); err != nil || string(p) != "abc" {
		t.Fatalf("profile %q, %v; want \"abc\"", p, err)
	}

	// A profile written by someone else after the precompute: the change
	// runs again on what is stored.
	stale := appendMark("", "bob@x.test", "z")
	pre, _ := db.precompute(t0, []FeedbackChange{stale})
	if err := db.PutProfile("bob@x.test", []byte("fresh-")); err != nil {
		t.Fatal(err)
	}
	err = db.update(func(tx *bolt.Tx) error { return applyChange(tx, t0, &stale, &pre[0]) })
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := db.Profile("bob@x.test"); string(p) != "fresh-z" {
		t.Errorf("profile %q: the change was applied to the stale profile, want \"fresh-z\"", p)
	}
}

// The event ID keys computed for a batch (one keyed hash, one buffer) are
// the bytes erasedEventKey and eventIDValue give each ID alone: what
// erasure and earlier releases wrote must still be found.
func TestEventIDKeysMatchOneByOne(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	changes := []FeedbackChange{
		{EventID: "e1", Recipient: "Ann@Example.test"},
		{Recipient: "no-id@example.test"},
		{EventID: "e2", Recipient: " ÉMILE@exemple.test "},
		{EventID: "e3"},
		{EventID: strings.Repeat("x", 200), Recipient: "bob@example.test"},
	}
	pre := make([]precomputed, len(changes))
	eventIDKeys(t0, secret, changes, pre)
	for i, c := range changes {
		got := pre[i].id
		if c.EventID == "" {
			if got.plain != nil || got.erased != nil || got.value != nil {
				t.Errorf("change %d has no event ID, got keys %+v", i, got)
			}
			continue
		}
		if string(got.plain) != c.EventID {
			t.Errorf("change %d: plain key %q", i, got.plain)
		}
		if want := erasedEventKey(secret, c.EventID); !bytes.Equal(got.erased, want) {
			t.Errorf("change %d: erased key %x, want %x", i, got.erased, want)
		}
		if want := eventIDValue(t0, secret, c.Recipient); !bytes.Equal(got.value, want) {
			t.Errorf("change %d: value %x, want %x", i, got.value, want)
		}
	}
}

// noChange is a FeedbackChange about rcpt that writes nothing but its ID.
func noChange(id, rcpt string) FeedbackChange {
	return FeedbackChange{EventID: id, Recipient: rcpt, Apply: func([]byte) (FeedbackOutcome, error) { return FeedbackOutcome{}, nil }}
}

// Writers racing with the same new ID: exactly one applies it.
func TestEventIDRacingWriters(t *testing.T) {
	db, _ := openTest(t)
	for round := range 20 {
		id := fmt.Sprint("race-", round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		total := 0
		for w := range 6 {
			wg.Go(func() {
				now := t0.Add(time.Duration(w) * time.Second)
				a, _, err := db.ApplyFeedback(now, []FeedbackChange{noChange(id, "ann@x.test"), noChange(fmt.Sprint(id, "-", w), "bob@x.test")})
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				total += a
				mu.Unlock()
			})
		}
		wg.Wait()
		if total != 1+6 {
			t.Fatalf("round %d: %d applied, want 7 (the shared ID once, each writer's own)", round, total)
		}
	}
}
