package sim

import (
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// Structure reports what shared structure the hidden population and
// stream have that learning across recipients could exploit, and how much
// feedback a policy's releases would have to learn it from. It reads the
// hidden truth (diagnostics only) and needs a run with Options.Diagnose.
//
// Two kinds of shared structure are possible in principle: topics that
// are liked more often than others across the list (a per-topic
// population rate would then be a better prior than one number), and
// campaigns that are better than others for everyone (early clicks on a
// campaign would then predict clicks on its later releases).
func (r *Result) Structure(w io.Writer) {
	if r.pop == nil {
		fmt.Fprintln(w, "no diagnostics (run with Options.Diagnose)")
		return
	}
	// Topics: how many recipients like each, and the clicks per release
	// on it under send-all (the most feedback any policy gets).
	fmt.Fprintln(w, "topic        liked-by  mean-interest  send-all releases clicks clicks/release")
	type tally struct{ rel, clk int }
	for t, name := range Topics {
		liked, sum := 0, 0.0
		for _, p := range r.pop {
			if p.interest[t] >= 0.5 {
				liked++
			}
			sum += p.interest[t]
		}
		var ta tally
		if all := r.Policy(PolicySendAll); all != nil {
			for _, x := range all.Releases {
				if !x.Marketing || !slices.Contains(r.stream[x.Message].campaign.topics, t) {
					continue
				}
				ta.rel++
				if x.Clicked {
					ta.clk++
				}
			}
		}
		fmt.Fprintf(w, "%-12s %7.1f%%  %13.3f  %17d %6d %14.4f\n", name, 100*float64(liked)/float64(len(r.pop)),
			sum/float64(len(r.pop)), ta.rel, ta.clk, float64(ta.clk)/math.Max(1, float64(ta.rel)))
	}
	// Campaigns: quality against the priority header the engine reads.
	type camp struct {
		quality  float64
		priority int
	}
	camps := map[string]camp{}
	for i := range r.stream {
		if c := r.stream[i].campaign; c != nil {
			camps[c.id] = camp{c.quality, c.priority}
		}
	}
	var qs, ps []float64
	for _, c := range camps {
		qs = append(qs, c.quality)
		ps = append(ps, float64(c.priority))
	}
	fmt.Fprintf(w, "campaign IDs %d; correlation of hidden quality with X-Kadenz-Priority %.2f\n", len(camps), corr(qs, ps))
	// Per policy: for each release, the clicks on the same campaign that
	// had happened before it (what a per-campaign click rate learned from
	// feedback would rest on), and how well the campaign's final click
	// rate tracks its quality.
	for _, p := range r.Policies {
		clicks := map[string][]time.Time{}
		rels := map[string][]time.Time{}
		for _, x := range p.Releases {
			if !x.Marketing {
				continue
			}
			rels[x.Campaign] = append(rels[x.Campaign], x.Released)
			if x.Clicked {
				clicks[x.Campaign] = append(clicks[x.Campaign], x.ClickAt)
			}
		}
		var n, withClick, withRels int
		var priorClicks, priorRels, meanQ float64
		// Over releases: hidden quality, the priority header, and the
		// campaign's click rate so far, shrunk to the policy's overall
		// rate with the weight of 50 releases (an empirical-Bayes estimate
		// production could compute from feedback).
		var relQ, relP, relEst []float64
		total, totalClicks := 0, countClicks(clicks)
		for _, rs := range rels {
			total += len(rs)
		}
		base := float64(totalClicks) / math.Max(1, float64(total))
		for id, rs := range rels {
			cs := clicks[id]
			for _, at := range rs {
				n++
				pc, pr := 0, 0
				for _, c := range cs {
					if c.Before(at) {
						pc++
					}
				}
				for _, o := range rs {
					if o.Before(at.Add(-time.Hour)) { // released an hour earlier: the reader may have looked
						pr++
					}
				}
				relQ = append(relQ, camps[id].quality)
				relP = append(relP, float64(camps[id].priority))
				relEst = append(relEst, (float64(pc)+50*base)/(float64(pr)+50))
				meanQ += camps[id].quality
				priorClicks += float64(pc)
				priorRels += float64(pr)
				if pc > 0 {
					withClick++
				}
				if pr >= 20 {
					withRels++
				}
			}
		}
		var q, rate []float64
		for id, rs := range rels {
			if len(rs) < 20 {
				continue
			}
			q = append(q, camps[id].quality)
			rate = append(rate, float64(len(clicks[id]))/float64(len(rs)))
		}
		if n == 0 {
			continue
		}
		fmt.Fprintf(w, "%-12s releases %6d; per campaign %.1f releases, %.2f clicks; before a release: %.2f clicks and %.1f releases of its campaign on average, "+
			"%.1f%% have >=1 earlier click, %.1f%% >=20 earlier releases; corr(quality, campaign's final click rate) %.2f over %d campaigns\n",
			p.Name, n, float64(n)/float64(len(rels)), float64(countClicks(clicks))/float64(len(rels)),
			priorClicks/float64(n), priorRels/float64(n), 100*float64(withClick)/float64(n), 100*float64(withRels)/float64(n), corr(q, rate), len(q))
		fmt.Fprintf(w, "%-12s mean hidden quality of releases %.3f; over releases corr(quality, priority) %.2f, corr(quality, campaign click rate so far) %.2f\n",
			p.Name, meanQ/float64(n), corr(relQ, relP), corr(relQ, relEst))
	}
}

func countClicks(m map[string][]time.Time) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// corr is Pearson's correlation coefficient.
func corr(x, y []float64) float64 {
	if len(x) < 2 {
		return math.NaN()
	}
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(x))
	my /= float64(len(y))
	var sxy, sxx, syy float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
		syy += (y[i] - my) * (y[i] - my)
	}
	return sxy / math.Sqrt(sxx*syy)
}
