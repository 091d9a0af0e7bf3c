package governor

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"kadenz/governor/feedback/report"
)

// dsnUpstream is a go-smtp server on loopback that advertises DSN and
// records MAIL FROM, its ENVID and the data.
type dsnUpstream struct {
	mu  sync.Mutex
	got []dsnMail
}

type dsnMail struct {
	from, envid string
	data        []byte
}

type dsnSession struct {
	u           *dsnUpstream
	from, envid string
}

func (s *dsnSession) Reset()                               {}
func (s *dsnSession) Logout() error                        { return nil }
func (s *dsnSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *dsnSession) Mail(from string, o *smtp.MailOptions) error {
	s.from, s.envid = from, ""
	if o != nil {
		s.envid = o.EnvelopeID
	}
	return nil
}
func (s *dsnSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	s.u.mu.Lock()
	s.u.got = append(s.u.got, dsnMail{s.from, s.envid, data})
	s.u.mu.Unlock()
	return err
}

func (u *dsnUpstream) mails() []dsnMail {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]dsnMail(nil), u.got...)
}

func startDSNUpstream(t *testing.T) (*dsnUpstream, string) {
	u := &dsnUpstream{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &dsnSession{u: u}, nil }))
	srv.Domain, srv.EnableDSN = "upstream.test", true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return u, l.Addr().String()
}

// Released marketing mail carries its envelope ID three ways (header, VERP
// return path, ENVID); its bytes are otherwise what intake stored. A
// receipt keeps its return path and gets no header, only ENVID.
func TestDeliveryCorrelation(t *testing.T) {
	up, addr := startDSNUpstream(t)
	c := &clock{t: monday10}
	cfg := governedConfig(t, addr)
	cfg.Feedback.VERP.Domain = "bounces.shop.test"
	r := startRelayAt(t, cfg, c)
	receipt := "From: shop@shop.test\r\nSubject: Your receipt\r\nX-Kadenz-Envelope: forged-1\r\n\r\nThanks.\r\n"
	if err := submit(t, dial(t, r), "shop@shop.test", []string{"ann@example.test"}, receipt); err != nil {
		t.Fatal(err)
	}
	msg := marketing("Winter boots", "")
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, msg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 48 && len(up.mails()) < 2; i++ {
		step(t, r, c, 15*time.Minute)
		waitCaughtUp(t, r)
	}
	waitFor(t, "two deliveries", func() bool { return len(up.mails()) == 2 })
	rcpt, mkt := envelopeOf(t, r.DB(), "ann@example.test", 0), envelopeOf(t, r.DB(), "ann@example.test", 1)
	if m, _ := r.DB().Message(rcpt.MessageID); m.Class != "transactional" {
		rcpt, mkt = mkt, rcpt // both arrived in the same millisecond
	}
	got := up.mails() // the receipt first: marketing waited for its hold

	if got[0].from != "shop@shop.test" || got[0].envid != rcpt.ID || bytes.Contains(got[0].data, []byte("X-Kadenz-Envelope")) {
		t.Errorf("receipt: from %q envid %q data %q", got[0].from, got[0].envid, got[0].data)
	}

	m := got[1]
	if want := "bounce+" + mkt.ID + "@bounces.shop.test"; m.from != want || m.envid != mkt.ID {
		t.Errorf("marketing: MAIL FROM %q ENVID %q; want %q and %q", m.from, m.envid, want, mkt.ID)
	}
	if id, ok := report.EnvelopeIDFromVERP(m.from, ""); !ok || id != mkt.ID {
		t.Errorf("the VERP address does not parse back: %q %v", id, ok)
	}
	// Exactly one added header on top, then the Received header, then the
	// submitted bytes without their X-Kadenz-* fields.
	first, rest, _ := bytes.Cut(m.data, []byte("\r\n"))
	if string(first) != "X-Kadenz-Envelope: "+mkt.ID {
		t.Fatalf("first line %q", first)
	}
	if !bytes.HasPrefix(rest, []byte("Received: from ")) {
		t.Fatalf("no Received header after it: %q", rest)
	}
	_, rest, _ = bytes.Cut(rest, []byte("\r\nFrom: "))
	want := strings.Replace(msg, "X-Kadenz-Topics: shoes\r\n", "", 1)
	if got := "From: " + string(rest); got != want {
		t.Errorf("delivered bytes differ from submitted:\n got %q\nwant %q", got, want)
	}
}
