package delivery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kadenz/store"
)

func TestHandoffBounds(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	released := map[string]int{}
	done := func(id string) func() { return func() { released[id]++ } }
	msg := func(id string) store.Message { return store.Message{ID: id} }

	h := newHandoff(100, time.Minute)
	if !h.offer(msg("a"), make([]byte, 40), done("a"), t0) || !h.offer(msg("b"), make([]byte, 40), done("b"), t0) {
		t.Fatal("offers within the bound refused")
	}
	if h.offer(msg("a"), make([]byte, 1), done("a2"), t0) {
		t.Error("a second offer under one ID taken")
	}
	if h.offer(msg("big"), make([]byte, 101), done("big"), t0) || h.offer(msg("empty"), nil, done("empty"), t0) {
		t.Error("a body over the bound, or an empty one, taken")
	}
	// c does not fit beside a and b: the oldest (a) makes room.
	if !h.offer(msg("c"), make([]byte, 40), done("c"), t0) {
		t.Fatal("c refused")
	}
	if _, ok := h.take("a"); ok || released["a"] != 1 {
		t.Errorf("a still held, or not released once (%d)", released["a"])
	}
	o, ok := h.take("b")
	if !ok || o.msg.ID != "b" || len(o.body) != 40 {
		t.Fatalf("take b: %v %+v", ok, o)
	}
	if released["b"] != 0 {
		t.Error("b released by take: the taker releases it")
	}
	o.release()
	if _, ok := h.take("b"); ok {
		t.Error("b taken twice")
	}
	if n, b := h.held(); n != 1 || b != 40 {
		t.Errorf("held %d messages, %d bytes; want c alone", n, b)
	}
	// Past the age bound, c goes at the next offer.
	if !h.offer(msg("d"), make([]byte, 10), done("d"), t0.Add(time.Minute)) {
		t.Fatal("d refused")
	}
	if released["c"] != 1 {
		t.Error("c, older than the age bound, not let go")
	}
	h.drain()
	if released["d"] != 1 {
		t.Error("drain did not release d")
	}
	if n, b := h.held(); n != 0 || b != 0 {
		t.Errorf("after drain: %d messages, %d bytes", n, b)
	}
	for id, n := range released {
		if n != 1 {
			t.Errorf("%s released %d times", id, n)
		}
	}
}

func TestHandoffCountBound(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	h := newHandoff(1<<30, time.Hour)
	var dropped atomic.Int32
	for i := range 3 * handoffCount {
		id := fmt.Sprint(i)
		h.offer(store.Message{ID: id}, []byte("x"), func() { dropped.Add(1) }, t0)
		if i%2 == 0 { // half are taken, and stay in the list until its front
			o, _ := h.take(id)
			o.release()
		}
	}
	if n := len(h.order); n > handoffCount {
		t.Errorf("offer list grew to %d, bound %d", n, handoffCount)
	}
	if n, _ := h.held(); n > handoffCount {
		t.Errorf("%d held", n)
	}
}

// recordingTransport keeps what each envelope was sent with.
type recordingTransport struct {
	mu   sync.Mutex
	sent map[string][]byte // envelope ID -> the message as sent
	from map[string]string
}

func (t *recordingTransport) NewSender() Sender { return recordingSender{t} }

type recordingSender struct{ t *recordingTransport }

func (s recordingSender) Send(_ context.Context, p Parcel) []error {
	var b bytes.Buffer
	if err := p.copyMessage(&b); err != nil {
		return p.all(err)
	}
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	for _, e := range p.Envelopes {
		s.t.sent[e.ID] = b.Bytes()
		s.t.from[e.ID] = p.Message.From + "|" + p.Message.Ret + "|" + p.Message.EnvID
	}
	return make([]error, len(p.Envelopes))
}

func (recordingSender) Close() error { return nil }

// readCounter counts the queue's reads of messages and bodies.
type readCounter struct {
	*store.DB
	messages, bodies atomic.Int32
}

func (c *readCounter) Message(id string) (store.Message, error) {
	c.messages.Add(1)
	return c.DB.Message(id)
}

func (c *readCounter) Body(id string) ([]byte, error) {
	c.bodies.Add(1)
	return c.DB.Body(id)
}

