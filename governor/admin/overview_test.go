package admin

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/governor/engine"
	"kadenz/store"
)

// Mail the smarthost refused is counted as failed, not as released, in the
// overview's days and groups.
func TestOverviewCountsFailedApartFromReleased(t *testing.T) {
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	p := &overviewPage{Since: day, Until: day.AddDate(0, 0, 1), Days: []dayCount{{Day: day}}}
	for _, st := range []store.State{store.StateDelivered, store.StateFailed, store.StateQueued, store.StateFailed, store.StateSuppressed} {
		p.count(store.EnvelopeTally{Hour: day.Add(time.Hour), State: st, Class: config.ClassMarketing, N: 1})
	}
	d := p.Days[0]
	if d.Submitted != 5 || d.Released != 2 || d.Failed != 2 || d.Suppressed != 1 {
		t.Errorf("day: %+v; want 5 submitted, 2 released, 2 failed, 1 suppressed", d)
	}
	if g := p.Governed; g.Released != 2 || g.Failed != 2 || g.Delivered != 1 {
		t.Errorf("governed group: %+v; want 2 released, 2 failed, 1 delivered", g)
	}
}

// Statistics and the overview's envelope counts, answered from the
// store's tallies, equal what walking every envelope record gave before
// (the walks below are the earlier code), on a random workload of engine
// records over several days.
func TestStatsAndOverviewFromTalliesMatchTheWalk(t *testing.T) {
	db, err := store.Open(t.TempDir()+"/kadenz.db", store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := rand.New(rand.NewPCG(16, 2))
	start := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	actions := []string{"release", "defer", "suppress", "review"}
	reasons := []string{"fatigue", "low_relevance", "quiet_hours", "cap_daily"}
	for i := range 300 {
		at := start.Add(time.Duration(rng.IntN(20*24*60)) * time.Minute)
		class := config.ClassMarketing
		if rng.IntN(4) == 0 {
			class = config.ClassTransactional
		}
		msg := store.Message{ID: fmt.Sprintf("m%04d", i), From: "shop@example.test", Received: at, Class: class}
		rcpts := []string{fmt.Sprintf("r%d@example.test", rng.IntN(40))}
		if rng.IntN(3) == 0 {
			rcpts = append(rcpts, fmt.Sprintf("r%d@example.test", rng.IntN(40)))
		}
		envs, err := db.AcceptWith(msg, []byte("Subject: x\r\n\r\nx\r\n"), rcpts, at, func(_ int, e *store.Envelope) {
			if class == config.ClassMarketing {
				e.State, e.Holdout = store.StateHeld, rng.IntN(5) == 0
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range envs {
			if e.State != store.StateHeld || rng.IntN(5) == 0 {
				continue
			}
			rec := engine.Record{DecidedAt: at, Mode: "enforce", Action: actions[rng.IntN(len(actions))],
				Reasons: []string{reasons[rng.IntN(len(reasons))]}}
			if rng.IntN(4) == 0 {
				rec.Mode, rec.Would, rec.Action = "shadow", rec.Action, "release"
			}
			e.State = []store.State{store.StateQueued, store.StateSuppressed, store.StateReview, store.StateDelivered, store.StateFailed}[rng.IntN(5)]
			raw, _ := json.Marshal(rec)
			if err := db.ApplyDecisions(store.Decided{Recipient: e.To, Envelopes: []store.Envelope{e}, Records: map[string][]byte{e.ID: raw}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	a := &Server{db: db}
	for _, p := range [][2]time.Time{{time.Time{}, start.AddDate(0, 1, 0)}, {start.Add(50 * time.Hour), start.Add(200 * time.Hour)}} {
		got, err := a.stats(p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		want, err := walkStats(db, got.Since, got.Until)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("stats of %s-%s:\nfrom tallies %+v\nwalked       %+v", p[0], p[1], got, want)
		}
		if got.Envelopes == 0 || len(got.ByReason) == 0 {
			t.Errorf("stats of %s-%s count nothing: %+v", p[0], p[1], got)
		}
	}

	today := start.AddDate(0, 0, 15)
	p := &overviewPage{Since: today.AddDate(0, 0, -(overviewDays - 1)), Until: today.AddDate(0, 0, 1), Days: make([]dayCount, overviewDays)}
	w := &overviewPage{Since: p.Since, Until: p.Until, Days: make([]dayCount, overviewDays)}
	tallies, err := db.Tallies(p.Since, p.Until)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tallies.Envelopes {
		p.count(e)
	}
	fromTallies := map[string]int{}
	for _, r := range tallies.Reasons {
		if r.State == store.StateSuppressed {
			fromTallies[r.Reason] += r.N
		}
	}
	walked := map[string]int{}
	err = db.Records(func(rec store.EnvelopeRecord) bool { w.walkCount(rec, walked); return true })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Days, w.Days) || p.Governed != w.Governed || p.Holdout != w.Holdout || !reflect.DeepEqual(fromTallies, walked) {
		t.Errorf("overview from tallies:\n%+v %+v %+v %v\nwalked:\n%+v %+v %+v %v", p.Days, p.Governed, p.Holdout, fromTallies, w.Days, w.Governed, w.Holdout, walked)
	}
	if p.Governed.Envelopes == 0 || p.Holdout.Envelopes == 0 {
		t.Errorf("the overview counts no marketing mail: %+v %+v", p.Governed, p.Holdout)
	}
}

// walkStats is how statistics were counted before the tallies.
func walkStats(db store.Reads, since, until time.Time) (api.Stats, error) {
	st := api.Stats{Since: since, Until: until, ByState: map[string]int{}, ByClass: map[string]int{},
		ByAction: map[string]int{}, ByReason: map[string]int{}}
	lastMsg := ""
	err := db.Records(func(rec store.EnvelopeRecord) bool {
		e := rec.Envelope
		if e.Created.Before(since) || !e.Created.Before(until) {
			return true
		}
		st.Envelopes++
		if e.MessageID != lastMsg {
			st.Messages++
			st.ByClass[rec.Message.Class]++
			lastMsg = e.MessageID
		}
		st.ByState[string(e.State)]++
		if e.Holdout {
			st.Holdout++
		}
		if s := summarise(rec.Decisions); s.last != nil {
			st.ByAction[cmp.Or(s.last.Would, s.last.Action)]++
			for _, reason := range s.last.Reasons {
				st.ByReason[reason]++
			}
		}
		return true
	})
	return st, err
}

// walkCount is how the overview counted one envelope record before the
// tallies (the recipient counts apart).
func (p *overviewPage) walkCount(rec store.EnvelopeRecord, reasons map[string]int) {
	e := rec.Envelope
	if e.Created.Before(p.Since) || !e.Created.Before(p.Until) {
		return
	}
	day := &p.Days[int(e.Created.Sub(p.Since)/(24*time.Hour))]
	day.Submitted++
	switch {
	case e.State == store.StateSuppressed:
		day.Suppressed++
		if sum := summarise(rec.Decisions); sum.last != nil {
			for _, r := range sum.last.Reasons {
				reasons[r]++
			}
		}
	case e.State == store.StateFailed:
		day.Failed++
	case released(e.State):
		day.Released++
	}
	if rec.Message.Class != config.ClassMarketing {
		return
	}
	g := &p.Governed
	if e.Holdout {
		g = &p.Holdout
	}
	g.Envelopes++
	switch {
	case e.State == store.StateSuppressed:
		g.Suppressed++
	case e.State == store.StateFailed:
		g.Failed++
	case released(e.State):
		g.Released++
	}
	if e.State == store.StateDelivered {
		g.Delivered++
	}
}

// The overview's recipient counts: the first view starts a count in the
// background and shows none; later views show the last count, and one
// older than liftMaxAge starts a new count while the old one is shown; a
// new period starts afresh.
func TestLiftCacheCountsInTheBackground(t *testing.T) {
	var c liftCache
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	wall := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	counts := make(chan recipientLift)
	count := func() (recipientLift, error) { return <-counts, nil }
	fail := func(err error) { t.Error(err) }
	wait := func() {
		t.Helper()
		for range 1000 {
			c.mu.Lock()
			counting := c.counting
			c.mu.Unlock()
			if !counting {
				return
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatal("the count did not end")
	}

	if _, ok := c.get(day, day.AddDate(0, 0, 1), wall, count, fail); ok {
		t.Fatal("counts before any count ran")
	}
	if _, ok := c.get(day, day.AddDate(0, 0, 1), wall, count, fail); ok { // a second view does not start another count
		t.Fatal("counts before any count ran")
	}
	counts <- recipientLift{Governed: groupRecipients{Recipients: 3}, At: wall}
	wait()
	l, ok := c.get(day, day.AddDate(0, 0, 1), wall.Add(time.Minute), count, fail)
	if !ok || l.Governed.Recipients != 3 {
		t.Fatalf("after the count: %+v %v", l, ok)
	}
	// Old: shown, and counted again.
	l, ok = c.get(day, day.AddDate(0, 0, 1), wall.Add(liftMaxAge), count, fail)
	if !ok || l.Governed.Recipients != 3 {
		t.Fatalf("an old count is not shown while the new one runs: %+v %v", l, ok)
	}
	counts <- recipientLift{Governed: groupRecipients{Recipients: 4}, At: wall.Add(liftMaxAge)}
	wait()
	if l, _ := c.get(day, day.AddDate(0, 0, 1), wall.Add(liftMaxAge), count, fail); l.Governed.Recipients != 4 {
		t.Errorf("the new count is not shown: %+v", l)
	}
	// The next day is another period.
	next := day.AddDate(0, 0, 1)
	if _, ok := c.get(next, next.AddDate(0, 0, 1), wall.Add(liftMaxAge), count, fail); ok {
		t.Error("a new period shows the last period's counts")
	}
	counts <- recipientLift{At: wall}
	wait()
}
