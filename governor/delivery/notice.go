package delivery

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"kadenz/governor/address"
	"kadenz/store"
)

// Delivery status notifications (RFC 3464) to the envelope sender.
//
// Kadenz accepted the message with a 250, so when it gives up on a
// recipient it owes the sender a report (RFC 5321 section 6.1), as any MTA
// does: after a permanent refusal by the upstream, or when the queue
// lifetime runs out. A delay notice goes out once, when an envelope has
// been retried for DelayWarning (Postfix's delay_warning_time). Rules:
//   - never to the null sender <>: a report is itself sent from <>, so a
//     report about a report can never arise (RFC 5321 section 4.5.5);
//   - RCPT NOTIFY= is honoured (RFC 3461 section 4.1): NEVER sends nothing,
//     otherwise only the kinds listed; without NOTIFY, failures and delays
//     are reported. SUCCESS is passed to an upstream that offers DSN; to
//     one that does not, Kadenz answers it itself with Action: relayed;
//   - mail the governor suppressed is not a failure and never reaches this
//     code: a decision earns no bounce.

// Actions of a per-recipient report (RFC 3464 section 2.3.3).
const (
	ActionFailed    = "failed"
	ActionDelayed   = "delayed"
	ActionDelivered = "delivered"
	ActionRelayed   = "relayed"
)

// Notice is one report to queue: the message, the envelopes it concerns
// (with their outcomes applied) and why.
type Notice struct {
	Action    string
	Message   store.Message
	Envelopes []store.Envelope
	Errors    []error // per envelope; nil for a success
	Body      []byte  // the message as stored, or of a large one its header
	// BodySize is the stored message's length: more than len(Body) when
	// Body is only its header (then it is not returned whole).
	BodySize int64
	At       time.Time // when the attempt ended
	// RetryUntil is when Kadenz gives up, for a delay notice.
	RetryUntil time.Time
	// RemoteMTA is the upstream that replied, if one did.
	RemoteMTA string
}

// reportable says which report, if any, the outcome of an attempt on e
// calls for: ActionFailed, ActionDelayed, ActionRelayed or "". relayed:
// the upstream took the message without offering DSN, so a NOTIFY=SUCCESS
// can only be answered by Kadenz, with "relayed" (RFC 3461 section 4.1
// and RFC 3464 2.3.3: it cannot know more).
func (q *Queue) reportable(msg store.Message, e store.Envelope, now time.Time, relayed bool) string {
	if q.opts.Notify == nil || msg.From == "" || slices.Contains(e.Notify, string(smtp.DSNNotifyNever)) {
		return ""
	}
	wants := func(kind smtp.DSNNotify) bool {
		return len(e.Notify) == 0 || slices.Contains(e.Notify, string(kind))
	}
	switch {
	case e.State == store.StateFailed && wants(smtp.DSNNotifyFailure):
		return ActionFailed
	case e.State == store.StateDeferred && q.opts.DelayWarning > 0 && !e.DelayNotified &&
		!e.FirstTried.IsZero() && now.Sub(e.FirstTried) >= q.opts.DelayWarning && wants(smtp.DSNNotifyDelayed):
		return ActionDelayed
	case e.State == store.StateDelivered && relayed && slices.Contains(e.Notify, string(smtp.DSNNotifySuccess)):
		return ActionRelayed
	}
	return ""
}

// Status is the enhanced status code (RFC 3463) a report gives for err:
// the upstream's own when its reply carried one, else one derived from
// the reply code, or from the kind of failure when there was no reply.
func Status(err error, failed bool) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		if c, ok := EnhancedStatus(se); ok {
			return c
		}
		return fmt.Sprintf("%d.0.0", se.Code/100)
	}
	var ne net.Error
	switch {
	case err == nil:
		return "2.0.0"
	case errors.As(err, &ne):
		return "4.4.1" // no answer from host
	case IsPermanent(err):
		return "5.0.0"
	case failed:
		return "4.4.7" // delivery time expired
	}
	return "4.0.0"
}

// DiagnosticCode is the RFC 3464 Diagnostic-Code value for err, "smtp;
// 550 5.1.1 ...", when the upstream replied; empty otherwise.
func DiagnosticCode(err error) string {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return ""
	}
	return "smtp; " + Reply(se)
}

// ReportOptions say who reports and how the report is named.
type ReportOptions struct {
	Hostname  string // Reporting-MTA, and the From domain
	MessageID string // Kadenz's ID of the report itself
	// MaxReturned caps the returned message for RET=FULL; beyond it only
	// the header is returned (Postfix's bounce_size_limit does the same).
	MaxReturned int
}

