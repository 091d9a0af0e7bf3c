package engine

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/scoring"
	"kadenz/store"
)

// shadowTwin is one database and engine of a twin run: the same mail to
// the same recipient, decided in enforce mode on one side and in shadow
// mode on the other.
type shadowTwin struct {
	cfg *config.Config
	db  *store.DB
	e   *Engine
	now time.Time
}

func newShadowTwin(t *testing.T, mode string) *shadowTwin {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "kadenz.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tw := &shadowTwin{cfg: config.Default(), db: db}
	tw.cfg.Governor.Mode = mode
	tw.restart(t)
	return tw
}

// restart builds a new engine on the same database, as a restarted relay
// does: whatever the forecast needs must be in the store.
func (tw *shadowTwin) restart(t *testing.T) {
	t.Helper()
	e, err := New(Options{Governor: &tw.cfg.Governor, Store: tw.db, Now: func() time.Time { return tw.now }})
	if err != nil {
		t.Fatal(err)
	}
	tw.e = e
}

const shadowRcpt = "ann@example.test"

// submit holds one marketing message for the hold window, as intake does.
func (tw *shadowTwin) submit(t *testing.T, i int, at time.Time) {
	t.Helper()
	f := scoring.Features{Subject: fmt.Sprintf("Offer %d", i), Campaign: fmt.Sprintf("c%d", i%5),
		Topics: []string{[]string{"shoes", "books", "garden"}[i%3]}, Priority: 30 + 10*(i%4),
		Fingerprint: uint64(i+1) * 0x9E3779B97F4A7C15}
	raw, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	msg := store.Message{ID: fmt.Sprintf("m%03d", i), From: "news@shop.test", Received: at, Class: config.ClassMarketing, Features: raw}
	_, err = tw.db.AcceptWith(msg, []byte("Subject: x\r\n\r\nx\r\n"), []string{shadowRcpt}, at, func(_ int, e *store.Envelope) {
		e.State, e.Due = store.StateHeld, at.Add(tw.cfg.Governor.HoldWindow)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (tw *shadowTwin) decide(t *testing.T, now time.Time) {
	t.Helper()
	tw.now = now
	if _, err := tw.e.DecideDue(now); err != nil {
		t.Fatal(err)
	}
}

func (tw *shadowTwin) profile(t *testing.T) *scoring.Profile {
	t.Helper()
	raw, err := tw.db.Profile(shadowRcpt)
	if err != nil {
		t.Fatal(err)
	}
	p, err := scoring.DecodeProfile(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// In shadow mode the profile is the one enforce mode builds: its history
// holds the releases enforce makes, at enforce's times, and nothing else;
// would-defers are decided again in later rounds as enforce decides them.
// Without feedback the two histories are the same release for release.
// Before issue 18 shadow recorded every message it sent, at once: the
// history then held all 36 messages, and this test fails.
func TestShadowProfileIsEnforcesProfile(t *testing.T) {
	enforce, shadow := newShadowTwin(t, config.ModeEnforce), newShadowTwin(t, config.ModeShadow)
	start := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	// Six mails a day for six days, at times off the five-minute ticks.
	var arrivals []time.Time
	for day := range 6 {
		for _, hm := range [][2]int{{3, 7}, {8, 13}, {11, 29}, {14, 41}, {18, 2}, {21, 53}} {
			arrivals = append(arrivals, start.AddDate(0, 0, day).Add(time.Duration(hm[0])*time.Hour+time.Duration(hm[1])*time.Minute))
		}
	}
	next := 0
	end := start.AddDate(0, 0, 8)
	for now := start; now.Before(end); now = now.Add(5 * time.Minute) {
		for ; next < len(arrivals) && !arrivals[next].After(now); next++ {
			enforce.submit(t, next, arrivals[next])
			shadow.submit(t, next, arrivals[next])
		}
		enforce.decide(t, now)
		shadow.decide(t, now)
		if now.Equal(start.AddDate(0, 0, 3)) {
			shadow.restart(t) // the copies enforce would still hold are in the store
		}
	}

	ep, sp := enforce.profile(t), shadow.profile(t)
	type rel struct {
		id string
		at time.Time
	}
	releases := func(p *scoring.Profile) []rel {
		var out []rel
		for _, r := range p.History {
			out = append(out, rel{r.MessageID, r.At.UTC()})
		}
		return out
	}
	if len(ep.History) == 0 || len(ep.History) >= len(arrivals) {
		t.Fatalf("enforce released %d of %d: the scenario must release some and hold back others", len(ep.History), len(arrivals))
	}
	if got, want := releases(sp), releases(ep); !slices.Equal(got, want) {
		t.Errorf("shadow's history (%d releases) is not enforce's (%d):\nshadow  %v\nenforce %v", len(got), len(want), got, want)
	}

	counts, err := enforce.db.CountByState()
	if err != nil {
		t.Fatal(err)
	}
	fc, err := ReadForecast(shadow.db, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("enforce: %d released, %d suppressed, %d held; shadow forecast %+v, pending %d",
		len(ep.History), counts[store.StateSuppressed], counts[store.StateHeld], fc, fc.Pending())
	if fc.Decided != int64(len(arrivals)) || fc.Released != int64(len(ep.History)) ||
		fc.Suppressed != int64(counts[store.StateSuppressed]) || fc.Pending() != int64(counts[store.StateHeld]) {
		t.Errorf("forecast %+v (pending %d); enforce released %d, suppressed %d, holds %d of %d",
			fc, fc.Pending(), len(ep.History), counts[store.StateSuppressed], counts[store.StateHeld], len(arrivals))
	}
	if fc.Deferred == 0 || fc.DeferredReleased == 0 {
		t.Errorf("no would-defer was decided again and released (%+v): the scenario does not test the copies", fc)
	}
	// Shadow sent everything.
	scounts, err := shadow.db.CountByState()
	if err != nil {
		t.Fatal(err)
	}
	if scounts[store.StateQueued] != len(arrivals) {
		t.Errorf("shadow mode queued %d of %d messages: %v", scounts[store.StateQueued], len(arrivals), scounts)
	}
	// The days' counters add up to the total.
	var days []time.Time
	for d := start; d.Before(end); d = d.AddDate(0, 0, 1) {
		days = append(days, d)
	}
	if byDay, err := ReadForecast(shadow.db, days); err != nil || byDay != fc {
		t.Errorf("forecast by day %+v (%v), in total %+v", byDay, err, fc)
	}
}

// A profile that still has copies when the mode becomes enforce drops them
// at its next round; enforce mode makes none.
func TestEnforceDropsShadowCopies(t *testing.T) {
	tw := newShadowTwin(t, config.ModeEnforce)
	start := time.Date(2026, 11, 23, 3, 7, 0, 0, time.UTC)
	p := &scoring.Profile{ShadowHeld: []scoring.ShadowHeld{{ID: "old-1", Received: start.Add(-time.Hour), Sent: start.Add(-time.Hour), Due: start.Add(time.Hour)}}}
	raw, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.db.PutProfile(shadowRcpt, raw); err != nil {
		t.Fatal(err)
	}
	tw.submit(t, 0, start)
	tw.decide(t, start.Add(10*time.Minute))
	if got := tw.profile(t).ShadowHeld; got != nil {
		t.Errorf("enforce kept shadow copies: %+v", got)
	}
}

// A would-defer is decided again when it comes due, with no new mail for
// the recipient, as enforce decides its deferred mail: the forecast does
// not wait for the next mail. After a restart the engine has forgotten
// when that is, and the copy waits for the recipient's next mail, whose
// round decides it first at its due time: the history is the same.
func TestShadowCopiesDecidedWhenDue(t *testing.T) {
	for _, restart := range []bool{false, true} {
		enforce, shadow := newShadowTwin(t, config.ModeEnforce), newShadowTwin(t, config.ModeShadow)
		start := time.Date(2026, 11, 23, 22, 7, 0, 0, time.UTC) // quiet hours: deferred to the morning
		for i := range 8 {
			enforce.submit(t, i, start)
			shadow.submit(t, i, start)
		}
		var pendingBeforeMail int64 = -1
		end := start.Add(72 * time.Hour)
		for now := start.Truncate(5 * time.Minute); now.Before(end); now = now.Add(5 * time.Minute) {
			if restart && now.Equal(start.Add(15*time.Minute).Truncate(5*time.Minute)) {
				shadow.restart(t)
			}
			if now.Equal(start.Add(60 * time.Hour).Truncate(5 * time.Minute)) {
				fc, err := ReadForecast(shadow.db, nil)
				if err != nil {
					t.Fatal(err)
				}
				pendingBeforeMail = fc.Pending()
				enforce.submit(t, 8, now)
				shadow.submit(t, 8, now)
			}
			enforce.decide(t, now)
			shadow.decide(t, now)
		}
		fc, err := ReadForecast(shadow.db, nil)
		if err != nil {
			t.Fatal(err)
		}
		if fc.Deferred == 0 {
			t.Fatalf("restart %v: nothing deferred (%+v): the scenario tests nothing", restart, fc)
		}
		if restart != (pendingBeforeMail > 0) {
			t.Errorf("restart %v: %d copies pending before the next mail (%+v)", restart, pendingBeforeMail, fc)
		}
		var eh, sh []string
		for _, r := range enforce.profile(t).History {
			eh = append(eh, r.MessageID+"@"+r.At.UTC().Format(time.RFC3339))
		}
		for _, r := range shadow.profile(t).History {
			sh = append(sh, r.MessageID+"@"+r.At.UTC().Format(time.RFC3339))
		}
		if !slices.Equal(eh, sh) || fc.Pending() != 0 {
			t.Errorf("restart %v: shadow history %v, enforce %v; forecast %+v", restart, sh, eh, fc)
		}
	}
}

// A recipient erased while their copies waited is not given a profile
// again when the copies come due.
func TestShadowCopiesOfErasedRecipient(t *testing.T) {
	tw := newShadowTwin(t, config.ModeShadow)
	start := time.Date(2026, 11, 23, 22, 7, 0, 0, time.UTC) // quiet hours: deferred to the morning
	for i := range 8 {
		tw.submit(t, i, start)
	}
	tw.decide(t, start.Add(10*time.Minute))
	if len(tw.profile(t).ShadowHeld) == 0 {
		t.Fatal("nothing deferred: the test tests nothing")
	}
	rules := store.ForgetRules{Keep: func(store.Envelope, store.Message) bool { return false }, HardStop: func([]byte) bool { return false }}
	if _, err := tw.db.Forget(shadowRcpt, start.Add(20*time.Minute), rules); err != nil {
		t.Fatal(err)
	}
	tw.decide(t, start.Add(24*time.Hour))
	if raw, err := tw.db.Profile(shadowRcpt); err != nil || raw != nil {
		t.Errorf("after the erasure a profile was written again: %d bytes (%v)", len(raw), err)
	}
	if len(tw.e.shadowDueAt) != 0 {
		t.Errorf("the engine still waits for the erased copies: %v", tw.e.shadowDueAt)
	}
}
