package scoring

import (
	"math"
	"time"
)

// Fatigue is the marginal cost of one more marketing mail to a recipient:
// the expected loss (an unsubscribe or complaint, priced in engagements by
// Policy.LossWeight) that the mail risks, growing with recent volume.
//
// Cost(v) = Strictness × LossWeight × UnsubscribeRate × (1 + (v/ComfortVolume)²)
// × Sensitivity × CustomerValue, where v is the decayed recent volume.
type Fatigue struct {
	// Volume is the decayed number of releases up to now.
	Volume float64
	// Sensitivity is how strongly this recipient reacts to volume relative
	// to the population (1): VolumeResponse times the ignored-streak factor,
	// capped by Policy.MaxSensitivity.
	Sensitivity float64
	// VolumeResponse is the recipient's engagement rate when volume was low
	// divided by the rate when it was high, each shrunk toward the
	// recipient's overall rate; 1 means volume made no difference.
	VolumeResponse float64
	// IgnoredStreak is the number of most recent releases (old enough to
	// have been read) with no engagement at all.
	IgnoredStreak int
	// CustomerValue is the factor from the recipient's value to the sender
	// (1 when unknown).
	CustomerValue float64
	// Worth is the recipient's shrunk engagement rate over the
	// population's (1 for a new recipient): what losing them loses is
	// their future engagement, so the cost is priced in their own
	// engagement, the unit their messages' value is measured in.
	Worth float64
	// Scale is the cost at zero volume; Cost(v) grows from there.
	Scale float64
	// comfort is Policy.ComfortVolume, kept for Cost.
	comfort float64
}

// Cost is the marginal cost of one more mail at decayed volume v.
func (f Fatigue) Cost(v float64) float64 {
	x := v / f.comfort
	return f.Scale * (1 + x*x)
}

// ScoreFatigue computes the recipient's fatigue at now. value is the
// customer value (0-100) when known, negative when not; the profile's own
// value wins when it has one.
func ScoreFatigue(p *Profile, pop *Population, pol Policy, value int, now time.Time) Fatigue {
	pol = pol.withDefaults()
	return scoreFatigue(p, pop, &pol, value, now)
}

func scoreFatigue(p *Profile, pop *Population, pol *Policy, value int, now time.Time) Fatigue {
	f := Fatigue{Sensitivity: 1, VolumeResponse: 1, CustomerValue: 1, Worth: 1, comfort: pol.ComfortVolume}
	f.responseToVolume(p, pop, pol, now)
	streak := float64(max(0, f.IgnoredStreak-pol.StreakFree))
	f.Sensitivity = clamp(f.VolumeResponse*(1+pol.StreakWeight*streak), 1/pol.MaxSensitivity, pol.MaxSensitivity)
	if p.HasValue {
		value = p.Value
	}
	if value >= 0 {
		f.CustomerValue = math.Exp2(pol.ValueWeight * float64(value-50) / 50)
	}
	if m := pop.rate(pol); m > 0 {
		d := 1.0
		if now.After(p.DecayedAt) && !p.DecayedAt.IsZero() {
			d = decay(now.Sub(p.DecayedAt), pol.Memory.HalfLife)
		}
		f.Worth = betaMean(pol.engagement(p.All)*d, p.All.Sends*d, m, pop.PriorSends) / m
	}
	f.Scale = pol.Strictness * pol.LossWeight * pop.UnsubscribeRate * f.Sensitivity * f.CustomerValue * f.Worth
	return f
}

// responseToVolume looks at how the recipient engaged with releases that
// came at low volume versus high volume (Gupta et al. 2016 and Zhao et al.
// 2018 both find engagement per mail falls as volume rises, at a rate that
// differs between members) and counts the current streak of ignored mail.
// Only releases older than EngageGrace count: younger ones have not had
// their chance yet. The same pass sums the decayed volume up to now.
func (f *Fatigue) responseToVolume(p *Profile, pop *Population, pol *Policy, now time.Time) {
	// Unix seconds rather than time.Time: this loop runs over the whole
	// history on every decision.
	nowU := now.Unix()
	cutoff := nowU - int64(pol.EngageGrace/time.Second)
	rate := -math.Ln2 / pol.VolumeHalfLife.Seconds()
	var (
		v                    float64 // decayed volume just before each release
		last                 int64
		seen                 bool
		nLow, eLow, nHi, eHi float64
	)
	for i := range p.History {
		h := &p.History[i]
		u := h.At.Unix()
		if u > nowU {
			break // scheduled, not yet sent
		}
		if seen {
			v *= math.Exp(rate * float64(u-last))
		}
		seen, last = true, u
		if u > cutoff {
			v++
			continue
		}
		e := 0.0
		if h.Engaged() {
			e = 1
		}
		if v < pol.ComfortVolume {
			nLow++
			eLow += e
		} else {
			nHi++
			eHi += e
		}
		v++
		if e > 0 {
			f.IgnoredStreak = 0
		} else {
			f.IgnoredStreak++
		}
	}
	if seen {
		f.Volume = v * math.Exp(rate*float64(nowU-last))
	}
	n := nLow + nHi
	if n == 0 || eLow+eHi == 0 {
		return
	}
	mean := (eLow + eHi) / n
	pLow := betaMean(eLow, nLow, mean, pop.ResponsePrior)
	pHi := betaMean(eHi, nHi, mean, pop.ResponsePrior)
	if pHi > 0 {
		f.VolumeResponse = clamp(pLow/pHi, 1/pol.MaxSensitivity, pol.MaxSensitivity)
	}
}
