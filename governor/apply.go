package governor

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"kadenz/config"
	"kadenz/governor/address"
	"kadenz/governor/engine"
	"kadenz/governor/feedback"
	"kadenz/scoring"
	"kadenz/store"
)

// Applying feedback.
//
// Everything a recipient tells us — a bounce or complaint read from a
// mailbox, an open or click posted to the events API — becomes a signal
// about one recipient, and each signal becomes one store.FeedbackChange:
// the profile updated, the address put on the suppression list for the
// hard stops (hard bounce, complaint, unsubscribe), and the recipient's
// waiting marketing mail suppressed with a decision record that says why.
// A batch of signals commits in one transaction, or not at all.
//
// Soft bounces are counted on the profile; feedback.soft_bounce_limit of
// them within feedback.soft_bounce_window, counted from the first, make a
// hard bounce ("repeated soft bounces"). A delivery report starts the count
// again. A human reply to marketing mail pauses marketing for
// feedback.reply_pause and is forwarded to the team (see takeover.go).

// signalKind is what one signal says about a recipient.
type signalKind int

const (
	sigDelivered signalKind = iota + 1
	sigOpen
	sigClick
	// sigReply is engagement only (the events API has no reply to forward).
	sigReply
	// sigHumanReply is a reply read from a mailbox: engagement, a pause and
	// a forward to the team.
	sigHumanReply
	sigUnsubscribe
	sigComplaint
	sigHardBounce
	sigSoftBounce
	sigAway
)

// signal is one piece of feedback about one recipient.
type signal struct {
	kind signalKind
	// rcpt is the recipient as the profile knows them: the envelope's To
	// when the envelope is known.
	rcpt string
	// envelopeID is the envelope the signal is about, if known; it ties
	// engagement to the release in the profile's history.
	envelopeID string
	at         time.Time
	// until ends an away notice (zero: none given).
	until  time.Time
	topics []string
	// source is where the signal came from: imap, events.
	source string
	// eventID makes the signal idempotent (events API).
	eventID string
	// reason and status say why a bounce happened (feedback.Classify), for
	// the decision record; empty for other signals.
	reason feedback.Reason
	status string
}

// cause is the source of a signal with its reason and status when known:
// "imap: user unknown, 5.1.1".
func (s signal) cause() string {
	c := s.source
	if s.reason != feedback.ReasonNone && s.reason != feedback.ReasonOther {
		c += ": " + s.reason.Describe()
		if s.status != "" {
			c += ", " + s.status
		}
	} else if s.status != "" {
		c += ": " + s.status
	}
	return c
}

// Reasons recorded when feedback suppresses mail. The codes are the
// scoring package's, so that explain reads the same whichever path stopped
// a message; the texts are what the suppression list says.
const (
	reasonTextHardBounce  = "hard bounce"
	reasonTextSoftBounces = "repeated soft bounces"
	reasonTextComplaint   = "complaint"
	reasonTextUnsubscribe = "unsubscribed"
)

// awayWithoutDate is how long an away notice that names no return date
// defers marketing mail; awayMargin is added to a named date, because
// notices differ on whether it is the last day away or the first back.
const (
	awayWithoutDate = 3 * 24 * time.Hour
	awayMargin      = 24 * time.Hour
)

// stopLookback bounds how far back the profile's releases are checked for
// mail that was released but not sent yet when a hard stop arrives.
const stopLookback = 7 * 24 * time.Hour

