// Package intake is Kadenz's SMTP server: the door CRMs and newsletter tools
// submit mail through.
//
// It decides who may submit (clients on configured networks, or users who
// authenticated with AUTH PLAIN/LOGIN — over TLS unless explicitly allowed
// otherwise; everyone else gets a 5xx, so Kadenz is never an open relay),
// enforces limits (size, recipients, line length, connections, timeouts),
// checks addresses (governor/address; SMTPUTF8 and DSN parameters are
// taken), neutralises SMTP smuggling input (newlines.go), and hands each
// accepted message to the caller's Accept function. It answers 250 only after Accept returns, and
// Accept returns only after the message is durable.
//
// It does not classify, store or deliver mail itself.
package intake

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"kadenz/governor/address"
)

// Submission is one message as received: the envelope, the client, and
// the raw bytes (CRLF line endings, no bare CR or LF).
type Submission struct {
	From string
	To   []string
	// The client's DSN parameters (RFC 3461): Notify and ORcpt run
	// parallel to To (nil or "" where not given); Ret and EnvID are the
	// message's.
	Notify [][]string
	ORcpt  []string
	Ret    string
	EnvID  string
	// SMTPUTF8: the client said so in MAIL (RFC 6531).
	SMTPUTF8 bool
	// Data is valid only until Accept returns: the buffer is then reused
	// for the next message, so Accept must copy what it keeps. For a
	// spooled message (Spooled set) it is only the message's first
	// SpoolThreshold bytes, which hold the whole header.
	Data []byte
	// Spooled, if set, holds the whole message, which was larger than
	// SpoolThreshold; Size is its length. It too is valid only until
	// Accept returns (intake then removes it). Message reads either form.
	Spooled    io.ReaderAt
	Size       int64
	ClientAddr netip.Addr
	Helo       string
	AuthUser   string
	TLS        bool
	Received   time.Time
}

// Message returns the whole message, from the spool file or from Data.
func (s *Submission) Message() *io.SectionReader {
	if s.Spooled != nil {
		return io.NewSectionReader(s.Spooled, 0, s.Size)
	}
	return io.NewSectionReader(bytes.NewReader(s.Data), 0, int64(len(s.Data)))
}

// AcceptFunc persists a submission. It returns the queue ID to report to the
// client, or an error; a nil error promises the message is durable.
type AcceptFunc func(context.Context, *Submission) (id string, err error)

// User is an account allowed to submit after AUTH.
type User struct {
	Name         string
	PasswordHash []byte // bcrypt
}

