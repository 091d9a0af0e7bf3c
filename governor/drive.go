package governor

import (
	"context"
	"encoding/json"
	"time"

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
const RecipientsPerRound = recipientsPerRound

// RecordEvent applies one engagement or hard signal to a recipient's
// profile, transactionally.
func (r *Relay) RecordEvent(rcpt string, ev scoring.Event) error {
	return r.db.UpdateProfile(rcpt, func(old []byte) ([]byte, error) {
		p := &scoring.Profile{}
		if old != nil {
			if err := json.Unmarshal(old, p); err != nil {
				return nil, err
			}
		}
		p.RecordEvent(ev, r.engine.location(p.Timezone), r.engine.memory)
		return json.Marshal(p)
	})
}