// change turns a signal into what the store writes, in one transaction with
// the rest of its batch.
func (r *Relay) change(s signal) store.FeedbackChange {
	fb := &r.config().Feedback
	return store.FeedbackChange{EventID: s.eventID, Recipient: s.rcpt, Apply: func(old []byte) (store.FeedbackOutcome, error) {
		p, err := scoring.DecodeProfile(old)
		if err != nil {
			return store.FeedbackOutcome{}, err
		}
		var counters map[string]int64 // campaign quality counts (issue 18)
		record := func(k scoring.EventKind) {
			counters = engine.QualityFeedbackCounters(p.RecordEventCounted(scoring.Event{Kind: k, At: s.at, MessageID: s.envelopeID, Topics: s.topics, Until: s.until},
				r.engine.Location(p.Timezone), r.engine.Memory()))
		}
		var stopCode, stopText string
		switch s.kind {
		case sigDelivered:
			p.SoftBounces, p.SoftBounceSince = 0, time.Time{}
		case sigOpen:
			record(scoring.EventOpen)
		case sigClick:
			record(scoring.EventClick)
		case sigReply:
			record(scoring.EventReply)
		case sigHumanReply:
			record(scoring.EventReply)
			if until := s.at.Add(fb.ReplyPause); fb.ReplyPause > 0 && until.After(p.PausedUntil) {
				p.PausedUntil, p.PauseReason = until, engine.ReasonHumanReply
			}
		case sigUnsubscribe:
			record(scoring.EventUnsubscribe)
			stopCode, stopText = engine.ReasonUnsubscribed, reasonTextUnsubscribe
		case sigComplaint:
			record(scoring.EventComplaint)
			stopCode, stopText = engine.ReasonComplained, reasonTextComplaint
		case sigHardBounce:
			record(scoring.EventHardBounce)
			stopCode, stopText = engine.ReasonHardBounced, reasonTextHardBounce
			p.LastBounce = &scoring.BounceNote{At: s.at, Class: "hard", Reason: string(s.reason), Status: s.status, Source: s.source}
		case sigSoftBounce:
			p.LastBounce = &scoring.BounceNote{At: s.at, Class: "soft", Reason: string(s.reason), Status: s.status, Source: s.source}
			if p.SoftBounceSince.IsZero() || s.at.Sub(p.SoftBounceSince) > fb.SoftBounceWindow {
				p.SoftBounces, p.SoftBounceSince = 0, s.at
			}
			p.SoftBounces++
			if fb.SoftBounceLimit > 0 && p.SoftBounces >= fb.SoftBounceLimit {
				record(scoring.EventHardBounce)
				stopCode, stopText = engine.ReasonHardBounced, reasonTextSoftBounces
			}
		case sigAway:
			if s.until.IsZero() {
				s.until = s.at.Add(awayWithoutDate)
			} else {
				s.until = s.until.Add(awayMargin)
			}
			record(scoring.EventAway)
		}
		out := store.FeedbackOutcome{Counters: counters}
		if out.Profile, err = p.Encode(); err != nil {
			return out, err
		}
		if stopText == "" {
			return out, nil
		}
		out.Suppress = &store.Suppression{Address: s.rcpt, Reason: stopText, At: s.at, Source: s.source}
		if r.config().Governor.Mode != config.ModeEnforce {
			// Shadow mode sends everything; its next decision records what
			// enforce mode would do. Off decides nothing.
			return out, nil
		}
		now := r.now()
		rec, err := json.Marshal(engine.Record{
			DecidedAt: now, Mode: r.config().Governor.Mode, Action: scoring.ActionSuppress.String(),
			Reasons:     []string{stopCode},
			Explanation: fmt.Sprintf("%s reported (%s): marketing mail to this address stops", stopText, s.cause()),
		})
		if err != nil {
			return out, err
		}
		out.Stop = func(store.Envelope) []byte { return rec }
		for _, rel := range p.History {
			if rel.MessageID != "" && rel.At.After(now.Add(-stopLookback)) {
				out.StopAlso = append(out.StopAlso, rel.MessageID)
			}
		}
		return out, nil
	}}
}

// applySignals commits signals in one transaction and wakes the engine, so
// that mail held for these recipients is looked at again.
func (r *Relay) applySignals(sigs []signal) (applied, duplicates int, err error) {
	changes := make([]store.FeedbackChange, len(sigs))
	for i, s := range sigs {
		changes[i] = r.change(s)
	}
	applied, duplicates, err = r.db.ApplyFeedback(r.now(), changes)
	if err == nil && applied > 0 {
		r.engine.Kick()
	}
	return applied, duplicates, err
}

// errUnattributable: feedback that names no recipient we can find.
var errUnattributable = errors.New("feedback names no recipient Kadenz knows")

// applyReport applies what an inbound report (read from a bounce, feedback
// loop or reply mailbox) says. A report that is of no use (unknown kind) is
// not an error; one that cannot be tied to a recipient is, so that the
// caller can log it.
func (r *Relay) applyReport(rep feedback.Report) error { return r.applyReportRaw(rep, nil) }

