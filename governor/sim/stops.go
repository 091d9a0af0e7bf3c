package sim

import (
	"fmt"
	"io"
	"math"
	"time"
)

// Where unsubscribes and complaints come from (issue 18, round 9 of
// docs/simulation.md). For every marketing release of a policy, the
// diagnostic works out what the engine could have known about the reader
// at that moment — mails received, opens and clicks whose events had
// arrived, time since the last of them, the decayed volume the engine
// prices fatigue in — and what it could not: the hidden relevance of the
// message and the reader's over-mailing. Releases are then counted by
// class with the stops and clicks they earned, so that a learner can be
// judged by whether the classes it can see differ in what a release
// risks and earns.

// stopClass is one way of sorting releases into classes.
type stopClass struct {
	name   string
	labels []string
	of     func(o *releaseContext) int
}

// releaseContext is what is known of one marketing release: the first
// fields are observable (the engine sees the same events), the rest are
// the simulator's hidden truth.
type releaseContext struct {
	sent      int           // marketing mails this reader received before
	opens     int           // opens whose event had arrived by the release
	clicks    int           // likewise clicks
	streak    int           // releases since the last release opened (opened by now), all if none
	sinceEng  time.Duration // since the last open or click event; -1 if none yet
	volume    float64       // decayed count of earlier releases, 4-day half-life (the engine's)
	relevance float64       // hidden
	pressure  float64       // hidden
	tolerance float64       // hidden
}

// stopClasses are the classes the report uses. Each label list ends with
// the class that catches the rest.
var stopClasses = []stopClass{
	{"mails received before", []string{"0-2", "3-5", "6-10", "11-20", "21-40", "41+"}, func(o *releaseContext) int {
		return bucket(float64(o.sent), 3, 6, 11, 21, 41)
	}},
	{"engagement so far (observable)", []string{"no mail yet", "never opened, 1-4 mails", "never opened, 5-14", "never opened, 15+",
		"opened, streak 0-2", "opened, streak 3-9", "opened, streak 10+"}, func(o *releaseContext) int {
		switch {
		case o.sent == 0:
			return 0
		case o.opens == 0:
			return 1 + bucket(float64(o.sent), 5, 15)
		default:
			return 4 + bucket(float64(o.streak), 3, 10)
		}
	}},
	{"since last open or click (observable)", []string{"never", "<1 day", "1-3 days", "3-7 days", "7+ days"}, func(o *releaseContext) int {
		if o.sinceEng < 0 {
			return 0
		}
		return 1 + bucket(o.sinceEng.Hours(), 24, 72, 168)
	}},
	{"clicked before (observable)", []string{"no click", "1+ clicks"}, func(o *releaseContext) int {
		return bucket(float64(o.clicks), 1)
	}},
	{"decayed volume, 4-day half-life (observable)", []string{"<1", "1-2", "2-4", "4-6", "6-8", "8+"}, func(o *releaseContext) int {
		return bucket(o.volume, 1, 2, 4, 6, 8)
	}},
	{"hidden relevance of the message", []string{"<0.15", "0.15-0.4", "0.4-0.7", "0.7+"}, func(o *releaseContext) int {
		return bucket(o.relevance, 0.15, 0.4, 0.7)
	}},
	{"hidden pressure 1+(L/2)^2", []string{"<1.25", "1.25-2", "2-4", "4+"}, func(o *releaseContext) int {
		return bucket(o.pressure, 1.25, 2, 4)
	}},
	{"hidden tolerance, mails a day", []string{"<0.7", "0.7-1.4", "1.4-3", "3+"}, func(o *releaseContext) int {
		return bucket(o.tolerance, 0.7, 1.4, 3)
	}},
}

// bucket is the number of edges at or below x.
func bucket(x float64, edges ...float64) int {
	i := 0
	for _, e := range edges {
		if x >= e {
			i++
		}
	}
	return i
}

