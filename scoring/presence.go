package scoring

import (
	"math"
	"slices"
	"time"
)

// Presence: when is the reader at their inbox? (issue 18, docs/simulation.md
// rounds 16 to 19.)
//
// The hour-of-week histogram of opens (hourModel) says when opens happened,
// which mixes when the reader reads with when the mail came: a mail
// delivered at 03:00 and opened at 08:00 counts for 08:00, but so does one
// delivered at 07:55 and opened at once, and a mail delivered at the
// reader's best hour and ignored counts for nothing. The presence model
// asks of each settled release the question a send time has to answer:
// was the reader about when it arrived?
//
// Each reader has a peak hour c of the local day, one of 24 equally likely
// before any evidence, and an activity at hour h of
//
//	a_c(h) = floor + (1-floor)·exp(-d²/(2·width²))
//
// with d the hours between h and c around the clock, floor = 0.3 and width
// = 2.5 hours. Whether a mail is opened at all depends on the activity a
// when it arrives; when it is opened depends on which of two kinds of
// reader this is, and the model does not know, so it gives each the
// list's odds (Population.LookOdds; even until the engine has fitted them)
// and adds the likelihoods of the two for every peak:
//
//   - a reader who waits opens after an exponential delay whose mean is
//     set when the mail arrives,
//
//     μ(a) = present + (away-present)·(1-a)/(1-floor),
//
//     from present (the delay of a reader at their inbox) at a = 1 to away
//     at the floor;
//
//   - a reader who looks checks the inbox at rate 1/μ(a(t)) at every hour t
//     after the mail came, and opens it at their first look: the open's
//     own hour, not only the arrival's, is evidence.
//
// Every release older than presenceSettle (S) is evidence, for a reader
// who waits and one who looks in turn:
//
//   - opened or clicked D after it arrived at t: a·e^(-D/μ)/μ, and
//     a·r(t+D)·e^(-Λ(t, t+D)), with r the look rate and Λ its integral
//     (the looks of every hour between, nights included);
//   - opened with no delay known (a profile from before the delay was
//     kept): a for both;
//   - not opened: 1 - ρ·a·(1-e^(-S/μ)), and 1 - ρ'·a·(1-e^(-Λ(t, t+S))),
//     with ρ and ρ' the chance that a present reader opens: the reader's
//     open rate over the mean across the day of the factor it multiplies,
//     within 0.05-0.95.
//
// The lift of an hour is the posterior mean activity there over its mean
// across the day, tempered by Policy.TimeWeight and kept within
// presenceMinLift-presenceMaxLift. A reader with no settled release is
// timed by the histogram and its population prior (Population.HourOfWeek).
//
// The delay law (Population.OpenDelayPresent and OpenDelayAway) is the
// list's: the engine fits two exponentials to the delays of every first
// open (FitOpenDelays), and both kinds use it, a reader who looks for the
// rate of their looks.
//
// The ratio of the two kinds' likelihoods of a reader's history, each
// summed over the peaks, is their evidence for looking
// (Decision.LookEvidence); the engine counts it at each release and fits
// the list's odds from the counts (FitLookOdds). docs/simulation.md
// rounds 19 and 20 say what the two kinds and the fitted odds are worth.
const (
	presenceFloor  = 0.3
	presenceWidth  = 2.5 // hours
	presenceSettle = 12 * time.Hour
	// presenceMinLift and presenceMaxLift bound the lift: wider than the
	// histogram's 0.5-2, as the posterior's ratio of a peak to a trough is
	// what the reader does (round 16: squashing it as the histogram's
	// lift lost the gain).
	presenceMinLift = 0.3
	presenceMaxLift = 3

	// DefaultOpenDelayPresent and DefaultOpenDelayAway are the delay law
	// before the list has taught one: half an hour when at the inbox,
	// three hours and a bit at the reader's quietest hour.
	DefaultOpenDelayPresent = 30 * time.Minute
	DefaultOpenDelayAway    = 3*time.Hour + 18*time.Minute
)

