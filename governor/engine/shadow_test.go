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

// firstRecords are each envelope's first decision record, by envelope ID,
// with the envelopes' states.
func (tw *shadowTwin) firstRecords(t *testing.T) (map[string]Record, map[string]store.State) {
	t.Helper()
	recs, states := map[string]Record{}, map[string]store.State{}
	err := tw.db.Records(func(er store.EnvelopeRecord) bool {
		var rs []Record
		if err := json.Unmarshal(er.Decisions, &rs); err != nil || len(rs) == 0 {
			t.Errorf("envelope %s: records %s (%v)", er.Envelope.ID, er.Decisions, err)
			return true
		}
		recs[er.Envelope.ID], states[er.Envelope.ID] = rs[0], er.Envelope.State
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs, states
}

// The gate's suppression list is forecast as enforce applies it: mail to
// a listed address is sent in shadow mode with "would suppress" and the
// list's reason, and copies enforce would still have held when the entry
// was made are suppressed too. The entry is an operator's: the profile
// has no hard stop, so before this the model alone weighed the mail and
// the forecast released most of it.
func TestShadowForecastsSuppressionList(t *testing.T) {
	enforce, shadow := newShadowTwin(t, config.ModeEnforce), newShadowTwin(t, config.ModeShadow)
	start := time.Date(2026, 11, 23, 22, 5, 0, 0, time.UTC) // quiet hours: deferred to the morning
	for i := range 4 {
		enforce.submit(t, i, start)
		shadow.submit(t, i, start)
	}
	listedAt := start.Add(time.Hour)
	for now := start; now.Before(start.Add(48 * time.Hour)); now = now.Add(5 * time.Minute) {
		if now.Equal(listedAt) {
			if len(shadow.profile(t).ShadowHeld) != 4 {
				t.Fatalf("shadow holds %d copies before the entry, want 4 (deferred in quiet hours)", len(shadow.profile(t).ShadowHeld))
			}
			for _, tw := range []*shadowTwin{enforce, shadow} {
				if _, err := tw.db.Suppress(true, store.Suppression{Address: shadowRcpt, Reason: "asked by phone", At: now, Source: "admin"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if now.Equal(start.Add(14 * time.Hour)) { // the next morning: mail a listed address gets
			for i := 4; i < 7; i++ {
				enforce.submit(t, i, now)
				shadow.submit(t, i, now)
			}
		}
		enforce.decide(t, now)
		shadow.decide(t, now)
	}

	counts, err := enforce.db.CountByState()
	if err != nil {
		t.Fatal(err)
	}
	if counts[store.StateSuppressed] != 7 {
		t.Fatalf("enforce suppressed %d of 7 (%v): the scenario is not what the test needs", counts[store.StateSuppressed], counts)
	}
	fc, err := ReadForecast(shadow.db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fc.Decided != 7 || fc.Suppressed != 7 || fc.Released != 0 || fc.Pending() != 0 {
		t.Errorf("forecast %+v (pending %d); enforce suppressed all 7", fc, fc.Pending())
	}
	if got := shadow.profile(t).ShadowHeld; got != nil {
		t.Errorf("copies left after the suppression: %+v", got)
	}
	erecs, _ := enforce.firstRecords(t)
	srecs, sstates := shadow.firstRecords(t)
	for i := 4; i < 7; i++ {
		id := fmt.Sprintf("m%03d-1", i)
		e, s := erecs[id], srecs[id]
		if s.Would != e.Action || s.Would != scoring.ActionSuppress.String() || !slices.Equal(s.Reasons, e.Reasons) ||
			!slices.Equal(s.Reasons, []string{ReasonSuppressionList}) || s.Explanation != e.Explanation {
			t.Errorf("%s: shadow would %q %v (%q); enforce %q %v (%q)", id, s.Would, s.Reasons, s.Explanation, e.Action, e.Reasons, e.Explanation)
		}
	}
	// Shadow mode still sent everything.
	for id, st := range sstates {
		if st != store.StateQueued || srecs[id].Action != scoring.ActionRelease.String() {
			t.Errorf("%s: shadow mode left it %s, record %q", id, st, srecs[id].Action)
		}
	}
}

// A reply pause is forecast as enforce applies it: mail during the pause
// is sent in shadow mode with "would defer" and the pause's reason, kept
// as a copy due when the pause ends, and decided then by the model as
// enforce decides its deferred mail: the histories and the final counts
// are enforce's.
func TestShadowForecastsReplyPause(t *testing.T) {
	enforce, shadow := newShadowTwin(t, config.ModeEnforce), newShadowTwin(t, config.ModeShadow)
	// On the ticks: enforce decides at a tick, so that a pause ending
	// between ticks would be decided later there than in the forecast.
	start := time.Date(2026, 11, 23, 8, 5, 0, 0, time.UTC)
	pausedUntil := start.Add(50 * time.Hour)
	paused := &scoring.Profile{PausedUntil: pausedUntil, PauseReason: ReasonHumanReply}
	raw, err := paused.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var arrivals []time.Time
	for day := range 4 {
		for _, h := range []int{0, 3, 6} {
			arrivals = append(arrivals, start.AddDate(0, 0, day).Add(time.Duration(h)*time.Hour))
		}
	}
	for _, tw := range []*shadowTwin{enforce, shadow} {
		if err := tw.db.PutProfile(shadowRcpt, raw); err != nil {
			t.Fatal(err)
		}
	}
	next := 0
	for now := start; now.Before(start.AddDate(0, 0, 6)); now = now.Add(5 * time.Minute) {
		for ; next < len(arrivals) && !arrivals[next].After(now); next++ {
			enforce.submit(t, next, arrivals[next])
			shadow.submit(t, next, arrivals[next])
		}
		enforce.decide(t, now)
		shadow.decide(t, now)
	}

	erecs, _ := enforce.firstRecords(t)
	srecs, sstates := shadow.firstRecords(t)
	duringPause := 0
	for i, at := range arrivals {
		id := fmt.Sprintf("m%03d-1", i)
		e, s := erecs[id], srecs[id]
		if s.Would != e.Action || !slices.Equal(s.Reasons, e.Reasons) {
			t.Errorf("%s: shadow would %q %v; enforce %q %v", id, s.Would, s.Reasons, e.Action, e.Reasons)
		}
		if at.Add(shadow.cfg.Governor.HoldWindow).Before(pausedUntil) {
			duringPause++
			if s.Would != scoring.ActionDefer.String() || !slices.Equal(s.Reasons, []string{ReasonHumanReply}) {
				t.Errorf("%s, decided during the pause: shadow would %q %v", id, s.Would, s.Reasons)
			}
		}
		if sstates[id] != store.StateQueued {
			t.Errorf("%s: shadow mode left it %s", id, sstates[id])
		}
	}
	if duringPause == 0 || duringPause == len(arrivals) {
		t.Fatalf("%d of %d decided during the pause: the scenario tests nothing", duringPause, len(arrivals))
	}
	releases := func(p *scoring.Profile) []string {
		var out []string
		for _, r := range p.History {
			out = append(out, r.MessageID+"@"+r.At.UTC().Format(time.RFC3339))
		}
		return out
	}
	eh, sh := releases(enforce.profile(t)), releases(shadow.profile(t))
	if len(eh) == 0 || !slices.Equal(eh, sh) {
		t.Errorf("shadow's history is not enforce's:\nshadow  %v\nenforce %v", sh, eh)
	}
	for _, r := range enforce.profile(t).History {
		if r.At.Before(pausedUntil) {
			t.Errorf("enforce released %s at %s, during the pause", r.MessageID, r.At)
		}
	}
	counts, err := enforce.db.CountByState()
	if err != nil {
		t.Fatal(err)
	}
	fc, err := ReadForecast(shadow.db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fc.Decided != int64(len(arrivals)) || fc.Deferred < int64(duringPause) || fc.Released != int64(len(eh)) ||
		fc.Suppressed != int64(counts[store.StateSuppressed]) || fc.Pending() != int64(counts[store.StateHeld]) {
		t.Errorf("forecast %+v (pending %d); enforce %v, %d released", fc, fc.Pending(), counts, len(eh))
	}
}
