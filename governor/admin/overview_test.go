package admin

import (
	"testing"
	"time"

	"kadenz/config"
	"kadenz/store"
)

// Mail the smarthost refused is counted as failed, not as released, in the
// overview's days and groups.
func TestOverviewCountsFailedApartFromReleased(t *testing.T) {
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	p := &overviewPage{Since: day, Until: day.AddDate(0, 0, 1), Days: []dayCount{{Day: day}}}
	reasons, group := map[string]int{}, map[string]bool{}
	for i, st := range []store.State{store.StateDelivered, store.StateFailed, store.StateQueued, store.StateFailed, store.StateSuppressed} {
		p.count(store.EnvelopeRecord{
			Envelope: store.Envelope{ID: string(rune('a'+i)) + "-1", To: "ann@example.test", State: st, Created: day.Add(time.Hour)},
			Message:  &store.Message{Class: config.ClassMarketing},
		}, reasons, group)
	}
	d := p.Days[0]
	if d.Submitted != 5 || d.Released != 2 || d.Failed != 2 || d.Suppressed != 1 {
		t.Errorf("day: %+v; want 5 submitted, 2 released, 2 failed, 1 suppressed", d)
	}
	if g := p.Governed; g.Released != 2 || g.Failed != 2 || g.Delivered != 1 {
		t.Errorf("governed group: %+v; want 2 released, 2 failed, 1 delivered", g)
	}
}
