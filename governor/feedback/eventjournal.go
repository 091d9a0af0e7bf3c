package feedback

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"kadenz/governor/feedback/journal"
	"kadenz/store"
)

// The event journal: how POST /v1/events answers a sender without waiting
// for a database commit.
//
// A batch of events is made durable by one sequential append to the
// journal (governor/feedback/journal: framed, checksummed records, one
// fdatasync for every group of concurrent appends) and answered then. A
// background applier moves what is journalled into the database in larger
// transactions, each of which also records how far into the journal it
// reaches (store.FeedbackJournal), and then lets the journal drop those
// records. On open, what the journal holds past that mark is applied before
// anything else runs, so an event answered 2xx survives a crash.
//
// The database commit this replaces wrote about 30 pages at random places
// and synced twice for every two batches; the append writes a batch's
// events once, in order (docs/benchmarks.md, the events section).
//
// Duplicates are answered from what the database has seen and from the IDs
// still only in the journal (pending), which are kept in memory until their
// events are applied: a retry of a batch whose first try is not applied yet
// is a duplicate, not a second application.

// JournalOptions configure an EventJournal.
type JournalOptions struct {
	// Dir holds the journal's segment files.
	Dir string
	// Lag bounds how long a journalled event waits before the applier
	// starts applying it (default DefaultJournalLag)...
	Lag time.Duration
	// ...unless Batch events are waiting before that (default
	// DefaultJournalBatch).
	Batch int
	// Backlog is how many journalled events may wait; Accept waits for the
	// applier beyond it (default DefaultJournalBacklog).
	Backlog int
	// After is the clock's timer (nil: time.After).
	After func(time.Duration) <-chan time.Time
}

// The defaults: what the engine and admin reads may lag behind an answered
// event. 50 ms is a fraction of the engine's own round, and at the goal of
// 30,000 events/s it gathers about 1,500 events per transaction.
const (
	DefaultJournalLag     = 50 * time.Millisecond
	DefaultJournalBatch   = 2000
	DefaultJournalBacklog = 50000
	// maxApplyEvents bounds one transaction of the applier.
	maxApplyEvents = 5000
	// journalAttempts is how often a record that fails to apply is tried
	// before its events are applied one by one and the failing ones
	// dropped (logged): a record that can never apply must not hold up
	// every event behind it.
	journalAttempts = 3
)