// Options configure a Server.
type Options struct {
	Hostname string
	// TLS enables STARTTLS (and is needed for the implicit-TLS listener).
	TLS               *tls.Config
	AllowInsecureAuth bool
	ClientNetworks    []netip.Prefix
	Users             []User

	MaxMessageBytes int64
	MaxRecipients   int
	MaxLineLength   int
	MaxConnections  int
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	// NormalizeBareLF accepts a bare LF in DATA as a line end and stores
	// it as CRLF (Postfix 3.9's smtpd_forbid_bare_newline = normalize);
	// when false such a message is refused.
	NormalizeBareLF bool
	// Fair slots (slots.go); zero means no such limit.
	MaxConnectionsPerClient int           // per address outside ClientNetworks
	ReservedConnections     int           // of MaxConnections, for ClientNetworks only
	MaxJunkCommands         int           // commands outside a mail transaction
	IdleTimeout             time.Duration // time outside a mail transaction; 0: none
	AuthFailureLimit        int           // failed logins per address and per user within AuthLockout
	AuthLockout             time.Duration
	// Count, if set, is told of each refusal and limit event (Event*).
	Count func(event string)
	// SpoolDir and SpoolThreshold: a message longer than SpoolThreshold
	// bytes is written to a file in SpoolDir as it arrives instead of
	// being held in memory (spool.go). Either zero: never.
	SpoolDir       string
	SpoolThreshold int

	Accept AcceptFunc
	Logger *slog.Logger
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Server is the SMTP intake. Create it with New, give it listeners with
// Serve, stop it with Shutdown.
type Server struct {
	opts  Options
	smtp  *smtp.Server
	users map[string][]byte
	gate  *gate         // connection slots, shared by all listeners
	auth  *authThrottle // nil: no lockout
	log   *slog.Logger
	// dummyHash is compared against when a user is unknown, so a failed
	// login takes as long whether or not the name exists: it has the
	// highest cost among the configured users' hashes (dummyCost).
	dummyHash []byte
	// buffers recycles the buffers messages are read into: growing a fresh
	// one to a message's size (about 15 KB allocated for a 5 KB message) costs several
	// allocations and copies per message.
	buffers sync.Pool
}

// New checks opts and builds a Server.
func New(opts Options) (*Server, error) {
	if opts.Accept == nil {
		return nil, errors.New("intake: Accept is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxConnections <= 0 {
		return nil, errors.New("intake: MaxConnections must be positive")
	}
	if opts.MaxConnectionsPerClient <= 0 {
		opts.MaxConnectionsPerClient = opts.MaxConnections
	}
	if opts.ReservedConnections < 0 || opts.ReservedConnections >= opts.MaxConnections {
		return nil, errors.New("intake: ReservedConnections must be at least 0 and less than MaxConnections")
	}
	if opts.MaxJunkCommands <= 0 {
		opts.MaxJunkCommands = math.MaxInt
	}
	if err := clearSpool(opts.SpoolDir); err != nil {
		return nil, err
	}
	s := &Server{
		opts:  opts,
		users: map[string][]byte{},
		gate:  newGate(opts.MaxConnections, opts.ReservedConnections, opts.MaxConnectionsPerClient),
		log:   opts.Logger,
	}
	if opts.AuthFailureLimit > 0 && opts.AuthLockout > 0 {
		s.auth = newAuthThrottle(opts.AuthFailureLimit, opts.AuthLockout, opts.Now)
	}
	for _, u := range opts.Users {
		s.users[u.Name] = u.PasswordHash
	}
	var err error
	s.dummyHash, err = bcrypt.GenerateFromPassword([]byte("kadenz-dummy"), dummyCost(opts.Users))
	if err != nil {
		return nil, err
	}
	srv := smtp.NewServer(s)
	srv.Domain = opts.Hostname
	srv.TLSConfig = opts.TLS
	srv.AllowInsecureAuth = opts.AllowInsecureAuth
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.MaxRecipients = opts.MaxRecipients
	srv.MaxLineLength = opts.MaxLineLength
	srv.ReadTimeout = opts.ReadTimeout
	srv.WriteTimeout = opts.WriteTimeout
	srv.ErrorLog = slogErrorLog{opts.Logger}
	// RFC 6531 and RFC 3461: UTF-8 addresses and DSN requests are taken
	// and relayed (or reported on by Kadenz itself, see delivery).
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	s.smtp = srv
	return s, nil
}

// Serve accepts SMTP connections on l until Shutdown. With implicitTLS the
// connection speaks TLS from its first byte (RFC 8314 submissions).
func (s *Server) Serve(l net.Listener, implicitTLS bool) error {
	l = &slotListener{Listener: l, srv: s, implicitTLS: implicitTLS}
	if implicitTLS {
		if s.opts.TLS == nil {
			return errors.New("intake: implicit TLS needs a certificate")
		}
		l = tls.NewListener(l, s.opts.TLS)
	}
	err := s.smtp.Serve(l)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for open sessions to end,
// or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.smtp.Shutdown(ctx)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Close closes all listeners and connections at once.
func (s *Server) Close() error { return s.smtp.Close() }

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	sess := &session{srv: s, conn: c}
	nc := c.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sess.slot, _ = nc.(*slotConn)
	if sess.slot != nil { // admitted by the gate, which knows the client
		sess.addr, sess.trusted = sess.slot.addr, sess.slot.trusted
	} else {
		sess.addr = remoteAddr(nc)
		sess.trusted = s.trusted(sess.addr)
	}
	return sess, nil
}

// trusted says whether addr is on a client network.
func (s *Server) trusted(addr netip.Addr) bool {
	for _, p := range s.opts.ClientNetworks {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Replies, in one place. go-smtp recognises *smtp.SMTPError only by type
// assertion, so these are returned as they are, never wrapped.
var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required: this relay accepts mail only from its configured users and networks"}
	errAuthFailed = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication credentials invalid"}
	errAuthNeedsTLS = &smtp.SMTPError{Code: 523, EnhancedCode: smtp.EnhancedCode{5, 7, 10},
		Message: "Encryption needed: use STARTTLS before AUTH"}
	errBareLineEnding = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Message refused: bare CR or LF in DATA (lines must end in CRLF; see SMTP smuggling)"}
	errTemporary = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporarily unable to store the message, try again later"}
	errNUL = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Message refused: NUL byte in DATA"}
	errNeedsUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7},
		Message: "Non-ASCII address without SMTPUTF8 in MAIL FROM (RFC 6531)"}
	errHeaderTooLong = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message header too large"}
	errAuthLocked = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
		Message: "Too many failed logins, try again later"}
)

