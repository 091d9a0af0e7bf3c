package governor

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"kadenz/store"
)

func TestChoresRunOnTheGivenClock(t *testing.T) {
	c := &clock{t: monday10}
	runner := newChoreRunner(slog.New(slog.NewTextHandler(testWriter{t}, nil)), c.Now)
	r := &Relay{chores: runner, log: slog.New(slog.DiscardHandler)}
	var hourly, failing []time.Time
	r.addChore("hourly", "0 * * * *", func(_ context.Context, now time.Time) error { hourly = append(hourly, now); return nil })
	r.addChore("failing", "@every 30m", func(_ context.Context, now time.Time) error {
		failing = append(failing, now)
		return errors.New("disk on fire")
	})
	r.addChore("panicking", "@every 30m", func(context.Context, time.Time) error { panic("boom") })
	r.addChore("bad", "every hour", func(context.Context, time.Time) error { t.Error("a bad spec ran"); return nil })
	r.addChore("off", "", func(context.Context, time.Time) error { t.Error("a chore without spec ran"); return nil })

	for _, s := range []struct {
		at   time.Time
		runs int
	}{
		{monday10, 0},
		{monday10.Add(29 * time.Minute), 0},
		{monday10.Add(30 * time.Minute), 2},             // failing, panicking
		{monday10.Add(time.Hour), 3},                    // all three
		{monday10.Add(5*time.Hour + 10*time.Minute), 3}, // missed runs collapse into one
		{monday10.Add(5*time.Hour + 20*time.Minute), 0},
	} {
		if n := runner.RunDue(s.at); n != s.runs {
			t.Errorf("RunDue(%s) ran %d chores, want %d", s.at.Format("15:04"), n, s.runs)
		}
	}
	if len(hourly) != 2 || !hourly[0].Equal(monday10.Add(time.Hour)) || len(failing) != 3 {
		t.Errorf("hourly ran at %v, failing %d times", hourly, len(failing))
	}
	if next, ok := runner.nextDue(); !ok || !next.Equal(monday10.Add(5*time.Hour+40*time.Minute)) {
		t.Errorf("next due %v", next)
	}
}

// On a running relay, a chore runs when the virtual clock passes its time.
func TestChoreRunsWhenVirtualClockMoves(t *testing.T) {
	cfg := governedConfig(t, "")
	cfg.Admin.Listen = "127.0.0.1:0"
	vc := NewVirtualClock(monday10)
	r := newRelay(t, Options{Config: cfg, Clock: vc})
	var ran atomic.Int32
	r.addChore("count", "0 12 * * *", func(context.Context, time.Time) error { ran.Add(1); return nil })
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, r)
	if ran.Load() != 0 {
		t.Fatal("ran before its time")
	}
	if resp, _ := postClock(t, r, `{"advance": "2h"}`); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	waitFor(t, "the chore at 12:00", func() bool { return ran.Load() == 1 })
}

// The sweep makes deliveries stuck in flight due again, but leaves one
// that is merely in progress.
func TestSweepRecoversOnlyStaleDeliveries(t *testing.T) {
	c := &clock{t: monday10}
	cfg := governedConfig(t, "")
	r := drivenRelay(t, cfg, c)
	db := r.DB()
	if _, err := db.Accept(store.Message{ID: "old"}, nil, []string{"a@x.test"}, c.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Claim(c.Now(), 10); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Hour)
	if _, err := db.Accept(store.Message{ID: "new"}, nil, []string{"a@x.test"}, c.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Claim(c.Now(), 10); err != nil {
		t.Fatal(err)
	}
	// The old claim is an hour old: beyond connect + 4 command timeouts
	// only if those are short.
	r.config().Delivery.ConnectTimeout, r.config().Delivery.CommandTimeout = time.Minute, 5*time.Minute
	if err := r.sweep(context.Background(), c.Now()); err != nil {
		t.Fatal(err)
	}
	if e, _ := db.Envelope("old-1"); e.State != store.StateQueued || !e.Due.Equal(c.Now()) {
		t.Errorf("stale delivery: %s due %v; want queued now", e.State, e.Due)
	}
	if e, _ := db.Envelope("new-1"); e.State != store.StateDelivering {
		t.Errorf("delivery in progress: %s; the sweep must leave it", e.State)
	}
}
