package governor

import (
	"time"
)

// Retention: message bodies and decision records are personal data the
// relay needs only for a while. A sweep purges bodies once every envelope
// of their message has been final for retention.bodies, and an envelope's
// decision records once it has been final for retention.decisions. The
// envelope and message metadata stay, so explain still answers (and says
// that the body was purged).
//
// For now a plain ticker runs the sweep once at start and then hourly;
// it belongs on the chore scheduler once that exists.

// retentionInterval is how often the sweep runs.
const retentionInterval = time.Hour

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

// startRetention runs the sweep at start and then every interval until
// stopRetention.
func (r *Relay) startRetention() {
	r.ops.retentionStop, r.ops.retentionDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.ops.retentionDone)
		t := time.NewTicker(retentionInterval)
		defer t.Stop()
		for {
			if p, err := r.retentionSweep(r.now()); err != nil {
				r.log.Error("retention sweep", "error", err)
			} else if p.Bodies > 0 || p.Decisions > 0 {
				r.log.Info("retention sweep purged", "bodies", p.Bodies, "decisions", p.Decisions)
			}
			select {
			case <-r.ops.retentionStop:
				return
			case <-t.C:
			}
		}
	}()
}

func (r *Relay) stopRetention() {
	if r.ops.retentionStop != nil {
		close(r.ops.retentionStop)
		<-r.ops.retentionDone
	}
}