// applyReportRaw is applyReport for a report read from a message: raw is
// that message as received, attached to the forward of a human reply (nil:
// the forward quotes the reply's text only).
func (r *Relay) applyReportRaw(rep feedback.Report, raw []byte) error {
	base := signal{at: r.now(), source: "imap"}
	var sigs []signal
	var err error
	switch rep.Kind {
	case feedback.KindBounce, feedback.KindDelivered:
		sigs, err = r.bounceSignals(rep, base)
	case feedback.KindComplaint:
		sigs, err = r.complaintSignals(rep, base)
	case feedback.KindUnsubscribe, feedback.KindAway, feedback.KindReply:
		var s signal
		s, err = r.personSignal(rep, base)
		sigs = []signal{s}
	default:
		return nil
	}
	if err != nil || len(sigs) == 0 {
		return err
	}
	if _, _, err := r.applySignals(sigs); err != nil {
		return err
	}
	for _, s := range sigs {
		if s.kind == sigHumanReply {
			if err := r.forwardReply(rep, s, raw); err != nil {
				return fmt.Errorf("forwarding the reply of %s: %w", s.rcpt, err)
			}
		}
	}
	return nil
}

// bounceSignals turns a bounce or delivery report into one signal per
// recipient Kadenz knows. Blocks (our mail refused for what it is or who
// sent it) change nothing about the person: they are logged. A report
// that names nobody Kadenz knows, and blocks nobody, is errUnattributable.
func (r *Relay) bounceSignals(rep feedback.Report, base signal) ([]signal, error) {
	rcpts := rep.Recipients
	if len(rcpts) == 0 && rep.Recipient != "" {
		// No per-recipient status: treat as soft, never suppress on a guess.
		b := feedback.SoftBounce
		if rep.Kind == feedback.KindDelivered {
			b = feedback.NoBounce
		}
		rcpts = []feedback.Recipient{{Address: rep.Recipient, Bounce: b}}
	}
	single := len(rcpts) == 1
	blocked := 0
	var sigs []signal
	for _, rc := range rcpts {
		if rc.Bounce == feedback.BlockBounce {
			// Not because the person cannot be reached: report it, change
			// nothing about them (docs/feedback.md, "Blocks").
			blocked++
			r.log.Warn("mail refused by the receiving side (not the recipient's fault)", "part", "feedback",
				"address", rc.Address, "reason", rc.Reason, "status", rc.Status, "diagnostic", clipText(rc.Diagnostic, 200),
				"envelope", rep.EnvelopeID)
			continue
		}
		s := base
		var err error
		if s.rcpt, s.envelopeID, err = r.resolveReport(rep, rc.Address, single); err != nil {
			r.log.Warn("bounce for an unknown recipient ignored", "address", rc.Address, "error", err)
			continue
		}
		s.reason, s.status = rc.Reason, rc.Status
		switch rc.Bounce {
		case feedback.HardBounce:
			s.kind = sigHardBounce
		case feedback.SoftBounce:
			s.kind = sigSoftBounce
		default:
			s.kind = sigDelivered
		}
		sigs = append(sigs, s)
	}
	if len(sigs) == 0 && blocked == 0 {
		return nil, fmt.Errorf("%s report: %w", rep.Kind, errUnattributable)
	}
	return sigs, nil
}

// complaintSignals is one complaint signal per recipient the report names
// (RFC 5965 section 3.2 allows one Original-Rcpt-To per recipient it
// covers: each of them complained). RFC 5965's not-spam is the opposite
// of a complaint: nothing.
func (r *Relay) complaintSignals(rep feedback.Report, base signal) ([]signal, error) {
	if rep.Complaint != nil && rep.Complaint.FeedbackType == "not-spam" {
		return nil, nil
	}
	named := []string{rep.Recipient}
	if rep.Complaint != nil && len(rep.Complaint.OriginalRcptTo) > 1 {
		named = rep.Complaint.OriginalRcptTo
	}
	var sigs []signal
	for _, a := range named {
		s := base
		var err error
		if s.rcpt, s.envelopeID, err = r.resolveReport(rep, a, len(named) == 1); err != nil {
			r.log.Warn("complaint for an unknown recipient ignored", "address", a, "error", err)
			continue
		}
		s.kind = sigComplaint
		sigs = append(sigs, s)
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%s report: %w", rep.Kind, errUnattributable)
	}
	return sigs, nil
}

