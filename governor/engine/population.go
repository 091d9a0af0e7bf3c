package engine

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"kadenz/scoring"
)

// The population's topic and term lifts (scoring.Population.TopicLift and
// TermLift), learned from every recipient's feedback: which topics and
// which words earn more engagement than the average release, across the
// list. They are the prior each recipient's own estimate shrinks toward,
// so a recipient the engine knows little about gets the mail the list
// likes best. Counted, like campaign quality, in named store counters:
//
//	pop/all/{released,opens,clicks}          every release
//	pop/topic/<topic>/{released,opens,clicks} releases with the topic
//	pop/term/<bucket>/{released,opens,clicks} releases with a term in the bucket
//	pop/delay/<bin>                           first opens by delay (scoring.OpenDelayEdges)
//	pop/look/<bin>                            releases by their reader's evidence for looking (scoring.LookEvidenceBin)
//	pop/stops/{released,stops}                releases, and the unsubscribes and complaints they earned (scoring.StopRate)
//
// and read again at most every populationRefresh of the engine's time.

const (
	populationRefresh = time.Hour
	// populationPrior is the pseudo-releases behind a topic's or bucket's
	// rate, shrinking it toward the average.
	populationPrior = 200
	// populationPriorClicks is that prior in clicks, for lifts measured
	// in clicks (at a 2% click rate, 1,000 releases).
	populationPriorClicks = 20
	// maxPopulationLift bounds a lift to [1/max, max].
	maxPopulationLift = 4
	// minLiftClicks is the number of clicks on the whole list from which
	// lifts are measured in clicks instead of weighted engagement.
	minLiftClicks = 50
	// maxKnownTopics bounds the topics the engine tracks.
	maxKnownTopics = 1000
)

// The stop rate's counters are its own, not pop/all/released: they start
// together, so a store that counted releases before stops were counted
// does not read as a list whose readers never stop.
var (
	stopRateReleased = popCounter("stops", "released")
	stopRateStops    = popCounter("stops", "stops")
)

func popCounter(scope, what string) string { return "pop/" + scope + "/" + what }

func termScope(bucket int) string { return "term/" + strconv.Itoa(bucket) }

// delayCounters name the open-delay bins' counters, from which the
// population's delay law is fitted (scoring.FitOpenDelays).
var delayCounters = func() []string {
	names := make([]string, len(scoring.OpenDelayEdges))
	for i := range names {
		names[i] = "pop/delay/" + strconv.Itoa(i)
	}
	return names
}()

// lookCounters name the bins of the readers' evidence for looking, from
// which the list's odds of the two kinds of reader are fitted
// (scoring.FitLookOdds).
var lookCounters = func() []string {
	names := make([]string, scoring.LookEvidenceBins)
	for i := range names {
		names[i] = "pop/look/" + strconv.Itoa(i)
	}
	return names
}()

// countLookEvidence counts the evidence d carries when the outcome, after
// the administrator's rules, is a release (action, not held for review);
// none (0) says nothing about the odds and is not counted.
func countLookEvidence(counters map[string]int64, d *scoring.Decision, action scoring.Action, review bool) {
	if action == scoring.ActionRelease && !review && d.LookEvidence != 0 {
		counters[lookCounters[scoring.LookEvidenceBin(d.LookEvidence)]]++
	}
}

// popScopes are the counter scopes a release with these topics and terms
// counts toward.
func popScopes(topics []string, terms scoring.TermBits) []string {
	scopes := []string{"all"}
	for _, t := range topics {
		if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
			scopes = append(scopes, "topic/"+t)
		}
	}
	for j, w := range terms {
		for k := 0; k < 64; k++ {
			if w&(1<<uint(k)) != 0 {
				scopes = append(scopes, termScope(64*j+k))
			}
		}
	}
	return scopes
}

// notePopulationTopics remembers the topics of held mail, for the next
// refresh.
func (e *Engine) notePopulationTopics(held []scoring.Held) {
	for i := range held {
		if f := held[i].Features; f != nil {
			for _, t := range f.Topics {
				if len(e.knownTopics) < maxKnownTopics {
					e.knownTopics[strings.ToLower(t)] = true
				}
			}
		}
	}
}

