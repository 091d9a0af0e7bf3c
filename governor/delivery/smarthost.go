package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"kadenz/config"
	"kadenz/store"
)

// SmarthostOptions configure delivery to one upstream SMTP server.
type SmarthostOptions struct {
	Addr     string // host:port
	TLSMode  string // config.TLSNone, TLSOpportunistic, TLSRequired, TLSImplicit
	TLS      *tls.Config
	Hostname string // our name in EHLO
	Username string // AUTH PLAIN when set
	Password string

	ConnectTimeout time.Duration
	CommandTimeout time.Duration
	Logger         *slog.Logger
}

// Smarthost is a Transport to one upstream server.
type Smarthost struct {
	opts SmarthostOptions
	// startTLS remembers whether the upstream offered STARTTLS
	// (0 unknown, 1 yes, 2 no), so opportunistic mode asks once.
	startTLS atomic.Int32
}

// NewSmarthost checks opts and returns the transport.
func NewSmarthost(opts SmarthostOptions) (*Smarthost, error) {
	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("delivery: upstream %q: %w", opts.Addr, err)
	}
	switch opts.TLSMode {
	case config.TLSNone, config.TLSOpportunistic, config.TLSRequired, config.TLSImplicit:
	default:
		return nil, fmt.Errorf("delivery: unknown TLS mode %q", opts.TLSMode)
	}
	if opts.TLS == nil {
		opts.TLS = &tls.Config{}
	}
	if opts.TLS.ServerName == "" {
		opts.TLS = opts.TLS.Clone()
		opts.TLS.ServerName = host
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Smarthost{opts: opts}, nil
}

// NewSender implements Transport.
func (h *Smarthost) NewSender() Sender { return &smarthostSender{h: h} }

// maxIdle is how long a worker keeps an unused connection before it
// redials: upstreams drop idle clients (Postfix after 300 s), and a fresh
// connection is cheaper than a failed command.
const maxIdle = 30 * time.Second

type smarthostSender struct {
	h        *Smarthost
	c        *smtp.Client
	lastUsed time.Time
}

func (s *smarthostSender) Close() error {
	if s.c == nil {
		return nil
	}
	s.c.Quit()
	err := s.c.Close()
	s.c = nil
	return err
}

func (s *smarthostSender) Send(ctx context.Context, e store.Envelope, body []byte) error {
	if s.c != nil && time.Since(s.lastUsed) > maxIdle {
		s.Close()
	}
	reused := s.c != nil
	if !reused {
		if err := s.dial(ctx); err != nil {
			return err
		}
	}
	atMail, err := s.transaction(ctx, e, body)
	if err != nil && reused && atMail && !IsPermanent(err) {
		// The upstream probably closed our idle connection. Nothing of this
		// message was sent yet, so one fresh try cannot duplicate it.
		s.Close()
		if err := s.dial(ctx); err != nil {
			return err
		}
		_, err = s.transaction(ctx, e, body)
	}
	s.lastUsed = time.Now()
	return err
}

// transaction sends one message on the open connection. atMail is true when
// it failed at the first command. After an SMTP error the connection is
// reset for the next message; after any other error it is closed.
func (s *smarthostSender) transaction(ctx context.Context, e store.Envelope, body []byte) (atMail bool, err error) {
	c := s.c
	stop := context.AfterFunc(ctx, func() { c.Close() }) // unblock a stuck command at shutdown
	defer stop()
	defer func() {
		if err == nil {
			return
		}
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code != 421 && c.Reset() == nil {
			return
		}
		s.Close()
	}()
	var mailOpts *smtp.MailOptions
	if ok, _ := c.Extension("DSN"); ok {
		// RFC 3461 section 4.4: the upstream echoes ENVID in any DSN as
		// Original-Envelope-Id, which ties a bounce to its envelope.
		mailOpts = &smtp.MailOptions{EnvelopeID: e.ID}
	}
	if err := c.Mail(e.From, mailOpts); err != nil {
		return true, fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(e.To, nil); err != nil {
		return false, fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return false, fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		w.Close()
		return false, fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return false, fmt.Errorf("end of DATA: %w", err)
	}
	return false, nil
}

// dial opens and prepares a connection. Its errors are about the
// connection, not the message — an upstream refusing our EHLO, STARTTLS or
// AUTH with a 5xx says nothing about whether this message can ever be
// delivered — so they are formatted with %v, never wrapped: the reply code
// must not make IsPermanent fail the envelope. The queue retries instead.
func (s *smarthostSender) dial(ctx context.Context) error {
	o := &s.h.opts
	d := net.Dialer{Timeout: o.ConnectTimeout}
	conn, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("connecting to upstream: %w", err)
	}
	var c *smtp.Client
	switch {
	case o.TLSMode == config.TLSImplicit:
		c = smtp.NewClient(tls.Client(conn, o.TLS))
	case o.TLSMode == config.TLSRequired || o.TLSMode == config.TLSOpportunistic && s.h.startTLS.Load() == 1:
		c, err = smtp.NewClientStartTLS(conn, o.TLS)
		if err != nil && o.TLSMode == config.TLSOpportunistic {
			// Opportunistic TLS must not make mail undeliverable: carry on
			// in plain text, as RFC 3207 section 4.1 allows.
			o.Logger.Warn("STARTTLS to upstream failed, continuing without TLS", "upstream", o.Addr, "error", err)
			s.h.startTLS.Store(2)
			return s.dial(ctx)
		}
		if err != nil {
			return fmt.Errorf("STARTTLS to upstream (tls: required): %v", err)
		}
	default:
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout = o.CommandTimeout
	c.SubmissionTimeout = o.CommandTimeout
	if err := c.Hello(o.Hostname); err != nil {
		c.Close()
		return fmt.Errorf("EHLO: %v", err)
	}
	if _, isTLS := c.TLSConnectionState(); !isTLS && o.TLSMode == config.TLSOpportunistic && s.h.startTLS.Load() != 2 {
		// A plain connection in opportunistic mode: learn from this very
		// connection whether the upstream offers STARTTLS (another worker
		// may be learning it at the same moment), and if it does, start
		// again with TLS: go-smtp upgrades only a fresh client. Later
		// connections go straight to the right kind.
		if ok, _ := c.Extension("STARTTLS"); ok {
			s.h.startTLS.Store(1)
			c.Quit()
			c.Close()
			return s.dial(ctx)
		}
		s.h.startTLS.Store(2)
	}
	if o.Username != "" {
		if _, isTLS := c.TLSConnectionState(); !isTLS && !config.IsLoopback(o.Addr) {
			c.Close()
			return errors.New("refusing to send upstream credentials without TLS to a non-loopback host (set delivery.tls to required or implicit)")
		}
		if err := c.Auth(sasl.NewPlainClient("", o.Username, o.Password)); err != nil {
			c.Close()
			return fmt.Errorf("AUTH to upstream: %v", err)
		}
	}
	s.c = c
	return nil
}