// personSignal is what one person did: unsubscribed, went away, or wrote
// back. A reply about a receipt is engagement, not a reply to marketing.
func (r *Relay) personSignal(rep feedback.Report, base signal) (signal, error) {
	s := base
	var err error
	if s.rcpt, s.envelopeID, err = r.resolveReport(rep, rep.Recipient, true); err != nil {
		return s, fmt.Errorf("%s report: %w", rep.Kind, err)
	}
	switch rep.Kind {
	case feedback.KindUnsubscribe:
		s.kind = sigUnsubscribe
	case feedback.KindAway:
		s.kind = sigAway
		if rep.Away != nil {
			s.until = rep.Away.Until
		}
	case feedback.KindReply:
		s.kind = sigHumanReply
		if r.answersTransactional(s.envelopeID, rep.MessageID) {
			s.kind = sigReply
		}
	}
	return s, nil
}

// resolveReport finds who a report is about: the envelope it names (its
// recipient is who we sent to, even if the report names a forwarding
// address), else the message it names with addr among its recipients,
// else addr itself. single says the report concerns one recipient only,
// so the envelope's recipient wins over addr.
func (r *Relay) resolveReport(rep feedback.Report, addr string, single bool) (rcpt, envelopeID string, err error) {
	addr = strings.TrimSpace(addr)
	if rep.EnvelopeID != "" {
		if e, err := r.db.Envelope(rep.EnvelopeID); err == nil && (single || addr == "" || strings.EqualFold(e.To, addr)) {
			return e.To, e.ID, nil
		}
	}
	if rep.MessageID != "" {
		if id, err := r.db.MessageByHeaderID(rep.MessageID); err == nil {
			envs, _ := r.db.EnvelopesOf(id)
			for _, e := range envs {
				if addr != "" && strings.EqualFold(e.To, addr) {
					return e.To, e.ID, nil
				}
			}
			// A redacted complaint (RFC 6590) names the message only: it
			// is attributable when that message had one recipient.
			if addr == "" && len(envs) == 1 {
				return envs[0].To, envs[0].ID, nil
			}
		}
	}
	if addr == "" {
		return "", "", errUnattributable
	}
	// Only a mailbox may become a profile key or a suppression: a report
	// that names "@mx.example.org" or a host route names nobody.
	if err := address.Check(addr, true); err != nil {
		return "", "", fmt.Errorf("%w: %v", errUnattributable, err)
	}
	return addr, "", nil
}

// clipText shortens s for a log line.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// answersTransactional reports whether a reply is known to answer a
// transactional message.
func (r *Relay) answersTransactional(envelopeID, headerID string) bool {
	id := ""
	if e, err := r.db.Envelope(envelopeID); err == nil {
		id = e.MessageID
	} else if headerID != "" {
		id, _ = r.db.MessageByHeaderID(headerID)
	}
	if id == "" {
		return false
	}
	m, err := r.db.Message(id)
	return err == nil && m.Class == config.ClassTransactional
}

// clearHardStops lifts a profile's unsubscribe, complaint and bounce marks.
func clearHardStops(old []byte) ([]byte, error) {
	return scoring.UpdateStored(old, func(p *scoring.Profile) {
		p.Unsubscribed, p.Complained, p.HardBounced = time.Time{}, time.Time{}, time.Time{}
		p.SoftBounces, p.SoftBounceSince = 0, time.Time{}
	})
}

// FeedbackEffect says in a sentence what applying an outcome of this class
// does (applyReportRaw), for "kadenz feedback classify". Keep it in step
// with the switch there.
func FeedbackEffect(c feedback.Class) string {
	switch c {
	case feedback.ClassHard:
		return "suppress the address (hard bounce) and stop its waiting marketing mail"
	case feedback.ClassSoft:
		return "count a soft bounce; feedback.soft_bounce_limit of them within feedback.soft_bounce_window suppress"
	case feedback.ClassBlock:
		return "no change to the recipient: our mail was refused (content, reputation, authentication or size); logged for the sender"
	case feedback.ClassDelivered:
		return "reset the soft-bounce count"
	case feedback.ClassComplaint:
		return "suppress the address (complaint) and stop its waiting marketing mail"
	case feedback.ClassUnsubscribe:
		return "suppress the address (unsubscribed) and stop its waiting marketing mail"
	case feedback.ClassAway:
		return "defer marketing mail until the date named plus a day (three days if none)"
	case feedback.ClassReply:
		return "pause marketing mail for feedback.reply_pause and forward the reply to the team"
	}
	return "nothing"
}