// releaseContexts walks a policy's release log in order and returns, for
// each marketing release (by its position in the log), what was known of
// its reader when it went out.
func (r *Result) releaseContexts(p *PolicyResult) map[int]*releaseContext {
	const volumeHalfLife = 4 * 24 * time.Hour
	type past struct {
		at, openAt, clickAt time.Time
		opened, clicked     bool
	}
	hist := map[string][]past{}
	byAddr := map[string]*recipient{}
	for _, rc := range r.pop {
		byAddr[rc.addr] = rc
	}
	out := map[int]*releaseContext{}
	for i, x := range p.Releases {
		if !x.Marketing {
			continue
		}
		h := hist[x.Recipient]
		o := &releaseContext{sent: len(h), sinceEng: -1, pressure: x.Pressure}
		var lastEng time.Time
		lastOpened := -1
		for j, e := range h {
			age := x.Released.Sub(e.at)
			o.volume += math.Exp2(-float64(age) / float64(volumeHalfLife))
			if e.opened && !e.openAt.After(x.Released) {
				o.opens++
				lastOpened = j
				if e.openAt.After(lastEng) {
					lastEng = e.openAt
				}
			}
			if e.clicked && !e.clickAt.After(x.Released) {
				o.clicks++
				if e.clickAt.After(lastEng) {
					lastEng = e.clickAt
				}
			}
		}
		o.streak = len(h) - 1 - lastOpened
		if !lastEng.IsZero() {
			o.sinceEng = x.Released.Sub(lastEng)
		}
		m := &r.stream[x.Message]
		rc := byAddr[x.Recipient]
		o.relevance = rc.relevance(m.campaign.topics)
		o.tolerance = rc.tolerance
		out[i] = o
		hist[x.Recipient] = append(h, past{x.Released, x.OpenAt, x.ClickAt, x.Opened, x.Clicked})
	}
	return out
}

// StopTable counts one policy's marketing releases, and the stops and
// clicks they earned, by each class of stopClasses. Tables of several runs
// add up (Add), so that a rare event like a stop can be counted over many.
type StopTable struct {
	Policy                  string
	Runs                    int
	Released, Stops, Clicks int
	// Counts[c][k] is class k of stopClasses[c].
	Counts [][]ClassCount
}

// ClassCount is the releases in one class and what they earned.
type ClassCount struct{ Released, Stops, Clicks int }

// StopTables are send-all's and Kadenz's stop tables of this run.
func (r *Result) StopTables() []StopTable {
	var out []StopTable
	for _, name := range []string{PolicySendAll, PolicyKadenz} {
		p := r.Policy(name)
		if p == nil {
			continue
		}
		t := StopTable{Policy: name, Runs: 1, Released: p.Released, Stops: p.Stops(), Clicks: p.Clicks}
		ctx := r.releaseContexts(p)
		for _, c := range stopClasses {
			counts := make([]ClassCount, len(c.labels))
			for i, x := range p.Releases {
				o := ctx[i]
				if o == nil {
					continue
				}
				k := &counts[c.of(o)]
				k.Released++
				if x.Unsubscribed || x.Complained {
					k.Stops++
				}
				if x.Clicked {
					k.Clicks++
				}
			}
			t.Counts = append(t.Counts, counts)
		}
		out = append(out, t)
	}
	return out
}

// Add adds u, a table of the same policy from another run, to t.
func (t *StopTable) Add(u StopTable) {
	if t.Counts == nil {
		*t = StopTable{Policy: u.Policy}
		for _, c := range u.Counts {
			t.Counts = append(t.Counts, make([]ClassCount, len(c)))
		}
	}
	t.Runs += u.Runs
	t.Released += u.Released
	t.Stops += u.Stops
	t.Clicks += u.Clicks
	for c := range u.Counts {
		for k, x := range u.Counts[c] {
			y := &t.Counts[c][k]
			y.Released += x.Released
			y.Stops += x.Stops
			y.Clicks += x.Clicks
		}
	}
}

// Print writes the table: per class, releases, stops (and per thousand
// releases), clicks (and per hundred) and clicks per stop, which says
// where a release risks more than it earns.
func (t StopTable) Print(w io.Writer) {
	fmt.Fprintf(w, "%s: where the %d unsubscribes and complaints came from (%d marketing releases, %d clicks, %d runs)\n",
		t.Policy, t.Stops, t.Released, t.Clicks, t.Runs)
	for c, cl := range stopClasses {
		fmt.Fprintf(w, "  by %s:\n", cl.name)
		for k, label := range cl.labels {
			x := t.Counts[c][k]
			if x.Released == 0 {
				continue
			}
			perStop := "-"
			if x.Stops > 0 {
				perStop = fmt.Sprintf("%.1f", float64(x.Clicks)/float64(x.Stops))
			}
			fmt.Fprintf(w, "    %-26s %6d releases %4d stops (%5.2f per 1000) %5d clicks (%5.2f per 100), clicks per stop %s\n",
				label, x.Released, x.Stops, 1000*float64(x.Stops)/float64(x.Released), x.Clicks, 100*float64(x.Clicks)/float64(x.Released), perStop)
		}
	}
}

// diagnoseStops prints send-all's and Kadenz's stop tables.
func (r *Result) diagnoseStops(w io.Writer) {
	for _, t := range r.StopTables() {
		t.Print(w)
	}
}
