package governor

import (
	"encoding/json"
	"fmt"
	"time"

	"kadenz/governor/engine"
	"kadenz/scoring"
	"kadenz/store"
)

// recordExempt notes exempt mail, released at intake, in its recipients'
// histories (so it counts toward their volume and caps) with a decision
// record saying why. It runs after the accept commit; if the process dies
// in between, the mail is still delivered, only not counted.
func (r *Relay) recordExempt(envs []store.Envelope, exempt []bool, f *scoring.Features, now time.Time) {
	for i, env := range envs {
		if !exempt[i] {
			continue
		}
		err := r.db.UpdateProfile(env.To, func(old []byte) ([]byte, error) {
			return scoring.UpdateStored(old, func(p *scoring.Profile) {
				p.RecordRelease(scoring.Release{At: now, MessageID: env.ID, Campaign: f.Campaign, Sender: env.From, Topics: f.Topics, Fingerprint: f.Fingerprint}, r.engine.Memory())
			})
		})
		if err == nil {
			rec, _ := json.Marshal(engine.Record{DecidedAt: now, Mode: r.config().Governor.Mode, Action: scoring.ActionRelease.String(), At: now,
				Reasons: []string{engine.ReasonExempt}, Explanation: fmt.Sprintf("Campaign “%s” from <%s> is exempt by a campaign rule: released at once, not governed.", f.Campaign, env.From)})
			err = r.db.ApplyDecisions(store.Decided{Recipient: env.To, Records: map[string][]byte{env.ID: rec}})
		}
		if err != nil {
			r.log.Warn("recording exempt release", "envelope", env.ID, "error", err)
		}
	}
}
