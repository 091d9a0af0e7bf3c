package sim

import "fmt"

// Goal is one of issue 3's targets, checked on a result.
type Goal struct {
	Name   string `json:"name"`
	Met    bool   `json:"met"`
	Detail string `json:"detail"`
}

// Policy returns the named policy's result, or nil.
func (r *Result) Policy(name string) *PolicyResult {
	for _, p := range r.Policies {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Goals checks Kadenz against send-all and the fixed caps: at least 40%
// fewer marketing messages, at least 98% of the clicks, at least 50%
// fewer unsubscribes plus complaints, more clicks than the fixed cap at
// equal or lower volume, and no added delay for transactional mail
// (issue 3); then issue 18's stricter three: at most 55% of the volume,
// at least 130% of the clicks, at most 20% of the unsubscribes plus
// complaints.
//
// "Beats cap" is judged against the volume-matched cap (MatchedCap): the
// cap that released the least among those that released at least as
// much as Kadenz. If no cap in the run released as much, the goal fails.
// The detail also gives the 16-hour cap, the example, either
// way. Goals is nil unless send-all, Kadenz and at least one cap ran.
func (r *Result) Goals() []Goal {
	all, k := r.Policy(PolicySendAll), r.Policy(PolicyKadenz)
	caps := r.Caps()
	if all == nil || k == nil || len(caps) == 0 {
		return nil
	}
	stopsMet := k.Stops()*2 <= all.Stops()
	beats := Goal{Name: "beats cap"}
	if m := r.MatchedCap(); m != nil {
		beats.Met = k.Clicks > m.Clicks
		beats.Detail = fmt.Sprintf("clicks %d vs %d for %s, the volume-matched cap (%d vs %d released)",
			k.Clicks, m.Clicks, m.Name, k.Released, m.Released)
	} else {
		most := caps[0]
		for _, c := range caps {
			if c.Released > most.Released {
				most = c
			}
		}
		beats.Detail = fmt.Sprintf("no cap released as much as Kadenz (%d; the most was %s with %d), so none is volume-matched",
			k.Released, most.Name, most.Released)
	}
	if c16 := r.Policy(PolicyCap); c16 != nil {
		beats.Detail += fmt.Sprintf("; vs %s: clicks %d vs %d, %d vs %d released", c16.Name, k.Clicks, c16.Clicks, k.Released, c16.Released)
	}
	return []Goal{
		{"volume -40%", k.Released*10 <= all.Released*6,
			fmt.Sprintf("released %d vs %d (%.0f%%)", k.Released, all.Released, 100*k.ReleasedVsSendAll)},
		{"clicks >=98%", k.Clicks*100 >= all.Clicks*98,
			fmt.Sprintf("clicks %d vs %d (%.0f%%)", k.Clicks, all.Clicks, 100*k.ClicksVsSendAll)},
		{"unsub+complaints -50%", stopsMet,
			fmt.Sprintf("%d vs %d (%.0f%%)", k.Stops(), all.Stops(), 100*k.StopsVsSendAll)},
		beats,
		{"transactional delay 0", k.TransactionalMaxDelay == 0,
			fmt.Sprintf("max %.0fs", k.TransactionalMaxDelay)},
		// Issue 18's stricter goals.
		{"volume <=55%", k.Released*100 <= all.Released*55,
			fmt.Sprintf("released %d vs %d (%.0f%%)", k.Released, all.Released, 100*k.ReleasedVsSendAll)},
		{"clicks >=130%", k.Clicks*10 >= all.Clicks*13,
			fmt.Sprintf("clicks %d vs %d (%.0f%%)", k.Clicks, all.Clicks, 100*k.ClicksVsSendAll)},
		{"unsub+complaints <=20%", k.Stops()*5 <= all.Stops(),
			fmt.Sprintf("%d vs %d (%.0f%%)", k.Stops(), all.Stops(), 100*k.StopsVsSendAll)},
	}
}
