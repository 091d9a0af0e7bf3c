package feedback

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
	"kadenz/governor/feedback/report"
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
	// reason and status say why a bounce happened (report.Classify), for
	// the decision record; empty for other signals.
	reason report.Reason
	status string
}

// cause is the source of a signal with its reason and status when known:
// "imap: user unknown, 5.1.1".
func (s signal) cause() string {
	c := s.source
	if s.reason != report.ReasonNone && s.reason != report.ReasonOther {
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
func (f *Applier) change(s signal) store.FeedbackChange {
	fb := &f.config().Feedback
	return store.FeedbackChange{EventID: s.eventID, Recipient: s.rcpt, Apply: func(old []byte) (store.FeedbackOutcome, error) {
		// Nothing below keeps p once its encoding is written, so one
		// event's Profile serves the next (Applier.profiles).
		p, _ := f.profiles.Get().(*scoring.Profile)
		if p == nil {
			p = new(scoring.Profile)
		}
		defer f.profiles.Put(p)
		err := scoring.DecodeProfileInto(p, old)
		if err != nil {
			return store.FeedbackOutcome{}, err
		}
		var counters map[string]int64 // campaign quality counts (issue 18)
		shadow := f.config().Governor.Mode == config.ModeShadow
		record := func(k scoring.EventKind) {
			ev := scoring.Event{Kind: k, At: s.at, MessageID: s.envelopeID, Topics: s.topics, Until: s.until}
			if shadow && !shadowLearns(p, ev) {
				return // see shadow.go
			}
			counters = engine.QualityFeedbackCounters(p.RecordEventCounted(ev, f.engine.Location(p.Timezone), f.engine.Memory()))
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
		if f.config().Governor.Mode != config.ModeEnforce {
			// Shadow mode sends everything; its next decision records what
			// enforce mode would do. Off decides nothing.
			return out, nil
		}
		now := f.now()
		rec, err := json.Marshal(engine.Record{
			DecidedAt: now, Mode: f.config().Governor.Mode, Action: scoring.ActionSuppress.String(),
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
func (f *Applier) applySignals(sigs []signal) (applied, duplicates int, err error) {
	changes := make([]store.FeedbackChange, len(sigs))
	for i, s := range sigs {
		changes[i] = f.change(s)
	}
	applied, duplicates, err = f.db.ApplyFeedback(f.now(), changes)
	if err == nil && applied > 0 {
		f.engine.Kick()
	}
	return applied, duplicates, err
}

// ErrUnattributable is feedback that names no recipient Kadenz can find.
var ErrUnattributable = errors.New("feedback names no recipient Kadenz knows")

// applyReportRaw is Apply and ApplyRaw.
func (f *Applier) applyReportRaw(rep report.Report, raw []byte) error {
	base := signal{at: f.now(), source: "imap"}
	var sigs []signal
	var err error
	switch rep.Kind {
	case report.KindBounce, report.KindDelivered:
		sigs, err = f.bounceSignals(rep, base)
	case report.KindComplaint:
		sigs, err = f.complaintSignals(rep, base)
	case report.KindUnsubscribe, report.KindAway, report.KindReply:
		var s signal
		s, err = f.personSignal(rep, base)
		sigs = []signal{s}
	default:
		return nil
	}
	if err != nil || len(sigs) == 0 {
		return err
	}
	if _, _, err := f.applySignals(sigs); err != nil {
		return err
	}
	for _, s := range sigs {
		if s.kind == sigHumanReply {
			if err := f.forwardReply(rep, s, raw); err != nil {
				return fmt.Errorf("forwarding the reply of %s: %w", s.rcpt, err)
			}
		}
	}
	return nil
}

// bounceSignals turns a bounce or delivery report into one signal per
// recipient Kadenz knows. Blocks (our mail refused for what it is or who
// sent it) change nothing about the person: they are logged. A report
// that names nobody Kadenz knows, and blocks nobody, is ErrUnattributable.
func (f *Applier) bounceSignals(rep report.Report, base signal) ([]signal, error) {
	rcpts := rep.Recipients
	if len(rcpts) == 0 && rep.Recipient != "" {
		// No per-recipient status: treat as soft, never suppress on a guess.
		b := report.SoftBounce
		if rep.Kind == report.KindDelivered {
			b = report.NoBounce
		}
		rcpts = []report.Recipient{{Address: rep.Recipient, Bounce: b}}
	}
	single := len(rcpts) == 1
	blocked := 0
	var sigs []signal
	for _, rc := range rcpts {
		if rc.Bounce == report.BlockBounce {
			// Not because the person cannot be reached: report it, change
			// nothing about them (docs/feedback.md, "Blocks").
			blocked++
			f.log.Warn("mail refused by the receiving side (not the recipient's fault)", "part", "feedback",
				"address", rc.Address, "reason", rc.Reason, "status", rc.Status, "diagnostic", clipText(rc.Diagnostic, 200),
				"envelope", rep.EnvelopeID)
			continue
		}
		s := base
		var err error
		if s.rcpt, s.envelopeID, err = f.resolveReport(rep, rc.Address, single); err != nil {
			f.log.Warn("bounce for an unknown recipient ignored", "address", rc.Address, "error", err)
			continue
		}
		s.reason, s.status = rc.Reason, rc.Status
		switch rc.Bounce {
		case report.HardBounce:
			s.kind = sigHardBounce
		case report.SoftBounce:
			s.kind = sigSoftBounce
		default:
			s.kind = sigDelivered
		}
		sigs = append(sigs, s)
	}
	if len(sigs) == 0 && blocked == 0 {
		return nil, fmt.Errorf("%s report: %w", rep.Kind, ErrUnattributable)
	}
	return sigs, nil
}

// complaintSignals is one complaint signal per recipient the report names
// (RFC 5965 section 3.2 allows one Original-Rcpt-To per recipient it
// covers: each of them complained). RFC 5965's not-spam is the opposite
// of a complaint: nothing.
func (f *Applier) complaintSignals(rep report.Report, base signal) ([]signal, error) {
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
		if s.rcpt, s.envelopeID, err = f.resolveReport(rep, a, len(named) == 1); err != nil {
			f.log.Warn("complaint for an unknown recipient ignored", "address", a, "error", err)
			continue
		}
		s.kind = sigComplaint
		sigs = append(sigs, s)
	}
	if len(sigs) == 0 {
		return nil, fmt.Errorf("%s report: %w", rep.Kind, ErrUnattributable)
	}
	return sigs, nil
}

// personSignal is what one person did: unsubscribed, went away, or wrote
// back. A reply about a receipt is engagement, not a reply to marketing.
func (f *Applier) personSignal(rep report.Report, base signal) (signal, error) {
	s := base
	var err error
	if s.rcpt, s.envelopeID, err = f.resolveReport(rep, rep.Recipient, true); err != nil {
		return s, fmt.Errorf("%s report: %w", rep.Kind, err)
	}
	switch rep.Kind {
	case report.KindUnsubscribe:
		s.kind = sigUnsubscribe
	case report.KindAway:
		s.kind = sigAway
		if rep.Away != nil {
			s.until = rep.Away.Until
		}
	case report.KindReply:
		s.kind = sigHumanReply
		if f.answersTransactional(s.envelopeID, rep.MessageID) {
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
func (f *Applier) resolveReport(rep report.Report, addr string, single bool) (rcpt, envelopeID string, err error) {
	addr = strings.TrimSpace(addr)
	if rep.EnvelopeID != "" {
		if e, err := f.db.Envelope(rep.EnvelopeID); err == nil && (single || addr == "" || strings.EqualFold(e.To, addr)) {
			return e.To, e.ID, nil
		}
	}
	if rep.MessageID != "" {
		if id, err := f.db.MessageByHeaderID(rep.MessageID); err == nil {
			envs, _ := f.db.EnvelopesOf(id)
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
		return "", "", ErrUnattributable
	}
	// Only a mailbox may become a profile key or a suppression: a report
	// that names "@mx.example.org" or a host route names nobody.
	if err := address.Check(addr, true); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrUnattributable, err)
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
func (f *Applier) answersTransactional(envelopeID, headerID string) bool {
	id := ""
	if e, err := f.db.Envelope(envelopeID); err == nil {
		id = e.MessageID
	} else if headerID != "" {
		id, _ = f.db.MessageByHeaderID(headerID)
	}
	if id == "" {
		return false
	}
	m, err := f.db.Message(id)
	return err == nil && m.Class == config.ClassTransactional
}

// Effect says in a sentence what applying an outcome of this class
// does (applyReportRaw), for "kadenz feedback classify". Keep it in step
// with the switch there.
func Effect(c report.Class) string {
	switch c {
	case report.ClassHard:
		return "suppress the address (hard bounce) and stop its waiting marketing mail"
	case report.ClassSoft:
		return "count a soft bounce; feedback.soft_bounce_limit of them within feedback.soft_bounce_window suppress"
	case report.ClassBlock:
		return "no change to the recipient: our mail was refused (content, reputation, authentication or size); logged for the sender"
	case report.ClassDelivered:
		return "reset the soft-bounce count"
	case report.ClassComplaint:
		return "suppress the address (complaint) and stop its waiting marketing mail"
	case report.ClassUnsubscribe:
		return "suppress the address (unsubscribed) and stop its waiting marketing mail"
	case report.ClassAway:
		return "defer marketing mail until the date named plus a day (three days if none)"
	case report.ClassReply:
		return "pause marketing mail for feedback.reply_pause and forward the reply to the team"
	}
	return "nothing"
}

// ObserveDelivery hears of every delivery attempt (the delivery queue's
// Observe hook, after the relay counted it) and learns from a synchronous
// refusal. When the
// smarthost refuses a recipient at RCPT TO or after DATA with a permanent
// reply, the envelope fails; that reply is the most reliable bounce there
// is, so it goes through the same policy and the same apply path as a
// DSN read from the bounce mailbox (source "smarthost").
func (f *Applier) ObserveDelivery(e store.Envelope, err error, now time.Time) {
	if err == nil || e.State != store.StateFailed {
		return
	}
	rc, ok := refusal(err)
	if !ok {
		return
	}
	switch {
	case rc.Bounce == report.HardBounce:
	case rc.Bounce == report.SoftBounce && recipientReason(rc.Reason):
		// A full mailbox refused for good by the smarthost: soft, as in
		// a DSN. A lost connection or a rate limit at the end of the
		// queue lifetime is the smarthost's trouble, not the recipient's.
	default:
		// A block is about our mail, not the recipient; anything else is
		// not a recipient's outcome either.
		f.log.Warn("smarthost refused the mail (not the recipient's fault)", "part", "feedback", "envelope", e.ID,
			"to", e.To, "reason", rc.Reason, "status", rc.Status, "diagnostic", clipText(rc.Diagnostic, 200))
		return
	}
	s := signal{at: now, source: "smarthost", rcpt: e.To, envelopeID: e.ID, reason: rc.Reason, status: rc.Status}
	s.kind = sigSoftBounce
	if rc.Bounce == report.HardBounce {
		s.kind = sigHardBounce
	}
	if err := address.Check(s.rcpt, true); err != nil {
		return // never put a malformed address on the list
	}
	if _, _, err := f.applySignals([]signal{s}); err != nil {
		f.log.Error("applying a smarthost refusal", "part", "feedback", "envelope", e.ID, "error", err)
		return
	}
	f.log.Info("feedback", "part", "feedback", "kind", "bounce", "format", "smtp", "recipient", e.To,
		"envelope", e.ID, "class", rc.Bounce, "reason", rc.Reason, "status", rc.Status)
}

// recipientReason reports whether a soft reason is about the recipient's
// mailbox rather than the path to it.
func recipientReason(r report.Reason) bool {
	switch r {
	case report.ReasonMailboxFull, report.ReasonUserUnknown, report.ReasonHostUnknown, report.ReasonMailboxDisabled:
		return true
	}
	return false
}

// refusal classifies a delivery error that carries the smarthost's reply
// to RCPT TO or DATA (an *smtp.SMTPError, RFC 5321 section 4.2): its
// enhanced code (RFC 3463) when given, else one in the text, else the
// basic code's class. A refusal of MAIL FROM or a sender-address code
// (X.1.7, X.1.8) is about the sender, not the recipient.
func refusal(err error) (report.Recipient, bool) {
	var se *smtp.SMTPError
	if !errors.As(err, &se) || strings.Contains(err.Error(), "MAIL FROM:") {
		return report.Recipient{}, false
	}
	rc := report.Recipient{Action: "failed", Diagnostic: fmt.Sprintf("%d %s", se.Code, se.Message)}
	if c := se.EnhancedCode; c[0] >= 2 && c[0] <= 5 {
		rc.Status = fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
		rc.Diagnostic = fmt.Sprintf("%d %s %s", se.Code, rc.Status, se.Message)
	}
	if rc.Status == "" && se.Code >= 400 && se.Code < 600 {
		rc.Status = fmt.Sprintf("%d.0.0", se.Code/100)
		if s := report.StatusCode(se.Message); s != "" {
			rc.Status = s
		}
	}
	if rc.Status == "" {
		return report.Recipient{}, false
	}
	if strings.HasPrefix(rc.Status[1:], ".1.7") || strings.HasPrefix(rc.Status[1:], ".1.8") {
		return report.Recipient{}, false
	}
	rc.Bounce, rc.Reason = report.Classify(rc.Action, rc.Status, rc.Diagnostic)
	return rc, true
}