// presenceLaw is the per-offset part of the likelihoods for one delay law,
// indexed by (peak - hour) mod 24; a Planner keeps the last one, as the law
// changes once an hour.
type presenceLaw struct {
	present, away time.Duration
	act           [24]float64 // a
	logAct        [24]float64 // log a
	invMu         [24]float64 // 1/μ, μ in hours: also the look rate
	logInvMu      [24]float64 // log(1/μ)

	// A reader who waits.
	openLog [24]float64 // log(a/μ)
	settled [24]float64 // a·(1-e^(-S/μ)): chance of an open within S, given an opener
	kappa   float64     // the mean of settled across the day

	// A reader who looks.
	looks       [24][25]float64 // looks[c][h]: the looks expected from 00:00 to hour h for peak c
	lookSettled [24]float64     // a·(1-e^(-Λ(t, t+S))) for a mail that came on the hour, by offset
	lookKappa   float64         // the mean of lookSettled across the day
}

func newPresenceLaw(present, away time.Duration) presenceLaw {
	l := presenceLaw{present: present, away: away}
	p, w := present.Hours(), away.Hours()
	s := presenceSettle.Hours()
	for k := range l.act {
		d := float64(min(k, 24-k))
		a := presenceFloor + (1-presenceFloor)*math.Exp(-d*d/(2*presenceWidth*presenceWidth))
		mu := p + (w-p)*(1-a)/(1-presenceFloor)
		l.act[k], l.logAct[k] = a, math.Log(a)
		l.openLog[k], l.invMu[k], l.logInvMu[k] = math.Log(a/mu), 1/mu, -math.Log(mu)
		l.settled[k] = a * (1 - math.Exp(-s/mu))
		l.kappa += l.settled[k] / 24
	}
	for c := range l.looks {
		for h := range 24 {
			l.looks[c][h+1] = l.looks[c][h] + l.invMu[(c-h+24)%24]
		}
	}
	for k := range l.lookSettled {
		// The hours after one at offset k are at offsets k-1, k-2, ...
		var looks float64
		for j := range int(s) {
			looks += l.invMu[(k-j+24)%24]
		}
		l.lookSettled[k] = l.act[k] * (1 - math.Exp(-looks))
		l.lookKappa += l.lookSettled[k] / 24
	}
	return l
}

// OpenDelayLaw returns the population's delay law with the defaults filled
// in and away kept above present: the law the presence model uses.
func (pop *Population) OpenDelayLaw() (present, away time.Duration) {
	present, away = pop.OpenDelayPresent, pop.OpenDelayAway
	if present <= 0 {
		present = DefaultOpenDelayPresent
	}
	if away <= 0 {
		away = DefaultOpenDelayAway
	}
	return present, max(away, present)
}

func (pl *Planner) presenceLaw(pop *Population) *presenceLaw {
	present, away := pop.OpenDelayLaw()
	if pl.presence.present != present || pl.presence.away != away {
		pl.presence = newPresenceLaw(present, away)
	}
	return &pl.presence
}

// presenceEvidence is a reader's settled releases summed by local hour of
// day of their delivery, and for opens with a known delay also by that of
// the open.
type presenceEvidence struct {
	ignored     [24]float64
	opened      [24]float64 // opens with a known delay
	delay       [24]float64 // their delays, summed, in hours
	arrivedFrac [24]float64 // the fractions of the hour at which they arrived, summed
	openedAt    [24]float64 // the same opens by the local hour they were opened
	openedFrac  [24]float64 // and the fractions of that hour, summed
	undelayed   [24]float64 // opens with none known
	midnights   float64     // the local midnights between those arrivals and opens
	releases    int
	opens       int
}

// gather sums the releases of hist delivered before settledBy, in loc.
func (e *presenceEvidence) gather(hist []Release, settledBy time.Time, loc *time.Location) {
	// Local hours from the zone's offset, looked up again only when a
	// release leaves the zone period of the one before, rather than a
	// zone lookup per release.
	var start, end time.Time
	var off int64
	for i := range hist {
		r := &hist[i]
		if !r.At.Before(settledBy) {
			break // the history is in time order
		}
		if i == 0 || r.At.Before(start) || (!end.IsZero() && !r.At.Before(end)) {
			t := r.At.In(loc)
			_, o := t.Zone()
			off = int64(o)
			start, end = t.ZoneBounds()
		}
		arrived := mod(r.At.Unix()+off, secondsPerDay)
		switch {
		case !r.Opened && !r.Clicked:
			e.add(arrived, false, 0, 0)
		case r.OpenedAfter > 0:
			e.add(arrived, true, r.OpenedAfter, mod(r.At.Add(r.OpenedAfter).Unix()+off, secondsPerDay))
		default:
			e.add(arrived, true, 0, 0)
		}
	}
}

