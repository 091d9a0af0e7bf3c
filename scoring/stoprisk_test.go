package scoring

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// stopRiskPolicy is the default policy with the stop risk at weight w.
func stopRiskPolicy(w float64) Policy {
	pol := DefaultPolicy()
	pol.StopRiskWeight = w
	return pol
}

// A recipient Kadenz knows nothing about is as likely to stop as the list:
// the stop risk starts at 1 whatever the weight and the list's rate.
func TestStopRiskNewRecipientIsTheList(t *testing.T) {
	for _, list := range []float64{0, 0.01, 0.073, 0.3} {
		pop := DefaultPopulation()
		pop.ListRate = list
		for _, w := range []float64{0, 0.5, 1, 2} {
			f := ScoreFatigue(&Profile{}, &pop, stopRiskPolicy(w), -1, t0)
			if f.StopRisk != 1 {
				t.Errorf("list rate %v, weight %v: new recipient's stop risk %v, want 1", list, w, f.StopRisk)
			}
		}
	}
}

// The budget tightens for a reader who never engages and loosens for one
// who does, relative to the list's measured rate; with weight 0 nothing
// changes.
func TestStopRiskTightensForNonEngagers(t *testing.T) {
	pop := DefaultPopulation()
	pop.ListRate = 0.05
	m := DefaultMemory()
	// n releases, one every two days, the last a week ago; engage says
	// which were clicked or opened.
	build := func(n int, engage func(i int) (EventKind, bool)) *Profile {
		p := &Profile{}
		for i := 0; i < n; i++ {
			at := t0.Add(-time.Duration(7+2*(n-i)) * 24 * time.Hour)
			id := fmt.Sprint(i)
			p.RecordRelease(Release{At: at, MessageID: id}, m)
			if kind, ok := engage(i); ok {
				p.RecordEvent(Event{Kind: kind, At: at.Add(time.Hour), MessageID: id}, nil, m)
			}
		}
		return p
	}
	keen := build(30, func(int) (EventKind, bool) { return EventClick, true })
	average := build(30, func(i int) (EventKind, bool) { return EventOpen, i%6 == 0 })
	// Few enough ignored releases that the ignored streak alone leaves
	// room under MaxSensitivity.
	idle := build(6, func(int) (EventKind, bool) { return EventOpen, false })
	pol := stopRiskPolicy(1)
	fk := ScoreFatigue(keen, &pop, pol, -1, t0)
	fi := ScoreFatigue(idle, &pop, pol, -1, t0)
	fa := ScoreFatigue(average, &pop, pol, -1, t0)
	if !(fk.StopRisk < 1 && fi.StopRisk > 1 && fk.StopRisk < fa.StopRisk && fa.StopRisk < fi.StopRisk) {
		t.Errorf("stop risk: keen %v, average %v, idle %v", fk.StopRisk, fa.StopRisk, fi.StopRisk)
	}
	// A reader at the list's rate (one open in six: 0.3/6 = 0.05) is at
	// about the list's risk, shrinkage and decay aside.
	if fa.StopRisk < 0.8 || fa.StopRisk > 1.25 {
		t.Errorf("reader at the list's rate: stop risk %v, want about 1", fa.StopRisk)
	}
	// It is part of the sensitivity, and so of the cost.
	off := ScoreFatigue(idle, &pop, stopRiskPolicy(0), -1, t0)
	if off.StopRisk != 1 || !(fi.Sensitivity > off.Sensitivity) || !(fi.Cost(1) > off.Cost(1)) {
		t.Errorf("idle reader: weight 0 risk %v sensitivity %v cost %v; weight 1 risk %v sensitivity %v cost %v",
			off.StopRisk, off.Sensitivity, off.Cost(1), fi.StopRisk, fi.Sensitivity, fi.Cost(1))
	}
	// Steeper with a larger weight.
	if f2 := ScoreFatigue(idle, &pop, stopRiskPolicy(2), -1, t0); !(f2.StopRisk > fi.StopRisk) {
		t.Errorf("idle reader: weight 2 risk %v, weight 1 %v", f2.StopRisk, fi.StopRisk)
	}
}

// Property: engagement never raises a reader's stop risk, and ignored mail
// never lowers it — over random histories, weights and list rates.
func TestPropertyStopRiskMonotonic(t *testing.T) {
	m := DefaultMemory()
	for seed := uint64(0); seed < 500; seed++ {
		// Two copies of the same random history, from the same draws.
		now := t0
		n := 5 + int(seed%60)
		p := randomProfile(rand.New(rand.NewPCG(seed, 9)), now, n)
		clone := func() *Profile { return randomProfile(rand.New(rand.NewPCG(seed, 9)), now, n) }
		r := rand.New(rand.NewPCG(seed, 10))
		pop := DefaultPopulation()
		pop.ListRate = 0.005 + r.Float64()*0.2
		pol := stopRiskPolicy([]float64{0.5, 1, 2}[r.IntN(3)])
		base := ScoreFatigue(p, &pop, pol, -1, now).StopRisk
		// One more engagement on a release not yet engaged with.
		for i := len(p.History) - 1; i >= 0; i-- {
			h := p.History[i]
			if h.Opened || h.Clicked {
				continue
			}
			more := clone()
			kind := EventOpen
			if r.IntN(2) == 0 {
				kind = EventClick
			}
			more.RecordEvent(Event{Kind: kind, At: h.At.Add(time.Hour), MessageID: h.MessageID}, nil, m)
			if got := ScoreFatigue(more, &pop, pol, -1, now).StopRisk; got > base {
				t.Fatalf("seed %d: %v on %s raised the stop risk from %v to %v", seed, kind, h.MessageID, base, got)
			}
			break
		}
		// One more release nobody engaged with.
		more := clone()
		more.RecordRelease(Release{At: now.Add(-time.Hour), MessageID: "ignored", Fingerprint: r.Uint64()}, m)
		if got := ScoreFatigue(more, &pop, pol, -1, now).StopRisk; got < base {
			t.Fatalf("seed %d: an ignored release lowered the stop risk from %v to %v", seed, base, got)
		}
	}
}

// Deterministic replay: with the stop risk on, the same input decides the
// same, whether by the package's Decide or a reused Planner.
func TestStopRiskDeterministic(t *testing.T) {
	var pl Planner
	for seed := uint64(0); seed < 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		in := randomInput(r)
		pol := *in.Policy
		pol.StopRiskWeight = 1
		in.Policy = &pol
		pop := DefaultPopulation()
		pop.ListRate = 0.01 + r.Float64()*0.1
		in.Population = &pop
		a := fmt.Sprintf("%+v", Decide(in))
		b := fmt.Sprintf("%+v", Decide(in))
		c := fmt.Sprintf("%+v", pl.Decide(nil, &in))
		if a != b || a != c {
			t.Fatalf("seed %d: decisions differ:\n%s\n%s\n%s", seed, a, b, c)
		}
	}
}
