package governor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"kadenz/config"
	"kadenz/store"
)

// upstream is a real go-smtp server on loopback standing in for the
// smarthost. failures, if set, decides per attempt whether to refuse a
// message at end of DATA.
type upstream struct {
	addr string
	// auth, if set, is the one user/password the upstream accepts; it
	// then refuses MAIL without AUTH.
	auth *[2]string
	mu   sync.Mutex
	got  []received
	// attempts counts DATA commands, including refused ones.
	attempts int
	failures func(attempt int) *smtp.SMTPError
}

type received struct {
	from string
	to   []string
	data []byte
}

func startUpstream(t *testing.T, failures func(int) *smtp.SMTPError) *upstream {
	return startUpstreamWith(t, failures, nil, nil)
}

func startUpstreamWith(t *testing.T, failures func(int) *smtp.SMTPError, tlsConfig *tls.Config, auth *[2]string) *upstream {
	t.Helper()
	u := &upstream{failures: failures, auth: auth}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &upstreamSession{u: u, conn: c}, nil
	}))
	srv.TLSConfig = tlsConfig
	srv.Domain = "upstream.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return u
}

func (u *upstream) messages() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]received(nil), u.got...)
}

type upstreamSession struct {
	u      *upstream
	conn   *smtp.Conn
	from   string
	to     []string
	authed bool
}

func (s *upstreamSession) AuthMechanisms() []string {
	if s.u.auth == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *upstreamSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.u.auth[0] || pass != s.u.auth[1] {
			return smtp.ErrAuthFailed // 535 5.7.8
		}
		s.authed = true
		return nil
	}), nil
}

func (s *upstreamSession) Reset()        { s.from, s.to = "", nil }
func (s *upstreamSession) Logout() error { return nil }
func (s *upstreamSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.u.auth != nil && !s.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "auth first"}
	}
	if _, isTLS := s.conn.TLSConnectionState(); isTLS {
		from += " (tls)" // lets tests see how the message travelled
	}
	s.from = from
	return nil
}
func (s *upstreamSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *upstreamSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.u.mu.Lock()
	defer s.u.mu.Unlock()
	s.u.attempts++
	if s.u.failures != nil {
		if e := s.u.failures(s.u.attempts); e != nil {
			return e
		}
	}
	s.u.got = append(s.u.got, received{s.from, append([]string(nil), s.to...), data})
	return nil
}

// testConfig is a relay on a free loopback port with fast retries.
func testConfig(t *testing.T, upstreamAddr string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Hostname = "kadenz.test"
	cfg.Delivery.Upstream = upstreamAddr
	cfg.Delivery.TLS = config.TLSNone
	cfg.Delivery.RetryInitial = 20 * time.Millisecond
	cfg.Delivery.RetryMax = 100 * time.Millisecond
	cfg.Intake.ReadTimeout = 10 * time.Second
	cfg.Intake.WriteTimeout = 10 * time.Second
	return cfg
}

func startRelay(t *testing.T, cfg *config.Config) *Relay {
	t.Helper()
	return startRelayWith(t, Options{Config: cfg})
}

// newRelay is the one way tests build a relay: it logs to the test (unless
// opts has a logger) and is shut down cleanly when the test ends. It is
// not started: a driven test calls Submit and DecideDue itself, others
// use startRelayWith.
func newRelay(t *testing.T, opts Options) *Relay {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return r
}

