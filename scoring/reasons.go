package scoring

import (
	"encoding/json"
	"strings"
)

// Reasons is a set of reason codes. It is a bit set so that a decision
// carries its reasons without allocating; Codes and JSON give the
// machine-readable names.
type Reasons uint32

// Reason codes. Their names (see Codes) are stable: logs, the store and
// reports use them.
const (
	// Hard stops.
	ReasonUnsubscribed Reasons = 1 << iota
	ReasonComplained
	ReasonHardBounced
	ReasonAway
	// About the message itself.
	ReasonExpired
	ReasonStale
	ReasonSuperseded
	ReasonNotBefore
	ReasonNearDuplicate
	ReasonRepeatCampaign
	// The model's judgement.
	ReasonWorthIt
	ReasonLowValue
	ReasonOutcompeted
	ReasonBestTime
	ReasonFloor
	ReasonExplore
	ReasonHoldout
	// Administrator's limits.
	ReasonCapDay
	ReasonCapWeek
	ReasonCapMonth
	ReasonMinGap
	ReasonQuietHours
	ReasonSendWindow
	ReasonNoSlot
	reasonEnd
)

var reasonCodes = [...]string{
	"unsubscribed", "complained", "hard-bounced", "away",
	"expired", "stale", "superseded", "not-before", "near-duplicate", "repeat-campaign",
	"worth-it", "low-value", "outcompeted", "best-time", "fairness-floor", "exploration", "holdout",
	"cap-day", "cap-week", "cap-month", "min-gap", "quiet-hours", "send-window", "no-slot-before-deadline",
}

// hardStops suppress all marketing mail.
const hardStops = ReasonUnsubscribed | ReasonComplained | ReasonHardBounced

// Has reports whether every reason in x is in r.
func (r Reasons) Has(x Reasons) bool { return r&x == x && x != 0 }

// Codes returns the reason codes in a fixed order.
func (r Reasons) Codes() []string {
	var out []string
	for i, c := range reasonCodes {
		if r&(1<<uint(i)) != 0 {
			out = append(out, c)
		}
	}
	return out
}

func (r Reasons) String() string { return strings.Join(r.Codes(), ",") }

// MarshalJSON writes the reasons as a list of codes.
func (r Reasons) MarshalJSON() ([]byte, error) {
	codes := r.Codes()
	if codes == nil {
		codes = []string{}
	}
	return json.Marshal(codes)
}

// UnmarshalJSON reads a list of codes; unknown codes are ignored so that
// records written by a newer version still load.
func (r *Reasons) UnmarshalJSON(b []byte) error {
	var codes []string
	if err := json.Unmarshal(b, &codes); err != nil {
		return err
	}
	*r = 0
	for _, c := range codes {
		for i, k := range reasonCodes {
			if k == c {
				*r |= 1 << uint(i)
			}
		}
	}
	return nil
}