// badAddress is the reply to an address that is not a mailbox: which
// (5.1.7 the sender's, 5.1.3 a recipient's, RFC 3463) and why.
func badAddress(err error, sender bool) *smtp.SMTPError {
	if errors.Is(err, address.ErrNeedsUTF8) {
		return errNeedsUTF8
	}
	code := smtp.EnhancedCode{5, 1, 3}
	if sender {
		code = smtp.EnhancedCode{5, 1, 7}
	}
	msg := "Malformed address"
	var ae *address.Error
	if errors.As(err, &ae) {
		msg += ": " + ae.Reason
	}
	return &smtp.SMTPError{Code: 553, EnhancedCode: code, Message: msg}
}

type session struct {
	srv     *Server
	conn    *smtp.Conn
	slot    *slotConn // nil for a connection not from Serve (tests)
	addr    netip.Addr
	trusted bool   // on a client network: may submit without AUTH
	user    string // authenticated user, if any
	from    string
	to      []string
	mail    smtp.MailOptions
	notify  [][]string
	orcpt   []string
}

func (s *session) allowed() bool { return s.trusted || s.user != "" }

func (s *session) Reset() {
	s.from, s.to, s.mail, s.notify, s.orcpt = "", nil, smtp.MailOptions{}, nil, nil
	s.slot.transaction(false, false)
}

func (s *session) Logout() error { return nil }

func (s *session) AuthMechanisms() []string {
	if len(s.srv.users) == 0 {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	// go-smtp already refuses AUTH before TLS unless AllowInsecureAuth;
	// checking again keeps the rule here, where it is read.
	if _, isTLS := s.conn.TLSConnectionState(); !isTLS && !s.srv.opts.AllowInsecureAuth {
		return nil, errAuthNeedsTLS
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return errAuthFailed
			}
			return s.login(username, password)
		}), nil
	case sasl.Login:
		return newLoginServer(s.login), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *session) login(username, password string) error {
	hash, ok := s.srv.users[username]
	if t := s.srv.auth; t != nil {
		// Clients on a client network may submit without AUTH, so an
		// outsider's failures against a user name do not lock them out.
		if event, until := t.locked(s.addr, username, ok, !s.trusted); event != "" {
			s.srv.count(event)
			s.srv.log.Warn("auth refused: too many failures", "client", s.addr, "user", username, "reason", event, "until", until)
			return errAuthLocked
		}
	}
	if !ok {
		hash = s.srv.dummyHash
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !ok {
		s.srv.count(EventAuthFailed)
		if s.srv.auth != nil {
			s.srv.auth.fail(s.addr, username, ok)
		}
		s.srv.log.Warn("auth failed", "client", s.addr, "user", username)
		return errAuthFailed
	}
	s.user = username
	return nil
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if !s.allowed() {
		s.srv.log.Warn("refused unauthenticated sender", "client", s.addr, "from", from)
		return errAuthRequired
	}
	var mail smtp.MailOptions
	if opts != nil {
		mail = *opts
	}
	if from != "" { // the null reverse-path <> is valid
		from = requote(from)
		if err := address.Check(from, mail.UTF8); err != nil {
			return badAddress(err, true)
		}
	}
	s.from, s.mail = from, mail
	s.slot.transaction(true, false)
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if !s.allowed() {
		return errAuthRequired
	}
	// RFC 5321 4.5.1 asks to accept <postmaster> without a domain, but
	// go-smtp's parser answers such a path with 501 before it gets here
	// (docs/relay.md).
	to = requote(to)
	if err := address.Check(to, s.mail.UTF8); err != nil {
		return badAddress(err, false)
	}
	var notify []string
	var orcpt string
	if opts != nil {
		for _, n := range opts.Notify {
			notify = append(notify, string(n))
		}
		if opts.OriginalRecipient != "" {
			orcpt = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		}
	}
	s.to = append(s.to, to)
	s.notify = append(s.notify, notify)
	s.orcpt = append(s.orcpt, orcpt)
	return nil
}

// maxPooledBuffer: a buffer grown by a rare large message is left to the
// garbage collector rather than kept for small ones.
const maxPooledBuffer = 1 << 20

func (s *session) Data(r io.Reader) error {
	buf, _ := s.srv.buffers.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			s.srv.buffers.Put(buf)
		}
	}()
	var src io.Reader = r
	if !s.srv.opts.NormalizeBareLF {
		src = &lineEndingGuard{r: r}
	}
	limit := s.srv.opts.SpoolThreshold
	if s.srv.opts.SpoolDir == "" {
		limit = 0
	}
	// A message the client declared larger than the threshold (SIZE=,
	// RFC 1870) goes to the spool from its first byte; any other is read
	// into memory up to the threshold and spooled only past it.
	if limit <= 0 || s.mail.Size <= int64(limit) {
		first := src
		if limit > 0 {
			first = io.LimitReader(src, int64(limit)+1)
		}
		if _, err := buf.ReadFrom(first); err != nil {
			return s.dataError(err)
		}
	}
	var data []byte
	var spool *os.File
	var size int64
	var err error
	if limit > 0 && (buf.Len() > limit || s.mail.Size > int64(limit)) {
		spool, size, data, err = s.srv.spool(buf.Bytes(), src, limit)
		if spool != nil {
			defer func() {
				spool.Close()
				os.Remove(spool.Name())
			}()
		}
	} else {
		data, err = normalizeLineEndings(buf.Bytes())
	}
	if err != nil {
		return s.dataError(err)
	}
	_, isTLS := s.conn.TLSConnectionState()
	sub := &Submission{
		From:       s.from,
		To:         s.to,
		Notify:     s.notify,
		ORcpt:      s.orcpt,
		Ret:        string(s.mail.Return),
		EnvID:      s.mail.EnvelopeID,
		SMTPUTF8:   s.mail.UTF8,
		Data:       data,
		Size:       int64(len(data)),
		ClientAddr: s.addr,
		Helo:       s.conn.Hostname(),
		AuthUser:   s.user,
		TLS:        isTLS,
		Received:   s.srv.opts.Now(),
	}
	if spool != nil {
		sub.Spooled, sub.Size = spool, size
	}
	id, err := s.srv.opts.Accept(context.Background(), sub)
	if err != nil {
		s.srv.log.Error("could not store message", "client", s.addr, "from", s.from, "error", err)
		return errTemporary
	}
	s.slot.transaction(false, true)
	// A 250 carrying the queue ID lets the sender correlate its logs with ours.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: queued as " + id}
}

