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
// mode: shadow mode leaves the recording to the model's own hard stops and
// sends, off decides nothing.
func (e *Engine) gate(ru *Rules, rcpt string, held []store.Envelope, p *scoring.Profile, now time.Time) (*decided, error) {
	if ru.cfg.Mode != config.ModeEnforce {
		return nil, nil
	}
	sup, listed, err := e.db.SuppressionOf(rcpt)
	if err != nil {
		return nil, err
	}
	rec := Record{DecidedAt: now, Mode: ru.cfg.Mode}
	state, due := store.StateSuppressed, time.Time{}
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
		state, due = store.StateHeld, p.PausedUntil
		rec.Action, rec.Reasons, rec.At = scoring.ActionDefer.String(), []string{reason}, due
		rec.Explanation = fmt.Sprintf("marketing mail is paused until %s after a human reply, so that a person answers first",
			due.UTC().Format(time.RFC3339))
	default:
		return nil, nil
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	d := &decided{out: store.Decided{Recipient: rcpt, Records: map[string][]byte{}}}
	for _, env := range held {
		env.State, env.Due, env.Updated = state, due, now
		d.out.Envelopes = append(d.out.Envelopes, env)
		d.out.Records[env.ID] = raw
		d.recs = append(d.recs, rec)
		e.logDecision(env, rcpt, &rec)
	}
	return d, nil
}
