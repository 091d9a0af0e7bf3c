package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCountByState measures what one /metrics scrape costs when the
// queue-depth cache is cold: a walk over every envelope.
func BenchmarkCountByState(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "k.db"), Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
			body := make([]byte, 2000)
			rcpts := make([]string, 10)
			for i := range n / 10 {
				for j := range rcpts {
					rcpts[j] = fmt.Sprintf("r%d-%d@example.test", i, j)
				}
				if _, err := db.Accept(Message{ID: fmt.Sprintf("m%08d", i), From: "a@x.test"}, body, rcpts, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := db.walkStateCounts(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestStateCountsFollowCommits checks the kept counts against a full walk
// after every kind of write, a batch with a failing write and a reopen.
func TestStateCountsFollowCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		walked, err := db.walkStateCounts()
		if err != nil {
			t.Fatal(err)
		}
		kept := db.StateCounts()
		if fmt.Sprint(kept) != fmt.Sprint(walked) {
			t.Fatalf("%s: kept counts %v, a walk finds %v", when, kept, walked)
		}
	}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	envs, err := db.AcceptWith(Message{ID: "m1"}, []byte("x"), []string{"a@x.test", "b@x.test", "c@x.test"}, now,
		func(i int, e *Envelope) {
			if i == 2 {
				e.State = StateHeld
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	check("after accept")
	if _, err := db.Claim(now, 1); err != nil {
		t.Fatal(err)
	}
	check("after claim")
	envs[1].State = StateDelivered
	if err := db.Update(envs[1]); err != nil {
		t.Fatal(err)
	}
	check("after update")
	envs[2].State = StateSuppressed
	if err := db.ApplyDecisions(Decided{Recipient: "c@x.test", Envelopes: []Envelope{envs[2]}}); err != nil {
		t.Fatal(err)
	}
	check("after a decision")
	// Concurrent writers share a transaction; a duplicate ID fails its
	// write, the batch is rolled back and the others run again alone.
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			_, err := db.Accept(Message{ID: fmt.Sprintf("n%d", i%10)}, []byte("x"), []string{"d@x.test"}, now)
			errs <- err
		}()
	}
	failed := 0
	for range 20 {
		if <-errs != nil {
			failed++
		}
	}
	if failed != 10 {
		t.Fatalf("%d duplicate accepts failed, want 10", failed)
	}
	check("after a batch with failing writes")
	if _, err := db.Recover(now); err != nil {
		t.Fatal(err)
	}
	check("after recover")
	if _, err := db.Forget("a@x.test", now, ForgetRules{Keep: func(Envelope, Message) bool { return false }, HardStop: func([]byte) bool { return false }}); err != nil {
		t.Fatal(err)
	}
	check("after forget")
	db.Close()
	if db, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check("after reopening")
}
