package sim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// A bound on learning from feedback (round 15 of docs/simulation.md): the
// posterior of a reader's liked topics given their opens and clicks, worked
// out with the world's own generative model. It is generous to the learner
// in every way the engine cannot be: it knows every campaign's true topics
// and quality, the reader's openness, activity, over-mailing and repeats,
// the topics' popularity and pairing, and the response model's formulas.
// The only thing it must learn is which topics the reader likes, from the
// same outcomes the engine sees (opened, clicked), once they could have
// been read. No learner from those outcomes can follow a reader's
// relevance better than this one does, up to its one approximation: a
// liked topic's interest is taken at its mean (0.75) and an unliked one's
// at 0.075, instead of integrating over their uniform spreads.

// likedMean and unlikedMean are the mean interest of a liked and an
// unliked topic (population.go: uniform on 0.5-1 and on 0-0.15).
const (
	likedMean   = 0.75
	unlikedMean = 0.075
)

// likedSets is the number of subsets of Topics.
const likedSets = 1 << 8

// likedPrior is the log prior of each set of liked topics in world w,
// enumerating what newPopulation and structuredInterests draw.
func likedPrior(w World) []float64 {
	p := make([]float64, likedSets)
	for s := range likedSets {
		pr := 1.0
		for t := range Topics {
			q := 0.25
			if w.structured() {
				q = topicPopularity[t]
				if u := topicPartner[t]; u < t && s&(1<<u) != 0 {
					q = min(1, 2*q)
				}
			}
			if s&(1<<t) != 0 {
				pr *= q
			} else {
				pr *= 1 - q
			}
		}
		p[s] = pr
	}
	// Nobody likes nothing: the empty draw becomes one topic, by
	// popularity in the structured world, uniformly in the classic one.
	empty := p[0]
	p[0] = 0
	var sum float64
	for t := range Topics {
		if w.structured() {
			sum += topicPopularity[t]
		} else {
			sum++
		}
	}
	for t := range Topics {
		q := 1.0
		if w.structured() {
			q = topicPopularity[t]
		}
		p[1<<t] += empty * q / sum
	}
	for s := range p {
		p[s] = math.Log(p[s])
	}
	return p
}

// setRelevance is the relevance of a campaign on topics to a reader who
// likes set s, at the interests' means.
func setRelevance(s int, topics []int) float64 {
	if len(topics) == 0 {
		return 0
	}
	var r float64
	for _, t := range topics {
		if s&(1<<t) != 0 {
			r += likedMean
		} else {
			r += unlikedMean
		}
	}
	return r / float64(len(topics))
}

// bayesReader is one reader's posterior over liked sets, in logs.
type bayesReader struct {
	logw []float64
	// last maps a campaign id to when the reader last got it (the repeat
	// factor).
	last map[string]time.Time
}

func newBayesReader(prior []float64) *bayesReader {
	return &bayesReader{logw: append([]float64(nil), prior...), last: map[string]time.Time{}}
}

// relevance is the posterior mean relevance of a campaign on topics.
func (b *bayesReader) relevance(topics []int) float64 {
	return posteriorMean(b.logw, func(s int) float64 { return setRelevance(s, topics) })
}

// posteriorMean is the mean of f(i) under the weights exp(logw[i]),
// normalised; hypotheses of weight zero (-Inf) are skipped.
func posteriorMean(logw []float64, f func(i int) float64) float64 {
	mx := math.Inf(-1)
	for _, l := range logw {
		mx = max(mx, l)
	}
	var num, den float64
	for i, l := range logw {
		if math.IsInf(l, -1) {
			continue
		}
		w := math.Exp(l - mx)
		num += w * f(i)
		den += w
	}
	return num / den
}

// sent records that the reader got campaign c at t and returns the
// response model's repeat factor for it (repeatFactor when they got it
// within a week, else 1).
func (b *bayesReader) sent(c *campaign, t time.Time) float64 {
	repeat := 1.0
	if last, ok := b.last[c.id]; ok && t.Sub(last) < repeatWindow {
		repeat = repeatFactor
	}
	b.last[c.id] = t
	return repeat
}

// releaseFactors are the parts of the response model's P(open) and
// P(click|open) that do not depend on relevance, for c delivered to p at
// t under the given over-mailing (pressure, at least 1) and repeat factor,
// with the reader's activity at t (the truth, p.activity(t), or a learned
// estimate).
func releaseFactors(p *recipient, c *campaign, t time.Time, act, pressure, repeat float64) (openF, clickF float64) {
	openF = p.openness * act / max(pressure, 1) * repeat
	if c.expires.IsZero() || t.Before(c.expires) {
		clickF = clickScale * c.quality
	}
	return openF, clickF
}

