package sim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"kadenz/store"
)

// Fate is what became of one marketing message under a policy that holds
// mail: its final state and the reasons of its last decision.
type Fate struct {
	State   store.State
	Reasons []string
	// Decisions is how many times the engine decided on it.
	Decisions int
	// Affinity and Campaign are the last decision's predicted engagement
	// and campaign factor (scoring.Numbers).
	Affinity, Campaign float64
}

// fates reads every envelope's final state and last decision, keyed by
// the message's index in the stream. It is diagnostics only: the engine
// never sees it.
func fates(db store.Reads, byID map[string]*message) (map[int]Fate, error) {
	out := map[int]Fate{}
	var envs []store.Envelope
	if err := db.Envelopes(func(e store.Envelope) bool {
		envs = append(envs, e)
		return true
	}); err != nil {
		return nil, err
	}
	for _, e := range envs {
		m := byID[e.MessageID]
		if m == nil || !m.marketing {
			continue
		}
		f := Fate{State: e.State}
		raw, err := db.Decisions(e.ID)
		if err != nil {
			return nil, err
		}
		var recs []struct {
			Action  string   `json:"action"`
			Reasons []string `json:"reasons"`
			Numbers *struct {
				Affinity, Campaign float64
			} `json:"numbers"`
		}
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &recs); err != nil {
				return nil, err
			}
		}
		f.Decisions = len(recs)
		if len(recs) > 0 {
			f.Reasons = recs[len(recs)-1].Reasons
			if n := recs[len(recs)-1].Numbers; n != nil {
				f.Affinity, f.Campaign = n.Affinity, n.Campaign
			}
		}
		out[m.index] = f
	}
	return out, nil
}

// Diagnose writes where send-all's clicks went under Kadenz: for every
// message send-all delivered and that was clicked, whether Kadenz
// released it (and whether it was clicked then) or why not. Each row is
// a count of send-all's clicks. It needs a run with Options.Diagnose.
func (r *Result) Diagnose(w io.Writer) {
	all, k := r.Policy(PolicySendAll), r.Policy(PolicyKadenz)
	if all == nil || k == nil || k.Fates == nil {
		fmt.Fprintln(w, "no diagnostics (run with Options.Diagnose)")
		return
	}
	r.diagnoseClicks(w, all, k)
	r.diagnosePicks(w)
	r.diagnoseLearners(w, k)
	diagnoseOutcomes(w, k)
	r.diagnoseStops(w)
}

// diagnoseClicks sorts send-all's clicks by what Kadenz did with the same
// message, and counts Kadenz's own clicks by whether send-all's got them.
func (r *Result) diagnoseClicks(w io.Writer, all, k *PolicyResult) {
	kRel := map[int]Release{}
	for _, rel := range k.Releases {
		if rel.Marketing {
			kRel[rel.Message] = rel
		}
	}
	count := map[string]int{}
	total := 0
	for _, rel := range all.Releases {
		if !rel.Clicked {
			continue
		}
		total++
		var key string
		if kr, ok := kRel[rel.Message]; ok {
			if kr.Clicked {
				key = "released, clicked"
			} else {
				key = "released, not clicked"
			}
		} else if f, ok := k.Fates[rel.Message]; !ok {
			key = "never submitted (recipient had left)"
		} else {
			key = fmt.Sprintf("%s: %s", f.State, strings.Join(f.Reasons, ","))
		}
		count[key]++
	}
	// Clicks Kadenz got on messages send-all's reader did not click.
	gained := 0
	for _, rel := range k.Releases {
		if rel.Clicked {
			gained++
		}
	}
	keys := make([]string, 0, len(count))
	for key := range count {
		keys = append(keys, key)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(count[b]-count[a], strings.Compare(a, b)) })
	fmt.Fprintf(w, "send-all clicks %d; kadenz clicks %d\n", total, gained)
	for _, key := range keys {
		fmt.Fprintf(w, "  %5d %5.1f%%  %s\n", count[key], 100*float64(count[key])/float64(total), key)
	}
	// Kadenz's own clicks, by whether send-all's reader clicked the same.
	allClicked := map[int]bool{}
	for _, rel := range all.Releases {
		if rel.Clicked {
			allClicked[rel.Message] = true
		}
	}
	both := 0
	for _, rel := range k.Releases {
		if rel.Clicked && allClicked[rel.Message] {
			both++
		}
	}
	fmt.Fprintf(w, "kadenz clicks also clicked under send-all %d, new %d\n", both, gained-both)
}

