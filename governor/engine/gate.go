package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"kadenz/config"
	"kadenz/scoring"
	"kadenz/store"
)

// The gate: recipients the model must not weigh at all.

// gate decides, before the model, for recipients the model must not
// weigh: on the suppression list (suppress) or paused after a human reply
// (defer until the pause ends). It returns its decision, or nil when the
// model is to decide; like the model's, the decision is written with the
// rest of the round and counted in the decision metrics. Only in enforce
// mode: shadow mode sends everything and forecasts the same rule
// (shadowGated in shadow.go), off decides nothing.
func (e *Engine) gate(ru *Rules, rcpt string, held []store.Envelope, p *scoring.Profile, now time.Time) (*decided, error) {
	if ru.cfg.Mode != config.ModeEnforce {
		return nil, nil
	}
	sup, listed, err := e.db.SuppressionOf(rcpt)
	if err != nil {
		return nil, err
	}
	v := gateRule(Record{DecidedAt: now, Mode: ru.cfg.Mode}, sup, listed, p, now)
	if v == nil {
		return nil, nil
	}
	raw, err := json.Marshal(v.rec)
	if err != nil {
		return nil, err
	}
	d := &decided{out: store.Decided{Recipient: rcpt, Records: map[string][]byte{}}}
	for _, env := range held {
		env.State, env.Due, env.Updated = v.state, v.due, now
		d.out.Envelopes = append(d.out.Envelopes, env)
		d.out.Records[env.ID] = raw
		d.recs = append(d.recs, v.rec)
		e.logDecision(env, rcpt, &v.rec)
	}
	return d, nil
}

// gateVerdict is the gate's decision on all of a recipient's held mail:
// its record (action, reasons, explanation; At for a pause) and the state
// and due time enforce mode gives every envelope.
type gateVerdict struct {
	rec   Record
	state store.State
	due   time.Time
}

// gateRule is the gate's rule, whichever mode applies it: the suppression
// list first (listed, with its entry sup), then a reply pause in the
// profile. rec is the record to complete. It returns nil when the model is
// to decide.
func gateRule(rec Record, sup store.Suppression, listed bool, p *scoring.Profile, now time.Time) *gateVerdict {
	v := &gateVerdict{state: store.StateSuppressed}
	switch {
	case listed:
		rec.Action, rec.Reasons = scoring.ActionSuppress.String(), []string{ReasonSuppressionList}
		rec.Explanation = fmt.Sprintf("the address is on the suppression list since %s: %s (%s)",
			sup.At.UTC().Format(time.RFC3339), sup.Reason, sup.Source)
	case p.PausedUntil.After(now):
		reason := p.PauseReason
		if reason == "" {
			reason = ReasonHumanReply
		}
		v.state, v.due = store.StateHeld, p.PausedUntil
		rec.Action, rec.Reasons, rec.At = scoring.ActionDefer.String(), []string{reason}, v.due
		rec.Explanation = fmt.Sprintf("marketing mail is paused until %s after a human reply, so that a person answers first",
			v.due.UTC().Format(time.RFC3339))
	default:
		return nil
	}
	v.rec = rec
	return v
}
