package report

import (
	"net/netip"
	"time"
)

// Kind is what a piece of feedback is.
type Kind string

// The kinds of feedback a message can carry.
const (
	// KindUnknown is a message that is none of the others: spam, chatter, a
	// person writing in afresh. Not an error.
	KindUnknown Kind = "unknown"
	// KindBounce is a delivery failure or delay for one or more recipients;
	// each [Recipient] says whether it is hard or soft.
	KindBounce Kind = "bounce"
	// KindDelivered is a DSN that reports success only (Action delivered,
	// relayed or expanded, RFC 3464 section 2.3.3).
	KindDelivered Kind = "delivered"
	// KindComplaint is a recipient marking our mail as spam (RFC 5965).
	KindComplaint Kind = "complaint"
	// KindAway is an automatic reply or vacation notice (RFC 3834): the
	// recipient is away, not gone. Never a bounce, never a human reply.
	KindAway Kind = "away"
	// KindUnsubscribe is a request to stop sent to a mailto: unsubscribe
	// address (RFC 2369, RFC 8058).
	KindUnsubscribe Kind = "unsubscribe"
	// KindReply is a person writing back to our mail.
	KindReply Kind = "reply"
)

// Bounce is how final a delivery failure is for one recipient.
type Bounce string

// Bounce classes, as [Classify] decides them.
const (
	// NoBounce: the DSN reports delivery, relay or expansion.
	NoBounce Bounce = ""
	// SoftBounce: a transient failure (4.x.x) or a delay; delivery may still
	// succeed, or a later attempt may.
	SoftBounce Bounce = "soft"
	// HardBounce: a permanent failure (5.x.x); the address should be
	// suppressed.
	HardBounce Bounce = "hard"
	// BlockBounce: our mail was refused for its content, its size or the
	// sender's reputation or authentication (mostly 5.7.x): the person may
	// well be reachable, so this never suppresses them.
	BlockBounce Bounce = "block"
)

// Source says where an envelope ID was found, so that a caller can weigh it.
type Source string

// Where an envelope ID can come from.
const (
	SourceNone Source = ""
	// SourceENVID: the DSN's Original-Envelope-Id field (RFC 3464 section
	// 2.2.1), echoing the ENVID parameter of MAIL FROM (RFC 3461 section 4.4).
	SourceENVID Source = "envid"
	// SourceVERP: the local part of the address the feedback was sent to, or of
	// the original return path (bounce+ID@domain).
	SourceVERP Source = "verp"
	// SourceHeader: the X-Kadenz-Envelope header of the original message
	// embedded in the report.
	SourceHeader Source = "header"
	// SourceSubject: an envelope ID in the subject or address of an
	// unsubscribe request (a List-Unsubscribe mailto: with ?subject=).
	SourceSubject Source = "subject"
)

// Report is what one inbound message says.
type Report struct {
	Kind Kind
	// Format names the shape that was recognised, for logs and tests:
	// "rfc3464", "rfc3464-text" (report fields found in broken MIME), "arf",
	// "arf-auth-failure" (RFC 6591), "jmrp", "ses-json", "sendgrid-json",
	// "mailgun-json", "postmark-json", "mdn", "exim", "postfix-text",
	// "yahoo-text", "exchange-text", "text", "rfc3834",
	// "autoreply-heuristic", "auto-generated" (a generated notice that is
	// none of these), "mailto", "reply", "forwarded-" + one of these for a
	// report read from an attachment, or "" for unknown.
	Format string

	// EnvelopeID is the Kadenz envelope the feedback concerns, if it could be
	// recovered; EnvelopeIDSource says from where.
	EnvelopeID       string
	EnvelopeIDSource Source
	// MessageID is the Message-ID of our original message (without angle
	// brackets) when known: from the embedded original, or In-Reply-To and
	// References for replies. Use it when EnvelopeID is empty, together with
	// Recipient.
	MessageID string
	// Recipient is the address our original message went to (lower case):
	// the first failed recipient of a bounce, the complaining recipient, the
	// sender of an away notice, reply or unsubscribe request. May be empty
	// (Yahoo redacts it from complaints).
	Recipient string

	// Recipients lists every recipient a DSN or bounce reports on, in order.
	Recipients []Recipient
	// Reporter is who produced the report: the Reporting-MTA of a DSN, the
	// User-Agent of an ARF report.
	Reporter string

	Complaint *Complaint // for KindComplaint (and ARF not-spam reports)
	Away      *Away      // for KindAway
	Reply     *Reply     // for KindReply and KindUnsubscribe

	// Subject and From of the inbound message itself, decoded (RFC 2047).
	Subject string
	From    string
	// Date of the inbound message; zero if missing or unreadable.
	Date time.Time
	// Truncated is set when a size limit cut the message short; what was
	// read before the cut is still reported.
	Truncated bool
}

// Recipient is one recipient's fate in a DSN or bounce (RFC 3464 section 2.3).
type Recipient struct {
	// Address is the Final-Recipient (lower case), or the address a text
	// bounce names.
	Address string
	// OriginalAddress is the Original-Recipient, when the MTA gives it.
	OriginalAddress string
	// Action is failed, delayed, delivered, relayed or expanded (section
	// 2.3.3); inferred from the text for non-standard bounces.
	Action string
	// Status is the enhanced status code, e.g. "5.1.1" (RFC 3463); derived
	// from the basic SMTP code ("550" -> "5.0.0") when that is all there is.
	Status string
	// Diagnostic is the remote server's reply or the MTA's explanation,
	// without the "smtp;" diagnostic type.
	Diagnostic string
	// RemoteMTA is the server that answered, when known.
	RemoteMTA string
	// Bounce is the class [Classify] gives this recipient's outcome, and
	// Reason why.
	Bounce Bounce
	Reason Reason
}

// Complaint is the machine-readable part of an ARF report (RFC 5965 section
// 3.1).
type Complaint struct {
	// FeedbackType is abuse, fraud, virus, other, not-spam (RFC 5965 section
	// 7.3) or auth-failure (RFC 6591); lower case.
	FeedbackType string
	UserAgent    string
	// OriginalMailFrom and OriginalRcptTo are the envelope of the message
	// complained about.
	OriginalMailFrom string
	OriginalRcptTo   []string
	ArrivalDate      time.Time // zero if absent
	SourceIP         netip.Addr
	ReportedDomain   string
}

// Away is what an automatic reply says about its sender's absence.
type Away struct {
	// Until is the date the notice names as the end of the absence ("until",
	// "back on", "bis"), as midnight UTC of that calendar day; zero if none
	// was found. Notices differ on whether it is the last day away or the first
	// day back, so callers should allow a day's margin.
	Until time.Time
	// AutoSubmitted is the Auto-Submitted value (RFC 3834 section 5), if any.
	AutoSubmitted string
}

// Reply is what a person (or their mail client, for unsubscribe) wrote.
type Reply struct {
	// Text is the plain-text body with quoted text and the attribution line
	// cut off where they could be recognised; capped in size.
	Text string
	// InReplyTo and References are the Message-IDs the message answers
	// (RFC 5322 section 3.6.4), without angle brackets.
	InReplyTo  []string
	References []string
}
