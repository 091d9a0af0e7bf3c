package sim

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Timed yardsticks (round 16 of docs/simulation.md). The timed oracle is
// what issue 18's held-out world measured as "the oracle": one that knows
// each reader's interests, hours and tolerance. It sends a marketing mail
// only when its relevance reaches a threshold, delivers it at the reader's
// best hour (at once when they are about, or when the offer would expire
// first), never twice in a week for one campaign, and drops it when the
// reader's load at delivery, their recent marketing volume over their
// tolerance, would be above a ceiling. Its variants learn one or both of
// interests and hours from what the reader did, with the bounds of
// bayes.go and hours.go, so that the worth of knowing each can be told
// apart. None is a product: each reads hidden state, and runs only when
// Options.Only names it.
//
//	oracle-timed-<relevance>-<load>   interests and hours known
//	learned-timed-<threshold>-<load>  interests learned (bayes.go), hours known
//	hours-timed-<relevance>-<load>    interests known, hours learned (hours.go)
//	learned-hours-<threshold>-<load>  both learned
//	hours-flat-<relevance>-<load>     as hours-timed, learning the hours from a
//	                                  flat prior (not knowing when the list reads)
//	learned-flat-<threshold>-<load>   as learned-hours, from a flat hours prior
//
// The tolerance is always known; a load of 100 never binds.

// timedVariant is one of the timed yardsticks.
type timedVariant struct {
	prefix                     string
	learnInterests, learnHours bool
	// hours is the grid and prior the hours are learned on.
	hours []hourHypothesis
}

var timedVariants = []timedVariant{
	{"oracle-timed-", false, false, nil},
	{"learned-timed-", true, false, nil},
	{"hours-timed-", false, true, hourHypotheses},
	{"learned-hours-", true, true, hourHypotheses},
	{"hours-flat-", false, true, flatHourHypotheses},
	{"learned-flat-", true, true, flatHourHypotheses},
}

// timedPrefix names the timed oracle.
const timedPrefix = "oracle-timed-"

// TimedOraclePolicy names the timed oracle sending mail of hidden relevance
// at least relevance, at a load (mails a day over tolerance) of at most
// load.
func TimedOraclePolicy(relevance, load float64) string {
	return fmt.Sprintf("%s%.2f-%.2f", timedPrefix, relevance, load)
}

// timedVariantOf is the variant name names, if any.
func timedVariantOf(name string) (timedVariant, bool) {
	for _, v := range timedVariants {
		if strings.HasPrefix(name, v.prefix) {
			return v, true
		}
	}
	return timedVariant{}, false
}

func isTimed(name string) bool {
	_, ok := timedVariantOf(name)
	return ok
}

// timedHorizon is how long a planned delivery is remembered for the load:
// after ten days the 2-day half-life leaves 3% of it.
const timedHorizon = 10 * 24 * time.Hour

// nowActivity is the activity at which the timed oracle that knows the
// hours delivers at once rather than wait for the peak.
const nowActivity = 0.95

type timedOracle struct {
	minRelevance, maxLoad float64
	pop                   []*recipient
	// planned are each reader's planned deliveries (past and future)
	// within timedHorizon of the latest, in the order planned.
	planned [][]time.Time
	// campaigns is when each reader was last planned each campaign.
	campaigns []map[string]time.Time
	// at is the planned delivery of each admitted message not yet
	// delivered, by index.
	at map[int]time.Time
	// hours, when the hours are learned, is each reader's posterior, and
	// pending the deliveries whose outcome is not observed yet, in the
	// order they become observable.
	hours   []*hoursReader
	pending []hoursObs
	// bayes, when the interests are learned, is the topic posterior.
	bayes *bayesPolicy
}

type hoursObs struct {
	ready      time.Time
	rcpt       int
	hour, base float64
	opened     bool
	delay      time.Duration
}

func (r *replay) startTimed(name string) error {
	v, _ := timedVariantOf(name)
	th, load, ok := strings.Cut(strings.TrimPrefix(name, v.prefix), "-")
	rel, err1 := strconv.ParseFloat(th, 64)
	maxLoad, err2 := strconv.ParseFloat(load, 64)
	if !ok || err1 != nil || err2 != nil || rel < 0 || rel > 1 || !(maxLoad > 0) {
		return fmt.Errorf("policy %q: want %s<relevance>-<load>, relevance from 0 to 1 and load above 0, e.g. %s0.40-1.00", name, v.prefix, v.prefix)
	}
	o := &timedOracle{minRelevance: rel, maxLoad: maxLoad, pop: r.pop,
		planned: make([][]time.Time, len(r.pop)), campaigns: make([]map[string]time.Time, len(r.pop)),
		at: map[int]time.Time{}}
	for i := range o.campaigns {
		o.campaigns[i] = map[string]time.Time{}
	}
	if v.learnInterests {
		if err := r.startBayes(BayesPolicy(rel)); err != nil {
			return err
		}
		o.bayes, o.minRelevance = r.bayes, 0
	}
	if v.learnHours {
		o.hours = make([]*hoursReader, len(r.pop))
		for i := range o.hours {
			o.hours[i] = newHoursReader(v.hours)
		}
		if o.bayes != nil {
			o.bayes.activity = func(i int, t time.Time) float64 {
				return o.hours[i].activity(localHour(t, o.pop[i].loc))
			}
		}
	}
	r.timed = o
	return nil
}

