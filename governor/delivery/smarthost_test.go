package delivery

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"kadenz/config"
	"kadenz/store"
)

// teeListener keeps a copy of every byte its connections read: the
// plaintext part of a session, before STARTTLS, can be read back from it.
type teeListener struct {
	net.Listener
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *teeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &teeConn{Conn: c, l: l}, nil
}

func (l *teeListener) read() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf.Bytes())
}

type teeConn struct {
	net.Conn
	l *teeListener
}

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.l.buf.Write(p[:n])
	c.l.mu.Unlock()
	return n, err
}

// heloSession records the name the client gave in its last EHLO when it
// starts a transaction, and whether that was over TLS.
type heloSession struct {
	conn *smtp.Conn
	mu   *sync.Mutex
	got  *[]string
}

func (heloSession) Reset()        {}
func (heloSession) Logout() error { return nil }
func (s heloSession) Mail(string, *smtp.MailOptions) error {
	_, isTLS := s.conn.TLSConnectionState()
	s.mu.Lock()
	defer s.mu.Unlock()
	if isTLS {
		*s.got = append(*s.got, s.conn.Hostname()+" (tls)")
	} else {
		*s.got = append(*s.got, s.conn.Hostname())
	}
	return nil
}
func (heloSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (heloSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

func selfSignedTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"upstream.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestGreetsWithHostnameBeforeSTARTTLS: the first EHLO, in plain text before
// STARTTLS, already names us by our hostname (go-smtp's STARTTLS helper
// would say "localhost", which Postfix's reject_non_fqdn_helo_hostname
// refuses), and so does the EHLO after it.
func TestGreetsWithHostnameBeforeSTARTTLS(t *testing.T) {
	var mu sync.Mutex
	var helos []string
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return heloSession{conn: c, mu: &mu, got: &helos}, nil
	}))
	srv.TLSConfig = selfSignedTLS(t)
	srv.Domain = "upstream.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &teeListener{Listener: inner}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	h, err := NewSmarthost(SmarthostOptions{Addr: inner.Addr().String(), TLSMode: config.TLSRequired,
		TLS: &tls.Config{InsecureSkipVerify: true}, Hostname: "relay.kadenz.test",
		ConnectTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := h.NewSender()
	defer s.Close()
	p := Parcel{From: "crm@sender.test", Envelopes: []store.Envelope{{ID: "m-1", To: "ann@example.test"}},
		Body: []byte("Subject: x\r\n\r\nx\r\n")}
	if errs := s.Send(context.Background(), p); errs[0] != nil {
		t.Fatalf("send over STARTTLS: %v", errs[0])
	}
	mu.Lock()
	if len(helos) != 1 || helos[0] != "relay.kadenz.test (tls)" {
		t.Errorf("EHLO name at MAIL: %q, want relay.kadenz.test over TLS", helos)
	}
	mu.Unlock()
	plain := l.read()
	start := bytes.Index(plain, []byte("STARTTLS\r\n"))
	if start < 0 {
		t.Fatalf("no STARTTLS in the session:\n%q", plain)
	}
	if before := plain[:start]; !bytes.Equal(before, []byte("EHLO relay.kadenz.test\r\n")) {
		t.Errorf("before STARTTLS the client said %q, want only EHLO relay.kadenz.test", before)
	}
}

// batchSession accepts at most perTxn recipients per transaction (452
// 4.5.3 for more, RFC 5321 4.5.3.1.10) and records each transaction's size.
type batchSession struct {
	perTxn int
	busy   *atomic.Bool // while set, every RCPT gets 452
	n      int
	mu     *sync.Mutex
	sizes  *[]int
}

func (s *batchSession) Reset()                               { s.n = 0 }
func (s *batchSession) Logout() error                        { return nil }
func (s *batchSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *batchSession) Rcpt(string, *smtp.RcptOptions) error {
	if s.perTxn > 0 && s.n >= s.perTxn || s.busy != nil && s.busy.Load() {
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "too many recipients"}
	}
	s.n++
	return nil
}
func (s *batchSession) Data(r io.Reader) error {
	io.Copy(io.Discard, r)
	s.mu.Lock()
	*s.sizes = append(*s.sizes, s.n)
	s.mu.Unlock()
	return nil
}

// TestParcelSplitsOnLimits: 100 recipients of one message go in as few
// transactions as the upstream allows — split where it answers 452, or
// where its LIMITS RCPTMAX says — and every recipient is delivered once.
func TestParcelSplitsOnLimits(t *testing.T) {
	for _, tc := range []struct {
		name            string
		perTxn, rcptMax int
		want            []int
	}{
		{"452 after 30", 30, 0, []int{30, 30, 30, 10}},
		{"RCPTMAX=40", 0, 40, []int{40, 40, 20}},
		{"no limit", 0, 0, []int{100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var sizes []int
			srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
				return &batchSession{perTxn: tc.perTxn, mu: &mu, sizes: &sizes}, nil
			}))
			srv.Domain = "upstream.test"
			srv.MaxRecipients = tc.rcptMax
			srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(l)
			t.Cleanup(func() { srv.Close() })
			h, err := NewSmarthost(SmarthostOptions{Addr: l.Addr().String(), TLSMode: config.TLSNone, Hostname: "relay.kadenz.test",
				ConnectTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			s := h.NewSender()
			defer s.Close()
			p := Parcel{From: "crm@sender.test", Body: []byte("Subject: x\r\n\r\nx\r\n")}
			for i := range 100 {
				p.Envelopes = append(p.Envelopes, store.Envelope{ID: fmt.Sprintf("m-%d", i+1), To: fmt.Sprintf("r%d@example.test", i)})
			}
			for i, err := range s.Send(context.Background(), p) {
				if err != nil {
					t.Errorf("recipient %d: %v", i, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(sizes) != fmt.Sprint(tc.want) {
				t.Errorf("transactions of %v recipients, want %v", sizes, tc.want)
			}
		})
	}
}

// A 452 at the very first RCPT defers the whole parcel (temporarily), and
// leaves the connection fit for the next message.
func TestParcelDeferredByImmediate452(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	var busy atomic.Bool
	busy.Store(true)
	var conns atomic.Int32
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		conns.Add(1)
		return &batchSession{busy: &busy, mu: &mu, sizes: &sizes}, nil
	}))
	srv.Domain = "upstream.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	h, err := NewSmarthost(SmarthostOptions{Addr: l.Addr().String(), TLSMode: config.TLSNone, Hostname: "relay.kadenz.test",
		ConnectTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := h.NewSender()
	defer s.Close()
	p := Parcel{From: "crm@sender.test", Body: []byte("Subject: x\r\n\r\nx\r\n"),
		Envelopes: []store.Envelope{{ID: "m-1", To: "a@example.test"}, {ID: "m-2", To: "b@example.test"}}}
	for i, err := range s.Send(context.Background(), p) {
		if err == nil || IsPermanent(err) {
			t.Errorf("recipient %d under a 452: %v, want a temporary error", i, err)
		}
	}
	busy.Store(false)
	for i, err := range s.Send(context.Background(), p) {
		if err != nil {
			t.Errorf("recipient %d once the upstream has room: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(sizes) != "[2]" {
		t.Errorf("transactions %v, want one of 2", sizes)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1: the first one was left mid-transaction", n)
	}
}
