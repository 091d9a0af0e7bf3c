package sim

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Learners of per-reader interest that use what other readers did
// (issue 18, round 10 of docs/simulation.md), screened offline on a
// policy's release log before any of them is built into the engine.
//
// Each learner scores every marketing release of the policy, in the order
// of time, from what the engine could have known then: the words of the
// message (its subject and the body words it repeats), its declared
// topics where the sending tool declares them, and the clicks whose events
// had arrived (and, for the open learners J-M, the opens). Rows N-V
// (round 15) add the campaign's audience, and the bound of bayes.go: what a
// learner of the reader's topics that knows the world's model could score
// (it reads hidden state, so it is a bound, not a candidate). The screen
// asks two things of a score: does it follow the hidden relevance within
// each reader (rounds 6-9 measured the engine's affinity this way), and if
// the lowest-scored releases had been withheld, how many clicks and stops
// would have gone with them. The second is a static count, as round 9's:
// fewer mails would also have changed fatigue and every later draw, which
// it does not model; it is the same for every score, so scores compare
// fairly with each other, and the engine's own affinity is among them.

// InterestScreen is the screen of one or more runs: per score, the
// within-reader correlation with hidden relevance and what withholding
// each share of the lowest-scored releases would have kept.
type InterestScreen struct {
	Runs                    int
	Released, Clicks, Stops int
	Scores                  []ScoreScreen
}

// ScoreScreen is one score's part of an InterestScreen.
type ScoreScreen struct {
	Name string
	// Corr sums the within-reader correlation with hidden relevance over
	// runs (Print divides); QCorr likewise the pooled correlation with the
	// campaign's hidden quality.
	Corr, QCorr float64
	// Kept[q] are the clicks and stops of the releases left after the
	// lowest WithholdShares[q] of them by this score.
	KeptClicks, KeptStops []int
}

// WithholdShares are the shares of the lowest-scored releases withheld.
// About 0.23 is what strictness 0.085 -> 0.25 took off Kadenz's volume in
// round 9's screen.
var WithholdShares = []float64{0.1, 0.2, 0.3, 0.4}

// interestScores are the scores the screen compares, in print order.
var interestScores = []string{
	"engine affinity (as decided)",
	"engine affinity x campaign factor",
	"A: own word click rate (reader alone)",
	"B: word click rate of the list",
	"C: co-click, readers who clicked the same words",
	"D: campaign click rate so far",
	"E: campaign click rate in the reader's segment",
	"C x E",
	"F: engine's value x B's lift",
	"G: engine's value x C's lift",
	"H: engine's value x C/B (the reader's own part)",
	"I: engine's value x (C x E)'s lift",
	"J: own word open rate (reader alone)",
	"K: word open rate of the list",
	"L: J's lift x campaign factor",
	"M: J's lift x engine's value",
	"N: campaign's audience, smaller first (targeting)",
	"O: engine's value / audience share",
	"P: Bayes posterior of the reader's topics, world's model (bound)",
	"Q: Bayes prior only (topic popularity and pairs)",
	"R: P x the campaign's hidden quality (bound)",
	"S: P x the engine's campaign factor",
	"T: Q x the engine's campaign factor",
	"U: engine's value x P",
	"V: engine's value x P / Q (the reader's own part)",
	"hidden relevance (oracle)",
}

