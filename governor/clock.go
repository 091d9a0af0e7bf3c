package governor

import (
	"fmt"
	"sync"
	"time"

	"kadenz/store"
)

// VirtualClock is time that moves only when it is told to: for simulation
// and for black-box tests that need "two days later" over real SMTP. The
// admin API moves it (POST /v1/clock); every move wakes the engine and the
// delivery queue, whose loops otherwise sleep on real timers.
type VirtualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewVirtualClock starts virtual time at start.
func NewVirtualClock(start time.Time) *VirtualClock { return &VirtualClock{t: start} }

// Now returns the virtual time.
func (c *VirtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t. Time never runs backwards: due times already
// stored would otherwise mean something else.
func (c *VirtualClock) Set(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Before(c.t) {
		return fmt.Errorf("virtual time only moves forward: %s is before %s", t.Format(time.RFC3339), c.t.Format(time.RFC3339))
	}
	c.t = t
	return nil
}

// CaughtUp reports whether the relay has done everything that was due by
// its clock's now: no held mail due for a decision, no mail due for
// delivery, none in delivery, every chore due has run. Nothing more
// happens until time moves or mail or feedback arrives, so a test may then
// assert that something did not happen. With a real clock it is a
// snapshot and may change at once. It is meaningful once Start has run.
func (r *Relay) CaughtUp() (bool, error) {
	now := r.now()
	if r.events != nil && r.events.Pending() > 0 {
		return false, nil // answered events wait for the applier
	}
	if !r.chores.caughtUp(now) {
		return false, nil
	}
	// Mail only moves forward (held, queued, in delivery, done), so
	// looking at the stages in that order cannot miss an envelope that
	// moves on between two looks. The in-delivery stage is read from the
	// database, not from the state counters: those are updated just after
	// a commit, and a claim would slip through in between.
	for _, next := range []func() (time.Time, bool, error){r.db.NextHeld, r.db.NextDue} {
		at, ok, err := next()
		if err != nil || ok && !at.After(now) {
			return false, err
		}
	}
	delivering := false
	err := r.db.EnvelopesInState(store.StateDelivering, func(store.Envelope) bool { delivering = true; return false })
	return !delivering, err
}

// timeMoved wakes every loop that sleeps on a real timer (the engine,
// delivery, the chores) after virtual time moved, so each acts on the new
// time at once instead of after its idle check.
func (r *Relay) timeMoved() {
	r.engine.Kick()
	r.queue.Kick()
	r.chores.Kick()
}
