package governor

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"kadenz/config"
	"kadenz/governor/feedback/report"
	"kadenz/governor/mailbox"
)

// mailboxReaders are the running IMAP readers of feedback.mailboxes.
type mailboxReaders struct {
	cancel  context.CancelFunc
	running sync.WaitGroup
}

// startMailboxes starts one reader per configured feedback mailbox; they
// run until stopMailboxes.
func (r *Relay) startMailboxes(ctx context.Context) error {
	var readers []*mailbox.Reader
	for _, m := range r.config().Feedback.Mailboxes {
		rd, err := r.newMailboxReader(m)
		if err != nil {
			return err
		}
		readers = append(readers, rd)
	}
	ctx, cancel := context.WithCancel(ctx)
	r.mailboxes = &mailboxReaders{cancel: cancel}
	for _, rd := range readers {
		r.mailboxes.running.Go(func() { rd.Run(ctx) })
	}
	return nil
}

// stopMailboxes ends the readers and waits for them: cancelling closes
// their connections, and the store must outlive their last write.
func (r *Relay) stopMailboxes() {
	if r.mailboxes == nil {
		return
	}
	r.mailboxes.cancel()
	r.mailboxes.running.Wait()
}

func (r *Relay) newMailboxReader(m config.Mailbox) (*mailbox.Reader, error) {
	schedule, err := config.ParseSchedule(m.Schedule)
	if err != nil {
		return nil, fmt.Errorf("feedback mailbox %s schedule: %w", m.Name, err)
	}
	password, err := m.ResolvePassword()
	if err != nil {
		return nil, err
	}
	tc, err := config.ClientTLS(m.CAFile, m.InsecureSkipVerify)
	if err != nil {
		return nil, fmt.Errorf("feedback mailbox %s ca_file: %w", m.Name, err)
	}
	return mailbox.New(mailbox.Options{
		Name:      m.Name,
		Addr:      m.Address,
		TLS:       m.TLS,
		TLSConfig: tc,
		Username:  m.Username,
		Password:  password,
		Folder:    m.Folder,
		Processed: m.Processed,
		MoveTo:    m.MoveTo,
		Schedule:  schedule,
		Idle:      m.Idle,
		Handler:   r.ingestFeedback,
		Polled:    func(err error) { r.MailboxPolled(m.Name, err) },
		DB:        r.db,
		Logger:    r.log.With("part", "feedback"),
		Now:       r.now,
	})
}

// ingestFeedback is the mailbox readers' handler: it reads what a message
// says and applies it to the recipient's profile. A message that cannot be
// read is an error, which the reader logs before moving on.
func (r *Relay) ingestFeedback(_ context.Context, raw []byte) error {
	rep, err := report.Parse(raw)
	if err != nil {
		return fmt.Errorf("reading feedback: %w", err)
	}
	r.log.Info("feedback", "part", "feedback", "kind", rep.Kind, "format", rep.Format, "recipient", rep.Recipient,
		"envelope", rep.EnvelopeID, "envelope_source", rep.EnvelopeIDSource, "message_id", rep.MessageID)
	if rep.Format == "arf-auth-failure" && rep.Complaint != nil {
		// RFC 6591: recorded for the sender to fix DKIM/SPF/DMARC; nobody
		// complained.
		r.log.Warn("authentication failure report", "part", "feedback", "reporter", rep.Reporter,
			"source_ip", rep.Complaint.SourceIP, "reported_domain", rep.Complaint.ReportedDomain)
	}
	err = r.applyReportRaw(rep, raw)
	if errors.Is(err, errUnattributable) {
		// Readable, but it names nobody Kadenz sent to (a redacted
		// complaint for mail sent before VERP, a bounce for someone
		// else's mail): logged, not a failed message.
		r.log.Warn("feedback names no recipient Kadenz knows; nothing applied", "part", "feedback",
			"kind", rep.Kind, "format", rep.Format, "subject", rep.Subject, "error", err)
		return nil
	}
	return err
}