// add records one release that arrived at second arrived of the local day:
// not opened, opened with no delay known (delay 0), or opened delay later
// at second openedAt of the local day. gather takes both at the arrival's
// offset from UTC, so an open after a change of offset (daylight saving)
// is placed an hour off.
func (e *presenceEvidence) add(arrived int64, opened bool, delay time.Duration, openedAt int64) {
	h := arrived / 3600
	e.releases++
	switch {
	case !opened:
		e.ignored[h]++
	case delay > 0:
		e.opens++
		e.opened[h]++
		e.delay[h] += delay.Hours()
		e.arrivedFrac[h] += float64(arrived%3600) / 3600
		e.openedAt[openedAt/3600]++
		e.openedFrac[openedAt/3600] += float64(openedAt%3600) / 3600
		e.midnights += float64((arrived + int64(delay/time.Second)) / secondsPerDay)
	default:
		e.opens++
		e.undelayed[h]++
	}
}

// presenceLift fills lift (by local hour of day) with the reader's
// presence lift and reports whether there was evidence to compute it from.
func (d *decider) presenceLift(lift *[24]float64) bool {
	var ev presenceEvidence
	ev.gather(d.prof.History, d.now.Add(-presenceSettle), d.loc)
	if ev.releases == 0 {
		return false
	}
	law := d.pl.presenceLaw(d.pop)
	d.lookEvidence = law.lift(&ev, d.pop.LookOdds, d.pol.TimeWeight, lift)
	return true
}

// lift fills lift with the presence lift of the evidence, a reader who
// looks at log odds odds against one who waits (0: even), each opening
// the reader's share of their mail. It returns the evidence for looking:
// the log of the ratio of the two kinds' likelihoods of the history, each
// summed over the peaks.
func (law *presenceLaw) lift(ev *presenceEvidence, odds, weight float64, lift *[24]float64) (lookEvidence float64) {
	rate := float64(ev.opens) / float64(ev.releases)
	waits := law.waiterLog(ev, clamp(rate/law.kappa, 0.05, 0.95))
	looks := law.lookerLog(ev, clamp(rate/law.lookKappa, 0.05, 0.95))
	lookEvidence = logSumExp(&looks) - logSumExp(&waits)
	var logw [24]float64
	for c := range logw {
		logw[c] = logAddExp(waits[c], looks[c]+odds)
	}
	law.liftOf(&logw, weight, lift)
	return lookEvidence
}

// logAddExp is log(e^a + e^b), as m + log(1 + e^-d) with m the larger and
// d the difference; past d = 40, 1 + e^-d is 1 in float64.
func logAddExp(a, b float64) float64 {
	m, d := a, a-b
	if d < 0 {
		m, d = b, -d
	}
	if d <= 40 {
		m += math.Log(1 + math.Exp(-d))
	}
	return m
}

// logSumExp is the log of the sum of e^l over l.
func logSumExp(l *[24]float64) float64 {
	top := math.Inf(-1)
	for _, x := range l {
		top = max(top, x)
	}
	var sum float64
	for _, x := range l {
		sum += math.Exp(x - top)
	}
	return top + math.Log(sum)
}

// waiterLog is the log likelihood of the evidence for each peak c, for a
// reader who waits and opens a share rho of the mail that arrives when
// they are about.
func (law *presenceLaw) waiterLog(ev *presenceEvidence, rho float64) [24]float64 {
	ignoredLog := ignoredLogs(&law.settled, rho)
	// The evidence of hour h weighs peak c by the offset c-h, so each
	// hour's sums are spread over the peaks by rotating the tables.
	var logw [24]float64
	for h := range 24 {
		ig, op, dl, un := ev.ignored[h], ev.opened[h], ev.delay[h], ev.undelayed[h]
		if ig == 0 && op == 0 && un == 0 {
			continue
		}
		for c := range logw {
			k := c - h
			if k < 0 {
				k += 24
			}
			logw[c] += ig*ignoredLog[k] + op*law.openLog[k] - dl*law.invMu[k] + un*law.logAct[k]
		}
	}
	return logw
}

