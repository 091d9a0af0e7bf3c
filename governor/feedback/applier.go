package feedback

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"kadenz/config"
	"kadenz/governor/engine"
	"kadenz/governor/feedback/report"
	"kadenz/scoring"
	"kadenz/store"
)

// Options build an Applier.
type Options struct {
	Store  store.Store
	Engine *engine.Engine
	// Config returns the configuration in force (it may be reloaded).
	Config func() *config.Config
	Now    func() time.Time
	Logger *slog.Logger
	// NewMessageID names the forward of a human reply as intake names
	// accepted mail.
	NewMessageID func(now time.Time) string
	// KickDelivery wakes delivery after a forward was queued.
	KickDelivery func()
}

// Applier applies feedback about recipients: reports read from the
// feedback mailboxes (Ingest, Apply), engagement events (ApplyEvents,
// Record) and a smarthost's refusals (ObserveDelivery).
type Applier struct {
	db           store.Store
	engine       *engine.Engine
	config       func() *config.Config
	now          func() time.Time
	log          *slog.Logger
	newMessageID func(time.Time) string
	kickDelivery func()
	// profiles holds the profiles change decodes into (one per event
	// otherwise, and a Profile is 2.2 KB).
	profiles sync.Pool
}

// New builds an Applier.
func New(opts Options) *Applier {
	f := &Applier{db: opts.Store, engine: opts.Engine, config: opts.Config, now: opts.Now, log: opts.Logger,
		newMessageID: opts.NewMessageID, kickDelivery: opts.KickDelivery}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.kickDelivery == nil {
		f.kickDelivery = func() {}
	}
	return f
}

// Apply applies what an inbound report (read from a bounce, feedback loop
// or reply mailbox) says. A report that is of no use (unknown kind) is
// not an error; one that cannot be tied to a recipient is
// (ErrUnattributable), so that the caller can log it.
func (f *Applier) Apply(rep report.Report) error { return f.applyReportRaw(rep, nil) }

// ApplyRaw is Apply for a report read from a message: raw is that message
// as received, attached to the forward of a human reply (nil: the forward
// quotes the reply's text only).
func (f *Applier) ApplyRaw(rep report.Report, raw []byte) error { return f.applyReportRaw(rep, raw) }

// Event is an engagement or delivery event from the sender's own tracking
// (the events API), checked and tied to a recipient.
type Event struct {
	// ID makes the event idempotent; empty if none.
	ID string
	// Kind is delivered, open, click, reply, unsubscribe, complaint,
	// bounce (hard) or soft-bounce.
	Kind       string
	At         time.Time
	Topic      string
	Recipient  string
	EnvelopeID string
}

// eventKinds are the signals the events API's kinds stand for.
var eventKinds = map[string]signalKind{
	"delivered": sigDelivered, "open": sigOpen, "click": sigClick, "reply": sigReply,
	"unsubscribe": sigUnsubscribe, "complaint": sigComplaint, "bounce": sigHardBounce, "soft-bounce": sigSoftBounce,
}

// EventKind says whether ApplyEvents knows kind.
func EventKind(kind string) bool { _, ok := eventKinds[kind]; return ok }

// ApplyEvents applies events in one transaction, all or none; an event
// with an ID seen before is a duplicate and changes nothing.
func (f *Applier) ApplyEvents(evs []Event) (applied, duplicates int, err error) {
	sigs, err := eventSignals(evs)
	if err != nil {
		return 0, 0, err
	}
	return f.applySignals(sigs)
}

// eventSignals are the signals events stand for.
func eventSignals(evs []Event) ([]signal, error) {
	sigs := make([]signal, len(evs))
	for i, ev := range evs {
		kind, ok := eventKinds[ev.Kind]
		if !ok {
			return nil, fmt.Errorf("event %d: unknown kind %q", i, ev.Kind)
		}
		s := signal{kind: kind, at: ev.At, source: "events", eventID: ev.ID, rcpt: ev.Recipient, envelopeID: ev.EnvelopeID}
		if ev.Topic != "" {
			s.topics = []string{ev.Topic}
		}
		sigs[i] = s
	}
	return sigs, nil
}

// scoringSignals maps the scoring package's event kinds to signals.
var scoringSignals = map[scoring.EventKind]signalKind{
	scoring.EventOpen: sigOpen, scoring.EventClick: sigClick, scoring.EventReply: sigReply,
	scoring.EventUnsubscribe: sigUnsubscribe, scoring.EventComplaint: sigComplaint,
	scoring.EventHardBounce: sigHardBounce, scoring.EventAway: sigAway,
}

// Record applies one engagement or hard signal about a recipient the way
// the events API does: the profile updated and, for a hard stop, the
// address put on the suppression list and the recipient's waiting
// marketing mail suppressed, in one transaction. ev.MessageID names the
// envelope the event is about, if known; source says where it came from.
func (f *Applier) Record(rcpt string, ev scoring.Event, source string) error {
	kind, ok := scoringSignals[ev.Kind]
	if !ok {
		return fmt.Errorf("record event: unknown kind %v", ev.Kind)
	}
	_, _, err := f.applySignals([]signal{{kind: kind, rcpt: rcpt, envelopeID: ev.MessageID, at: ev.At,
		until: ev.Until, topics: ev.Topics, source: source}})
	return err
}
