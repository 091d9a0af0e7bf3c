package engine

import (
	"slices"

	"kadenz/scoring"
)

// Reason codes: every machine-readable reason a decision record can carry.
// The model's own (why scoring.Planner released, deferred or suppressed)
// are scoring.Reasons; the ones below are the relay's, added on top of the
// model or instead of it. Their names are stable: the store, logs,
// metrics and reports use them, and explain turns them into sentences.
const (
	// The gate (gate.go): decided before the model.
	ReasonSuppressionList = "suppression-list" // the address is on the suppression list
	ReasonHumanReply      = "human-reply"      // marketing paused after a reply in the recipient's own words

	// Administrator's rules (rules.go), applied to the model's decision.
	ReasonSendWindow        = "send-window"        // moved to (or waiting for) a send window
	ReasonCampaignCap       = "campaign-cap"       // a campaign rule's cap
	ReasonReviewHold        = "review-hold"        // a campaign rule's review hold
	ReasonCampaignSuspended = "campaign-suspended" // an operator suspended the campaign

	// Outside the round.
	ReasonExempt   = "exempt"   // released at intake by an exempt campaign rule
	ReasonOperator = "operator" // released, dropped or held by a person

	// Feedback hard stops (applied as the report arrives; the same names
	// as the model's hard stops, so explain reads the same either way).
	ReasonUnsubscribed = "unsubscribed"
	ReasonComplained   = "complained"
	ReasonHardBounced  = "hard-bounced"
)

// ActionReview is the record's action for mail held for a person; the
// others are scoring.Action's names (release, defer, suppress).
const ActionReview = "review"

// relayReasons are the codes above, in a fixed order.
var relayReasons = []string{
	ReasonSuppressionList, ReasonHumanReply, ReasonSendWindow, ReasonCampaignCap, ReasonReviewHold,
	ReasonCampaignSuspended, ReasonExempt, ReasonOperator,
}

// ReasonCodes lists every reason code a decision record may carry: the
// model's, then the relay's.
func ReasonCodes() []string {
	all := scoring.Reasons(^uint32(0)).Codes()
	for _, c := range relayReasons {
		if !slices.Contains(all, c) {
			all = append(all, c)
		}
	}
	return all
}
