// Package mailbox reads feedback — bounces, complaints, replies — out of IMAP
// mailboxes and hands each message to a handler.
//
// One Reader serves one folder over one connection. It logs in, selects the
// folder, and looks for messages it has not handled yet: those with a UID
// above the last one it handled (kept in the store with the folder's
// UIDVALIDITY, RFC 9051 section 2.3.1.1) and without the $KadenzDone
// keyword. Each is fetched whole (BODY.PEEK[], so fetching alone marks
// nothing), given to the handler, then disposed of: flagged \Seen and
// $KadenzDone and optionally moved, or deleted and expunged. Then the
// cursor moves past it. Between rounds it waits in IDLE (RFC 2177) when the
// server offers it, or until the next time of its cron schedule; with IDLE
// the schedule is a safety net. Lost connections are retried with
// exponential backoff and jitter.
//
// A message the handler fails on is not retried: it is logged with its
// UID, flagged $KadenzFailed besides $KadenzDone, and disposed of like the
// others — except that with the delete disposition it is left in the folder
// (flagged, not deleted), so that a person can look at it. One bad message
// never blocks the mailbox.
//
// Guarantees: a message is handed over at most once per UIDVALIDITY, except
// when the process dies between the handler returning and the cursor being
// written (a window of one message). If the server changes the folder's
// UIDVALIDITY the reader starts the folder over, skipping messages that
// already carry $KadenzDone.
//
// The package knows nothing of what a message means; see
// governor/feedback for that.
package mailbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/robfig/cron/v3"

	"kadenz/config"
	"kadenz/governor/retry"
)

// Keywords Kadenz sets on the messages it handled (RFC 9051 section 2.3.2).
const (
	KeywordDone   imap.Flag = "$KadenzDone"
	KeywordFailed imap.Flag = "$KadenzFailed"
)

// Handler is given each new message's raw bytes. An error is logged and the
// message counted as handled (see the package comment); a handler that
// wants a message tried again must not return.
type Handler func(ctx context.Context, raw []byte) error

// Cursors is what a reader needs of the database: where it stopped in
// each mailbox. Any store.Store (store.Feedback) serves.
type Cursors interface {
	MailboxState(name string) (uidValidity, lastUID uint32, err error)
	SetMailboxState(name string, uidValidity, lastUID uint32) error
}

// Options configure a Reader.
type Options struct {
	// Name identifies the mailbox in logs and keys its cursor in DB.
	Name string
	// Addr is the server, host:port.
	Addr string
	// TLS is config.MailboxTLSNone (loopback only), MailboxTLSStartTLS or
	// MailboxTLSImplicit.
	TLS string
	// TLSConfig verifies the server; a ServerName is filled in from Addr.
	TLSConfig          *tls.Config
	Username, Password string
	// Folder is read; INBOX if empty.
	Folder string
	// Processed is config.ProcessedFlag or config.ProcessedDelete.
	Processed string
	// MoveTo, with ProcessedFlag, receives handled messages.
	MoveTo string
	// Schedule says when to look for new mail without IDLE.
	Schedule cron.Schedule
	// Idle enables IMAP IDLE when the server offers it.
	Idle bool

	Handler Handler
	DB      Cursors
	Logger  *slog.Logger

	// MaxMessageBytes is how much of a message is fetched and handed over;
	// the rest is cut off (feedback parsing reads no more than 4 MiB anyway).
	MaxMessageBytes int64
	// BackoffMin and BackoffMax bound the wait before reconnecting: it
	// doubles from Min up to Max with each failure, with jitter.
	BackoffMin, BackoffMax time.Duration
	// DialTimeout bounds connecting.
	DialTimeout time.Duration

	// Now is the clock for the schedule; time.Now if nil.
	Now func() time.Time
	// After waits; time.After if nil. Tests make waits short.
	After func(time.Duration) <-chan time.Time
	// Jitter returns a number in [0,1); rand.Float64 if nil.
	Jitter func() float64
	// Trace, if set, receives the raw protocol, password included.
	Trace io.Writer
	// Polled, if set, hears how each look at the mailbox went: nil after
	// new mail was read and handled, or the error that ended a connection
	// (health metrics).
	Polled func(err error)

	// waiting, if set, is called each time the reader starts waiting for
	// new mail, so that tests know it has finished a round.
	waiting func()
}