// TestHandoffDeliversWhatTheStoreHolds sends some messages from the
// hand-off and the rest read back from the store, and checks that each
// went out exactly as the store holds it, and that only the offered ones
// skipped the reads.
func TestHandoffDeliversWhatTheStoreHolds(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "kadenz.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rc := &readCounter{DB: db}
	tr := &recordingTransport{sent: map[string][]byte{}, from: map[string]string{}}
	q, err := New(Options{DB: rc, Transport: tr, Concurrency: 3,
		RetryInitial: time.Minute, RetryMax: time.Hour, MaxQueueLifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var recycled atomic.Int32
	zone := time.FixedZone("CET", 3600)
	offered := 0
	for i := range n {
		id := fmt.Sprintf("m%04d", i)
		msg := store.Message{ID: id, From: fmt.Sprintf("s%d@x.test", i), Received: time.Now().In(zone),
			Class: "transactional", Ret: "HDRS", EnvID: "env" + id}
		// Bodies that compress and bodies that do not.
		body := []byte(fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, bytes.Repeat([]byte{byte('a' + i%26)}, 700*(i%3))))
		if i%4 == 3 && len(body) > 40 {
			for j := range body[20:] {
				body[20+j] = byte(j*7919 + i)
			}
		}
		rcpts := []string{"b@y.test"}
		if i%5 == 0 {
			rcpts = append(rcpts, "c@y.test", "d@y.test")
		}
		if i%2 == 0 { // the odd ones are read back from the store
			if !q.Offer(store.AsStored(msg), body, func() { recycled.Add(1) }) {
				t.Fatalf("offer of %s refused", id)
			}
			offered++
		}
		if _, err := db.AcceptWith(msg, body, rcpts, time.Now(), func(_ int, e *store.Envelope) { e.Express = true }); err != nil {
			t.Fatal(err)
		}
		q.Kick()
	}
	total := n + 2*((n+4)/5)
	waitState(t, db, store.StateDelivered, total)
	if err := q.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = db.Envelopes(func(e store.Envelope) bool {
		want, err := db.Body(e.MessageID)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := db.Message(e.MessageID)
		if got := tr.sent[e.ID]; !bytes.Equal(got, want) {
			t.Errorf("%s sent as %q, stored as %q", e.ID, got, want)
		}
		if got, want := tr.from[e.ID], m.From+"|"+m.Ret+"|"+m.EnvID; got != want {
			t.Errorf("%s sent with %q, stored %q", e.ID, got, want)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	// The dispatcher may claim an offered message in two parcels (then the
	// second reads the store), so the reads are at least the unoffered ones
	// and at most one per parcel.
	if got := int(rc.bodies.Load()); got < n-offered || got >= n {
		t.Errorf("%d bodies read back for %d messages, %d of them offered", got, n, offered)
	}
	if int(recycled.Load()) != offered {
		t.Errorf("%d offered bodies given back, want %d", recycled.Load(), offered)
	}
	if m, b := q.handoff.held(); m != 0 || b != 0 {
		t.Errorf("hand-off still holds %d messages (%d bytes)", m, b)
	}
}

// TestWithdrawnOfferIsNotDelivered: an offer withdrawn (its acceptance
// failed) is neither delivered nor released, and the queue delivers only
// what the store lists.
func TestWithdrawnOfferIsNotDelivered(t *testing.T) {
	tr := &recordingTransport{sent: map[string][]byte{}, from: map[string]string{}}
	q, db := newTestQueue(t, tr, 2)
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	released := false
	if !q.Offer(store.Message{ID: "gone"}, []byte("Subject: never\r\n\r\n"), func() { released = true }) {
		t.Fatal("offer refused")
	}
	if !q.Withdraw("gone") || q.Withdraw("gone") {
		t.Error("withdraw: want true once, then false")
	}
	acceptN(t, db, 3)
	q.Kick()
	waitState(t, db, store.StateDelivered, 3)
	if err := q.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if released || len(tr.sent) != 3 {
		t.Errorf("released %v, sent %d (want 3, all from the store)", released, len(tr.sent))
	}
	if q.Offer(store.Message{ID: "late"}, []byte("x"), nil) {
		t.Error("offer taken after shutdown")
	}
}

// discardSender accepts every parcel after reading its message.
type discardSender struct{}

func (discardSender) Send(_ context.Context, p Parcel) []error {
	if err := p.copyMessage(io.Discard); err != nil {
		return p.all(err)
	}
	return make([]error, len(p.Envelopes))
}

func (discardSender) Close() error { return nil }

// BenchmarkDeliverFirstAttempt is one transactional message's first
// attempt up to the upstream (a sender that only reads it): the message
// and its body read back from the store, or taken from the hand-off. The
// body is 5 KB of text that S2 shrinks to about half, as mail does.
//
//	go test -run '^$' -bench DeliverFirstAttempt -benchmem ./governor/delivery/
func BenchmarkDeliverFirstAttempt(b *testing.B) {
	db, err := store.Open(filepath.Join(b.TempDir(), "kadenz.db"), store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	q, err := New(Options{DB: db, Transport: &recordingTransport{}, Concurrency: 1,
		RetryInitial: time.Minute, RetryMax: time.Hour, MaxQueueLifetime: 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	var body []byte
	body = append(body, "From: shop@x.test\r\nTo: ann@y.test\r\nSubject: Your order\r\n\r\n"...)
	for i := 0; len(body) < 5000; i++ {
		body = fmt.Appendf(body, "Item %d: %x, %d pieces at %d.%02d EUR, shipped to warehouse %d\r\n",
			i, uint64(i)*0x9e3779b97f4a7c15, i%7+1, 3+i*13%90, i*29%100, i%5)
	}
	msg := store.Message{ID: "m1", From: "shop@x.test", Received: time.Now(), Class: "transactional", Size: len(body)}
	envs, err := db.AcceptWith(msg, body, []string{"ann@y.test"}, time.Now(), func(_ int, e *store.Envelope) { e.Express = true })
	if err != nil {
		b.Fatal(err)
	}
	stored := store.AsStored(msg)
	for _, way := range []string{"store", "handoff"} {
		b.Run(way, func(b *testing.B) {
			for b.Loop() {
				if way == "handoff" && !q.Offer(stored, body, nil) {
					b.Fatal("offer refused")
				}
				if r := q.deliver(discardSender{}, envs); r.errs[0] != nil {
					b.Fatal(r.errs[0])
				}
			}
		})
	}
}

// acceptBorn stores a message's envelopes claimed, as intake does after a
// Reserve, and hands them over; false if Reserve said no (then they are
// stored due, as usual).
func acceptBorn(t *testing.T, q *Queue, db *store.DB, id string, rcpts ...string) bool {
	t.Helper()
	born := q.Reserve()
	envs, err := db.AcceptWith(store.Message{ID: id, From: "a@x.test", Received: time.Now()}, []byte("Subject: "+id+"\r\n\r\nhi\r\n"),
		rcpts, time.Now(), func(_ int, e *store.Envelope) {
			e.Express = true
			if born {
				e.State = store.StateDelivering
			}
		})
	if err != nil {
		if born {
			q.Unreserve()
		}
		t.Fatal(err)
	}
	if born {
		q.Born(envs)
	}
	q.Kick()
	return born
}

// Envelopes stored claimed go to the workers without a claim, each once;
// no more than one message per worker waits that way, the rest are stored
// due and claimed as usual; all are delivered.
func TestBornClaimedAreDeliveredOnce(t *testing.T) {
	const concurrency = 3
	tr := &countingTransport{sent: map[string]int{}, gate: make(chan struct{})}
	q, db := newTestQueue(t, tr, concurrency)
	if q.Reserve() {
		t.Fatal("a place reserved before Start")
	}
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	born := 0
	for i := range 10 {
		if acceptBorn(t, q, db, fmt.Sprintf("m%02d", i), "b@y.test", "c@y.test") {
			born++
		}
	}
	// The workers are held at the gate: the tickets are all taken.
	if born != concurrency {
		t.Errorf("%d messages stored claimed while %d workers were busy, want %d", born, concurrency, concurrency)
	}
	close(tr.gate)
	waitState(t, db, store.StateDelivered, 20)
	if err := q.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(tr.sent) != 20 {
		t.Errorf("%d envelopes delivered, want 20", len(tr.sent))
	}
	for id, k := range tr.sent {
		if k != 1 {
			t.Errorf("%s delivered %d times", id, k)
		}
	}
	if q.Reserve() {
		t.Error("a place reserved after Shutdown")
	}
	if n := len(q.tickets); n != 0 {
		t.Errorf("%d tickets still taken", n)
	}
}

// Envelopes stored claimed but not started when the queue stops are due
// again, like claimed ones; so are those handed over after it stopped (an
// acceptance finishing as the queue stopped). Those being sent when
// shutdown runs out of time stay in flight for the next start.
func TestBornClaimedPutBackAtStop(t *testing.T) {
	const concurrency = 3
	tr := &countingTransport{sent: map[string]int{}, gate: make(chan struct{})}
	q, db := newTestQueue(t, tr, concurrency)
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	// The workers wait at the gate with a message each, one born claimed.
	acceptN(t, db, concurrency-1)
	q.Kick()
	if !acceptBorn(t, q, db, "born", "b@y.test") {
		t.Fatal("no place for a message while a worker was free")
	}
	for deadline := time.Now().Add(10 * time.Second); tr.waiting.Load() < concurrency; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("workers never reached Send")
		}
	}
	// One more born claimed: it waits for a worker. And a place reserved
	// now, whose message is stored after the stop.
	if !acceptBorn(t, q, db, "waiting", "b@y.test") || !q.Reserve() {
		t.Fatal("no place left")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	q.Shutdown(ctx)
	envs, err := db.AcceptWith(store.Message{ID: "late", From: "a@x.test"}, []byte("x"), []string{"b@y.test"}, time.Now(),
		func(_ int, e *store.Envelope) { e.State = store.StateDelivering })
	if err != nil {
		t.Fatal(err)
	}
	q.Born(envs)
	states := map[string]store.State{}
	db.Envelopes(func(e store.Envelope) bool { states[e.MessageID] = e.State; return true })
	want := map[string]store.State{"m0000": store.StateDelivering, "m0001": store.StateDelivering, "born": store.StateDelivering,
		"waiting": store.StateQueued, "late": store.StateQueued}
	for id, s := range want {
		if states[id] != s {
			t.Errorf("%s: %s, want %s (all: %v)", id, states[id], s, states)
		}
	}
	if n := len(q.tickets); n != 0 {
		t.Errorf("%d tickets still taken", n)
	}
	if len(tr.sent) != 0 {
		t.Errorf("sent %v while the gate was shut", tr.sent)
	}
}
