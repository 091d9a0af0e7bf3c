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

// Goals checks Kadenz against send-all and the fixed cap: at least 40%
// fewer marketing messages, at least 98% of the clicks, at least 50% fewer
// unsubscribes plus complaints, more clicks than the fixed cap at equal
// or lower volume, and no added delay for transactional mail.
func (r *Result) Goals() []Goal {
	all, capped, k := r.Policy(PolicySendAll), r.Policy(PolicyCap), r.Policy(PolicyKadenz)
	if all == nil || capped == nil || k == nil {
		return nil
	}
	stopsMet := k.Stops()*2 <= all.Stops()
	return []Goal{
		{"volume -40%", k.Released*10 <= all.Released*6,
			fmt.Sprintf("released %d vs %d (%.0f%%)", k.Released, all.Released, 100*k.ReleasedVsSendAll)},
		{"clicks >=98%", k.Clicks*100 >= all.Clicks*98,
			fmt.Sprintf("clicks %d vs %d (%.0f%%)", k.Clicks, all.Clicks, 100*k.ClicksVsSendAll)},
		{"unsub+complaints -50%", stopsMet,
			fmt.Sprintf("%d vs %d (%.0f%%)", k.Stops(), all.Stops(), 100*k.StopsVsSendAll)},
		{"beats cap", k.Released <= capped.Released && k.Clicks > capped.Clicks,
			fmt.Sprintf("clicks %d vs %d at %d vs %d released", k.Clicks, capped.Clicks, k.Released, capped.Released)},
		{"transactional delay 0", k.TransactionalMaxDelay == 0,
			fmt.Sprintf("max %.0fs", k.TransactionalMaxDelay)},
	}
}