// dataError answers a message that could not be read or was refused
// while reading.
func (s *session) dataError(err error) error {
	switch {
	case errors.Is(err, errBareLF) || errors.Is(err, errBareCR):
		s.srv.log.Warn("refused message with bare line ending", "client", s.addr, "from", s.from, "error", err)
		return errBareLineEnding
	case errors.Is(err, smtp.ErrTooLongLine):
		return errLineTooLong(s.srv.opts.MaxLineLength)
	case errors.Is(err, errNULByte):
		s.srv.log.Warn("refused message", "client", s.addr, "from", s.from, "error", err)
		return errNUL
	case errors.Is(err, errBareCRInMsg):
		s.srv.log.Warn("refused message", "client", s.addr, "from", s.from, "error", err)
		return errBareLineEnding
	case errors.Is(err, errHeaderTooLarge):
		s.srv.log.Warn("refused message", "client", s.addr, "from", s.from, "error", err)
		return errHeaderTooLong
	case errors.Is(err, errSpool):
		s.srv.log.Error("could not spool message", "client", s.addr, "from", s.from, "error", err)
		return errTemporary
	}
	return err // go-smtp's own errors: size (552), I/O
}

// requote puts back the quotes go-smtp's parser takes off a quoted local
// part ("john doe"@example.com arrives as john doe@example.com), so that
// the address is checked, stored and relayed as the client wrote it (RFC
// 5321 4.1.2 Quoted-string). A local part that is a valid dot-string stays
// as it is.
func requote(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || address.Check(addr, true) == nil {
		return addr
	}
	local := addr[:at]
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range local {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String() + addr[at:]
}

// slogErrorLog adapts go-smtp's error logger to slog.
type slogErrorLog struct{ log *slog.Logger }

func (l slogErrorLog) Printf(format string, v ...interface{}) {
	l.log.Warn("smtp server", "error", fmt.Sprintf(format, v...))
}

func (l slogErrorLog) Println(v ...interface{}) {
	l.log.Warn("smtp server", "error", strings.TrimSpace(fmt.Sprintln(v...)))
}

// dummyCost is the bcrypt cost of the hash an unknown user name is checked
// against: the highest cost among the configured users, so a guessed name
// costs the server what a real one does and answers no sooner. With costs
// of their own a fixed DefaultCost dummy made unknown names slower than
// known ones, a timing tell (and made tests with MinCost users slow).
func dummyCost(users []User) int {
	cost := 0
	for _, u := range users {
		if c, err := bcrypt.Cost(u.PasswordHash); err == nil {
			cost = max(cost, c)
		}
	}
	if cost == 0 {
		return bcrypt.DefaultCost
	}
	return cost
}
