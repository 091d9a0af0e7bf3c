// Package report reads what comes back after Kadenz releases mail: bounces,
// complaints, automatic replies, unsubscribe requests and replies written by
// people, as they arrive in the bounce, feedback-loop and reply mailboxes.
//
// [Parse] takes one raw message (RFC 5322) and returns a [Report]: what kind of
// feedback it is, what it says (per-recipient delivery status, complaint
// details, an away-until date, the reply text) and which of our messages it
// concerns. It recognises, in this order:
//
//   - delivery status notifications, RFC 3464 (multipart/report;
//     report-type=delivery-status), as Postfix, Exim 4.9x, Gmail and
//     Outlook/Exchange send them, and the plain-text bounces of Sendmail,
//     Exim and its hosted variants, qmail, OpenSMTPD, dma, Exchange 2003,
//     IMail, Domino, Courier, Trend Micro and Japanese carriers;
//   - complaints from feedback loops in the Abuse Reporting Format, RFC 5965
//     (Yahoo's complaint feedback loop, Microsoft's JMRP and others);
//   - ESP notifications mailed as JSON (Amazon SES, SendGrid, Mailgun,
//     Postmark);
//   - automatic replies and vacation notices, RFC 3834, and the non-standard
//     headers and subjects responders use instead;
//   - unsubscribe requests sent to a mailto: List-Unsubscribe address (RFC 2369
//     section 3.2, RFC 8058 section 3.1);
//   - replies written by a person.
//
// Anything else is [KindUnknown], which is not an error: the bounce mailbox
// also receives spam and chatter. Broken MIME degrades to reading the text;
// Parse returns an error only for input that is not a mail message at all.
//
// What a bounce means for a recipient is decided in one place, [Classify]
// (policy.go): a class (hard, soft, block) and a named [Reason].
// [Report.Outcomes] lists the class of every recipient a report names.
//
// Correlation: Kadenz releases each envelope with a VERP return path
// (bounce+ENVELOPEID@domain, RFC 3834 section 4 and RFC 5321 section 4.5.5
// send bounces and automatic replies there) and an X-Kadenz-Envelope header.
// Parse recovers the envelope ID from the address the feedback was sent to, from
// the DSN's Original-Envelope-Id (RFC 3461 ENVID), from the headers of the
// original message embedded in a report, and falls back to the original
// Message-ID and recipient address, or to In-Reply-To/References for replies.
//
// The package is pure: no I/O, no network, no clock. It does not fetch mail
// (that is the IMAP reader), update recipient profiles or the suppression list
// (the store), or forward replies; it only says what a message is. The work per
// message is bounded: see [Parser] for the limits.
package report