// Interest runs the screen on Kadenz's release log (a run with
// Options.Diagnose).
func (r *Result) Interest() (InterestScreen, error) {
	k := r.Policy(PolicyKadenz)
	if k == nil || k.Fates == nil || r.pop == nil {
		return InterestScreen{}, fmt.Errorf("no diagnostics (run with Options.Diagnose)")
	}
	byAddr := map[string]int{}
	for i, rc := range r.pop {
		byAddr[rc.addr] = i
	}
	// The releases, in time order.
	var rels []*Release
	for i := range k.Releases {
		if k.Releases[i].Marketing {
			rels = append(rels, &k.Releases[i])
		}
	}
	slices.SortStableFunc(rels, func(a, b *Release) int { return a.Released.Compare(b.Released) })

	// Terms: what the engine could read of each campaign.
	termID := map[string]int{}
	campTerms := map[*campaign][]int{}
	termsOf := func(c *campaign) []int {
		if ts, ok := campTerms[c]; ok {
			return ts
		}
		id := func(s string) int {
			j, ok := termID[s]
			if !ok {
				j = len(termID)
				termID[s] = j
			}
			return j
		}
		var ts []int
		seen := map[string]bool{}
		add := func(w string) {
			if len(w) >= 3 && !seen[w] {
				seen[w] = true
				ts = append(ts, id(w))
			}
		}
		for _, w := range strings.Fields(strings.ToLower(c.subject)) {
			add(strings.Trim(w, ".,!?:;"))
		}
		n := map[string]int{}
		for _, w := range c.body {
			n[w]++
		}
		words := make([]string, 0, len(n))
		for w := range n {
			if n[w] >= 2 {
				words = append(words, w)
			}
		}
		slices.Sort(words)
		for _, w := range words {
			add(w)
		}
		if c.tool == toolCRM || c.tool == toolShop {
			for _, t := range c.topics {
				add("topic:" + strconv.Itoa(t))
			}
		}
		campTerms[c] = ts
		return ts
	}
	for _, x := range rels {
		termsOf(r.stream[x.Message].campaign)
	}
	nt := len(termID)
	// Each campaign's audience as a share of the list: Kadenz holds every
	// copy submitted, so it knows how many readers a campaign went to.
	audience := map[*campaign]float64{}
	for _, m := range r.stream {
		if m.marketing && m.campaign != nil {
			audience[m.campaign]++
		}
	}
	for c := range audience {
		audience[c] /= float64(len(r.pop))
	}

	// Events: releases, their clicks when they arrive, and a release's
	// copy counted for its campaign once it could have been read.
	const (
		evRelease = iota
		evReadable
		evClick
		evOpen
	)
	const readTime = 12 * time.Hour
	type event struct {
		at   time.Time
		kind int
		i    int
	}
	var evs []event
	for i, x := range rels {
		evs = append(evs, event{x.Released, evRelease, i}, event{x.Released.Add(readTime), evReadable, i})
		if x.Clicked {
			evs = append(evs, event{x.ClickAt, evClick, i})
		}
		if x.Opened {
			evs = append(evs, event{x.OpenAt, evOpen, i})
		}
	}
	slices.SortStableFunc(evs, func(a, b event) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.kind, b.kind)) })

	// State.
	type reader struct {
		sends, clicks, opens map[int]float64 // per term
	}
	readers := make([]reader, len(r.pop))
	prior := likedPrior(r.World)
	priorOnly := newBayesReader(prior) // Q: a reader nothing is known of
	bayes := make([]*bayesReader, len(r.pop))
	for i := range bayes {
		bayes[i] = newBayesReader(prior)
	}
	repeatOf := make([]float64, len(rels))
	for i := range readers {
		readers[i] = reader{map[int]float64{}, map[int]float64{}, map[int]float64{}}
	}
	gSend, gClick, gOpen := make([]float64, nt), make([]float64, nt), make([]float64, nt)
	var gS, gC, gO float64
	coExp, coClk := make([]float32, nt*nt), make([]float32, nt*nt)
	type segKey struct {
		c   *campaign
		seg int
	}
	cSend, cClick := map[*campaign]float64{}, map[*campaign]float64{}
	sSend, sClick := map[segKey]float64{}, map[segKey]float64{}
	// What was known of a release's reader when it went out, for the
	// counts its click updates later.
	snapClicked := make([][]int, len(rels))
	snapSeg := make([]int, len(rels))
	scores := make([][]float64, len(interestScores))
	for s := range scores {
		scores[s] = make([]float64, len(rels))
	}
	globalRate := func() float64 { return (gC + 1) / (gS + 50) }
	base := func(u int) float64 {
		const k = 50
		return (gClick[u] + k*globalRate()) / (gSend[u] + k)
	}
	lift := func(u int) float64 { return base(u) / globalRate() }
	// The same for opens, which are about ten times as many as clicks.
	openRate := func() float64 { return (gO + 1) / (gS + 5) }
	obase := func(u int) float64 {
		const k = 50
		return (gOpen[u] + k*openRate()) / (gSend[u] + k)
	}
	for _, ev := range evs {
		x := rels[ev.i]
		rc := byAddr[x.Recipient]
		rd := &readers[rc]
		c := r.stream[x.Message].campaign
		U := termsOf(c)
		switch ev.kind {
		case evRelease:
			var clicked []int
			for t := range rd.clicks {
				clicked = append(clicked, t)
			}
			slices.Sort(clicked)
			snapClicked[ev.i] = clicked
			seg, best := -1, 0.0
			for _, t := range clicked {
				if v := rd.clicks[t] * lift(t); v > best {
					seg, best = t, v
				}
			}
			snapSeg[ev.i] = seg
			f := k.Fates[x.Message]
			var a, b, co, ao, bo float64
			for _, u := range U {
				const ka = 3
				bo += obase(u)
				ao += (rd.opens[u] + ka*obase(u)) / (rd.sends[u] + ka)
				b += base(u)
				a += (rd.clicks[u] + ka*base(u)) / (rd.sends[u] + ka)
				if len(clicked) == 0 {
					co += base(u)
					continue
				}
				var num, w float64
				for _, t := range clicked {
					const kc = 20
					wt := rd.clicks[t]
					num += wt * (float64(coClk[t*nt+u]) + kc*base(u)) / (float64(coExp[t*nt+u]) + kc)
					w += wt
				}
				co += num / w
			}
			nu := float64(max(len(U), 1))
			const kd, ke = 30, 30
			camp := (cClick[c] + kd*globalRate()) / (cSend[c] + kd)
			sk := segKey{c, seg}
			segRate := (sClick[sk] + ke*camp) / (sSend[sk] + ke)
			g, val := globalRate(), f.Affinity*f.Campaign
			by := bayes[rc]
			post, pri := by.relevance(c.topics), priorOnly.relevance(c.topics)
			repeatOf[ev.i] = by.sent(c, x.Released)
			for s, v := range []float64{f.Affinity, val, a / nu, b / nu, co / nu, camp, segRate,
				co / nu * segRate / camp, val * b / nu / g, val * co / nu / g, val * co / b, val * co / nu * segRate / camp / g,
				ao / nu, bo / nu, ao / nu / openRate() * f.Campaign, ao / nu / openRate() * val,
				-audience[c], val / audience[c], post, pri, post * c.quality,
				post * f.Campaign, pri * f.Campaign, val * post, val * post / pri,
				r.pop[rc].relevance(c.topics)} {
				scores[s][ev.i] = v
			}
			for _, u := range U {
				rd.sends[u]++
				gSend[u]++
				for _, t := range clicked {
					coExp[t*nt+u]++
				}
			}
			gS++
		case evReadable:
			// What the reader did with it by now, for the bound.
			openF, clickF := releaseFactors(r.pop[rc], c, x.Released, r.pop[rc].activity(x.Released), x.Pressure, repeatOf[ev.i])
			opened := x.Opened && !x.OpenAt.After(ev.at)
			bayes[rc].observe(c.topics, openF, clickF, opened, opened && x.Clicked && !x.ClickAt.After(ev.at))
			cSend[c]++
			sSend[segKey{c, snapSeg[ev.i]}]++
		case evOpen:
			for _, u := range U {
				rd.opens[u]++
				gOpen[u]++
			}
			gO++
		case evClick:
			cClick[c]++
			sClick[segKey{c, snapSeg[ev.i]}]++
			for _, u := range U {
				rd.clicks[u]++
				gClick[u]++
				for _, t := range snapClicked[ev.i] {
					coClk[t*nt+u]++
				}
			}
			gC++
		}
	}

	out := InterestScreen{Runs: 1, Released: len(rels)}
	for _, x := range rels {
		if x.Clicked {
			out.Clicks++
		}
		if x.Unsubscribed || x.Complained {
			out.Stops++
		}
	}
	for s, name := range interestScores {
		byReader := map[int][]pair{}
		var qs []float64
		for i, x := range rels {
			rc := byAddr[x.Recipient]
			c := r.stream[x.Message].campaign
			byReader[rc] = append(byReader[rc], pair{scores[s][i], r.pop[rc].relevance(c.topics)})
			qs = append(qs, c.quality)
		}
		sc := ScoreScreen{Name: name, Corr: withinCorr(byReader), QCorr: corr(scores[s], qs)}
		order := make([]int, len(rels))
		for i := range order {
			order[i] = i
		}
		// Lowest first; ties by a hash of the position, so that a score
		// with many ties withholds an even spread of them.
		slices.SortStableFunc(order, func(a, b int) int {
			return cmp.Or(cmp.Compare(scores[s][a], scores[s][b]), cmp.Compare(mix32(a), mix32(b)))
		})
		for _, q := range WithholdShares {
			cut := int(math.Round(q * float64(len(order))))
			var cl, st int
			for _, i := range order[cut:] {
				if rels[i].Clicked {
					cl++
				}
				if rels[i].Unsubscribed || rels[i].Complained {
					st++
				}
			}
			sc.KeptClicks = append(sc.KeptClicks, cl)
			sc.KeptStops = append(sc.KeptStops, st)
		}
		out.Scores = append(out.Scores, sc)
	}
	return out, nil
}