// picks are the hidden quality of p's marketing releases: how many, their
// mean relevance, the share with relevance at least 0.4 and the reader's
// mean activity at release. It needs Options.Diagnose.
func (r *Result) picks(p *PolicyResult) (n int, rel, liked, act float64) {
	for _, x := range p.Releases {
		if !x.Marketing {
			continue
		}
		m := &r.stream[x.Message]
		rc := r.pop[m.rcpt]
		R := rc.relevance(m.campaign.topics)
		n++
		rel += R
		act += rc.activity(x.Released)
		if R >= 0.4 {
			liked++
		}
	}
	if n == 0 {
		return 0, 0, 0, 0
	}
	return n, rel / float64(n), liked / float64(n), act / float64(n)
}

// diagnosePicks says how well each policy picks, by what the engine never
// sees: the hidden relevance, the reader's activity, the campaign quality.
func (r *Result) diagnosePicks(w io.Writer) {
	// How well each policy picks: the hidden relevance and the reader's
	// activity at release (the engine never sees either).
	for _, p := range r.Policies {
		if n, rel, liked, act := r.picks(p); n > 0 {
			fmt.Fprintf(w, "%-9s mean relevance %.3f, share relevance>=0.4 %.2f, mean activity %.3f\n",
				p.Name, rel, liked, act)
		}
	}
	for _, p := range r.Policies {
		r.diagnoseTiming(w, p)
	}
	// The same split by what the engine could see: mail that declares its
	// topics (CRM, shop plugin) against mail that does not (ESP, list
	// manager), with the hidden campaign quality of what was released.
	// Send-all's numbers are the chance level each policy is measured by.
	for _, p := range r.Policies {
		var n, rel, q [2]float64
		for _, x := range p.Releases {
			if !x.Marketing {
				continue
			}
			m := &r.stream[x.Message]
			c := m.campaign
			i := 0
			if c.tool == toolESP || c.tool == toolList {
				i = 1
			}
			n[i]++
			rel[i] += r.pop[m.rcpt].relevance(c.topics)
			q[i] += c.quality
		}
		fmt.Fprintf(w, "%-9s declared topics: %5.0f released, relevance %.3f, quality %.3f; words only: %5.0f, relevance %.3f, quality %.3f\n",
			p.Name, n[0], rel[0]/max(n[0], 1), q[0]/max(n[0], 1), n[1], rel[1]/max(n[1], 1), q[1]/max(n[1], 1))
	}
}

// diagnoseLearners says whether the engine's learned affinity and campaign
// factor follow the hidden relevance and quality they estimate.
func (r *Result) diagnoseLearners(w io.Writer, k *PolicyResult) {
	// Does the engine's affinity follow the hidden relevance within each
	// reader? The correlation of both, centred on each reader's mean, over
	// every marketing message Kadenz decided on, split as above; and the
	// same for the campaign factor against hidden quality (pooled). In
	// message order, so that the sums come out the same every time.
	idxs := make([]int, 0, len(k.Fates))
	for idx := range k.Fates {
		idxs = append(idxs, idx)
	}
	slices.Sort(idxs)
	per := [2]map[int][]pair{{}, {}}
	var cq [2][]pair
	// The yardstick: the population's mean hidden relevance for the
	// message's topics, the best any list-wide topic lift could do.
	popRel := map[string]float64{}
	perPop := map[int][]pair{}
	for _, idx := range idxs {
		f := k.Fates[idx]
		m := &r.stream[idx]
		c := m.campaign
		i := 0
		if c.tool == toolESP || c.tool == toolList {
			i = 1
		}
		R := r.pop[m.rcpt].relevance(c.topics)
		per[i][m.rcpt] = append(per[i][m.rcpt], pair{f.Affinity, R})
		cq[i] = append(cq[i], pair{f.Campaign, c.quality})
		pr, ok := popRel[c.id]
		if !ok {
			for _, rc := range r.pop {
				pr += rc.relevance(c.topics)
			}
			pr /= float64(len(r.pop))
			popRel[c.id] = pr
		}
		perPop[m.rcpt] = append(perPop[m.rcpt], pair{pr, R})
	}
	fmt.Fprintf(w, "yardstick: within-reader corr(population's mean relevance of the topics, hidden relevance) %.3f\n", withinCorr(perPop))
	for i, name := range []string{"declared topics", "words only"} {
		var qx, qy []float64
		for _, q := range cq[i] {
			qx, qy = append(qx, q.a), append(qy, q.r)
		}
		n := 0
		for _, ps := range per[i] {
			n += len(ps)
		}
		fmt.Fprintf(w, "kadenz %-15s: within-reader corr(affinity, hidden relevance) %.3f over %d; corr(campaign factor, quality) %.3f\n",
			name, withinCorr(per[i]), n, corr(qx, qy))
	}
}

