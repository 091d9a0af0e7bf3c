package governor

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"kadenz/config"
)

// Periodic chores on cron schedules, on the relay's clock.
//
// cron.Cron runs jobs on wall time; the relay may run on a virtual clock,
// so this scheduler only borrows cron's parser and Schedule.Next: each
// chore remembers when it is next due, and RunDue runs whatever is due at
// the time it is given. The loop calls RunDue with the relay's clock,
// sleeping until the earliest chore is due or a kick (the virtual clock
// kicks it when it moves), at most idleCheck. A chore that fails is logged
// and runs again at its next time; one chore runs at a time, so a slow
// chore delays the next instead of piling up (what cron's
// SkipIfStillRunning gives), and a panic is recovered and logged.
//
// Scoring keeps no periodic state to decay: profiles decay lazily, by the
// time since they were last touched, whenever they are read. So profile
// decay needs no chore.

type chore struct {
	name  string
	sched cron.Schedule
	run   func(ctx context.Context, now time.Time) error
	next  time.Time
}

type choreRunner struct {
	log     *slog.Logger
	now     func() time.Time
	mu      sync.Mutex
	list    []*chore
	running int // chores taken by RunDue and not finished
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started bool // set by start, before any shutdown can run
	// cancel stops a chore in progress at shutdown.
	ctx    context.Context
	cancel context.CancelFunc
}

func newChoreRunner(log *slog.Logger, now func() time.Time) *choreRunner {
	ctx, cancel := context.WithCancel(context.Background())
	return &choreRunner{log: log, now: now, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel}
}

// addChore runs run on the cron spec (see config.ParseChoreSpec); an empty
// spec leaves the chore off. Other parts of the relay (retention, say)
// plug their chores in here, before Start.
func (r *Relay) addChore(name, spec string, run func(ctx context.Context, now time.Time) error) {
	if spec == "" {
		return
	}
	sched, err := config.ParseChoreSpec(spec)
	if err != nil {
		// Specs come from the validated config or from code.
		r.log.Error("chore not scheduled", "chore", name, "error", err)
		return
	}
	if r.leases != nil {
		// One node at a time runs each chore (cluster.go); the others
		// skip their turn.
		inner := run
		run = func(ctx context.Context, now time.Time) error {
			if !r.leases.Hold("chore:" + name) {
				return nil
			}
			return inner(ctx, now)
		}
	}
	c := r.chores
	c.mu.Lock()
	c.list = append(c.list, &chore{name: name, sched: sched, run: run, next: sched.Next(c.now())})
	c.mu.Unlock()
	c.Kick()
}

// Kick makes the runner look at the clock again now.
func (c *choreRunner) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// RunDue runs every chore due at now, in the order they were added, and
// returns how many ran. Each is next due at its schedule's first time
// after now: a chore that missed several times (the clock jumped) runs
// once.
func (c *choreRunner) RunDue(now time.Time) int {
	c.mu.Lock()
	var due []*chore
	for _, ch := range c.list {
		if !ch.next.After(now) {
			due = append(due, ch)
			ch.next = ch.sched.Next(now)
		}
	}
	c.running += len(due)
	c.mu.Unlock()
	for _, ch := range due {
		c.runOne(ch, now)
		c.mu.Lock()
		c.running--
		c.mu.Unlock()
	}
	return len(due)
}

// caughtUp reports whether every chore due at now has run to its end.
func (c *choreRunner) caughtUp(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running > 0 {
		return false
	}
	for _, ch := range c.list {
		if !ch.next.After(now) {
			return false
		}
	}
	return true
}

func (c *choreRunner) runOne(ch *chore, now time.Time) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("chore panicked", "chore", ch.name, "panic", p)
		}
	}()
	if err := ch.run(c.ctx, now); err != nil {
		c.log.Error("chore failed; runs again at its next time", "chore", ch.name, "error", err)
	}
}

// nextDue is the earliest time a chore is due, and false if there are none.
func (c *choreRunner) nextDue() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var t time.Time
	for _, ch := range c.list {
		if t.IsZero() || ch.next.Before(t) {
			t = ch.next
		}
	}
	return t, !t.IsZero()
}

func (c *choreRunner) start() {
	c.started = true
	go c.loop()
}

// idleCheck bounds the chore loop's sleep, as a safety net against a
// clock that jumps.
const idleCheck = time.Minute

func (c *choreRunner) loop() {
	defer close(c.done)
	for {
		now := c.now()
		c.RunDue(now)
		wait := idleCheck
		if next, ok := c.nextDue(); ok {
			wait = min(max(next.Sub(now), 0), idleCheck)
		}
		t := time.NewTimer(wait)
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-c.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// shutdown stops the loop, cancelling a chore in progress, and waits.
func (c *choreRunner) shutdown() {
	c.cancel()
	close(c.stop)
	if c.started {
		<-c.done
	}
}

// sweep is the safety net under the engine's and the queue's own timers:
// deliveries stuck in flight for longer than any attempt can take are made
// due again, and both loops look at the schedule.
func (r *Relay) sweep(_ context.Context, now time.Time) error {
	d := r.config().Delivery
	// An attempt is a connection plus a handful of commands, each bounded.
	cutoff := now.Add(-(d.ConnectTimeout + 4*d.CommandTimeout))
	n, err := r.db.RecoverStale(now, cutoff)
	if err != nil {
		return err
	}
	if n > 0 {
		r.log.Warn("sweep: deliveries stuck in flight made due again", "envelopes", n)
	}
	r.engine.Kick()
	r.queue.Kick()
	return nil
}
