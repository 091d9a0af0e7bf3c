package feedback

import (
	"testing"
	"time"

	"kadenz/scoring"
)

// In shadow mode, engagement teaches the profile only about mail enforce
// would have sent: mail in the history is learned, mail enforce would
// still hold waits on its copy, mail enforce would have suppressed is not
// learned; hard stops always apply.
func TestShadowLearnsOnlyWhatEnforceWouldHaveSeen(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	p := &scoring.Profile{
		History:    []scoring.Release{{At: t0, MessageID: "released-1"}},
		ShadowHeld: []scoring.ShadowHeld{{ID: "held-1", Sent: t0, Due: t0.Add(20 * time.Hour)}},
	}
	for _, c := range []struct {
		ev    scoring.Event
		learn bool
	}{
		{scoring.Event{Kind: scoring.EventClick, At: t0.Add(time.Hour), MessageID: "released-1"}, true},
		{scoring.Event{Kind: scoring.EventClick, At: t0.Add(2 * time.Hour), MessageID: "held-1"}, false},
		{scoring.Event{Kind: scoring.EventOpen, At: t0.Add(3 * time.Hour), MessageID: "suppressed-1"}, false},
		{scoring.Event{Kind: scoring.EventOpen, At: t0.Add(3 * time.Hour)}, true}, // names no message
		{scoring.Event{Kind: scoring.EventUnsubscribe, At: t0.Add(4 * time.Hour), MessageID: "suppressed-1"}, true},
		{scoring.Event{Kind: scoring.EventComplaint, At: t0.Add(4 * time.Hour), MessageID: "held-1"}, true},
	} {
		if got := shadowLearns(p, c.ev); got != c.learn {
			t.Errorf("%v on %q: learns %v, want %v", c.ev.Kind, c.ev.MessageID, got, c.learn)
		}
	}
	if c := p.ShadowHeld[0]; !c.ClickedAt.Equal(t0.Add(2*time.Hour)) || !c.OpenedAt.IsZero() {
		t.Errorf("the click on the held copy is not noted: %+v", c)
	}
	// Released by enforce at 06:00 the next day, the copy's click comes
	// as long after that release as it came after the send.
	evs := p.ShadowHeld[0].ShadowEvents(t0.Add(20 * time.Hour))
	if len(evs) != 1 || evs[0].Kind != scoring.EventClick || !evs[0].At.Equal(t0.Add(22*time.Hour)) || evs[0].MessageID != "held-1" {
		t.Errorf("events of the released copy: %+v", evs)
	}
}