// EventJournal accepts events durably and applies them in the background.
type EventJournal struct {
	f     *Applier
	st    store.FeedbackJournal
	j     *journal.Journal
	opts  JournalOptions
	after func(time.Duration) <-chan time.Time

	mu      sync.Mutex
	applied *sync.Cond // broadcast when journalled events were applied
	pending map[string]struct{}
	events  int // events journalled (or being journalled) and not applied
	closed  bool

	applyMu  sync.Mutex // one applier at a time: the loop, Flush, Close
	failures int        // attempts at the journal's first record (applyMu)

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// ErrJournalClosed is returned by Accept after Close.
var ErrJournalClosed = errors.New("event journal closed")

// OpenJournal opens the event journal in opts.Dir, applies what it holds
// that the store does not have yet, and starts the applier. The store must
// offer store.FeedbackJournal.
func (f *Applier) OpenJournal(opts JournalOptions) (*EventJournal, error) {
	st, ok := f.db.(store.FeedbackJournal)
	if !ok {
		return nil, fmt.Errorf("event journal: the store (%T) cannot record a journal position", f.db)
	}
	if opts.Lag <= 0 {
		opts.Lag = DefaultJournalLag
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultJournalBatch
	}
	if opts.Backlog <= 0 {
		opts.Backlog = DefaultJournalBacklog
	}
	e := &EventJournal{f: f, st: st, opts: opts, after: opts.After, pending: map[string]struct{}{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if e.after == nil {
		e.after = time.After
	}
	e.applied = sync.NewCond(&e.mu)
	mark, err := st.JournalApplied()
	if err != nil {
		return nil, err
	}
	if e.j, err = journal.Open(opts.Dir, mark, f.log); err != nil {
		return nil, err
	}
	recs := e.j.Durable()
	for _, r := range recs {
		evs, err := decodeJournalEvents(r.Data)
		if err != nil {
			continue // applyPending logs and skips it
		}
		e.events += len(evs)
		for _, ev := range evs {
			if ev.ID != "" {
				e.pending[ev.ID] = struct{}{}
			}
		}
	}
	if len(recs) > 0 {
		n := e.events
		if err := e.Flush(); err != nil {
			e.j.Close()
			return nil, fmt.Errorf("event journal: replaying %d events: %w", n, err)
		}
		f.log.Info("event journal: replayed events answered before the last stop", "records", len(recs), "events", n)
	}
	go e.loop()
	return e, nil
}

// Accept journals evs and reports how many will be applied and how many
// are duplicates (an ID seen before, journalled before, or given earlier
// in evs), once the accepted ones are durable.
func (e *EventJournal) Accept(evs []Event) (accepted, duplicates int, err error) {
	if _, err := eventSignals(evs); err != nil {
		return 0, 0, err
	}
	e.mu.Lock()
	for e.events >= e.opts.Backlog && !e.closed {
		e.applied.Wait()
	}
	if e.closed {
		e.mu.Unlock()
		return 0, 0, ErrJournalClosed
	}
	// Reserve each new ID before asking the store, so that a concurrent
	// batch with the same ID counts it a duplicate.
	keep := make([]bool, len(evs))
	var ids []string
	var at []int
	for i, ev := range evs {
		if ev.ID == "" {
			keep[i] = true
			continue
		}
		if _, ok := e.pending[ev.ID]; ok {
			duplicates++
			continue
		}
		e.pending[ev.ID] = struct{}{}
		keep[i] = true
		ids, at = append(ids, ev.ID), append(at, i)
	}
	e.mu.Unlock()
	seen, err := e.st.SeenEventIDs(ids)
	if err != nil {
		e.release(ids, 0)
		return 0, 0, err
	}
	var old []string
	for k, s := range seen {
		if s {
			keep[at[k]] = false
			old = append(old, ids[k])
			duplicates++
		}
	}
	e.release(old, 0)
	kept := make([]Event, 0, len(evs)-duplicates)
	var mine []string
	for i, ev := range evs {
		if keep[i] {
			kept = append(kept, ev)
			if ev.ID != "" {
				mine = append(mine, ev.ID)
			}
		}
	}
	if len(kept) == 0 {
		return 0, duplicates, nil
	}
	e.mu.Lock()
	e.events += len(kept)
	e.mu.Unlock()
	if _, err := e.j.Append(encodeJournalEvents(kept)); err != nil {
		e.release(mine, len(kept))
		return 0, 0, err
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return len(kept), duplicates, nil
}

// release forgets pending IDs and n pending events.
func (e *EventJournal) release(ids []string, n int) {
	if len(ids) == 0 && n == 0 {
		return
	}
	e.mu.Lock()
	for _, id := range ids {
		delete(e.pending, id)
	}
	e.events -= n
	e.applied.Broadcast()
	e.mu.Unlock()
}

// Pending is how many accepted events are not applied yet.
func (e *EventJournal) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.events
}

// loop applies what is journalled: Lag after the first waiting event, or
// as soon as Batch are waiting.
func (e *EventJournal) loop() {
	defer close(e.done)
	for {
		select {
		case <-e.wake:
		case <-e.stop:
			return
		}
		timer := e.after(e.opts.Lag)
	wait:
		for e.Pending() < e.opts.Batch {
			select {
			case <-timer:
				break wait
			case <-e.wake:
			case <-e.stop:
				return
			}
		}
		if err := e.applyPending(); err != nil {
			e.f.log.Error("event journal: applying events; tried again later", "error", err)
			select {
			case e.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Flush applies every event accepted before it was called, trying a record
// that fails up to journalAttempts times (see applyAlone).
func (e *EventJournal) Flush() error {
	var err error
	for range journalAttempts {
		if err = e.applyPending(); err == nil {
			break
		}
	}
	return err
}

// Seal is Flush, and then starts a new segment if the one appended to holds
// records, so that no applied event stays in the journal's files: an
// erasure that follows leaves none of its recipient's events there.
func (e *EventJournal) Seal() error {
	if err := e.Flush(); err != nil {
		return err
	}
	if e.j.Pending() == 0 {
		if err := e.j.Rotate(); err != nil && !errors.Is(err, journal.ErrClosed) {
			return err
		}
	}
	return nil
}

// Close stops accepting, applies what is journalled and closes the
// journal. What cannot be applied stays journalled for the next open.
func (e *EventJournal) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.applied.Broadcast()
	e.mu.Unlock()
	close(e.stop)
	<-e.done
	// Sealed, a cleanly stopped journal holds no record: the offline
	// database commands take records for an unclean stop
	// (journal.HasRecords).
	err := e.Seal()
	e.j.Close() // waits for appends under way...
	if err == nil {
		err = e.applyPending() // ...and applies them
	}
	return err
}

// abandon stops the applier and closes the journal without applying
// anything: what a crash leaves (tests).
func (e *EventJournal) abandon() {
	e.mu.Lock()
	e.closed = true
	e.applied.Broadcast()
	e.mu.Unlock()
	close(e.stop)
	<-e.done
	e.j.Close()
}

// applyPending applies the journal's records, a transaction per up to
// maxApplyEvents events, each recording the last record it holds.
func (e *EventJournal) applyPending() error {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	recs := e.j.Durable()
	for len(recs) > 0 {
		var evs []Event
		var ids []string
		n := 0
		for n < len(recs) && (n == 0 || len(evs) < maxApplyEvents) {
			r, err := decodeJournalEvents(recs[n].Data)
			if err != nil {
				e.f.log.Error("event journal: a record that does not decode is skipped", "seq", recs[n].Seq, "error", err)
			}
			evs = append(evs, r...)
			n++
		}
		for _, ev := range evs {
			if ev.ID != "" {
				ids = append(ids, ev.ID)
			}
		}
		last := recs[n-1].Seq
		if _, _, err := e.f.applyJournalled(evs, last); err != nil {
			if n == 1 {
				if err := e.applyAlone(recs[0], evs, err); err != nil {
					return err
				}
			} else {
				// Find the record that fails: one transaction each.
				for _, r := range recs[:n] {
					evs, _ := decodeJournalEvents(r.Data)
					if err := e.applyRecord(r, evs); err != nil {
						return err
					}
				}
			}
			recs = recs[n:]
			continue
		}
		e.failures = 0
		e.j.Applied(last)
		e.release(ids, len(evs))
		recs = recs[n:]
	}
	return nil
}

// applyRecord applies one record's events in one transaction, or, if that
// fails, as applyAlone does.
func (e *EventJournal) applyRecord(r journal.Record, evs []Event) error {
	if _, _, err := e.f.applyJournalled(evs, r.Seq); err != nil {
		return e.applyAlone(r, evs, err)
	}
	e.failures = 0
	e.j.Applied(r.Seq)
	e.release(eventIDs(evs), len(evs))
	return nil
}

// applyAlone handles a record whose transaction failed with err: it
// returns err (the record is tried again later) until the record has
// failed journalAttempts times; then each of its events is applied alone,
// those that fail are logged and dropped, and the record is done.
func (e *EventJournal) applyAlone(r journal.Record, evs []Event, err error) error {
	e.failures++
	if e.failures < journalAttempts {
		return err
	}
	e.f.log.Error("event journal: a record keeps failing; its events are applied one by one", "seq", r.Seq, "events", len(evs), "error", err)
	for _, ev := range evs {
		if _, _, err := e.f.applyJournalled([]Event{ev}, r.Seq-1); err != nil {
			e.f.log.Error("event journal: an event that cannot be applied is dropped", "seq", r.Seq, "id", ev.ID, "kind", ev.Kind, "error", err)
		}
	}
	if _, _, err := e.st.ApplyJournalled(e.f.now(), nil, r.Seq); err != nil {
		return err // the store itself fails: the record is tried again
	}
	e.failures = 0
	e.j.Applied(r.Seq)
	e.release(eventIDs(evs), len(evs))
	return nil
}

func eventIDs(evs []Event) []string {
	var ids []string
	for _, ev := range evs {
		if ev.ID != "" {
			ids = append(ids, ev.ID)
		}
	}
	return ids
}

// applyJournalled is ApplyEvents recording seq as the journal's position.
func (f *Applier) applyJournalled(evs []Event, seq uint64) (applied, duplicates int, err error) {
	sigs, err := eventSignals(evs)
	if err != nil {
		return 0, 0, err
	}
	changes := make([]store.FeedbackChange, len(sigs))
	for i, s := range sigs {
		changes[i] = f.change(s)
	}
	applied, duplicates, err = f.db.(store.FeedbackJournal).ApplyJournalled(f.now(), changes, seq)
	if err == nil && applied > 0 {
		f.engine.Kick()
	}
	return applied, duplicates, err
}

// journalFormat is the first byte of a journal record's data: its layout,
// a count and then, per event, its ID, kind, topic, recipient and
// envelope ID (each a uvarint length and the bytes) and its time
// (time.Time's binary form, with its length).
const journalFormat = 1

func encodeJournalEvents(evs []Event) []byte {
	size := 1 + binary.MaxVarintLen64
	for _, ev := range evs {
		size += len(ev.ID) + len(ev.Kind) + len(ev.Topic) + len(ev.Recipient) + len(ev.EnvelopeID) + 6*binary.MaxVarintLen64 + 16
	}
	b := make([]byte, 0, size)
	b = append(b, journalFormat)
	b = binary.AppendUvarint(b, uint64(len(evs)))
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, ev := range evs {
		str(ev.ID)
		str(ev.Kind)
		str(ev.Topic)
		str(ev.Recipient)
		str(ev.EnvelopeID)
		t, err := ev.At.MarshalBinary()
		if err != nil { // a zone offset in odd minutes or seconds: keep the instant
			t, _ = ev.At.UTC().MarshalBinary()
		}
		str(string(t))
	}
	return b
}

var errJournalRecord = errors.New("damaged event record")

func decodeJournalEvents(b []byte) ([]Event, error) {
	if len(b) == 0 || b[0] != journalFormat {
		return nil, errJournalRecord
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errJournalRecord
	}
	b = b[k:]
	bad := false
	str := func() string {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			bad = true
			return ""
		}
		s := string(b[k : k+int(l)])
		b = b[k+int(l):]
		return s
	}
	evs := make([]Event, n)
	for i := range evs {
		ev := &evs[i]
		ev.ID, ev.Kind, ev.Topic, ev.Recipient, ev.EnvelopeID = str(), str(), str(), str(), str()
		t := str()
		if bad {
			return nil, errJournalRecord
		}
		if err := ev.At.UnmarshalBinary([]byte(t)); err != nil {
			return nil, errJournalRecord
		}
	}
	if len(b) != 0 {
		return nil, errJournalRecord
	}
	return evs, nil
}