// Defaults for the zero values of Options.
const (
	DefaultMaxMessageBytes = 8 << 20
	DefaultBackoffMin      = time.Second
	DefaultBackoffMax      = 5 * time.Minute
	DefaultDialTimeout     = 30 * time.Second
)

// Reader reads one mailbox. Run it with Run or Start.
type Reader struct {
	opts Options
	log  *slog.Logger

	kick    chan struct{} // Kick: look now
	newMail chan struct{} // the server announced messages (EXISTS)

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks opts and fills in defaults.
func New(opts Options) (*Reader, error) {
	switch {
	case opts.Name == "":
		return nil, errors.New("mailbox: no name")
	case opts.Handler == nil:
		return nil, fmt.Errorf("mailbox %s: no handler", opts.Name)
	case opts.DB == nil:
		return nil, fmt.Errorf("mailbox %s: no store", opts.Name)
	case opts.Schedule == nil:
		return nil, fmt.Errorf("mailbox %s: no schedule", opts.Name)
	}
	switch opts.TLS {
	case config.MailboxTLSNone:
		if !config.IsLoopback(opts.Addr) {
			return nil, fmt.Errorf("mailbox %s: refusing plain IMAP to %s: the password would cross the network in clear", opts.Name, opts.Addr)
		}
	case config.MailboxTLSStartTLS, config.MailboxTLSImplicit:
	default:
		return nil, fmt.Errorf("mailbox %s: unknown TLS mode %q", opts.Name, opts.TLS)
	}
	switch opts.Processed {
	case config.ProcessedFlag:
	case config.ProcessedDelete:
		if opts.MoveTo != "" {
			return nil, fmt.Errorf("mailbox %s: move_to only applies with processed: flag", opts.Name)
		}
	default:
		return nil, fmt.Errorf("mailbox %s: unknown disposition %q", opts.Name, opts.Processed)
	}
	if opts.Folder == "" {
		opts.Folder = "INBOX"
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = DefaultBackoffMin
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = max(DefaultBackoffMax, opts.BackoffMin)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reader{
		opts:    opts,
		log:     log.With("mailbox", opts.Name),
		kick:    make(chan struct{}, 1),
		newMail: make(chan struct{}, 1),
	}, nil
}

// Kick makes the reader look for new mail now instead of at its next
// scheduled time. It never blocks.
func (r *Reader) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Start runs the reader in the background until ctx ends or Stop.
func (r *Reader) Start(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.Run(ctx)
	}()
}

// Stop ends a reader started with Start and waits for it: cancelling closes
// the connection, so this takes no longer than a handler needs to notice its
// context ended.
func (r *Reader) Stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Run reads the mailbox until ctx ends, reconnecting after failures.
func (r *Reader) Run(ctx context.Context) {
	failures := 0
	for {
		connected, err := r.session(ctx)
		if ctx.Err() != nil {
			return
		}
		r.polled(err)
		if connected {
			failures = 0
		}
		failures++
		wait := r.backoff(failures)
		r.log.Warn("mailbox connection ended; reconnecting", "error", err, "failures", failures, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-r.opts.After(wait):
		}
	}
}

func (r *Reader) polled(err error) {
	if r.opts.Polled != nil {
		r.opts.Polled(err)
	}
}

// backoff is the delay after failures consecutive failures (retry.Backoff
// from BackoffMin to BackoffMax), so that readers that failed together do
// not reconnect together.
func (r *Reader) backoff(failures int) time.Duration {
	return retry.Backoff(failures, r.opts.BackoffMin, r.opts.BackoffMax, r.opts.Jitter())
}

// session is one connection: log in, select, then handle new mail and wait
// for more until something fails. connected reports whether the folder was
// selected, which resets the backoff.
func (r *Reader) session(ctx context.Context) (connected bool, err error) {
	c, err := r.dial()
	if err != nil {
		return false, fmt.Errorf("connect %s: %w", r.opts.Addr, err)
	}
	defer c.Close()
	// Cancelling closes the connection, which ends whatever command or
	// IDLE is waiting.
	defer context.AfterFunc(ctx, func() { c.Close() })()

	if err := c.Login(r.opts.Username, r.opts.Password).Wait(); err != nil {
		return false, fmt.Errorf("login as %s: %w", r.opts.Username, err)
	}
	sel, err := c.Select(r.opts.Folder, nil).Wait()
	if err != nil {
		return false, fmt.Errorf("select %s: %w", r.opts.Folder, err)
	}
	if r.opts.MoveTo != "" {
		// CREATE fails if the folder exists (RFC 9051 section 6.3.4), which
		// is the usual case; a real problem shows up in the first MOVE.
		if err := c.Create(r.opts.MoveTo, nil).Wait(); err != nil {
			r.log.Debug("creating move_to folder", "folder", r.opts.MoveTo, "error", err)
		}
	}
	uidValidity := sel.UIDValidity
	storedValidity, last, err := r.opts.DB.MailboxState(r.opts.Name)
	if err != nil {
		return false, err
	}
	if storedValidity != uidValidity {
		if storedValidity != 0 {
			r.log.Warn("UIDVALIDITY changed: reading the folder from the start; messages with $KadenzDone are skipped",
				"folder", r.opts.Folder, "old", storedValidity, "new", uidValidity, "last_uid", last)
		}
		last = 0
		if err := r.opts.DB.SetMailboxState(r.opts.Name, uidValidity, 0); err != nil {
			return false, err
		}
	}
	idle := r.opts.Idle && c.Caps().Has(imap.CapIdle)
	r.log.Info("mailbox selected", "folder", r.opts.Folder, "messages", sel.NumMessages,
		"uid_validity", uidValidity, "last_uid", last, "idle", idle)

	for {
		if last, err = r.drain(ctx, c, uidValidity, last); err != nil {
			return true, err
		}
		r.polled(nil)
		if err := r.wait(ctx, c, idle); err != nil {
			return true, err
		}
	}
}

func (r *Reader) dial() (*imapclient.Client, error) {
	opts := &imapclient.Options{
		Dialer:      &net.Dialer{Timeout: r.opts.DialTimeout},
		DebugWriter: r.opts.Trace,
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages != nil {
					select {
					case r.newMail <- struct{}{}:
					default:
					}
				}
			},
		},
	}
	if r.opts.TLS != config.MailboxTLSNone {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if r.opts.TLSConfig != nil {
			tc = r.opts.TLSConfig.Clone()
		}
		if tc.ServerName == "" {
			if host, _, err := net.SplitHostPort(r.opts.Addr); err == nil {
				tc.ServerName = host
			}
		}
		opts.TLSConfig = tc
	}
	switch r.opts.TLS {
	case config.MailboxTLSImplicit:
		return imapclient.DialTLS(r.opts.Addr, opts)
	case config.MailboxTLSStartTLS:
		return imapclient.DialStartTLS(r.opts.Addr, opts)
	}
	return imapclient.DialInsecure(r.opts.Addr, opts)
}

