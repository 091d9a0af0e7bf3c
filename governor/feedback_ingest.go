package governor

import (
	"context"
	"fmt"
	"sync"

	"kadenz/config"
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
	for i, rd := range readers {
		name := r.config().Feedback.Mailboxes[i].Name
		r.mailboxes.running.Go(func() { r.superviseMailbox(ctx, name, rd.Run) })
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
		Handler:   r.feedback.Ingest,
		Polled:    func(err error) { r.MailboxPolled(m.Name, err) },
		DB:        r.db,
		Logger:    r.log.With("part", "feedback"),
		Now:       r.now,
	})
}
