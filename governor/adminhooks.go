package governor

import (
	"net"

	"kadenz/governor/admin"
	"kadenz/governor/admin/api"
)

// startAdmin starts the admin listener (governor/admin), handing it the
// store, the engine, the live configuration and the hooks below; it never
// sees the relay itself.
func (r *Relay) startAdmin() error {
	opts := admin.Options{
		Store: r.db, Engine: r.engine, Config: r.config, Now: r.now,
		Logger: r.log, Relay: adminHooks{r},
		Registry: r.metrics.reg, Metrics: r.metrics.handler(), Forgotten: r.metrics.forgotten,
	}
	if r.clock != nil { // a nil *VirtualClock would be a non-nil Clock
		opts.Clock = r.clock
	}
	srv, err := admin.Listen(opts)
	if err != nil {
		return err
	}
	r.admin = srv
	return nil
}

// AdminAddr returns where the admin listener is bound (useful with port
// 0), or nil when it does not run.
func (r *Relay) AdminAddr() net.Addr {
	if r.admin == nil {
		return nil
	}
	return r.admin.Addr()
}

// adminHooks is what the admin listener may ask of the relay.
type adminHooks struct{ r *Relay }

func (h adminHooks) CaughtUp() (bool, error)        { return h.r.CaughtUp() }
func (h adminHooks) TimeMoved()                     { h.r.timeMoved() }
func (h adminHooks) KickDelivery()                  { h.r.queue.Kick() }
func (h adminHooks) HardStopped(rcpt string) bool   { return h.r.hardStopped(rcpt) }
func (h adminHooks) ReloadStatus() api.ReloadStatus { return h.r.ReloadStatus() }

// eventKinds are the signals the events API's kinds stand for.
var eventKinds = map[string]signalKind{
	"delivered": sigDelivered, "open": sigOpen, "click": sigClick, "reply": sigReply,
	"unsubscribe": sigUnsubscribe, "complaint": sigComplaint, "bounce": sigHardBounce, "soft-bounce": sigSoftBounce,
}

// ApplyEvents turns checked events into signals and applies them in one
// transaction (apply.go), all or none.
func (h adminHooks) ApplyEvents(evs []admin.CheckedEvent) (applied, duplicates int, err error) {
	sigs := make([]signal, len(evs))
	for i, ev := range evs {
		s := signal{kind: eventKinds[ev.Kind], at: ev.At, source: "events", eventID: ev.ID, rcpt: ev.Recipient, envelopeID: ev.EnvelopeID}
		if ev.Topic != "" {
			s.topics = []string{ev.Topic}
		}
		sigs[i] = s
	}
	return h.r.applySignals(sigs)
}