// drain handles every message not handled yet, oldest first, and returns
// the new cursor.
func (r *Reader) drain(ctx context.Context, c *imapclient.Client, uidValidity, last uint32) (uint32, error) {
	for {
		// "last+1:*" always matches the highest UID, even one at or below
		// last (RFC 9051 section 6.4.4.1), hence the filter below.
		data, err := c.UIDSearch(&imap.SearchCriteria{
			UID:     []imap.UIDSet{{imap.UIDRange{Start: imap.UID(last + 1), Stop: 0}}},
			NotFlag: []imap.Flag{KeywordDone},
		}, nil).Wait()
		if err != nil {
			return last, fmt.Errorf("search: %w", err)
		}
		var uids []imap.UID
		for _, u := range data.AllUIDs() {
			if uint32(u) > last {
				uids = append(uids, u)
			}
		}
		if len(uids) == 0 {
			return last, nil
		}
		slices.Sort(uids)
		for _, uid := range uids {
			if err := ctx.Err(); err != nil {
				return last, err
			}
			handed, err := r.handle(ctx, c, uid)
			if handed {
				// Written even if disposing failed: the handler has seen it.
				last = uint32(uid)
				if err := r.opts.DB.SetMailboxState(r.opts.Name, uidValidity, last); err != nil {
					return last, err
				}
			}
			if err != nil {
				return last, err
			}
		}
	}
}

