package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"kadenz/config"
	"kadenz/governor/address"
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
	// dsn: the upstream of the last transaction offered DSN, so it reports
	// on delivery itself (see UpstreamDSN).
	dsn bool
}

// UpstreamDSN reports whether the upstream of the last Send offered DSN
// (RFC 3461): if not, a client's NOTIFY=SUCCESS is Kadenz's to answer,
// with "relayed".
func (s *smarthostSender) UpstreamDSN() bool { return s.dsn }

func (s *smarthostSender) Close() error {
	if s.c == nil {
		return nil
	}
	s.c.Quit()
	err := s.c.Close()
	s.c = nil
	return err
}

func (s *smarthostSender) Send(ctx context.Context, p Parcel) []error {
	if s.c != nil && time.Since(s.lastUsed) > maxIdle {
		s.Close()
	}
	reused := s.c != nil
	if !reused {
		if err := s.dial(ctx); err != nil {
			return p.all(err)
		}
	}
	errs, atMail := s.transactions(ctx, p)
	if reused && atMail {
		// The upstream probably closed our idle connection. Nothing of this
		// message was sent yet, so one fresh try cannot duplicate it.
		s.Close()
		if err := s.dial(ctx); err != nil {
			return p.all(err)
		}
		errs, _ = s.transactions(ctx, p)
	}
	s.lastUsed = time.Now()
	return errs
}

// Kadenz's own refusals of a parcel the upstream cannot take as it is
// (RFC 6531 3.2, RFC 6152 3): permanent, so the sender hears at once.
var (
	errNeedsSMTPUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
		Message: "Non-ASCII address, and the upstream does not offer SMTPUTF8"}
	errNeeds8BitMIME = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 3},
		Message: "8-bit octets outside a convertible body part (a header, say), and the upstream does not offer 8BITMIME"}
)

// transactions sends the parcel on the open connection: one transaction
// for all its recipients, more when the upstream answers 452 (too many
// recipients, RFC 5321 4.5.3.1.10) — the rest then go in the next
// transaction on the same connection. It returns one error per envelope;
// atMail is true when nothing was sent because the connection failed at
// the first command (worth one retry on a fresh connection).
func (s *smarthostSender) transactions(ctx context.Context, p Parcel) (errs []error, atMail bool) {
	errs = make([]error, len(p.Envelopes))
	p, err := s.check(p)
	if err != nil {
		return p.all(err), false
	}
	todo := make([]int, len(p.Envelopes))
	for i := range todo {
		todo[i] = i
	}
	max := rcptMax(s.c)
	for first := true; len(todo) > 0; first = false {
		batch, later := todo, []int(nil)
		if max > 0 && len(batch) > max {
			batch, later = todo[:max], todo[max:]
		}
		rest, err, atMail := s.transaction(ctx, p, batch, errs)
		rest = append(rest, later...)
		if err != nil {
			// It ends this attempt for every recipient not yet sent,
			// those left for later transactions included.
			if first && atMail && !IsPermanent(err) {
				return p.all(err), true
			}
			for _, i := range todo {
				if errs[i] == nil {
					errs[i] = err
				}
			}
			return errs, false
		}
		if len(rest) == len(todo) || len(rest) > 0 && s.c == nil {
			// Not even one recipient fitted (a 452 at the first RCPT), or
			// the connection is gone: the rest waits for the next attempt.
			for _, i := range rest {
				errs[i] = errTooManyRecipients
			}
			return errs, false
		}
		todo = rest
	}
	return errs, false
}

