// Package delivery sends envelopes that are due to where they go next: the
// smarthost, or the outbox directory when no smarthost is configured.
//
// One dispatcher loop claims due envelopes from the store, two parcels per
// worker at most, and hands them to a fixed pool of workers. A parcel is
// one envelope, or all the due recipients of one transactional message,
// which go in one SMTP transaction. Each worker keeps its own upstream
// connection and reuses it for consecutive messages, and hands each
// outcome back to the dispatcher, which records it in the same transaction
// as its next claim.
// When nothing is due the dispatcher sleeps until the store's earliest due
// time, a kick (new mail, a finished delivery) or shutdown. The database is
// the schedule: nothing waits only in memory, and after a crash the
// envelopes that were in flight are simply due again (at-least-once).
//
// Transactional mail takes a shorter way when the workers have room:
// intake stores its envelopes already claimed and hands them to the
// dispatcher itself (Reserve, Born), and the message and its body come
// from memory rather than a read of the store (Offer, handoff.go). To the
// store they are claimed envelopes like any other, in flight until their
// outcome is settled.
//
// Every outcome is written back to the envelope: delivered; failed at once
// on a permanent (5xx) error; or deferred with exponential backoff and
// jitter on a temporary one, until the queue lifetime runs out. The sender
// hears of failures and long delays by a delivery status notification
// (notice.go), and Kadenz converts what an upstream cannot take as it is
// (downgrade.go) or refuses it with a report.
package delivery

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"kadenz/governor/retry"
	"kadenz/store"
)

// Sender delivers parcels one after another over whatever connection it
// keeps. A Sender is used by one worker at a time.
type Sender interface {
	// Send delivers the parcel and returns one error per envelope, nil
	// where that recipient was accepted.
	Send(ctx context.Context, p Parcel) []error
	Close() error
}

// Parcel is what one delivery attempt carries: envelopes of one message
// with one return path, sent together (one transaction where the
// upstream allows).
type Parcel struct {
	Message   store.Message
	From      string // the return path (after Prepare)
	Envelopes []store.Envelope
	// Body is the message; nil for a large one, which Stream opens
	// instead, to be read from the store part by part (Prefix, what
	// Prepare adds, goes before it).
	Body   []byte
	Stream func() (io.ReadCloser, error)
	Prefix []byte
}

// Open returns the message to send, whichever way it is held.
func (p Parcel) Open() (io.ReadCloser, error) {
	if p.Stream == nil {
		return io.NopCloser(bytes.NewReader(p.Body)), nil
	}
	rc, err := p.Stream()
	if err != nil {
		return nil, err
	}
	if len(p.Prefix) == 0 {
		return rc, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(p.Prefix), rc), rc}, nil
}

// readError marks an error reading the message from the store, apart
// from the upstream's while it is written.
type readError struct{ err error }

func (e *readError) Error() string { return "reading message: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// readMarker passes reads through and marks their errors as readError.
type readMarker struct{ r io.Reader }

func (m readMarker) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &readError{err}
	}
	return n, err
}

// copyMessage writes the parcel's message to w. An error reading it is a
// *readError (then what w got is incomplete and must not be sent on as a
// message); any other is w's.
func (p Parcel) copyMessage(w io.Writer) error {
	if p.Stream == nil {
		_, err := w.Write(p.Body)
		return err
	}
	rc, err := p.Open()
	if err != nil {
		return &readError{err}
	}
	defer rc.Close()
	_, err = io.CopyBuffer(w, readMarker{rc}, make([]byte, 64<<10))
	return err
}