// refreshPopulation recomputes the lifts from the counters when the last
// refresh is populationRefresh old.
func (e *Engine) refreshPopulation(now time.Time) error {
	if !e.populationAt.IsZero() && now.Sub(e.populationAt) < populationRefresh && !now.Before(e.populationAt) {
		return nil
	}
	e.populationAt = now
	scopes := []string{"all"}
	for t := range e.knownTopics {
		scopes = append(scopes, "topic/"+t)
	}
	for b := range scoring.ContentBuckets {
		scopes = append(scopes, termScope(b))
	}
	names := make([]string, 0, 3*len(scopes))
	for _, s := range scopes {
		names = append(names, popCounter(s, "released"), popCounter(s, "opens"), popCounter(s, "clicks"))
	}
	names = append(names, stopRateReleased, stopRateStops)
	names = append(names, delayCounters...)
	names = append(names, lookCounters...)
	vals, err := e.counters(names...)
	if err != nil {
		return fmt.Errorf("population counters: %w", err)
	}
	pol := scoring.DefaultPolicy()
	eng := func(s string) (float64, float64) {
		return pol.OpenWeight*float64(vals[popCounter(s, "opens")]) + pol.ClickWeight*float64(vals[popCounter(s, "clicks")]),
			float64(vals[popCounter(s, "released")])
	}
	// A lift says what the list thinks of a topic or a word, so it is
	// measured in clicks once there are enough of them: whether a mail is
	// opened depends mostly on when it came and how much else did (which
	// the planner models apart), whether it is clicked on what it is about.
	// In the structured simulator the open rate of the most and the least
	// liked topics differ 1.6 times, their click rates 5 times.
	prior := float64(populationPrior)
	if vals[popCounter("all", "clicks")] >= minLiftClicks {
		eng = func(s string) (float64, float64) {
			return float64(vals[popCounter(s, "clicks")]), float64(vals[popCounter(s, "released")])
		}
		// Clicks are rare: the prior is worth a number of clicks, not
		// of releases.
		prior = populationPriorClicks * float64(vals[popCounter("all", "released")]) / float64(vals[popCounter("all", "clicks")])
	}
	pop := scoring.DefaultPopulation()
	delays := make([]int64, len(delayCounters))
	for i, n := range delayCounters {
		delays[i] = vals[n]
	}
	if present, away, ok := scoring.FitOpenDelays(scoring.OpenDelayEdges, delays); ok {
		pop.OpenDelayPresent, pop.OpenDelayAway = present, away
	}
	looks := make([]int64, len(lookCounters))
	for i, n := range lookCounters {
		looks[i] = vals[n]
	}
	if odds, ok := scoring.FitLookOdds(looks); ok {
		pop.LookOdds = odds
	}
	pop.UnsubscribeRate = scoring.StopRate(vals[stopRateStops], vals[stopRateReleased], pop.UnsubscribeRate)
	allEng, allRel := eng("all")
	if allRel <= 0 || allEng <= 0 {
		e.setPopulation(pop)
		return nil
	}
	avg := allEng / allRel
	lift := func(s string) float64 {
		x, n := eng(s)
		r := (x + prior*avg) / (n + prior)
		return min(max(r/avg, 1.0/maxPopulationLift), maxPopulationLift)
	}
	pop.TopicLift = map[string]float64{}
	for t := range e.knownTopics {
		pop.TopicLift[t] = lift("topic/" + t)
	}
	pop.TermLift = make([]float64, scoring.ContentBuckets)
	for b := range pop.TermLift {
		pop.TermLift[b] = lift(termScope(b))
	}
	e.setPopulation(pop)
	return nil
}

// Learned is what the engine has learned of how the list's readers read,
// as the decisions use it: the delay law of first opens (defaults until
// fitted), the share of readers who open at their next look rather than
// after a delay set when the mail came (0.5 until fitted), and how often
// they stop.
type Learned struct {
	At               time.Time // the refresh it comes from, engine time
	OpenDelayPresent time.Duration
	OpenDelayAway    time.Duration
	LookShare        float64
	// StopRate is the list's unsubscribes and complaints per release, the
	// base of the fatigue cost (the prior until measured).
	StopRate float64
}

// Learned returns what the last population refresh learned; false before
// the first (the engine refreshes before its first decision).
func (e *Engine) Learned() (Learned, bool) {
	if l := e.learned.Load(); l != nil {
		return *l, true
	}
	return Learned{}, false
}

// setPopulation puts pop in force and publishes what it says of the
// readers.
func (e *Engine) setPopulation(pop scoring.Population) {
	e.population = pop
	present, away := pop.OpenDelayLaw()
	e.learned.Store(&Learned{At: e.populationAt, OpenDelayPresent: present, OpenDelayAway: away,
		LookShare: 1 / (1 + math.Exp(-pop.LookOdds)), StopRate: pop.UnsubscribeRate})
}