// lookerLog is waiterLog for a reader who looks. The looks between an
// arrival and its open, Λ(t, t+D), are the looks from midnight to the open
// less those from midnight to the arrival, which is how they are summed
// hour by hour apart, plus a whole day's looks for every midnight between
// them. A day's looks are the same for every peak, but not for the two
// kinds: without them (rounds 18-19) a reader who opens the next morning
// reads as one who looks, whichever kind they are.
func (law *presenceLaw) lookerLog(ev *presenceEvidence, rho float64) [24]float64 {
	ignoredLog := ignoredLogs(&law.lookSettled, rho)
	var logw [24]float64
	for c := range logw {
		logw[c] = -ev.midnights * law.looks[c][24]
	}
	for h := range 24 {
		ig, un, ar, fa, op, fo := ev.ignored[h], ev.undelayed[h], ev.opened[h], ev.arrivedFrac[h], ev.openedAt[h], ev.openedFrac[h]
		if ig == 0 && un == 0 && ar == 0 && op == 0 {
			continue
		}
		for c := range logw {
			k := c - h
			if k < 0 {
				k += 24
			}
			before := law.looks[c][h] // looks from midnight to h:00
			logw[c] += ig*ignoredLog[k] + (un+ar)*law.logAct[k] +
				op*(law.logInvMu[k]-before) - fo*law.invMu[k] + ar*before + fa*law.invMu[k]
		}
	}
	return logw
}

// ignoredLogs is the log likelihood of an ignored mail by offset, for a
// reader who opens a share rho of the mail that arrives when they are
// about and settled the chance of an open within presenceSettle.
func ignoredLogs(settled *[24]float64, rho float64) [24]float64 {
	var l [24]float64
	for k, s := range settled {
		l[k] = math.Log(1 - rho*s)
	}
	return l
}

// liftOf turns the log likelihoods of the peaks into the lift.
func (law *presenceLaw) liftOf(logw *[24]float64, weight float64, lift *[24]float64) {
	top := math.Inf(-1)
	for _, l := range logw {
		top = max(top, l)
	}
	var w [24]float64
	var sum float64
	for c, l := range logw {
		if l-top > -40 { // e^-40: nothing next to the best peak
			w[c] = math.Exp(l - top)
			sum += w[c]
		}
	}
	var mean float64
	*lift = [24]float64{}
	for c, wc := range w {
		if wc == 0 {
			continue
		}
		wc /= sum
		for h := range lift {
			k := c - h
			if k < 0 {
				k += 24
			}
			lift[h] += wc * law.act[k]
		}
	}
	for _, a := range lift {
		mean += a / 24
	}
	for h := range lift {
		k := 1 + weight*(lift[h]/mean-1)
		lift[h] = clamp(k, presenceMinLift, presenceMaxLift)
	}
}

// FitOpenDelays fits the delay law to a histogram of first-open delays:
// counts[i] opens with a delay in [edges[i], edges[i+1]), the last bin
// open-ended. It fits a mixture of two exponentials by expectation
// maximisation on the binned counts and returns their means, the shorter
// as present and the longer as away; ok is false with fewer than
// minOpenDelays opens, when the defaults stand.
func FitOpenDelays(edges []time.Duration, counts []int64) (present, away time.Duration, ok bool) {
	var n float64
	for _, c := range counts {
		n += float64(c)
	}
	if n < minOpenDelays || len(counts) != len(edges) {
		return 0, 0, false
	}
	mu := [2]float64{DefaultOpenDelayPresent.Hours(), DefaultOpenDelayAway.Hours()}
	share := [2]float64{0.5, 0.5}
	for range 200 {
		var mass, sum [2]float64
		for i, c := range counts {
			if c == 0 {
				continue
			}
			lo := edges[i].Hours()
			hi := math.Inf(1)
			if i+1 < len(edges) {
				hi = edges[i+1].Hours()
			}
			var p, mean [2]float64
			for j := range 2 {
				p[j], mean[j] = binExp(lo, hi, mu[j])
				p[j] *= share[j]
			}
			tot := p[0] + p[1]
			if tot <= 0 {
				continue
			}
			for j := range 2 {
				r := float64(c) * p[j] / tot
				mass[j] += r
				sum[j] += r * mean[j]
			}
		}
		for j := range 2 {
			if mass[j] > 0 {
				mu[j] = clamp(sum[j]/mass[j], 1.0/60, 14*24)
				share[j] = mass[j] / n
			}
		}
	}
	if mu[0] > mu[1] {
		mu[0], mu[1] = mu[1], mu[0]
	}
	return time.Duration(mu[0] * float64(time.Hour)), time.Duration(mu[1] * float64(time.Hour)), true
}

