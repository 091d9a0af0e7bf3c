package scoring

import (
	"math"
	"time"
)

// Fatigue is the marginal cost of one more marketing mail to a recipient:
// the expected loss (an unsubscribe or complaint, priced in engagements by
// Policy.LossWeight) that the mail risks, growing with recent volume.
//
// Cost(v) = Strictness × LossWeight × UnsubscribeRate × (1 + (v/Comfort)²)
// × Sensitivity × CustomerValue × Worth, where v is the decayed recent
// volume and Comfort the recipient's comfortable volume.
type Fatigue struct {
	// Volume is the decayed number of releases up to now.
	Volume float64
	// Sensitivity is how strongly this recipient reacts to volume relative
	// to the population (1): VolumeResponse times the ignored-streak factor,
	// capped by Policy.MaxSensitivity.
	Sensitivity float64
	// VolumeResponse is, with Policy.ComfortSpread 0, the recipient's
	// engagement rate when volume was low divided by the rate when it was
	// high, each shrunk toward the recipient's overall rate; 1 means volume
	// made no difference. With ComfortSpread above 0 it is 1: Comfort
	// measures the same thing from every release instead of two bands.
	VolumeResponse float64
	// Comfort is the recipient's comfortable volume: the decayed volume at
	// which one more mail's unsubscribe risk doubles (and, in the model
	// that learns it, their chance of engaging halves). It is
	// Policy.ComfortVolume for a new recipient; with Policy.ComfortSpread
	// above 0 it is learned from how they engaged at the volumes they got
	// (comfortPosterior), and never exceeds ComfortVolume.
	Comfort float64
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
}

// Cost is the marginal cost of one more mail at decayed volume v.
func (f Fatigue) Cost(v float64) float64 {
	x := v / f.Comfort
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
	f := Fatigue{Sensitivity: 1, VolumeResponse: 1, CustomerValue: 1, Worth: 1, Comfort: pol.ComfortVolume}
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
		cp                   comfortPosterior
	)
	learn := pol.ComfortSpread > 0
	if learn {
		cp.init(pol.ComfortVolume)
	}
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
		if learn {
			cp.add(v, e > 0)
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
	if learn {
		// Downward only. Raising the comfort of readers who seem tolerant
		// sent them more mail and more of them unsubscribed (simulation.md,
		// round 5); an estimate that can only lower a recipient's volume
		// also bounds what a wrong one can do.
		f.Comfort = min(cp.estimate(pol, pop), pol.ComfortVolume)
		return
	}
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

// comfortGrid is the number of candidate comfort volumes, half an octave
// apart, centred on Policy.ComfortVolume: from an eighth of it to eight
// times it.
const comfortGrid = 13

// comfortPosterior learns a recipient's comfortable volume c from their
// releases. The model is the one the cost assumes: one more mail at decayed
// volume v raises the unsubscribe risk by the pressure 1 + (v/c)², and the
// same pressure divides the chance of engagement, so a release at volume v
// is engaged with probability b / (1 + (v/c)²), where b is the recipient's
// engagement rate at no volume. With b ~ Gamma(k·b0, k) (b0 the
// population's open rate, k = PriorSends pseudo-releases) and engagements
// counted as Poisson (they are rare), b integrates out in closed form:
//
//	log L(c) = Σ_engaged log w_i − (k·b0 + E) · log(k + Σ w_i),   w_i = 1/(1 + (v_i/c)²)
//
// where E is the number of engaged releases. Two things inform c: how
// engagement changes as volume rises (the first sum), and how much the
// recipient engages at the volumes they got, against what the population
// would at no volume (the second term: a reader who still opens as often
// as the population under heavy mail tolerates it). The prior on log c is
// normal around log ComfortVolume with standard deviation ComfortSpread;
// the estimate is the posterior mean of log c over a fixed grid, so the
// same history always gives the same comfort and no history gives the
// population's.
type comfortPosterior struct {
	inv      [comfortGrid]float64 // 1/c on the grid
	sumW     [comfortGrid]float64
	sumLogW  [comfortGrid]float64
	engaged  float64
	releases int
}

func (cp *comfortPosterior) init(c0 float64) {
	for j := range cp.inv {
		cp.inv[j] = 1 / (c0 * math.Exp2(float64(j-comfortGrid/2)/2))
	}
}

// add counts one release that came at decayed volume v.
func (cp *comfortPosterior) add(v float64, engaged bool) {
	cp.releases++
	if engaged {
		cp.engaged++
	}
	for j, inv := range cp.inv {
		x := v * inv
		p := 1 + x*x
		cp.sumW[j] += 1 / p
		if engaged {
			cp.sumLogW[j] -= math.Log(p)
		}
	}
}

// estimate is the posterior mean comfort (geometric: the mean of log c).
func (cp *comfortPosterior) estimate(pol *Policy, pop *Population) float64 {
	c0 := pol.ComfortVolume
	if cp.releases == 0 {
		return c0
	}
	k := pop.PriorSends
	a := k*pop.OpenRate + cp.engaged
	step := math.Ln2 / 2
	var lp [comfortGrid]float64
	best := math.Inf(-1)
	for j := range lp {
		z := float64(j-comfortGrid/2) * step / pol.ComfortSpread
		lp[j] = -z*z/2 + cp.sumLogW[j] - a*math.Log(k+cp.sumW[j])
		best = max(best, lp[j])
	}
	var sw, sx float64
	for j := range lp {
		w := math.Exp(lp[j] - best)
		sw += w
		sx += w * float64(j-comfortGrid/2) * step
	}
	return c0 * math.Exp(sx/sw)
}
