package governor

import (
	"context"
	"time"
)

// Forgetting event IDs.
//
// The events API stores every event ID it applies, with the time it first
// saw it, so that a sender retrying a batch is told "duplicate" instead of
// counting a click twice. Kept forever, that bucket grows with every event
// ever posted; feedback.event_id_retention bounds it. A sender's retries
// come within minutes or hours, so the 30 days of the default leave a wide
// margin; a repeat after the retention is applied again.

// pruneEventIDsSpec is when forgotten IDs are removed: hourly, so that the
// bucket holds at most one hour more than the retention.
const pruneEventIDsSpec = "@hourly"

// addEventIDChore schedules the pruning, unless IDs are kept forever.
func (r *Relay) addEventIDChore() {
	keep := r.config().Feedback.EventIDRetention
	if keep <= 0 {
		return
	}
	r.addChore("prune-event-ids", pruneEventIDsSpec, func(_ context.Context, now time.Time) error {
		n, err := r.db.PruneEventIDs(now.Add(-keep))
		if n > 0 {
			r.log.Info("event IDs forgotten", "part", "chores", "count", n, "seen_before", now.Add(-keep))
		}
		return err
	})
}