// observe updates the posterior with one release's outcome: whether it
// was opened and clicked. openFactor is everything in P(open) but the
// relevance term (openness, activity, fatigue, repeat); clickScale·quality
// is P(click|open) over relevance (0 when the offer had expired).
func (b *bayesReader) observe(topics []int, openFactor, clickFactor float64, opened, clicked bool) {
	for s, l := range b.logw {
		if math.IsInf(l, -1) {
			continue
		}
		r := setRelevance(s, topics)
		po := min(1, openFactor*(0.3+0.7*r))
		pc := min(1, clickFactor*r)
		var p float64
		switch {
		case clicked:
			p = po * pc
		case opened:
			p = po * (1 - pc)
		default:
			p = 1 - po
		}
		b.logw[s] = l + math.Log(max(p, 1e-12))
	}
}

// The Bayes yardstick is a policy built on the bound: send-all restricted
// to mail whose posterior relevance is at least a threshold, without
// repeats of a campaign within a week, as the oracle but with the topics
// learned instead of read. Its name carries the threshold ("bayes-0.40").
// It reads hidden state (openness, activity, over-mailing, quality), so it
// is a yardstick, never a product, and runs only when Options.Only names
// it.
const bayesPrefix = "bayes-"

// bayesReadTime is how long after delivery an outcome is observed: opens
// and clicks that came later count as none (the screen's readTime).
const bayesReadTime = 12 * time.Hour

// BayesPolicy names the Bayes yardstick that sends at posterior relevance
// threshold and above.
func BayesPolicy(threshold float64) string { return fmt.Sprintf("%s%.2f", bayesPrefix, threshold) }

func isBayes(name string) bool { return strings.HasPrefix(name, bayesPrefix) }

type bayesPolicy struct {
	threshold float64
	pop       []*recipient
	readers   []*bayesReader
	// pending are delivered mails whose outcome is not observed yet, in
	// the order they become observable.
	pending []bayesObs
	// activity, when set, is the reader's activity at a time as another
	// learner estimates it (the hours bound, hours.go); nil: the truth.
	activity func(rcpt int, t time.Time) float64
}

type bayesObs struct {
	ready           time.Time
	rcpt            int
	topics          []int
	openF, clickF   float64
	opened, clicked bool
}

func (r *replay) startBayes(name string) error {
	th, err := strconv.ParseFloat(strings.TrimPrefix(name, bayesPrefix), 64)
	if err != nil || th < 0 || th > 1 {
		return fmt.Errorf("policy %q: want %s and a threshold from 0 to 1, e.g. %s", name, bayesPrefix, BayesPolicy(0.4))
	}
	prior := likedPrior(r.opts.World)
	b := &bayesPolicy{threshold: th, pop: r.pop, readers: make([]*bayesReader, len(r.pop))}
	for i := range b.readers {
		b.readers[i] = newBayesReader(prior)
	}
	r.bayes = b
	return nil
}

// admit says whether the yardstick sends m, after learning from every
// outcome observable by then.
func (b *bayesPolicy) admit(m *message) bool {
	b.pending = observeReady(b.pending, m.at, func(o *bayesObs) time.Time { return o.ready }, func(o *bayesObs) {
		b.readers[o.rcpt].observe(o.topics, o.openF, o.clickF, o.opened, o.clicked)
	})
	rd := b.readers[m.rcpt]
	if last, ok := rd.last[m.campaign.id]; ok && m.at.Sub(last) < repeatWindow {
		return false
	}
	return rd.relevance(m.campaign.topics) >= b.threshold
}

// observeReady applies learn to the pending observations that are ready
// (observable) by t, in order, and returns the rest.
func observeReady[T any](pending []T, t time.Time, ready func(*T) time.Time, learn func(*T)) []T {
	n := 0
	for ; n < len(pending) && !ready(&pending[n]).After(t); n++ {
		learn(&pending[n])
	}
	return pending[n:]
}

// delivered queues what the reader did with m for learning later.
func (b *bayesPolicy) delivered(m *message, at time.Time, o outcome) {
	if o.pressure == 0 {
		return // they had stopped: the mail landed unread
	}
	repeat := b.readers[m.rcpt].sent(m.campaign, at)
	p := b.pop[m.rcpt]
	act := p.activity(at)
	if b.activity != nil {
		act = b.activity(m.rcpt, at)
	}
	openF, clickF := releaseFactors(p, m.campaign, at, act, o.pressure, repeat)
	ready := at.Add(bayesReadTime)
	opened := o.opened && !o.openAt.After(ready)
	b.pending = append(b.pending, bayesObs{
		ready: ready, rcpt: m.rcpt, topics: m.campaign.topics, openF: openF, clickF: clickF,
		opened: opened, clicked: opened && o.clicked && !o.clickAt.After(ready),
	})
}
