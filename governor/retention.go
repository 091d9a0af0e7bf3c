package governor

import (
	"context"
	"time"
)

// Retention: message bodies and decision records are personal data the
// relay needs only for a while. A sweep purges bodies once every envelope
// of their message has been final for retention.bodies, and an envelope's
// decision records once it has been final for retention.decisions. The
// envelope and message metadata stay, so explain still answers (and says
// that the body was purged).
//
// The sweep is a chore on the relay's clock (governor.chores.retention,
// hourly by default).

// RetentionPurged counts what one sweep removed.
type RetentionPurged struct {
	Bodies    int `json:"bodies"`
	Decisions int `json:"decisions"`
}

// retentionSweep purges what has been final for longer than the
// configured periods, as of now.
func (r *Relay) retentionSweep(now time.Time) (RetentionPurged, error) {
	ret := r.config().Retention
	var p RetentionPurged
	var err error
	if p.Bodies, err = r.db.PurgeBodies(now.Add(-ret.Bodies)); err != nil {
		return p, err
	}
	r.metrics.retentionPurged.WithLabelValues("bodies").Add(float64(p.Bodies))
	p.Decisions, err = r.db.PurgeDecisions(now.Add(-ret.Decisions))
	r.metrics.retentionPurged.WithLabelValues("decisions").Add(float64(p.Decisions))
	return p, err
}

// retentionChore is the sweep as a chore (governor.chores.retention).
func (r *Relay) retentionChore(_ context.Context, now time.Time) error {
	p, err := r.retentionSweep(now)
	if err != nil {
		return err
	}
	if p.Bodies > 0 || p.Decisions > 0 {
		r.log.Info("retention sweep purged", "bodies", p.Bodies, "decisions", p.Decisions)
	}
	return nil
}
