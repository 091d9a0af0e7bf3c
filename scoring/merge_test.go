package scoring

import (
	"math"
	"testing"
	"time"
)

func TestMergeProfiles(t *testing.T) {
	m := DefaultMemory()
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	a := &Profile{DecayedAt: t0, All: Counts{Sends: 4, Opens: 2}, Topics: map[string]Counts{"shoes": {Sends: 2}},
		History:     []Release{{At: t0, MessageID: "e1"}, {At: t0.Add(48 * time.Hour), MessageID: "e3"}},
		Complained:  t0.Add(time.Hour),
		PausedUntil: t0.Add(24 * time.Hour), PauseReason: "human-reply"}
	b := &Profile{DecayedAt: t0.Add(m.HalfLife), All: Counts{Sends: 1, Clicks: 1}, Topics: map[string]Counts{"shoes": {Clicks: 1}, "hats": {Sends: 1}},
		History:      []Release{{At: t0, MessageID: "e1", Clicked: true}, {At: t0.Add(24 * time.Hour), MessageID: "e2"}},
		Unsubscribed: t0.Add(2 * time.Hour), Complained: t0,
		AwayUntil: t0.Add(72 * time.Hour), Timezone: "Europe/Berlin"}
	a.Merge(b, m)
	// a's counts are a half-life older than b's: they count half.
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if !a.DecayedAt.Equal(b.DecayedAt) || !near(a.All.Sends, 3) || !near(a.All.Opens, 1) || !near(a.All.Clicks, 1) {
		t.Errorf("counts %+v at %v; want sends 3, opens 1, clicks 1 at %v", a.All, a.DecayedAt, b.DecayedAt)
	}
	if s := a.Topics["shoes"]; !near(s.Sends, 1) || !near(s.Clicks, 1) || !near(a.Topics["hats"].Sends, 1) {
		t.Errorf("topics %+v", a.Topics)
	}
	if len(a.History) != 3 || a.History[0].MessageID != "e1" || !a.History[0].Clicked || a.History[1].MessageID != "e2" || a.History[2].MessageID != "e3" {
		t.Errorf("history %+v", a.History)
	}
	if !a.Unsubscribed.Equal(b.Unsubscribed) || !a.Complained.Equal(t0) || !a.AwayUntil.Equal(b.AwayUntil) ||
		!a.PausedUntil.Equal(t0.Add(24*time.Hour)) || a.Timezone != "Europe/Berlin" {
		t.Errorf("signals: unsubscribed %v, complained %v, away %v, paused %v, tz %q", a.Unsubscribed, a.Complained, a.AwayUntil, a.PausedUntil, a.Timezone)
	}
	if b.Topics["shoes"].Clicks != 1 || b.All.Clicks != 1 {
		t.Errorf("merge changed the other profile: %+v", b)
	}
}