// observeDelivery is the delivery queue's Observe hook: it counts the
// attempt (metrics) and learns from a synchronous refusal. When the
// smarthost refuses a recipient at RCPT TO or after DATA with a permanent
// reply, the envelope fails; that reply is the most reliable bounce there
// is, so it goes through the same policy and the same apply path as a
// DSN read from the bounce mailbox (source "smarthost").
func (r *Relay) observeDelivery(e store.Envelope, err error, now time.Time) {
	r.metrics.deliveryAttempted(e, err, now)
	if err == nil || e.State != store.StateFailed {
		return
	}
	rc, ok := refusal(err)
	if !ok {
		return
	}
	switch {
	case rc.Bounce == feedback.HardBounce:
	case rc.Bounce == feedback.SoftBounce && recipientReason(rc.Reason):
		// A full mailbox refused for good by the smarthost: soft, as in
		// a DSN. A lost connection or a rate limit at the end of the
		// queue lifetime is the smarthost's trouble, not the recipient's.
	default:
		// A block is about our mail, not the recipient; anything else is
		// not a recipient's outcome either.
		r.log.Warn("smarthost refused the mail (not the recipient's fault)", "part", "feedback", "envelope", e.ID,
			"to", e.To, "reason", rc.Reason, "status", rc.Status, "diagnostic", clipText(rc.Diagnostic, 200))
		return
	}
	s := signal{at: now, source: "smarthost", rcpt: e.To, envelopeID: e.ID, reason: rc.Reason, status: rc.Status}
	s.kind = sigSoftBounce
	if rc.Bounce == feedback.HardBounce {
		s.kind = sigHardBounce
	}
	if err := address.Check(s.rcpt, true); err != nil {
		return // never put a malformed address on the list
	}
	if _, _, err := r.applySignals([]signal{s}); err != nil {
		r.log.Error("applying a smarthost refusal", "part", "feedback", "envelope", e.ID, "error", err)
		return
	}
	r.log.Info("feedback", "part", "feedback", "kind", "bounce", "format", "smtp", "recipient", e.To,
		"envelope", e.ID, "class", rc.Bounce, "reason", rc.Reason, "status", rc.Status)
}

// recipientReason reports whether a soft reason is about the recipient's
// mailbox rather than the path to it.
func recipientReason(r feedback.Reason) bool {
	switch r {
	case feedback.ReasonMailboxFull, feedback.ReasonUserUnknown, feedback.ReasonHostUnknown, feedback.ReasonMailboxDisabled:
		return true
	}
	return false
}

// refusal classifies a delivery error that carries the smarthost's reply
// to RCPT TO or DATA (an *smtp.SMTPError, RFC 5321 section 4.2): its
// enhanced code (RFC 3463) when given, else one in the text, else the
// basic code's class. A refusal of MAIL FROM or a sender-address code
// (X.1.7, X.1.8) is about the sender, not the recipient.
func refusal(err error) (feedback.Recipient, bool) {
	var se *smtp.SMTPError
	if !errors.As(err, &se) || strings.Contains(err.Error(), "MAIL FROM:") {
		return feedback.Recipient{}, false
	}
	rc := feedback.Recipient{Action: "failed", Diagnostic: fmt.Sprintf("%d %s", se.Code, se.Message)}
	if c := se.EnhancedCode; c[0] >= 2 && c[0] <= 5 {
		rc.Status = fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
		rc.Diagnostic = fmt.Sprintf("%d %s %s", se.Code, rc.Status, se.Message)
	}
	if rc.Status == "" && se.Code >= 400 && se.Code < 600 {
		rc.Status = fmt.Sprintf("%d.0.0", se.Code/100)
		if s := feedback.StatusCode(se.Message); s != "" {
			rc.Status = s
		}
	}
	if rc.Status == "" {
		return feedback.Recipient{}, false
	}
	if strings.HasPrefix(rc.Status[1:], ".1.7") || strings.HasPrefix(rc.Status[1:], ".1.8") {
		return feedback.Recipient{}, false
	}
	rc.Bounce, rc.Reason = feedback.Classify(rc.Action, rc.Status, rc.Diagnostic)
	return rc, true
}
