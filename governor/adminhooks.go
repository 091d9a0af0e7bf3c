package governor

import (
	"net"

	"kadenz/governor/admin"
	"kadenz/governor/admin/api"
	"kadenz/governor/feedback"
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

// ApplyEvents hands checked events to the event journal, which makes them
// durable and applies them shortly after; without one (a backend without
// a file of its own), to the feedback room in one transaction.
func (h adminHooks) ApplyEvents(evs []admin.CheckedEvent) (applied, duplicates int, err error) {
	out := make([]feedback.Event, len(evs))
	for i, ev := range evs {
		out[i] = feedback.Event{ID: ev.ID, Kind: ev.Kind, At: ev.At, Topic: ev.Topic, Recipient: ev.Recipient, EnvelopeID: ev.EnvelopeID}
	}
	if h.r.events != nil {
		return h.r.events.Accept(out)
	}
	return h.r.feedback.ApplyEvents(out)
}

// FlushEvents applies what the event journal holds.
func (h adminHooks) FlushEvents(seal bool) error { return h.r.flushEvents(seal) }
