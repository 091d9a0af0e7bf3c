package governor

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"kadenz/store"
)

// refusingUpstream is a go-smtp smarthost on loopback that refuses RCPT TO
// with the reply its table names for the address, and accepts the rest.
func refusingUpstream(t *testing.T, replies map[string]*smtp.SMTPError) string {
	t.Helper()
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &refusingSession{replies: replies}, nil
	}))
	srv.Domain = "smarthost.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

type refusingSession struct{ replies map[string]*smtp.SMTPError }

func (s *refusingSession) Reset()                               {}
func (s *refusingSession) Logout() error                        { return nil }
func (s *refusingSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *refusingSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (s *refusingSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if e := s.replies[strings.ToLower(to)]; e != nil {
		return e
	}
	return nil
}

// A smarthost's synchronous refusal goes through the feedback policy: 550
// 5.1.1 at RCPT suppresses the address (source smarthost, reason in the
// decision record), 552 5.2.2 counts a soft bounce and leaves the customer
// reachable, and 554 5.7.1 (our content) changes nothing about them.
func TestSmarthostRefusalAppliedAsBounce(t *testing.T) {
	addr := refusingUpstream(t, map[string]*smtp.SMTPError{
		"gone@example.test":    {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<gone@example.test>: Recipient address rejected: User unknown"},
		"full@example.test":    {Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox full"},
		"careful@example.test": {Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected as spam"},
	})
	r := startRelay(t, testConfig(t, addr))
	for _, to := range []string{"gone@example.test", "full@example.test", "careful@example.test", "fine@example.test"} {
		if err := submit(t, dial(t, r), "crm@shop.test", []string{to}, testMessage); err != nil {
			t.Fatal(err)
		}
	}
	states := func() map[string]store.Envelope {
		out := map[string]store.Envelope{}
		if err := r.DB().Envelopes(func(e store.Envelope) bool { out[e.To] = e; return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	waitFor(t, "three failures and one delivery", func() bool {
		s := states()
		return s["gone@example.test"].State == store.StateFailed && s["full@example.test"].State == store.StateFailed &&
			s["careful@example.test"].State == store.StateFailed && s["fine@example.test"].State == store.StateDelivered
	})
	// Observe runs right after the outcome is stored; poll for its effect.
	var sup store.Suppression
	waitFor(t, "gone@ on the suppression list", func() bool {
		var ok bool
		sup, ok, _ = r.DB().SuppressionOf("gone@example.test")
		return ok
	})
	if sup.Reason != "hard bounce" || sup.Source != "smarthost" {
		t.Errorf("suppression of gone@: %+v, want hard bounce from smarthost", sup)
	}
	if p := profileOf(t, r.DB(), "gone@example.test"); p.HardBounced.IsZero() || p.LastBounce == nil ||
		p.LastBounce.Reason != "user-unknown" || p.LastBounce.Status != "5.1.1" || p.LastBounce.Source != "smarthost" {
		t.Errorf("gone@'s profile: hard bounced %v, last bounce %+v; want user-unknown 5.1.1 from the smarthost", p.HardBounced, p.LastBounce)
	}
	waitFor(t, "a soft bounce counted for full@", func() bool { return profileOf(t, r.DB(), "full@example.test").SoftBounces == 1 })
	if lb := profileOf(t, r.DB(), "full@example.test").LastBounce; lb == nil || lb.Class != "soft" || lb.Reason != "mailbox-full" {
		t.Errorf("full@'s last bounce: %+v, want soft mailbox-full", lb)
	}
	for _, a := range []string{"full@example.test", "careful@example.test", "fine@example.test"} {
		if _, ok, _ := r.DB().SuppressionOf(a); ok {
			t.Errorf("%s was suppressed", a)
		}
	}
	if p := profileOf(t, r.DB(), "careful@example.test"); p.SoftBounces != 0 || !p.HardBounced.IsZero() {
		t.Errorf("a content block touched careful@'s profile: %+v", p)
	}
}