// all returns err for every envelope of p.
func (p Parcel) all(err error) []error {
	errs := make([]error, len(p.Envelopes))
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// Transport makes one Sender per worker.
type Transport interface {
	NewSender() Sender
}

// Store is what the queue needs of the database: the work list
// (store.Queue) and each message's envelope sender and headers. Any
// store.Store serves.
type Store interface {
	store.Queue
	Message(id string) (store.Message, error)
}

// streamer is a store that streams large bodies (store.BodyStreams) and
// can say a body is there in full before a stream of it starts (bbolt's
// BodySize). With a store without it, bodies are read whole.
type streamer interface {
	store.BodyStreams
	BodySize(messageID string) (int64, error)
}

// Options configure a Queue.
type Options struct {
	DB          Store
	Transport   Transport
	Concurrency int
	// RetryInitial is the delay after the first temporary failure; each
	// further one doubles, up to RetryMax.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// MaxQueueLifetime is how long after acceptance an envelope may keep
	// failing temporarily before it fails for good.
	MaxQueueLifetime time.Duration
	Logger           *slog.Logger
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Jitter returns a number in [0,1); rand.Float64 if nil.
	Jitter func() float64
	// Prepare, if set, may change the return path and the bytes of each
	// envelope just before it is sent (the governor's correlation: VERP and
	// X-Kadenz-Envelope); what it changes is not stored. For a large
	// message, streamed from the store, it is given a nil body and what it
	// returns goes before the message.
	Prepare func(e *store.Envelope, body []byte) []byte
	// Observe, if set, hears of every attempt once its outcome is stored:
	// the envelope as written and the attempt's error (metrics).
	Observe func(e store.Envelope, err error, now time.Time)
	// DelayWarning is how long after its first attempt a deferred envelope
	// earns its sender a delay notice; 0: never.
	DelayWarning time.Duration
	// RemoteMTA names the upstream in reports (Remote-MTA).
	RemoteMTA string
	// Notify, if set, queues a delivery status notification to the
	// sender (see notice.go); it returns once the notice is durable.
	Notify func(Notice) error
	// HandoffBytes bounds the bodies of just-accepted messages kept for
	// their first attempt (Offer); 0: 4 MiB.
	HandoffBytes int
}

// Queue is the delivery loop and its workers.
type Queue struct {
	opts Options
	log  *slog.Logger
	kick chan struct{} // size one: many kicks while busy collapse into one

	work     chan parcel
	finished chan result

	// Envelopes written claimed at acceptance (Reserve, Born): born
	// carries them to the dispatcher; tickets holds one token per such
	// parcel not yet finished, which bounds both.
	born    chan []store.Envelope
	tickets chan struct{}
	running atomic.Bool // Start ran and Shutdown did not

	// handoff keeps just-accepted messages for their first attempt
	// (handoff.go).
	handoff *handoff

	stop       chan struct{}
	stopOnce   sync.Once
	sendCtx    context.Context // cancelled only when shutdown runs out of time
	cancelSend context.CancelFunc
	wg         sync.WaitGroup
}

// New builds a Queue; Start runs it.
func New(opts Options) (*Queue, error) {
	if opts.DB == nil || opts.Transport == nil {
		return nil, errors.New("delivery: DB and Transport are required")
	}
	if opts.Concurrency <= 0 {
		return nil, errors.New("delivery: Concurrency must be positive")
	}
	if opts.RetryInitial <= 0 || opts.RetryMax < opts.RetryInitial || opts.MaxQueueLifetime <= 0 {
		return nil, errors.New("delivery: retry settings must be positive and RetryMax >= RetryInitial")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	if opts.Observe == nil {
		opts.Observe = func(store.Envelope, error, time.Time) {}
	}
	tickets := opts.Concurrency
	q := &Queue{
		opts: opts,
		log:  opts.Logger,
		kick: make(chan struct{}, 1),
		// Both hold all that can be handed out (see dispatch), so neither
		// the dispatcher nor a worker ever waits to send on them.
		work:     make(chan parcel, 2*opts.Concurrency+tickets),
		finished: make(chan result, 2*opts.Concurrency+tickets),
		born:     make(chan []store.Envelope, tickets),
		tickets:  make(chan struct{}, tickets),
		handoff:  newHandoff(cmp.Or(opts.HandoffBytes, handoffBytes), handoffMaxAge),
		stop:     make(chan struct{}),
	}
	q.sendCtx, q.cancelSend = context.WithCancel(context.Background())
	return q, nil
}

// Kick wakes the dispatcher to look for due envelopes now. It never blocks.
func (q *Queue) Kick() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Offer hands the queue a message the store is accepting and its body,
// for the first delivery of its envelopes to take from memory
// instead of reading them back (handoff.go). msg must be as the store
// reads it back (store.AsStored) and body the bytes it stored; the queue
// keeps body until it calls done (nil: the caller never reuses it). It
// returns false, and keeps nothing, when the message does not fit.
func (q *Queue) Offer(msg store.Message, body []byte, done func()) bool {
	select {
	case <-q.stop:
		return false
	default:
	}
	return q.handoff.offer(msg, body, done, q.opts.Now())
}

// Reserve asks for a place for a message whose envelopes intake writes
// already claimed (StateDelivering) when it accepts it, so that they skip
// the due index and the dispatcher's claim: a message a worker can start
// on at once. True: the caller writes them so, then hands them over with
// Born once they are stored, or calls Unreserve if storing failed. False
// (every place taken, or the queue not running): store them due as
// usual. Claimed envelopes are what a crash leaves in flight and the next
// start makes due again (Recover), so nothing is lost either way.
func (q *Queue) Reserve() bool {
	if !q.running.Load() {
		return false
	}
	select {
	case q.tickets <- struct{}{}:
		return true
	default:
		return false
	}
}

// Unreserve gives back a place Reserve gave, unused.
func (q *Queue) Unreserve() { <-q.tickets }

// Born hands the queue the envelopes of one message, stored claimed after
// a Reserve: they are delivered like claimed ones. It never blocks.
func (q *Queue) Born(envs []store.Envelope) {
	q.born <- envs // room for every ticket
	q.Kick()
	if !q.running.Load() {
		// Stopping or stopped: the dispatcher may never see them, so put
		// them back due as it would (whatever it took already, it handles).
		q.putBackBorn()
	}
}

// Withdraw takes back what Offer was given for message id (its
// acceptance failed); false if the queue no longer holds it. done is not
// called: the body is the caller's again.
func (q *Queue) Withdraw(id string) bool {
	_, ok := q.handoff.take(id)
	return ok
}

// Start recovers envelopes left in flight by a previous run, then starts
// the dispatcher and the workers.
func (q *Queue) Start() error {
	n, err := q.opts.DB.Recover(q.opts.Now())
	if err != nil {
		return fmt.Errorf("delivery: recovering in-flight envelopes: %w", err)
	}
	if n > 0 {
		q.log.Info("in-flight envelopes from the last run are due again", "count", n)
	}
	for range q.opts.Concurrency {
		q.wg.Add(1)
		go q.worker()
	}
	q.wg.Add(1)
	go q.dispatch()
	q.running.Store(true)
	return nil
}

// Shutdown stops claiming envelopes and waits for deliveries in flight.
// If ctx ends first, those deliveries are aborted; their envelopes stay in
// flight in the store and are due again at the next start.
func (q *Queue) Shutdown(ctx context.Context) error {
	q.running.Store(false)
	q.stopOnce.Do(func() { close(q.stop) })
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		q.afterStop()
		return nil
	case <-ctx.Done():
		q.cancelSend()
		<-done
		q.afterStop()
		return ctx.Err()
	}
}

// afterStop puts back envelopes born claimed after the dispatcher stopped
// (an acceptance that was finishing as the queue stopped) and lets go of
// the hand-off.
func (q *Queue) afterStop() {
	q.putBackBorn()
	q.handoff.drain()
}

// putBackBorn makes envelopes waiting in born due again, as unclaim does.
func (q *Queue) putBackBorn() {
	var late []store.Envelope
	for drained := false; !drained; {
		select {
		case envs := <-q.born:
			late = append(late, envs...)
			<-q.tickets
		default:
			drained = true
		}
	}
	q.unclaim(late)
}

// idleCheck bounds how long the dispatcher sleeps without looking at the
// store, as a safety net against a clock that jumps.
const idleCheck = time.Minute

// result is what a worker hands back for one parcel of claimed envelopes:
// the envelopes with their outcomes applied, or aborted when shutdown cut
// the delivery short and they must stay in flight.
type result struct {
	envs    []store.Envelope
	errs    []error   // each attempt's error, nil when delivered
	at      time.Time // when the attempt ended
	took    time.Duration
	aborted bool
	// unstarted: the queue was stopping, so the worker gave the envelope
	// back without trying it.
	unstarted bool
	born      bool // the parcel's, see parcel
}

// parcel is what a worker is handed: envelopes sent together, and
// whether they were stored claimed (Born), which holds a ticket.
type parcel struct {
	envs []store.Envelope
	born bool
}

// dispatch is the only goroutine that writes delivery state. It keeps up
// to two envelopes per worker handed out: one being delivered, one waiting
// in the work channel, so a worker that finishes starts on its next
// envelope at once, even while the dispatcher is busy committing. It goes
// back to the store when half of that is used up (no more than one envelope
// per worker left), claims enough to fill it again, and records the
// outcomes that workers finished meanwhile in the same transaction
// (store.Settle). So delivery costs the store one commit per round of about
// Concurrency messages, not one per message: at 20 sessions of intake the
// commits are what the machine's CPU runs out on (docs/benchmarks.md).
// Outcomes do not wait for a claim when nothing more is due, or when a
// worker's worth of them has piled up.
//
// Workers do not wait for their outcome to be durable: if the process dies
// first, the envelope is still in flight in the store and is delivered
// again after the restart (a duplicate, never a loss). Envelopes claimed but
// not yet started are in flight too; a clean stop makes them due again.
func (q *Queue) dispatch() {
	defer q.wg.Done()
	limit := q.opts.Concurrency
	ahead := 2 * limit // handed out at most
	busy := 0          // parcels handed out: waiting in the work channel or being delivered
	var pending []result
	var unstarted []store.Envelope // handed out, given back at a stop
	take := func(r result) {
		busy--
		if r.born {
			<-q.tickets
		}
		switch {
		case r.unstarted:
			unstarted = append(unstarted, r.envs...)
		case !r.aborted:
			pending = append(pending, r)
		}
	}
	defer func() {
		// Stop: no more claims. Take back what no worker has started, wait
		// for the deliveries in flight and record how they ended, and put
		// back what was not started.
		for drained := false; !drained; {
			select {
			case p := <-q.work:
				take(result{envs: p.envs, born: p.born, unstarted: true})
			case envs := <-q.born:
				unstarted = append(unstarted, envs...)
				<-q.tickets
			default:
				drained = true
			}
		}
		close(q.work)
		for ; busy > 0; take(<-q.finished) {
		}
		q.record(&pending)
		q.unclaim(unstarted)
	}()
	handOut := func(envs []store.Envelope, born bool) {
		q.work <- parcel{envs, born} // never blocks: see the channels' sizes in New
		busy++
	}
	for {
		// Take note of finished deliveries and of envelopes stored claimed,
		// without blocking.
		for drained := false; !drained; {
			select {
			case r := <-q.finished:
				take(r)
			case envs := <-q.born:
				handOut(envs, true)
			default:
				drained = true
			}
		}
		select {
		case <-q.stop:
			return
		default:
		}

		wait := idleCheck
		now := q.opts.Now()
		low := busy <= limit
		want := 0
		if low && q.anyDue(now) { // else nothing to claim: spare the store an empty commit
			want = ahead - busy
		}
		var envs []store.Envelope
		var err error
		if want > 0 || len(pending) > 0 && (low || len(pending) >= limit) {
			envs, err = q.opts.DB.Settle(outcomes(pending), now, want)
			if err != nil {
				q.log.Error("recording deliveries and claiming due envelopes", "error", err)
				// Record what finished one by one, so that one bad envelope
				// cannot hold up the rest; claim again after a pause.
				q.record(&pending)
				wait = time.Second
			} else {
				q.logOutcomes(pending)
				pending = pending[:0]
			}
		}
		for _, p := range parcels(envs) {
			// No more parcels than envelopes wanted: claimed ones keep busy
			// within ahead, born ones add at most one per ticket.
			handOut(p, false)
		}
		if want > 0 && len(envs) >= want {
			wait = 0 // maybe more are due: look again once a worker frees up
		} else if err == nil {
			if next, ok, err := q.opts.DB.NextDue(); err == nil && ok {
				wait = min(max(next.Sub(q.opts.Now()), 0), idleCheck)
			}
		}
		if wait == 0 && busy <= limit {
			continue
		}
		// With more than one envelope per worker handed out, the dispatcher
		// claims nothing, so only a finished delivery (or a stop) can change
		// anything and no timer is needed.
		var timer *time.Timer
		var timeout <-chan time.Time
		if busy <= limit {
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		select {
		case <-q.stop:
		case <-q.kick:
		case r := <-q.finished:
			take(r)
		case envs := <-q.born:
			handOut(envs, true)
		case <-timeout:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// unclaim makes envelopes that were claimed but never started by a worker
// due again at once, as a restart would.
func (q *Queue) unclaim(envs []store.Envelope) {
	if len(envs) == 0 {
		return
	}
	now := q.opts.Now()
	for i := range envs {
		envs[i].State, envs[i].Due, envs[i].Updated = store.StateQueued, now, now
	}
	if err := q.opts.DB.Update(envs...); err != nil {
		q.log.Error("putting back claimed envelopes; they are due again at the next start", "count", len(envs), "error", err)
	}
}

// anyDue reports whether an envelope is due at now (a read, no commit).
func (q *Queue) anyDue(now time.Time) bool {
	next, ok, err := q.opts.DB.NextDue()
	return err != nil || ok && !next.After(now) // on error, let Settle say what is wrong
}

func outcomes(rs []result) []store.Envelope {
	var envs []store.Envelope
	for _, r := range rs {
		envs = append(envs, r.envs...)
	}
	return envs
}

// parcels groups claimed envelopes for delivery: consecutive express
// envelopes of one message (a transactional message's recipients, claimed
// together, see store.Settle) go in one parcel and so one transaction;
// every other envelope goes alone, since Prepare gives each copy of
// marketing mail its own return path and envelope header.
func parcels(envs []store.Envelope) [][]store.Envelope {
	var out [][]store.Envelope
	for i := 0; i < len(envs); {
		j := i + 1
		for envs[i].Express && j < len(envs) && envs[j].Express && envs[j].MessageID == envs[i].MessageID {
			j++
		}
		out = append(out, envs[i:j:j])
		i = j
	}
	return out
}

// record writes the pending outcomes and empties pending: all in one
// transaction, or if that fails each in one of its own. An outcome that
// cannot be written is logged and left: its envelope stays in flight in the
// store and is delivered again after a restart (a duplicate at worst, never
// a loss).
func (q *Queue) record(pending *[]result) {
	if len(*pending) == 0 {
		return
	}
	if _, err := q.opts.DB.Settle(outcomes(*pending), q.opts.Now(), 0); err == nil {
		q.logOutcomes(*pending)
		*pending = (*pending)[:0]
		return
	}
	for _, r := range *pending {
		if err := q.opts.DB.Update(r.envs...); err != nil {
			q.log.Error("recording delivery outcome", "envelope", r.envs[0].ID, "envelopes", len(r.envs), "error", err)
			continue
		}
		q.logOutcomes([]result{r})
	}
	*pending = (*pending)[:0]
}

// logOutcomes logs recorded outcomes, one line each, and tells Observe.
func (q *Queue) logOutcomes(rs []result) {
	for _, r := range rs {
		for i, e := range r.envs {
			q.opts.Observe(e, r.errs[i], r.at)
			attrs := []any{"envelope", e.ID, "to", e.To, "attempt", e.Attempts, "took", r.took.Round(time.Millisecond)}
			if len(r.envs) > 1 {
				attrs = append(attrs, "transaction_recipients", len(r.envs))
			}
			switch e.State {
			case store.StateDelivered:
				q.log.Info("delivered", attrs...)
			case store.StateDeferred:
				q.log.Warn("delivery deferred", append(attrs, "retry_at", e.Due, "error", e.LastError)...)
			default:
				q.log.Error("delivery failed", append(attrs, "error", e.LastError)...)
			}
		}
	}
}

func (q *Queue) worker() {
	defer q.wg.Done()
	sender := q.opts.Transport.NewSender()
	defer sender.Close()
	for p := range q.work {
		select {
		case <-q.stop: // stopping: do not start another delivery
			q.finished <- result{envs: p.envs, unstarted: true, born: p.born}
			continue
		default:
		}
		r := q.deliver(sender, p.envs)
		r.born = p.born
		q.finished <- r
	}
}

// deliver makes one attempt on a parcel and returns the envelopes with
// their outcomes. The notices the attempt calls for (failure, delay; one
// per kind for the recipients they concern) are queued before the
// outcomes are recorded: a crash in between sends them twice, never not at
// all.
func (q *Queue) deliver(sender Sender, envs []store.Envelope) result {
	started := q.opts.Now()
	var msg store.Message
	var body []byte
	var err error
	var stream func() (io.ReadCloser, error)
	if o, ok := q.handoff.take(envs[0].MessageID); ok {
		// Just accepted: as the store would read it back (handoff.go).
		msg, body = o.msg, o.body
		defer o.release() // after the attempt and its notices are done with body
	} else if msg, err = q.opts.DB.Message(envs[0].MessageID); err == nil {
		if st, ok := q.opts.DB.(streamer); ok && msg.Size > streamAbove {
			// Large: read from the store part by part as it is sent, not
			// held whole (store/bodies.go).
			id := msg.ID
			stream = func() (io.ReadCloser, error) { return st.OpenBody(id) }
			_, err = st.BodySize(id) // there, whole and listed
		} else {
			body, err = q.opts.DB.Body(envs[0].MessageID)
		}
	}
	var errs []error
	relayed := false // handed to an upstream that will not report on delivery
	if err != nil {
		errs = Parcel{Envelopes: envs}.all(Permanent(fmt.Errorf("reading message: %w", err)))
	} else {
		errs = q.send(sender, msg, envs, body, stream)
		if d, ok := sender.(interface{ UpstreamDSN() bool }); ok {
			relayed = !d.UpstreamDSN()
		}
	}
	if q.sendCtx.Err() != nil {
		// Shutdown ran out of time mid-delivery: leave the envelopes in
		// flight; the next start makes them due again.
		q.log.Warn("delivery aborted by shutdown", "envelope", envs[0].ID, "envelopes", len(envs))
		return result{envs: envs, aborted: true}
	}
	now := q.opts.Now()
	outs := make([]store.Envelope, len(envs))
	var retry time.Time
	for i, e := range envs {
		if e.FirstTried.IsZero() {
			e.FirstTried = started
		}
		outs[i] = q.outcome(e, errs[i], now)
		// Recipients deferred together are retried together (one jittered
		// time for the parcel), so they stay one transaction, and one
		// report if they fail for good.
		if outs[i].State == store.StateDeferred && outs[i].Attempts == outs[0].Attempts {
			if retry.IsZero() {
				retry = outs[i].Due
			}
			outs[i].Due = retry
		}
	}
	q.notify(msg, outs, errs, body, stream != nil, now, relayed)
	return result{envs: outs, errs: errs, at: now, took: now.Sub(started)}
}

// streamAbove: a message longer than this is streamed from the store
// when it is sent (it is stored in parts, store.BodyPartSize each).
const streamAbove = store.BodyPartSize

// send hands the parcel to the sender: in one piece when Prepare leaves
// every envelope as it is (transactional mail), else envelope by envelope
// with what Prepare made of each. A streamed message (stream set, body
// nil) gets what Prepare returns as a prefix.
func (q *Queue) send(sender Sender, msg store.Message, envs []store.Envelope, body []byte, stream func() (io.ReadCloser, error)) []error {
	outs := make([]store.Envelope, len(envs))
	wires := make([][]byte, len(envs))
	same := true
	for i, e := range envs {
		outs[i], wires[i] = e, body
		if q.opts.Prepare != nil {
			wires[i] = q.opts.Prepare(&outs[i], body)
		}
		if stream != nil {
			same = same && outs[i].From == envs[i].From && len(wires[i]) == 0
			continue
		}
		same = same && outs[i].From == envs[i].From && len(wires[i]) == len(body) &&
			(len(body) == 0 || &wires[i][0] == &body[0])
	}
	parcel := func(from string, envs []store.Envelope, wire []byte) Parcel {
		if stream != nil {
			return Parcel{Message: msg, From: from, Envelopes: envs, Stream: stream, Prefix: wire}
		}
		return Parcel{Message: msg, From: from, Envelopes: envs, Body: wire}
	}
	if same {
		return sender.Send(q.sendCtx, parcel(envs[0].From, outs, wires[0]))
	}
	errs := make([]error, len(envs))
	for i := range outs {
		errs[i] = sender.Send(q.sendCtx, parcel(outs[i].From, outs[i:i+1], wires[i]))[0]
	}
	return errs
}

// head returns the beginning of a stored message, up to the end of its
// header if that comes within one part; nil if it cannot be read.
func (q *Queue) head(messageID string) []byte {
	rc, err := store.OpenBody(q.opts.DB, messageID)
	if err != nil {
		return nil
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, store.BodyPartSize))
	return headerOf(b)
}

// notify queues the notices the outcomes call for, and marks what was
// notified on outs.
func (q *Queue) notify(msg store.Message, outs []store.Envelope, errs []error, body []byte, streamed bool, now time.Time, relayed bool) {
	for _, action := range []string{ActionFailed, ActionDelayed, ActionRelayed} {
		n := Notice{Action: action, Message: msg, Body: body, At: now, RemoteMTA: q.opts.RemoteMTA,
			RetryUntil: outs[0].Created.Add(q.opts.MaxQueueLifetime)}
		var idx []int
		for i, e := range outs {
			if q.reportable(msg, e, now, relayed) == action {
				idx = append(idx, i)
				n.Envelopes = append(n.Envelopes, e)
				n.Errors = append(n.Errors, errs[i])
			}
		}
		if len(idx) == 0 {
			continue
		}
		if streamed && n.Body == nil {
			// A large message goes back as its header only: read its
			// beginning, not all of it.
			body = q.head(msg.ID)
			n.Body = body
		}
		n.BodySize = int64(msg.Size)
		nerr := q.opts.Notify(n)
		for _, i := range idx {
			switch {
			case nerr == nil && action == ActionDelayed:
				outs[i].DelayNotified = true
			case nerr != nil && action == ActionFailed:
				// The sender must hear of the failure: instead of giving
				// up silently, try again later, and the notice with it.
				outs[i].State, outs[i].Due = store.StateDeferred, now.Add(q.opts.RetryInitial)
			}
		}
		if nerr != nil {
			q.log.Error("queueing a delivery status notification", "envelope", outs[idx[0]].ID, "action", action,
				"recipients", len(idx), "error", nerr)
		}
	}
}

// outcome applies the result of one delivery attempt to e.
func (q *Queue) outcome(e store.Envelope, err error, now time.Time) store.Envelope {
	e.Attempts++
	e.Updated = now
	switch {
	case err == nil:
		e.State, e.LastError = store.StateDelivered, ""
	case IsPermanent(err):
		e.State, e.LastError = store.StateFailed, err.Error()
	default:
		expires := e.Created.Add(q.opts.MaxQueueLifetime)
		if !now.Before(expires) {
			e.State = store.StateFailed
			e.LastError = fmt.Sprintf("gave up after %d attempts over %s: %v", e.Attempts, now.Sub(e.Created).Round(time.Second), err)
			break
		}
		e.State, e.LastError = store.StateDeferred, err.Error()
		// The last try happens when the lifetime ends, not a backoff later.
		e.Due = now.Add(q.backoff(e.Attempts))
		if e.Due.After(expires) {
			e.Due = expires
		}
	}
	return e
}

// backoff returns the delay before retry number attempt (1-based), from
// RetryInitial up to RetryMax (retry.Backoff).
func (q *Queue) backoff(attempt int) time.Duration {
	return retry.Backoff(attempt, q.opts.RetryInitial, q.opts.RetryMax, q.opts.Jitter())
}
