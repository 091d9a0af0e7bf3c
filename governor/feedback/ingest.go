package feedback

import (
	"context"
	"errors"
	"fmt"

	"kadenz/governor/feedback/report"
)

// Ingest is the mailbox readers' handler: it reads what a message
// says and applies it to the recipient's profile. A message that cannot be
// read is an error, which the reader logs before moving on.
func (f *Applier) Ingest(_ context.Context, raw []byte) error {
	rep, err := report.Parse(raw)
	if err != nil {
		return fmt.Errorf("reading feedback: %w", err)
	}
	f.log.Info("feedback", "part", "feedback", "kind", rep.Kind, "format", rep.Format, "recipient", rep.Recipient,
		"envelope", rep.EnvelopeID, "envelope_source", rep.EnvelopeIDSource, "message_id", rep.MessageID)
	if rep.Format == "arf-auth-failure" && rep.Complaint != nil {
		// RFC 6591: recorded for the sender to fix DKIM/SPF/DMARC; nobody
		// complained.
		f.log.Warn("authentication failure report", "part", "feedback", "reporter", rep.Reporter,
			"source_ip", rep.Complaint.SourceIP, "reported_domain", rep.Complaint.ReportedDomain)
	}
	err = f.ApplyRaw(rep, raw)
	if errors.Is(err, ErrUnattributable) {
		// Readable, but it names nobody Kadenz sent to (a redacted
		// complaint for mail sent before VERP, a bounce for someone
		// else's mail): logged, not a failed message.
		f.log.Warn("feedback names no recipient Kadenz knows; nothing applied", "part", "feedback",
			"kind", rep.Kind, "format", rep.Format, "subject", rep.Subject, "error", err)
		return nil
	}
	return err
}