// OpenDelayEdges are the lower edges of the bins the engine counts first
// opens' delays in, for FitOpenDelays; the last bin is open-ended.
var OpenDelayEdges = []time.Duration{
	0, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 20 * time.Minute,
	30 * time.Minute, 45 * time.Minute, time.Hour, 90 * time.Minute, 2 * time.Hour, 3 * time.Hour,
	4 * time.Hour, 6 * time.Hour, 8 * time.Hour, 12 * time.Hour, 18 * time.Hour, 24 * time.Hour,
	36 * time.Hour, 48 * time.Hour, 72 * time.Hour,
}

// OpenDelayBin is the bin of OpenDelayEdges a delay falls in.
func OpenDelayBin(d time.Duration) int {
	i, _ := slices.BinarySearch(OpenDelayEdges, d)
	if i == len(OpenDelayEdges) || OpenDelayEdges[i] != d {
		i--
	}
	return max(i, 0)
}

// minOpenDelays is the opens FitOpenDelays wants before it trusts a fit.
const minOpenDelays = 200

// binExp returns the probability that an exponential of mean mu falls in
// [lo, hi) and its mean there.
func binExp(lo, hi, mu float64) (p, mean float64) {
	elo := math.Exp(-lo / mu)
	if math.IsInf(hi, 1) {
		return elo, lo + mu
	}
	ehi := math.Exp(-hi / mu)
	p = elo - ehi
	if p <= 1e-300 {
		return 0, (lo + hi) / 2
	}
	return p, mu + (lo*elo-hi*ehi)/p
}

// The list's odds of the two kinds. Whether a list's readers look or wait
// is the list's, like its delay law: the engine counts, at each release,
// the recipient's evidence for looking (Decision.LookEvidence) in
// LookEvidenceBins bins, and FitLookOdds turns the counts into
// Population.LookOdds at each population refresh.
//
// A reader is counted once per release, so one who gets more mail counts
// more, and their evidence again as it grows. Neither biases the fit as
// long as the two kinds' likelihoods are right and how often a reader is
// counted does not depend on their kind: the gradient of the mixture's log
// likelihood at the true share, averaged over the histories a reader may
// have, is zero, whatever weight each count has (an argument, not a
// measurement). A release to a reader without settled evidence counts 0,
// which is the same for every share and moves nothing.
const (
	// LookEvidenceBins is the number of bins, half a unit of log odds
	// apart, from -lookEvidenceMax to +lookEvidenceMax.
	LookEvidenceBins = 4*lookEvidenceMax + 1
	lookEvidenceMax  = 20
	// minLookEvidence is the releases FitLookOdds wants before it
	// trusts a fit.
	minLookEvidence = 1000
	// minLookShare and maxLookShare bound the fitted share of readers
	// who look: neither kind is ruled out, so a reader whose own history
	// speaks clearly is read as what it says.
	minLookShare = 0.05
	maxLookShare = 0.95
)

// LookEvidenceBin is the bin of LookEvidenceBins that evidence x falls in;
// evidence beyond ±20 is counted at the end bins, where it is decisive,
// and NaN (which a finite history does not give) at 0.
func LookEvidenceBin(x float64) int {
	if math.IsNaN(x) {
		x = 0
	}
	x = clamp(x, -lookEvidenceMax, lookEvidenceMax)
	return int(math.Round(2*x)) + 2*lookEvidenceMax
}

// FitLookOdds fits the share of readers who look to counts[i] releases
// with evidence in bin i (LookEvidenceBin) by expectation maximisation
// and returns its log odds, within minLookShare-maxLookShare; ok is false
// with fewer than minLookEvidence releases, when even odds stand.
func FitLookOdds(counts []int64) (odds float64, ok bool) {
	var n float64
	for _, c := range counts {
		n += float64(c)
	}
	if n < minLookEvidence || len(counts) != LookEvidenceBins {
		return 0, false
	}
	var ratio [LookEvidenceBins]float64 // how much likelier for a looker, by bin
	for i := range ratio {
		ratio[i] = math.Exp(float64(i-2*lookEvidenceMax) / 2)
	}
	share := 0.5
	for range 1000 {
		// The expected share of the releases' readers who look, given
		// the share so far.
		var looks float64
		for i, c := range counts {
			if c != 0 {
				looks += float64(c) * share * ratio[i] / (share*ratio[i] + 1 - share)
			}
		}
		next := looks / n
		done := math.Abs(next-share) < 1e-9
		share = next
		if done {
			break
		}
	}
	share = clamp(share, minLookShare, maxLookShare)
	return math.Log(share / (1 - share)), true
}