// diagnoseOutcomes lists Kadenz's most frequent outcomes of marketing mail.
func diagnoseOutcomes(w io.Writer, k *PolicyResult) {
	// Every Kadenz outcome, for all marketing mail.
	outc := map[string]int{}
	for _, f := range k.Fates {
		outc[fmt.Sprintf("%s: %s", f.State, strings.Join(f.Reasons, ","))]++
	}
	keys := make([]string, 0, len(outc))
	for key := range outc {
		keys = append(keys, key)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(outc[b]-outc[a], strings.Compare(a, b)) })
	fmt.Fprintln(w, "kadenz outcomes of all marketing mail:")
	for i, key := range keys {
		if i == 15 {
			break
		}
		fmt.Fprintf(w, "  %6d  %s\n", outc[key], key)
	}
}

// pair is an estimate and the hidden truth it estimates.
type pair struct{ a, r float64 }

// withinCorr is the correlation of estimates with the truth over all
// readers' pairs, each centred on its reader's means (readers in order).
func withinCorr(byReader map[int][]pair) float64 {
	readers := make([]int, 0, len(byReader))
	for rc := range byReader {
		readers = append(readers, rc)
	}
	slices.Sort(readers)
	var xs, ys []float64
	for _, rc := range readers {
		ps := byReader[rc]
		var ma, mr float64
		for _, q := range ps {
			ma += q.a
			mr += q.r
		}
		ma /= float64(len(ps))
		mr /= float64(len(ps))
		for _, q := range ps {
			xs = append(xs, q.a-ma)
			ys = append(ys, q.r-mr)
		}
	}
	return corr(xs, ys)
}

// peakClasses name the reader classes of population.go by their peak hour.
var peakClasses = [3]string{"morning", "lunch", "evening"}

func peakClass(peak float64) int {
	switch {
	case peak >= 19:
		return 2
	case peak >= 12:
		return 1
	}
	return 0
}

// diagnoseTiming says how near each reader's active peak a policy released
// their marketing mail: the best activity a release on the same local day
// could have had at a whole hour the shipped quiet hours leave open
// (08:00-20:00), to read against the mean activity at release that
// diagnosePicks prints, and, per class of reader, the share
// of releases within an hour of their peak with the local hours they went
// at. It separates what timing could still gain from what relevance could.
func (r *Result) diagnoseTiming(w io.Writer, p *PolicyResult) {
	var n, best float64
	var within, per [3]float64
	var hours [3][24]int
	for _, x := range p.Releases {
		if !x.Marketing {
			continue
		}
		rc := r.pop[r.stream[x.Message].rcpt]
		l := x.Released.In(rc.loc)
		b := 0.0
		for h := 8; h <= 20; h++ {
			b = math.Max(b, rc.activity(time.Date(l.Year(), l.Month(), l.Day(), h, 0, 0, 0, rc.loc)))
		}
		n++
		best += b
		c := peakClass(rc.peak)
		per[c]++
		hours[c][l.Hour()]++
		d := math.Abs(float64(l.Hour()) + float64(l.Minute())/60 - rc.peak)
		if math.Min(d, 24-d) <= 1 {
			within[c]++
		}
	}
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "%-9s timing: best open hour of the day %.3f; within 1h of the peak:", p.Name, best/n)
	for c, name := range peakClasses {
		fmt.Fprintf(w, " %s %.2f of %.0f", name, within[c]/max(per[c], 1), per[c])
	}
	fmt.Fprintln(w)
	if p.Name != "kadenz" {
		return
	}
	for c, name := range peakClasses {
		fmt.Fprintf(w, "kadenz    %s readers' releases by local hour 00-23: %v\n", name, hours[c])
	}
}
