package sim

import (
	"math"
	"time"
)

// A bound on learning a reader's hours (round 16 of docs/simulation.md):
// the posterior of when a reader is about, given when their mail was
// delivered, whether they opened it and how long after delivery, worked out
// with the world's own model as bayes.go does for their topics. The
// response model (response.go) makes the hours show in two ways: a mail
// is opened in proportion to the reader's activity at delivery, and it is
// looked at sooner when they are about (the delay's mean is 30 minutes
// plus four hours times their absence). The learner knows both formulas,
// the reader's openness, over-mailing and repeats; the message's relevance
// it takes from whoever drives it (the truth, or the topic posterior).
// All it must learn is the reader's peak hour and the width of their
// active period.

// hourHypothesis is one (peak, width) a reader may have, with its prior
// probability from newPopulation's draws.
type hourHypothesis struct {
	peak, width, prior float64
}

// hourHypotheses is the grid the posterior lives on, with the population's
// prior: quarter-hour peaks over each class's range (morning 7-9 for 40% of
// readers, lunch 12-13 for 30%, evening 19-22 for 30%) times five widths
// over 1.5-3.5 hours, at the bins' centres.
var hourHypotheses = hourGrid([][3]float64{{7, 9, 0.4}, {12, 13, 0.3}, {19, 22, 0.3}})

// flatHourHypotheses is the same grid over the whole day with a flat
// prior: a learner that does not know when the list's readers read.
var flatHourHypotheses = hourGrid([][3]float64{{0, 24, 1}})

// hourGrid is the grid over ranges of peaks {from, to, share of readers}.
func hourGrid(ranges [][3]float64) []hourHypothesis {
	var hs []hourHypothesis
	for _, c := range ranges {
		from, to, share := c[0], c[1], c[2]
		n := int(math.Round((to - from) * 4))
		for i := range n {
			for j := range 5 {
				hs = append(hs, hourHypothesis{
					peak:  from + (float64(i)+0.5)/4,
					width: 1.5 + (float64(j)+0.5)*0.4,
					prior: share / float64(n) / 5,
				})
			}
		}
	}
	return hs
}

// hoursReader is one reader's posterior over a grid of hypotheses, in
// logs.
type hoursReader struct {
	hs   []hourHypothesis
	logw []float64
}

func newHoursReader(grid []hourHypothesis) *hoursReader {
	h := &hoursReader{hs: grid, logw: make([]float64, len(grid))}
	for i, hy := range grid {
		h.logw[i] = math.Log(hy.prior)
	}
	return h
}

// activity is the posterior mean activity at local hour h.
func (r *hoursReader) activity(h float64) float64 {
	return posteriorMean(r.logw, func(i int) float64 { return activityAt(h, r.hs[i].peak, r.hs[i].width) })
}

// observe updates the posterior with one delivery at local hour h:
// base is everything in P(open) but the activity (openness, relevance,
// fatigue, repeat); the reader opened it delay after delivery, or did not
// within window (opened false).
func (r *hoursReader) observe(h, base float64, opened bool, delay, window time.Duration) {
	d, win := delay.Hours(), window.Hours()
	for i, l := range r.logw {
		a := activityAt(h, r.hs[i].peak, r.hs[i].width)
		mean := lookDelayMean(a).Hours()
		po := min(1, base*a)
		var p float64
		if opened {
			p = po * math.Exp(-d/mean) / mean
		} else {
			p = 1 - po*(1-math.Exp(-win/mean))
		}
		r.logw[i] = l + math.Log(max(p, 1e-300))
	}
}

// bestSlot is the delivery time at which the posterior mean activity is
// highest (bestOpenSlot).
func (r *hoursReader) bestSlot(t, expires time.Time, loc *time.Location) time.Time {
	return bestOpenSlot(t, expires, loc, r.activity)
}