// plan decides whether m is sent and when, and remembers the answer.
func (o *timedOracle) plan(m *message) bool {
	o.pending = observeReady(o.pending, m.at, func(x *hoursObs) time.Time { return x.ready }, func(x *hoursObs) {
		o.hours[x.rcpt].observe(x.hour, x.base, x.opened, x.delay, bayesReadTime)
	})
	p := o.pop[m.rcpt]
	c := m.campaign
	if p.relevance(c.topics) < o.minRelevance || o.bayes != nil && !o.bayes.admit(m) {
		return false
	}
	var at time.Time
	if o.hours != nil {
		at = o.hours[m.rcpt].bestSlot(m.at, c.expires, p.loc)
	} else {
		at = nextPeak(p, m.at)
		if quietHour(at, p.loc) || !c.expires.IsZero() && !at.Before(c.expires) {
			at = bestOpenSlot(m.at, c.expires, p.loc, func(h float64) float64 { return activityAt(h, p.peak, p.width) })
		}
	}
	if last, ok := o.campaigns[m.rcpt][c.id]; ok && (at.Sub(last) < repeatWindow && last.Sub(at) < repeatWindow) {
		return false
	}
	if o.rate(m.rcpt, at)/p.tolerance > o.maxLoad {
		return false
	}
	o.campaigns[m.rcpt][c.id] = at
	pl := o.planned[m.rcpt]
	keep := 0
	for keep < len(pl) && at.Sub(pl[keep]) > timedHorizon {
		keep++
	}
	o.planned[m.rcpt] = append(pl[keep:], at)
	o.at[m.index] = at
	return true
}

// rate is the reader's marketing volume, mails a day, that a delivery at
// t would meet, as the response model measures it (respond): the planned
// deliveries before t, decayed with loadHalfLife.
func (o *timedOracle) rate(i int, t time.Time) float64 {
	v := 0.0
	for _, u := range o.planned[i] {
		if u.Before(t) {
			v += math.Exp2(-float64(t.Sub(u)) / float64(loadHalfLife))
		}
	}
	return loadRate(v, loadHalfLife)
}

// quietHour reports whether t falls in Kadenz's default quiet hours
// (config.Default: 21:00-08:00 in the reader's zone), which the timed
// yardsticks keep as the engine does.
func quietHour(t time.Time, loc *time.Location) bool {
	h := localHour(t, loc)
	return h < 8 || h >= 21
}

// bestOpenSlot is the delivery time, t itself or a whole hour within the
// next day, outside quiet hours and before the offer expires (when it
// does), at which activity(local hour) is highest; the earliest of equals,
// and t when no slot is open.
func bestOpenSlot(t, expires time.Time, loc *time.Location, activity func(h float64) float64) time.Time {
	best, bestA := t, -1.0
	if !quietHour(t, loc) {
		bestA = activity(localHour(t, loc))
	}
	for s := t.Truncate(time.Hour).Add(time.Hour); s.Before(t.Add(24 * time.Hour)); s = s.Add(time.Hour) {
		if !expires.IsZero() && !s.Before(expires) {
			break
		}
		if quietHour(s, loc) {
			continue
		}
		if a := activity(localHour(s, loc)); a > bestA+1e-9 {
			best, bestA = s, a
		}
	}
	return best
}

// nextPeak is t when the reader is about at t, else the next time their
// local clock shows their peak hour.
func nextPeak(p *recipient, t time.Time) time.Time {
	if p.activity(t) >= nowActivity {
		return t
	}
	l := t.In(p.loc)
	h := int(p.peak)
	m := int((p.peak - float64(h)) * 60)
	at := time.Date(l.Year(), l.Month(), l.Day(), h, m, 0, 0, p.loc)
	if !at.After(t) {
		at = time.Date(l.Year(), l.Month(), l.Day()+1, h, m, 0, 0, p.loc)
	}
	return at.UTC()
}

// hold inserts admitted m into later, the messages waiting for their
// planned delivery, kept in order of it (ties in order of arrival).
func (o *timedOracle) hold(later []*message, m *message) []*message {
	at := o.at[m.index]
	i, _ := slices.BinarySearchFunc(later, at, func(x *message, t time.Time) int {
		if o.at[x.index].After(t) {
			return 1
		}
		return -1
	})
	return slices.Insert(later, i, m)
}

// delivered records what the reader did with m, delivered at at, for the
// learners.
func (o *timedOracle) delivered(m *message, at time.Time, out outcome) {
	if o.bayes != nil {
		o.bayes.delivered(m, at, out)
	}
	if o.hours == nil || out.pressure == 0 {
		return // hours known, or the reader had stopped
	}
	p := o.pop[m.rcpt]
	rel := p.relevance(m.campaign.topics)
	if o.bayes != nil {
		rel = o.bayes.readers[m.rcpt].relevance(m.campaign.topics)
	}
	// The timed yardsticks never repeat a campaign within a week, so the
	// repeat factor is 1; the activity is what is learned.
	openF, _ := releaseFactors(p, m.campaign, at, 1, out.pressure, 1)
	ready := at.Add(bayesReadTime)
	o.pending = append(o.pending, hoursObs{
		ready: ready, rcpt: m.rcpt, hour: localHour(at, p.loc),
		base:   openF * (0.3 + 0.7*rel),
		opened: out.opened && !out.openAt.After(ready), delay: out.openAt.Sub(at),
	})
}