// errTooManyRecipients stands for the upstream's 452 when the recipients
// it left over could not be sent in a transaction of their own.
var errTooManyRecipients = &replyError{stage: "RCPT TO", err: &smtp.SMTPError{Code: 452,
	EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients in one transaction; retried later"}}

// rcptMax is the upstream's limit on recipients per transaction, from
// the LIMITS extension (RFC 9422: "LIMITS RCPTMAX=n"); 0 if it names none.
func rcptMax(c *smtp.Client) int {
	ok, params := c.Extension("LIMITS")
	if !ok {
		return 0
	}
	for _, f := range strings.Fields(params) {
		if v, found := strings.CutPrefix(strings.ToUpper(f), "RCPTMAX="); found {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// check refuses a parcel the upstream cannot take, and converts an 8-bit
// body to 7 bits for an upstream without 8BITMIME (downgrade.go).
func (s *smarthostSender) check(p Parcel) (Parcel, error) {
	c := s.c
	if utf8, _ := c.Extension("SMTPUTF8"); !utf8 {
		if !address.IsASCII(p.From) {
			return p, upstreamReply("MAIL FROM", errNeedsSMTPUTF8)
		}
		for _, e := range p.Envelopes {
			if !address.IsASCII(e.To) {
				return p, upstreamReply("RCPT TO", errNeedsSMTPUTF8)
			}
		}
	}
	if ok, _ := c.Extension("8BITMIME"); !ok && p.Stream != nil {
		ascii, err := streamIsASCII(p)
		if err != nil {
			return p, Permanent(err)
		}
		if !ascii {
			// The conversion needs the whole message: the one case where
			// a large message is held in memory (once, plus its 7-bit copy).
			rc, err := p.Open()
			if err != nil {
				return p, Permanent(&readError{err})
			}
			p.Body, err = io.ReadAll(readMarker{rc})
			rc.Close()
			if err != nil {
				return p, Permanent(err)
			}
			p.Stream, p.Prefix = nil, nil
		}
	}
	if ok, _ := c.Extension("8BITMIME"); !ok && p.Stream == nil && !address.IsASCII(p.Body) {
		body, err := downgrade(p.Body)
		if err != nil {
			return p, upstreamReply("DATA", errNeeds8BitMIME)
		}
		p.Body = body
	}
	return p, nil
}

// streamIsASCII reads a streamed message through once to see whether it
// is 7-bit.
func streamIsASCII(p Parcel) (bool, error) {
	rc, err := p.Open()
	if err != nil {
		return false, &readError{err}
	}
	defer rc.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := rc.Read(buf)
		if !address.IsASCII(buf[:n]) {
			return false, nil
		}
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, &readError{err}
		}
	}
}

// transaction sends one transaction for the envelopes todo (indexes into
// p.Envelopes) and writes each recipient's refusal into errs. It returns
// the indexes left over after a 452, and an error that concerns every
// recipient of todo still without one (MAIL or DATA refused, connection
// lost). After an SMTP error the connection is reset for the next message;
// after any other error it is closed.
func (s *smarthostSender) transaction(ctx context.Context, p Parcel, todo []int, errs []error) (rest []int, err error, atMail bool) {
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
	dsn, _ := c.Extension("DSN")
	s.dsn = dsn
	mailOpts := &smtp.MailOptions{UTF8: p.Message.SMTPUTF8 && !isASCIIEnvelope(p)}
	if dsn {
		// RFC 3461 4.3, 4.4: the client's RET and ENVID travel on. Without
		// an ENVID of the client's, a single envelope's ID goes instead: the
		// upstream echoes it in any DSN as Original-Envelope-Id, which ties
		// a bounce to its envelope.
		mailOpts.Return = smtp.DSNReturn(p.Message.Ret)
		mailOpts.EnvelopeID = p.Message.EnvID
		if mailOpts.EnvelopeID == "" && len(p.Envelopes) == 1 {
			mailOpts.EnvelopeID = p.Envelopes[0].ID
		}
	}
	if err := c.Mail(p.From, mailOpts); err != nil {
		return nil, upstreamReply("MAIL FROM", err), true
	}
	var accepted []int
	for n, i := range todo {
		e := p.Envelopes[i]
		var rcptOpts *smtp.RcptOptions
		if dsn {
			rcptOpts = dsnRcptOptions(e)
		}
		err := c.Rcpt(e.To, rcptOpts)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			accepted = append(accepted, i)
			continue
		case errors.As(err, &se) && se.Code == 452 && len(accepted) > 0:
			rest = todo[n:] // too many recipients: the rest in a new transaction
		case errors.As(err, &se):
			errs[i] = upstreamReply("RCPT TO", err)
			continue
		default:
			return nil, upstreamReply("RCPT TO", err), false
		}
		break
	}
	if len(accepted) == 0 {
		// No recipient taken (each refused, or a 452 at the first): the
		// transaction ends here, without DATA.
		if err := c.Reset(); err != nil {
			s.Close()
		}
		return rest, nil, false
	}
	w, err := c.Data()
	if err != nil {
		return nil, setAll(accepted, errs, upstreamReply("DATA", err)), false
	}
	if err := p.copyMessage(w); err != nil {
		var re *readError
		if errors.As(err, &re) {
			// The message could not be read whole: ending DATA now would
			// send it cut short. Drop the connection without another
			// word (a QUIT would first end DATA with its dot): without
			// the final dot the upstream discards what it got.
			c.Close()
			s.c = nil
			return nil, setAll(accepted, errs, Permanent(err)), false
		}
		w.Close()
		return nil, setAll(accepted, errs, upstreamReply("DATA", err)), false
	}
	if err := w.Close(); err != nil {
		return nil, setAll(accepted, errs, upstreamReply("end of DATA", err)), false
	}
	return rest, nil, false
}

// setAll gives err to the recipients idx and returns it.
func setAll(idx []int, errs []error, err error) error {
	for _, i := range idx {
		errs[i] = err
	}
	return err
}

func isASCIIEnvelope(p Parcel) bool {
	if !address.IsASCII(p.From) {
		return false
	}
	for _, e := range p.Envelopes {
		if !address.IsASCII(e.To) {
			return false
		}
	}
	return true
}

// dsnRcptOptions passes the client's NOTIFY and ORCPT (RFC 3461 4.1, 4.2).
func dsnRcptOptions(e store.Envelope) *smtp.RcptOptions {
	o := &smtp.RcptOptions{}
	for _, n := range e.Notify {
		o.Notify = append(o.Notify, smtp.DSNNotify(n))
	}
	if typ, addr, ok := strings.Cut(e.ORcpt, ";"); ok {
		switch strings.ToUpper(typ) {
		case "RFC822":
			if address.IsASCII(addr) {
				o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeRFC822, addr
			}
		case "UTF-8":
			o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeUTF8, addr
		}
	}
	if len(o.Notify) == 0 && o.OriginalRecipient == "" {
		return nil
	}
	return o
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
		// go-smtp's NewClientStartTLS greets with "EHLO localhost" before
		// STARTTLS and offers no way to name ourselves there; a smarthost
		// that checks HELO (Postfix reject_non_fqdn_helo_hostname) refuses
		// that name. helloNameConn puts our hostname into that greeting.
		c, err = smtp.NewClientStartTLS(&helloNameConn{Conn: conn, name: o.Hostname}, o.TLS)
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

// helloNameConn rewrites the client's plaintext greeting "EHLO localhost"
// (or "HELO localhost", go-smtp's fallback) to our own name, and nothing
// else: once STARTTLS has begun it passes every byte unchanged.
type helloNameConn struct {
	net.Conn
	name string
	tls  bool // past STARTTLS: nothing more to look at
}

func (c *helloNameConn) Write(p []byte) (int, error) {
	if !c.tls {
		line := string(p)
		switch {
		case line == "EHLO localhost\r\n" || line == "HELO localhost\r\n":
			if _, err := c.Conn.Write([]byte(line[:5] + c.name + "\r\n")); err != nil {
				return 0, err
			}
			return len(p), nil
		case strings.HasPrefix(line, "STARTTLS"):
			c.tls = true
		}
	}
	return c.Conn.Write(p)
}
