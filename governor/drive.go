package governor

import (
	"context"
	"time"

	"kadenz/governor/engine"
	"kadenz/governor/intake"
	"kadenz/scoring"
)

// Entry points for driving a relay without its network loops: a simulation
// on virtual time submits mail, runs decision rounds and feeds engagement
// back exactly as production does, but step by step. New builds a relay
// that is ready for these without Start.

// Submit stores a message as if intake had accepted it and returns its ID.
func (r *Relay) Submit(sub *intake.Submission) (string, error) {
	return r.accept(context.Background(), sub)
}

// DecideDue runs one decision round for recipients with held mail due at
// now (at most a bounded number per call; call again while it returns a
// full round).
func (r *Relay) DecideDue(now time.Time) (int, error) {
	return r.engine.DecideDue(now)
}

// RecipientsPerRound is how many recipients one DecideDue call handles.
const RecipientsPerRound = engine.RecipientsPerRound

// RecordEvent applies one engagement or hard signal about a recipient
// exactly as the events API does (feedback.Applier.Record): the profile
// updated and, for a hard stop, the address put on the suppression list
// and the recipient's waiting marketing mail suppressed, in one
// transaction. ev.MessageID names the envelope the event is about, if
// known.
func (r *Relay) RecordEvent(rcpt string, ev scoring.Event) error {
	return r.feedback.Record(rcpt, ev, "sim")
}
