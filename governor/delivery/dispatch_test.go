package delivery

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kadenz/store"
)

// countingTransport delivers into memory, so the test below watches the
// dispatcher alone: its claims, its commits and its shutdown.
type countingTransport struct {
	mu   sync.Mutex
	sent map[string]int // envelope ID -> deliveries
	gate chan struct{}  // each Send takes one token; nil: no wait
	// waiting counts the Sends that have begun waiting for the gate.
	waiting atomic.Int32
}

func (t *countingTransport) NewSender() Sender { return countingSender{t} }

type countingSender struct{ t *countingTransport }

func (s countingSender) Send(ctx context.Context, p Parcel) []error {
	if s.t.gate != nil {
		s.t.waiting.Add(1)
		select {
		case <-s.t.gate:
		case <-ctx.Done():
			return p.all(ctx.Err())
		}
	}
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	for _, e := range p.Envelopes {
		s.t.sent[e.ID]++
	}
	return make([]error, len(p.Envelopes))
}

func (countingSender) Close() error { return nil }

func newTestQueue(t *testing.T, tr Transport, concurrency int) (*Queue, *store.DB) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "kadenz.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q, err := New(Options{DB: db, Transport: tr, Concurrency: concurrency,
		RetryInitial: time.Minute, RetryMax: time.Hour, MaxQueueLifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return q, db
}

func acceptN(t *testing.T, db *store.DB, n int) {
	t.Helper()
	for i := range n {
		msg := store.Message{ID: fmt.Sprintf("m%04d", i), From: "a@x.test", Received: time.Now()}
		if _, err := db.Accept(msg, []byte("Subject: x\r\n\r\nhi\r\n"), []string{"b@y.test"}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

func waitState(t *testing.T, db *store.DB, state store.State, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		counts, err := db.CountByState()
		if err != nil {
			t.Fatal(err)
		}
		if counts[state] == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want %d (all: %v)", state, counts[state], n, counts)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The dispatcher claims ahead and records outcomes with its next claim, so
// a backlog costs the store about one commit per Concurrency messages, not
// one or two per message; and every envelope is delivered exactly once.
func TestDispatcherBatchesCommits(t *testing.T) {
	const n, concurrency = 240, 8
	tr := &countingTransport{sent: map[string]int{}}
	q, db := newTestQueue(t, tr, concurrency)
	acceptN(t, db, n)
	before, _ := db.CommitStats()
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	waitState(t, db, store.StateDelivered, n)
	if err := q.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, _ := db.CommitStats()
	// Each claim takes at least Concurrency envelopes while a backlog
	// lasts, and outcomes ride along or go Concurrency at a time: about
	// 2n/Concurrency commits at most, plus Recover and the tail.
	if commits := after - before; commits > 2*n/concurrency+4 {
		t.Errorf("%d commits for %d deliveries with %d workers, want at most %d", commits, n, concurrency, 2*n/concurrency+4)
	}
	if len(tr.sent) != n {
		t.Errorf("%d envelopes delivered, want %d", len(tr.sent), n)
	}
	for id, k := range tr.sent {
		if k != 1 {
			t.Errorf("%s delivered %d times", id, k)
		}
	}
}

// Envelopes claimed ahead but not yet sent when the queue stops are due
// again, not left in flight.
func TestDispatcherPutsBackUnsentClaimsAtStop(t *testing.T) {
	const n, concurrency = 40, 4
	tr := &countingTransport{sent: map[string]int{}, gate: make(chan struct{})}
	q, db := newTestQueue(t, tr, concurrency)
	acceptN(t, db, n)
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	// Every worker blocks in Send; the dispatcher has claimed one more
	// envelope per worker behind them.
	waitState(t, db, store.StateDelivering, 2*concurrency)
	// A claim is handed to a worker a moment before its Send begins: wait
	// until all of them are in Send, or a stop can catch one in between.
	for deadline := time.Now().Add(10 * time.Second); tr.waiting.Load() < concurrency; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d workers reached Send", tr.waiting.Load(), concurrency)
		}
	}
	// Stop the dispatcher first (what Shutdown does before it waits), so
	// that it hands out nothing more, then let the workers finish.
	q.stopOnce.Do(func() { close(q.stop) })
	close(tr.gate)
	if err := q.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	counts, err := db.CountByState()
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.StateDelivering] != 0 || counts[store.StateDelivered] != concurrency || counts[store.StateQueued] != n-concurrency {
		t.Errorf("after stop: %v; want %d delivered, none in flight, the rest queued", counts, concurrency)
	}
	if len(tr.sent) != concurrency {
		t.Errorf("%d sent, want %d (one per worker)", len(tr.sent), concurrency)
	}
}
