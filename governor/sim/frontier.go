package sim

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// CapGaps are the fixed frequency caps every run compares Kadenz with,
// loosest first: at most one marketing mail per recipient per gap, first
// come first served, the rest dropped. Issue 3 names one cap as an
// example (16 hours); a frontier of caps lets "beats the fixed cap at
// equal or lower volume" compare Kadenz with the cap that sends about as
// much as it does (Result.MatchedCap), whatever volume Kadenz chooses.
// The gaps span about 11-96% of send-all's volume; in every mix the
// loosest sends at least 78% and the 16-hour one at most 39%
// (docs/simulation.md, round 4).
var CapGaps = []time.Duration{
	1 * time.Hour, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 6 * time.Hour,
	8 * time.Hour, 12 * time.Hour, 16 * time.Hour, 24 * time.Hour, 48 * time.Hour,
}

// CapPolicy is the name of the fixed cap with this gap: "cap-16h",
// "cap-90m".
func CapPolicy(gap time.Duration) string {
	if gap%time.Hour == 0 {
		return "cap-" + strings.TrimSuffix(gap.String(), "0m0s")
	}
	return "cap-" + strings.TrimSuffix(gap.Round(time.Minute).String(), "0s")
}

// capGapOf reads a cap policy's gap from its name.
func capGapOf(name string) (time.Duration, bool) {
	s, ok := strings.CutPrefix(name, "cap-")
	if !ok {
		return 0, false
	}
	gap, err := time.ParseDuration(s)
	if err != nil || gap <= 0 {
		return 0, false
	}
	return gap, true
}

// CapPolicies are the names of the frontier's caps, loosest first.
func CapPolicies() []string {
	names := make([]string, len(CapGaps))
	for i, g := range CapGaps {
		names[i] = CapPolicy(g)
	}
	return names
}

// DefaultPolicies are the policies a run compares when Options.Only is
// empty: send-all, the caps (loosest first) and Kadenz.
func DefaultPolicies() []string {
	return slices.Concat([]string{PolicySendAll}, CapPolicies(), []string{PolicyKadenz})
}

// Caps are the fixed-cap policies in the result, in run order.
func (r *Result) Caps() []*PolicyResult {
	var caps []*PolicyResult
	for _, p := range r.Policies {
		if _, ok := capGapOf(p.Name); ok {
			caps = append(caps, p)
		}
	}
	return caps
}

// MatchedCap is the fixed cap Kadenz is judged against: of the caps that
// released at least as much marketing mail as Kadenz, the one that
// released the least (on equal volume, the one with more clicks, the
// harder to beat). It is nil when Kadenz did not run or no cap released
// as much as Kadenz.
func (r *Result) MatchedCap() *PolicyResult {
	k := r.Policy(PolicyKadenz)
	if k == nil {
		return nil
	}
	var best *PolicyResult
	for _, c := range r.Caps() {
		if c.Released < k.Released {
			continue
		}
		if best == nil || c.Released < best.Released || c.Released == best.Released && c.Clicks > best.Clicks {
			best = c
		}
	}
	return best
}

// runDirect is runPolicy for the policies that release what they are
// given at once (send-all, the fixed caps, the oracle). Under governor
// mode off the relay makes every message due at its arrival and the
// simulator claims it at the end of the tick, transactional mail first
// (the express lane), each in order of due time; the
// relay's feedback changes nothing it does. So this walks the same ticks,
// admits with the same rule and hands each tick's mail to the same
// response model at the tick's end in the same order, without a relay or
// a database: the same result (TestDirectPathMatchesRelay) at a small
// fraction of the cost, which is what makes a frontier of caps
// affordable.
func runDirect(opts *Options, name string, pop []*recipient, stream []message) (*PolicyResult, error) {
	r, err := newReplay(opts, name, pop)
	if err != nil {
		return nil, err
	}
	end := Start.AddDate(0, 0, opts.Days).Add(opts.Drain)
	next := 0
	var due, later []*message
	for t := Start; t.Before(end); t = t.Add(opts.Tick) {
		tickEnd := t.Add(opts.Tick)
		due = due[:0]
		for ; next < len(stream) && stream[next].at.Before(tickEnd); next++ {
			if m := &stream[next]; r.admit(m) {
				due = append(due, m)
			}
		}
		// The relay claims transactional mail (its express lane) before
		// the rest, each in arrival order.
		slices.SortStableFunc(due, func(a, b *message) int { return cmp.Compare(btoi(a.marketing), btoi(b.marketing)) })
		for _, m := range due {
			if r.timed != nil && m.marketing {
				later = r.timed.hold(later, m)
				continue
			}
			r.deliver(m, m.at)
		}
		// The timed oracle's planned deliveries that fall in this tick,
		// in time order; mail to a reader who has left in the meantime
		// is not sent.
		n := 0
		for ; n < len(later) && r.timed.at[later[n].index].Before(tickEnd); n++ {
			m := later[n]
			at := r.timed.at[m.index]
			delete(r.timed.at, m.index)
			if s := r.readers[m.rcpt].stopped; !s.IsZero() && !s.After(at) {
				continue
			}
			r.deliver(m, at)
		}
		later = later[n:]
	}
	return r.finish(), nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