// startRelayWith builds a relay with newRelay and starts it.
func startRelayWith(t *testing.T, opts Options) *Relay {
	t.Helper()
	r := newRelay(t, opts)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// waitFor polls cond until it holds, failing the test after a bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitCaughtUp waits until the relay has done everything that was due by
// its clock (Relay.CaughtUp). What has not happened then will not happen
// until time moves, so a test may assert that something did not.
func waitCaughtUp(t *testing.T, r *Relay) {
	t.Helper()
	waitFor(t, "the relay to catch up with its clock", func() bool {
		ok, err := r.CaughtUp()
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
}

// firstEnvelope returns the oldest envelope in the store (the only one, in
// tests that submit one message to one recipient).
func firstEnvelope(t *testing.T, db store.Store) store.Envelope {
	t.Helper()
	var env store.Envelope
	if err := db.Envelopes(func(e store.Envelope) bool { env = e; return false }); err != nil {
		t.Fatal(err)
	}
	return env
}

func envelopeStates(t *testing.T, db store.Store) map[store.State]int {
	t.Helper()
	counts, err := db.CountByState()
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

const testMessage = "From: crm@shop.test\r\nTo: ann@example.test\r\nSubject: Your receipt\r\nMessage-ID: <r1@shop.test>\r\n\r\nThank you.\r\n.leading dot survives\r\n"

func submit(t *testing.T, c *smtp.Client, from string, to []string, msg string) error {
	t.Helper()
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}

func dialAddr(addr string) (*smtp.Client, error) { return smtp.Dial(addr) }

func dial(t *testing.T, r *Relay) *smtp.Client {
	t.Helper()
	c, err := dialAddr(r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRelayDeliversExactBytes(t *testing.T) {
	up := startUpstream(t, nil)
	r := startRelay(t, testConfig(t, up.addr))
	c := dial(t, r)
	if err := submit(t, c, "crm@shop.test", []string{"ann@example.test", "bob@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	// Both recipients of the transactional message in one transaction.
	waitFor(t, "the delivery", func() bool { return len(up.messages()) == 1 })
	for _, m := range up.messages() {
		if m.from != "crm@shop.test" || len(m.to) != 2 { // upstream without TLS
			t.Errorf("envelope: from %q to %v, want both recipients in one transaction", m.from, m.to)
		}
		// Kadenz adds exactly one Received header on top; the rest must be
		// the submitted bytes.
		first, rest, _ := bytes.Cut(m.data, []byte("\r\n\t"))
		if !bytes.HasPrefix(first, []byte("Received: from ")) {
			t.Fatalf("no Received header on top: %q", m.data)
		}
		end := bytes.Index(rest, []byte("\r\n"+testMessage[:5]))
		if end < 0 {
			t.Fatalf("submitted message not found after the Received header: %q", m.data)
		}
		if got := rest[end+2:]; string(got) != testMessage {
			t.Errorf("delivered bytes differ from submitted:\n got %q\nwant %q", got, testMessage)
		}
	}
	waitFor(t, "delivered state", func() bool { return envelopeStates(t, r.DB())[store.StateDelivered] == 2 })
}

func TestRelayRetriesTemporaryFailure(t *testing.T) {
	up := startUpstream(t, func(attempt int) *smtp.SMTPError {
		if attempt <= 2 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		return nil
	})
	r := startRelay(t, testConfig(t, up.addr))
	if err := submit(t, dial(t, r), "crm@shop.test", []string{"ann@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after retries", func() bool { return len(up.messages()) == 1 })
	var env store.Envelope
	waitFor(t, "delivered state", func() bool {
		env = firstEnvelope(t, r.DB())
		return env.State == store.StateDelivered
	})
	if env.Attempts != 3 {
		t.Errorf("attempts = %d, want 3 (two 451s, then success)", env.Attempts)
	}
}

func TestRelayRecordsPermanentFailure(t *testing.T) {
	up := startUpstream(t, func(int) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	})
	r := startRelay(t, testConfig(t, up.addr))
	if err := submit(t, dial(t, r), "crm@shop.test", []string{"gone@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	var env store.Envelope
	waitFor(t, "failed state", func() bool {
		env = firstEnvelope(t, r.DB())
		return env.State == store.StateFailed
	})
	if env.Attempts != 1 || !strings.Contains(env.LastError, "550 5.1.1 no such user") {
		t.Errorf("envelope after 550: attempts %d, last error %q", env.Attempts, env.LastError)
	}
	waitCaughtUp(t, r) // a retry would be due at once
	up.mu.Lock()
	defer up.mu.Unlock()
	// The original once, and the failure report to crm@shop.test, which
	// this upstream refuses too: a report from <> earns no report.
	if up.attempts != 2 {
		t.Errorf("upstream saw %d attempts after a 5xx, want 2 (the message, then its failure report)", up.attempts)
	}
}

func TestRelayExpiresAfterQueueLifetime(t *testing.T) {
	up := startUpstream(t, func(int) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "busy"}
	})
	cfg := testConfig(t, up.addr)
	// Long enough against retries every 20-100 ms that the first attempt
	// falls well inside it even on a loaded machine (at 300 ms it once did
	// not, under a load of 16).
	cfg.Delivery.MaxQueueLifetime = 1500 * time.Millisecond
	r := startRelay(t, cfg)
	if err := submit(t, dial(t, r), "crm@shop.test", []string{"ann@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	var env store.Envelope
	waitFor(t, "failed state", func() bool {
		env = firstEnvelope(t, r.DB())
		return env.State == store.StateFailed
	})
	if !strings.Contains(env.LastError, "gave up after") || env.Attempts < 2 {
		t.Errorf("expired envelope: attempts %d, last error %q", env.Attempts, env.LastError)
	}
}

func TestOutboxWithoutUpstream(t *testing.T) {
	cfg := testConfig(t, "")
	r := startRelay(t, cfg)
	if err := submit(t, dial(t, r), "crm@shop.test", []string{"ann@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	var files []string
	waitFor(t, "outbox file", func() bool {
		files, _ = filepath.Glob(filepath.Join(cfg.DataDir, "outbox", "*.eml"))
		return len(files) == 1
	})
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("Return-Path: <crm@shop.test>\r\nDelivered-To: ann@example.test\r\nReceived: ")) ||
		!bytes.HasSuffix(b, []byte(testMessage)) {
		t.Errorf("outbox file:\n%s", b)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and returns the file names.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kadenz.test"},
		DNSNames:     []string{"kadenz.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// authConfig: nobody may submit without AUTH; one user "crm".
func authConfig(t *testing.T, upstreamAddr string) *config.Config {
	t.Helper()
	cfg := testConfig(t, upstreamAddr)
	cfg.Intake.TLS.CertFile, cfg.Intake.TLS.KeyFile = selfSigned(t)
	cfg.Intake.ClientNetworks = nil
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Intake.Users = []config.User{{Name: "crm", PasswordHash: string(hash)}}
	return cfg
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestSubmissionWithStartTLSAndAuth(t *testing.T) {
	up := startUpstream(t, nil)
	r := startRelay(t, authConfig(t, up.addr))
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			c, err := smtp.DialStartTLS(r.Addr().String(), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			auth := sasl.NewPlainClient("", "crm", "s3cret")
			if mech == "LOGIN" {
				auth = sasl.NewLoginClient("crm", "s3cret")
			}
			if err := c.Auth(auth); err != nil {
				t.Fatalf("AUTH %s: %v", mech, err)
			}
			if err := submit(t, c, "crm@shop.test", []string{"ann@example.test"}, testMessage); err != nil {
				t.Fatal(err)
			}
		})
	}
	waitFor(t, "both delivered", func() bool { return len(up.messages()) == 2 })
	if !bytes.Contains(up.messages()[0].data, []byte("with ESMTPSA id ")) {
		t.Errorf("Received header should say ESMTPSA (TLS + AUTH): %q", up.messages()[0].data[:120])
	}
}

func TestNoOpenRelay(t *testing.T) {
	up := startUpstream(t, nil)
	r := startRelay(t, authConfig(t, up.addr))

	// Not on a client network and not authenticated: refused with 5xx.
	err := submit(t, dial(t, r), "spammer@evil.test", []string{"victim@example.test"}, testMessage)
	if code := smtpCode(err); code != 530 {
		t.Errorf("unauthenticated MAIL: got %v, want 530", err)
	}

	// A wrong password is refused too, over TLS.
	c, err := smtp.DialStartTLS(r.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "crm", "wrong")); smtpCode(err) != 535 {
		t.Errorf("wrong password: got %v, want 535", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "nobody", "s3cret")); smtpCode(err) != 535 {
		t.Errorf("unknown user: got %v, want 535", err)
	}
	if len(up.messages()) != 0 || envelopeStates(t, r.DB())[store.StateQueued] != 0 {
		t.Error("a refused message was stored or delivered")
	}
}

func TestAuthRefusedBeforeTLS(t *testing.T) {
	r := startRelay(t, authConfig(t, ""))
	c := dial(t, r)
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	// Without TLS the server does not even offer AUTH; a client that tries
	// anyway must be refused, not asked for a password.
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before STARTTLS")
	}
	err := c.Auth(sasl.NewPlainClient("", "crm", "s3cret"))
	if code := smtpCode(err); code < 500 {
		t.Errorf("AUTH before TLS: got %v, want a 5xx refusal", err)
	}
}

func TestOversizeRefused(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Intake.MaxMessageBytes = 1024
	r := startRelay(t, cfg)
	big := testMessage + strings.Repeat("x", 70) + "\r\n"
	big = strings.Repeat(big, 20)
	err := submit(t, dial(t, r), "crm@shop.test", []string{"ann@example.test"}, big)
	if code := smtpCode(err); code != 552 {
		t.Errorf("oversize message: got %v, want 552", err)
	}
	if n := envelopeStates(t, r.DB()); len(n) != 0 {
		t.Errorf("oversize message stored: %v", n)
	}
}

func TestTooManyRecipients(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Intake.MaxRecipients = 2
	r := startRelay(t, cfg)
	err := submit(t, dial(t, r), "crm@shop.test", []string{"a@x.test", "b@x.test", "c@x.test"}, testMessage)
	if code := smtpCode(err); code != 452 {
		t.Errorf("third recipient: got %v, want 452", err)
	}
}

func TestConnectionLimit(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Intake.MaxConnections = 2
	cfg.Intake.ReservedConnections = 0
	r := startRelay(t, cfg)
	dial(t, r)
	dial(t, r)
	conn, err := net.Dial("tcp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "421 ") {
		t.Errorf("third connection: got %q, %v; want a 421 greeting", line, err)
	}
}

// rawSession speaks SMTP by hand, so a test can send bytes no client
// library would produce.
func rawSession(t *testing.T, addr string, data string, timeout time.Duration) (replies []string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	br := bufio.NewReader(conn)
	read := func() string {
		var last string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return "EOF"
			}
			last = strings.TrimRight(line, "\r\n")
			if len(last) < 4 || last[3] != '-' {
				return last
			}
		}
	}
	read() // greeting
	for _, cmd := range []string{"EHLO client.test", "MAIL FROM:<crm@shop.test>", "RCPT TO:<ann@example.test>", "DATA"} {
		fmt.Fprintf(conn, "%s\r\n", cmd)
		replies = append(replies, read())
	}
	io.WriteString(conn, data)
	replies = append(replies, read())
	// If the smuggled part had been taken as a new transaction, its
	// commands would get replies of their own; read what else arrives.
	fmt.Fprintf(conn, "QUIT\r\n")
	for {
		r := read()
		if r == "EOF" {
			break
		}
		replies = append(replies, r)
	}
	return replies
}

func TestSmugglingRefused(t *testing.T) {
	smuggled := "MAIL FROM:<admin@bank.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond message\r\n.\r\n"
	cases := map[string]string{
		"LF.CRLF":   "Subject: a\r\n\r\nfirst\n.\r\n" + smuggled,
		"LF.LF":     "Subject: a\r\n\r\nfirst\n.\n" + smuggled,
		"CRLF.LF":   "Subject: a\r\n\r\nfirst\r\n.\n" + smuggled,
		"bare LF":   "Subject: a\nbody\r\n.\r\n",
		"bare CR":   "Subject: a\r\n\r\nbody\rmore\r\n.\r\n",
		"CR.CR":     "Subject: a\r\n\r\nfirst\r.\r" + smuggled,
		"LF in hdr": "Subject: a\nX: b\r\n\r\nbody\r\n.\r\n",
	}
	up := startUpstream(t, nil)
	cfg := testConfig(t, up.addr)
	cfg.Intake.BareNewlines = config.BareNewlinesReject // normalize: tests/smuggling_test.go
	r := startRelay(t, cfg)
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			replies := rawSession(t, r.Addr().String(), data, 10*time.Second)
			if len(replies) < 5 || !strings.HasPrefix(replies[4], "554 5.6.0") {
				t.Fatalf("replies %q: want 554 5.6.0 after DATA", replies)
			}
			for _, rep := range replies[5:] {
				if strings.HasPrefix(rep, "250") || strings.HasPrefix(rep, "354") {
					t.Errorf("smuggled commands were answered: %q", replies)
				}
			}
		})
	}
	// A clean message on the same path is accepted, so the refusals above
	// are about the line endings and nothing else.
	if replies := rawSession(t, r.Addr().String(), "Subject: ok\r\n\r\nbody\r\n.\r\n", 10*time.Second); !strings.HasPrefix(replies[4], "250 ") {
		t.Errorf("clean message: %q", replies)
	}
	// go-smtp's end-of-data detector (like net/textproto's) does not take
	// <CR><CR><LF>.<CR><LF> as the end: after a bare CR the line counts as
	// unfinished. The session then waits for a real end marker or its read
	// timeout (here the smuggled part's own end marker ends it); what
	// matters is that neither part is accepted.
	replies := rawSession(t, r.Addr().String(), "Subject: a\r\n\r\nbody\r\r\n.\r\n"+smuggled, 2*time.Second)
	for _, rep := range replies[4:] {
		if strings.HasPrefix(rep, "250") || strings.HasPrefix(rep, "354") {
			t.Errorf("<CR><CR><LF>.<CR><LF>: accepted: %q", replies)
		}
	}
	waitFor(t, "the clean message", func() bool { return len(up.messages()) == 1 })
	waitCaughtUp(t, r)
	if n := len(up.messages()); n != 1 {
		t.Errorf("upstream got %d messages, want only the clean one", n)
	}
}

func TestRestartMakesInflightDueAgain(t *testing.T) {
	cfg := testConfig(t, "")
	db, err := store.Open(filepath.Join(cfg.DataDir, "kadenz.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := db.Accept(store.Message{ID: "m1", From: "crm@shop.test"}, []byte(testMessage), []string{"ann@example.test"}, now); err != nil {
		t.Fatal(err)
	}
	// A worker claimed it, then the process died.
	if claimed, err := db.Claim(now, 10); err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	db.Close()

	r := startRelay(t, cfg)
	waitFor(t, "delivery after restart", func() bool { return envelopeStates(t, r.DB())[store.StateDelivered] == 1 })
}

func TestImplicitTLSIntake(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Intake.TLS.CertFile, cfg.Intake.TLS.KeyFile = selfSigned(t)
	cfg.Intake.TLSListen = "127.0.0.1:0"
	r := startRelay(t, cfg)
	c, err := smtp.DialTLS(r.listeners[1].Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := submit(t, c, "crm@shop.test", []string{"ann@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered on a connection that is already TLS")
	}
}

// The upstream requires STARTTLS and AUTH; Kadenz verifies its certificate
// against the configured CA file and logs in.
func TestUpstreamStartTLSAndAuth(t *testing.T) {
	certFile, keyFile := selfSigned(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	up := startUpstreamWith(t, nil, &tls.Config{Certificates: []tls.Certificate{cert}}, &[2]string{"relay", "pw"})
	for _, mode := range []string{config.TLSRequired, config.TLSOpportunistic} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig(t, up.addr)
			cfg.Delivery.TLS = mode
			cfg.Delivery.CAFile = certFile
			cfg.Delivery.Username, cfg.Delivery.Password = "relay", "pw"
			r := startRelay(t, cfg)
			before := len(up.messages())
			for range 3 { // consecutive messages share the connection
				if err := submit(t, dial(t, r), "crm@shop.test", []string{"ann@example.test"}, testMessage); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "delivery over TLS", func() bool { return len(up.messages()) == before+3 })
			for _, m := range up.messages()[before:] {
				if m.from != "crm@shop.test (tls)" {
					t.Errorf("message arrived without TLS: from %q", m.from)
				}
			}
		})
	}
}

func TestUpstreamRequiredTLSMissingDefers(t *testing.T) {
	up := startUpstream(t, nil) // no STARTTLS on offer
	cfg := testConfig(t, up.addr)
	cfg.Delivery.TLS = config.TLSRequired
	// One attempt, then a long wait, so the test reads a settled state.
	cfg.Delivery.RetryInitial, cfg.Delivery.RetryMax = time.Hour, time.Hour
	r := startRelay(t, cfg)
	if err := submit(t, dial(t, r), "crm@shop.test", []string{"ann@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	var env store.Envelope
	waitFor(t, "a deferral", func() bool {
		env = firstEnvelope(t, r.DB())
		return env.Attempts > 0
	})
	if env.State != store.StateDeferred || !strings.Contains(env.LastError, "STARTTLS") {
		t.Errorf("tls: required against a plain upstream: %s, %q", env.State, env.LastError)
	}
	if n := len(up.messages()); n != 0 {
		t.Errorf("%d messages sent in clear despite tls: required", n)
	}
}

func TestUpstreamOpportunisticFallsBackToPlain(t *testing.T) {
	up := startUpstream(t, nil)
	cfg := testConfig(t, up.addr)
	cfg.Delivery.TLS = config.TLSOpportunistic
	r := startRelay(t, cfg)
	if err := submit(t, dial(t, r), "crm@shop.test", []string{"ann@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "plain delivery", func() bool { return len(up.messages()) == 1 })
}

// An upstream refusing our credentials (535) is a problem with the
// connection, not the message: the envelope is deferred, not failed.
func TestUpstreamAuthFailureDefers(t *testing.T) {
	certFile, keyFile := selfSigned(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	up := startUpstreamWith(t, nil, &tls.Config{Certificates: []tls.Certificate{cert}}, &[2]string{"relay", "pw"})
	cfg := testConfig(t, up.addr)
	cfg.Delivery.TLS = config.TLSRequired
	cfg.Delivery.CAFile = certFile
	cfg.Delivery.Username, cfg.Delivery.Password = "relay", "wrong"
	// One attempt, then a long wait, so the test reads a settled state.
	cfg.Delivery.RetryInitial, cfg.Delivery.RetryMax = time.Hour, time.Hour
	r := startRelay(t, cfg)
	if err := submit(t, dial(t, r), "crm@shop.test", []string{"ann@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	var env store.Envelope
	waitFor(t, "an attempt", func() bool {
		env = firstEnvelope(t, r.DB())
		return env.Attempts > 0
	})
	if env.State != store.StateDeferred || !strings.Contains(env.LastError, "AUTH") {
		t.Errorf("after the upstream refused our AUTH: %s, %q; want deferred", env.State, env.LastError)
	}
}

// A receipt does not wait behind marketing mail that is already due: it
// goes in the express lane and is the next claimed.
func TestReceiptOvertakesDueMarketingBacklog(t *testing.T) {
	started, gate := make(chan struct{}), make(chan struct{})
	up := startUpstream(t, func(attempt int) *smtp.SMTPError {
		if attempt == 1 { // hold the first delivery while the backlog builds
			close(started)
			<-gate
		}
		return nil
	})
	cfg := testConfig(t, up.addr)
	cfg.Delivery.Concurrency = 1
	cfg.Governor.Mode = config.ModeOff // marketing mail passes through, due at once
	r := startRelay(t, cfg)
	c := dial(t, r)
	const backlog = 10
	for i := range backlog {
		msg := fmt.Sprintf("From: news@shop.test\r\nTo: r%d@example.test\r\nList-Unsubscribe: <mailto:u@shop.test>\r\nSubject: Sale %d\r\n\r\nBuy.\r\n", i, i)
		if err := submit(t, c, "news@shop.test", []string{fmt.Sprintf("r%d@example.test", i)}, msg); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	if err := submit(t, c, "crm@shop.test", []string{"ann@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	close(gate)
	waitFor(t, "every delivery", func() bool { return len(up.messages()) == backlog+1 })
	pos := -1
	for i, m := range up.messages() {
		if m.to[0] == "ann@example.test" {
			pos = i
		}
	}
	// Ahead of it at most the delivery in progress and the one claimed
	// with it (the dispatcher claims one delivery ahead per worker).
	if pos < 0 || pos > 2 {
		t.Errorf("the receipt was delivery %d of %d, want at most the third", pos+1, backlog+1)
	}
}
