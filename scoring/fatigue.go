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
	return scoreFatigue(p, pop, &pol, value, now, nil)
}

// scoreFatigue is ScoreFatigue. With pl (a decision's Planner) it also
// stores the summary of the counted releases in p, and takes the comfort
// grid from pl's cache.
func scoreFatigue(p *Profile, pop *Population, pol *Policy, value int, now time.Time, pl *Planner) Fatigue {
	f := Fatigue{Sensitivity: 1, VolumeResponse: 1, CustomerValue: 1, Worth: 1, Comfort: pol.ComfortVolume}
	f.responseToVolume(p, pop, pol, now, pl)
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
//
// The pass over releases old enough to count is the expensive part (a
// logarithm per grid point for every engaged release), and its result for
// those releases never changes until the history does: it is kept in the
// profile (comfortMemo) and only the releases after it are walked. With
// pl, the longer summary is stored back in p (unless p is pl's stand-in
// for no profile).
func (f *Fatigue) responseToVolume(p *Profile, pop *Population, pol *Policy, now time.Time, pl *Planner) {
	memo := pl != nil && p != &pl.noProfile
	// Unix seconds rather than time.Time: this loop runs over the history
	// on every decision.
	nowU := now.Unix()
	cutoff := nowU - int64(pol.EngageGrace/time.Second)
	rate := -math.Ln2 / pol.VolumeHalfLife.Seconds()
	learn := pol.ComfortSpread > 0
	var inv [comfortGrid]float64
	switch {
	case !learn:
	case pl == nil:
		inv = initInv(pol.ComfortVolume)
	default:
		// The engine decides for recipient after recipient under the
		// same policy: the grid is computed once.
		if !pl.hasInv || pl.invFor != pol.ComfortVolume {
			pl.inv, pl.invFor, pl.hasInv = initInv(pol.ComfortVolume), pol.ComfortVolume, true
		}
		inv = pl.inv
	}
	var s volumeState
	// The summary is reused when it was made under the same knobs, for the
	// same releases with the same engagement, all of them still old enough
	// to count (a decision in the past sees fewer).
	start, key := 0, uint64(fnvOffset64)
	m := &p.comfort
	if m.n > 0 && m.n <= len(p.History) && m.comfortVolume == pol.ComfortVolume &&
		m.volumeHalfLife == pol.VolumeHalfLife && m.learn == learn {
		limit := min(cutoff, nowU)
		for i := range m.n {
			h := &p.History[i]
			u := h.At.Unix()
			if u > limit {
				key = 0
				break
			}
			key = memoKey(key, u, h.Engaged())
		}
		if key == m.key {
			start, s = m.n, m.state
		} else {
			key = fnvOffset64
		}
	}
	s.cp.inv = inv
	// prefix: every release walked so far is old enough to count, so the
	// state is one a later decision can resume from.
	prefix := true
	saved := false
	for i := start; i < len(p.History); i++ {
		h := &p.History[i]
		u := h.At.Unix()
		if prefix && (u > cutoff || u > nowU) {
			prefix = false
			if memo && i > start {
				m.save(i, key, pol, learn, &s)
				saved = true
			}
		}
		if u > nowU {
			break // scheduled, not yet sent
		}
		if s.seen {
			s.v *= math.Exp(rate * float64(u-s.last))
		}
		s.seen, s.last = true, u
		if u > cutoff {
			s.v++
			continue
		}
		e := 0.0
		if h.Engaged() {
			e = 1
		}
		if learn {
			s.cp.add(s.v, e > 0)
		}
		if s.v < pol.ComfortVolume {
			s.nLow++
			s.eLow += e
		} else {
			s.nHi++
			s.eHi += e
		}
		s.v++
		if e > 0 {
			s.streak = 0
		} else {
			s.streak++
		}
		if prefix {
			key = memoKey(key, u, e > 0)
		}
	}
	if memo && prefix && len(p.History) > start {
		m.save(len(p.History), key, pol, learn, &s)
		saved = true
	}
	if memo && !saved && start == 0 && m.n > 0 {
		*m = comfortMemo{} // no longer matches the history
	}
	f.IgnoredStreak = s.streak
	if s.seen {
		f.Volume = s.v * math.Exp(rate*float64(nowU-s.last))
	}
	n := s.nLow + s.nHi
	if learn {
		// Downward only. Raising the comfort of readers who seem tolerant
		// sent them more mail and more of them unsubscribed (simulation.md,
		// round 5); an estimate that can only lower a recipient's volume
		// also bounds what a wrong one can do.
		f.Comfort = min(s.cp.estimate(pol, pop), pol.ComfortVolume)
		return
	}
	if n == 0 || s.eLow+s.eHi == 0 {
		return
	}
	mean := (s.eLow + s.eHi) / n
	pLow := betaMean(s.eLow, s.nLow, mean, pop.ResponsePrior)
	pHi := betaMean(s.eHi, s.nHi, mean, pop.ResponsePrior)
	if pHi > 0 {
		f.VolumeResponse = clamp(pLow/pHi, 1/pol.MaxSensitivity, pol.MaxSensitivity)
	}
}

// volumeState is the walk of responseToVolume after some releases.
type volumeState struct {
	v                    float64 // decayed volume just after the last release walked
	last                 int64   // its time, unix seconds
	seen                 bool
	nLow, eLow, nHi, eHi float64
	streak               int
	cp                   comfortPosterior
}

// comfortMemo summarises the releases at the start of a profile's history
// that are old enough to count in responseToVolume: the walk's state after
// them, so that the next decision starts there. It is derived data, kept
// with the profile (in its binary stored form) because the profile is what
// the engine loads for every decision; a profile without one, or with one
// that no longer matches its history, is walked from the start. Resuming a
// walk performs the same floating-point operations in the same order as
// walking from the start, so the result is the same to the bit.
type comfortMemo struct {
	// n is the number of releases summarised (History[:n]); 0 is none.
	n int
	// key hashes their times and engagement (memoKey), so that a late
	// open, a merge, trimming or an edit is noticed.
	key uint64
	// The knobs the summary depends on.
	comfortVolume  float64
	volumeHalfLife time.Duration
	learn          bool
	state          volumeState
}

func (m *comfortMemo) save(n int, key uint64, pol *Policy, learn bool, s *volumeState) {
	*m = comfortMemo{n: n, key: key, comfortVolume: pol.ComfortVolume, volumeHalfLife: pol.VolumeHalfLife, learn: learn, state: *s}
	m.state.cp.inv = [comfortGrid]float64{} // the grid comes from the policy, not the profile
}

// memoKey adds one release to a comfortMemo key. Each step is a bijection
// of the running key, so changing any one release always changes the key.
func memoKey(key uint64, u int64, engaged bool) uint64 {
	x := uint64(u) << 1
	if engaged {
		x |= 1
	}
	return (key ^ x) * fnvPrime64
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

func initInv(c0 float64) [comfortGrid]float64 {
	var inv [comfortGrid]float64
	for j := range inv {
		inv[j] = 1 / (c0 * math.Exp2(float64(j-comfortGrid/2)/2))
	}
	return inv
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

// The list's stop rate (Population.UnsubscribeRate), measured: the engine
// counts its releases and the unsubscribes and complaints they earned,
// and the base of every recipient's fatigue cost follows what the list's
// readers actually do: a list whose readers stop twice as often as the
// prior costs twice as much to mail. It is measured at the volumes the
// engine sends, which are the volumes its cost is weighed at, not at a
// comfortable volume.
//
// Like the learned comfort (comfortPosterior), it may make mail dearer,
// never cheaper: a list whose readers stop less often than the prior is
// priced at the prior. In the simulator the cheaper tolerant lists got
// 2.5% more clicks for 5% more mail and 8% more stops (docs/simulation.md,
// round 21), and a relay that misses stops (an unsubscribe it cannot tie
// to a recipient) must not read that as a list that tolerates more.
const (
	// StopRatePrior is how many stops' worth of releases the prior rate
	// counts for: at the default 0.002, 5,000 releases.
	StopRatePrior = 10
	// MaxStopRateLift bounds the measured rate to [prior, prior·max].
	MaxStopRateLift = 4
)

// StopRate is the list's stops per release, shrunk toward prior with
// StopRatePrior stops' worth of releases and bounded to [prior,
// prior·MaxStopRateLift].
func StopRate(stops, released int64, prior float64) float64 {
	if released <= 0 || prior <= 0 || stops < 0 {
		return prior
	}
	k := StopRatePrior / prior
	r := (float64(stops) + StopRatePrior) / (float64(released) + k)
	return clamp(r, prior, prior*MaxStopRateLift)
}