// mix32 scrambles an index for tie-breaking.
func mix32(i int) uint32 {
	x := uint32(i) * 0x9e3779b1
	x ^= x >> 15
	x *= 0x85ebca77
	return x ^ x>>13
}

// Add pools another run's screen into this one.
func (s *InterestScreen) Add(u InterestScreen) {
	if s.Runs == 0 {
		s.Scores = make([]ScoreScreen, len(u.Scores))
		for i, sc := range u.Scores {
			s.Scores[i] = ScoreScreen{Name: sc.Name, KeptClicks: make([]int, len(sc.KeptClicks)), KeptStops: make([]int, len(sc.KeptStops))}
		}
	}
	s.Runs += u.Runs
	s.Released += u.Released
	s.Clicks += u.Clicks
	s.Stops += u.Stops
	for i, sc := range u.Scores {
		s.Scores[i].Corr += sc.Corr
		s.Scores[i].QCorr += sc.QCorr
		for q := range sc.KeptClicks {
			s.Scores[i].KeptClicks[q] += sc.KeptClicks[q]
			s.Scores[i].KeptStops[q] += sc.KeptStops[q]
		}
	}
}

// Print writes the screen as a markdown table.
func (s InterestScreen) Print(w io.Writer) {
	fmt.Fprintf(w, "%d runs: %d marketing releases, %d clicks, %d stops\n\n", s.Runs, s.Released, s.Clicks, s.Stops)
	fmt.Fprint(w, "| score | within-reader corr with relevance | corr with quality |")
	for _, q := range WithholdShares {
		fmt.Fprintf(w, " lowest %.0f%% withheld: clicks, stops kept |", 100*q)
	}
	fmt.Fprint(w, "\n|---|---:|---:|")
	for range WithholdShares {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, sc := range s.Scores {
		fmt.Fprintf(w, "| %s | %.3f | %.3f |", sc.Name, sc.Corr/float64(s.Runs), sc.QCorr/float64(s.Runs))
		for q := range WithholdShares {
			fmt.Fprintf(w, " %.1f%%, %.1f%% |", 100*float64(sc.KeptClicks[q])/float64(max(s.Clicks, 1)),
				100*float64(sc.KeptStops[q])/float64(max(s.Stops, 1)))
		}
		fmt.Fprintln(w)
	}
}