// handle fetches one message, hands it over and disposes of it. handed
// reports whether the handler is done with it (successfully or not), so the
// cursor must move past it. The error is for what breaks the session (the
// connection, a cancelled context); a handler error is logged and the
// message still disposed of.
func (r *Reader) handle(ctx context.Context, c *imapclient.Client, uid imap.UID) (handed bool, err error) {
	section := &imap.FetchItemBodySection{
		Peek:    true,
		Partial: &imap.SectionPartial{Offset: 0, Size: r.opts.MaxMessageBytes},
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{
		UID:         true,
		RFC822Size:  true,
		BodySection: []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		return false, fmt.Errorf("fetch UID %d: %w", uid, err)
	}
	if len(msgs) == 0 {
		// Expunged by someone else between SEARCH and FETCH.
		r.log.Info("message gone before it could be read", "uid", uid)
		return true, nil
	}
	raw := msgs[0].FindBodySection(section)
	failed := false
	if herr := r.opts.Handler(ctx, raw); herr != nil {
		if ctx.Err() != nil {
			return false, ctx.Err() // stopped mid-way: leave it for next time
		}
		failed = true
		r.log.Warn("feedback message not handled; marking it done anyway", "uid", uid, "size", msgs[0].RFC822Size,
			"error", herr)
	}
	if err := r.dispose(c, uid, failed); err != nil {
		return true, fmt.Errorf("dispose of UID %d: %w", uid, err)
	}
	r.log.Debug("feedback message handled", "uid", uid, "size", msgs[0].RFC822Size, "failed", failed)
	return true, nil
}

// dispose marks a handled message, then moves or deletes it as configured.
// A failed message is never deleted: it stays, flagged, for a person.
func (r *Reader) dispose(c *imapclient.Client, uid imap.UID, failed bool) error {
	set := imap.UIDSetNum(uid)
	flags := []imap.Flag{imap.FlagSeen, KeywordDone}
	if failed {
		flags = append(flags, KeywordFailed)
	}
	deleting := r.opts.Processed == config.ProcessedDelete && !failed
	if deleting {
		flags = []imap.Flag{imap.FlagDeleted}
	}
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: flags}, nil).Close(); err != nil {
		return fmt.Errorf("store flags: %w", err)
	}
	switch {
	case deleting:
		// UID EXPUNGE (RFC 4315) removes only this message; plain EXPUNGE
		// would also remove whatever else someone marked \Deleted.
		var cmd *imapclient.ExpungeCommand
		if c.Caps().Has(imap.CapUIDPlus) {
			cmd = c.UIDExpunge(set)
		} else {
			cmd = c.Expunge()
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("expunge: %w", err)
		}
	case r.opts.MoveTo != "":
		if _, err := c.Move(set, r.opts.MoveTo).Wait(); err != nil {
			return fmt.Errorf("move to %s: %w", r.opts.MoveTo, err)
		}
	}
	return nil
}

// wait returns when there may be new mail: the server announced some (in
// IDLE, or in a reply to an earlier command), Kick was called, or the
// schedule's next time came. It returns an error when the connection broke.
func (r *Reader) wait(ctx context.Context, c *imapclient.Client, idle bool) error {
	now := r.opts.Now()
	next := r.opts.Schedule.Next(now.UTC())
	timer := r.opts.After(max(next.Sub(now), 0))
	if !idle {
		r.startedWaiting(false, next)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Closed():
			return errors.New("connection closed by the server")
		case <-r.newMail:
		case <-r.kick:
		case <-timer:
		}
		// A command lets the server tell of new messages (RFC 9051
		// section 5.3), so that the next SEARCH sees them.
		return c.Noop().Wait()
	}
	cmd, err := c.Idle()
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	r.startedWaiting(true, next)
	var closed bool
	select {
	case <-ctx.Done():
	case <-c.Closed():
		closed = true
	case <-r.newMail:
	case <-r.kick:
	case <-timer:
	}
	if err := cmd.Close(); err != nil && !closed {
		return fmt.Errorf("end idle: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	if closed {
		return errors.New("connection closed by the server")
	}
	return ctx.Err()
}

func (r *Reader) startedWaiting(idle bool, until time.Time) {
	r.log.Debug("waiting for new mail", "idle", idle, "until", until)
	if r.opts.waiting != nil {
		r.opts.waiting()
	}
}