// ComposeReport builds the multipart/report message (RFC 3462, RFC 3464)
// for n, with CRLF line endings.
func ComposeReport(n Notice, o ReportOptions) []byte {
	var b bytes.Buffer
	boundary := "kadenz-report-" + o.MessageID
	subject := map[string]string{
		ActionFailed:    "Undelivered mail returned to sender",
		ActionDelayed:   "Delayed mail (still being retried)",
		ActionDelivered: "Successful mail delivery report",
		ActionRelayed:   "Mail relayed: delivery report",
	}[n.Action]
	hdr := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	hdr("From", "Mail Delivery System <MAILER-DAEMON@"+o.Hostname+">")
	hdr("To", "<"+n.Message.From+">")
	hdr("Subject", subject)
	hdr("Date", n.At.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+o.MessageID+"@"+o.Hostname+">")
	hdr("Auto-Submitted", "auto-replied") // RFC 3834 section 5
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	b.WriteString("\r\nThis is a MIME-encapsulated delivery status notification.\r\n")

	// The part a person reads.
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Description: Notification\r\n\r\n", boundary)
	fmt.Fprintf(&b, "This is the mail relay at %s.\r\n\r\n", o.Hostname)
	switch n.Action {
	case ActionFailed:
		b.WriteString("Your message could not be delivered to the recipients below. It will not be\r\n" +
			"tried again. The reason the receiving side gave is shown with each one.\r\n")
	case ActionDelayed:
		fmt.Fprintf(&b, "Your message has not been delivered yet to the recipients below. This is a\r\n"+
			"warning only: the relay keeps trying until %s, and you will\r\nhear again only if it gives up.\r\n",
			n.RetryUntil.UTC().Format(time.RFC1123Z))
	case ActionRelayed:
		b.WriteString("Your message was handed on to the next mail server, which does not report\r\n" +
			"on delivery; you will not hear more from this relay about it.\r\n")
	default:
		b.WriteString("Your message was delivered to the recipients below.\r\n")
	}
	for i, e := range n.Envelopes {
		fmt.Fprintf(&b, "\r\n<%s>", e.To)
		if err := n.Errors[i]; err != nil {
			fmt.Fprintf(&b, ": %s", oneLine(err.Error()))
		}
		b.WriteString("\r\n")
	}

	// The part a program reads (RFC 3464 section 2); when it names a UTF-8
	// address, the internationalised form of RFC 6533 section 6.
	statusType := "message/delivery-status"
	for _, e := range n.Envelopes {
		if !address.IsASCII(e.To) || !address.IsASCII(e.ORcpt) {
			statusType = "message/global-delivery-status"
		}
	}
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: %s\r\nContent-Description: Delivery report\r\n\r\n", boundary, statusType)
	hdr("Reporting-MTA", "dns; "+o.Hostname)
	hdr("X-Kadenz-Queue-ID", n.Message.ID)
	if n.Message.EnvID != "" {
		hdr("Original-Envelope-Id", n.Message.EnvID)
	}
	hdr("Arrival-Date", n.Message.Received.Format(time.RFC1123Z))
	for i, e := range n.Envelopes {
		err := n.Errors[i]
		b.WriteString("\r\n")
		if typ, addr, ok := strings.Cut(e.ORcpt, ";"); ok {
			hdr("Original-Recipient", typ+";"+addr)
		}
		hdr("Final-Recipient", addressType(e.To)+"; "+e.To)
		hdr("Action", n.Action)
		hdr("Status", Status(err, n.Action == ActionFailed))
		if d := DiagnosticCode(err); d != "" {
			if n.RemoteMTA != "" {
				hdr("Remote-MTA", "dns; "+n.RemoteMTA)
			}
			hdr("Diagnostic-Code", oneLine(d))
		}
		hdr("Last-Attempt-Date", n.At.Format(time.RFC1123Z))
		if n.Action == ActionDelayed {
			hdr("Will-Retry-Until", n.RetryUntil.Format(time.RFC1123Z))
		}
	}

	// The original: whole for RET=FULL (within the limit), else its header
	// (RFC 3461 section 4.3; a delay notice returns only the header).
	whole := n.BodySize <= int64(len(n.Body))
	full := n.Message.Ret == string(smtp.DSNReturnFull) && n.Action != ActionDelayed && whole &&
		(o.MaxReturned <= 0 || len(n.Body) <= o.MaxReturned)
	if full {
		fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: message/rfc822\r\nContent-Description: Returned message\r\n\r\n", boundary)
		b.Write(n.Body)
		if !bytes.HasSuffix(n.Body, []byte("\r\n")) {
			b.WriteString("\r\n")
		}
	} else {
		fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\nContent-Description: Header of the returned message\r\n\r\n", boundary)
		b.Write(headerOf(n.Body))
	}
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

// headerOf returns the header section of msg, ending in CRLF.
func headerOf(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	return msg
}

// addressType is the address type of an RFC 3464 recipient field: utf-8
// for an internationalised address (RFC 6533 section 3).
func addressType(addr string) string {
	if address.IsASCII(addr) {
		return "rfc822"
	}
	return "utf-8"
}

// oneLine keeps a reply's text on one header line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
