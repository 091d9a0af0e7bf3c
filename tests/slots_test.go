package tests

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

// dialFrom opens an SMTP session to addr from a chosen loopback address
// (on Linux all of 127.0.0.0/8 is the loopback interface), so that one
// machine can play the CRM on a client network and outsiders beside it.
func dialFrom(from, addr string) (*smtp.Client, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = 10 * time.Second
	if err := c.Hello("client.test"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func replyCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// metricValue reads one sample of the relay's /metrics.
func metricValue(t *testing.T, admin, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", sample)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestIdleOutsidersCannotLockOutCRM is the attack on the real
// binary: eight connections from outside client_networks, kept alive with
// NOOP, once took every slot (max_connections 8) and the CRM got 421. Now
// they get only the outsiders' share (6), the CRM submits, the outsiders
// are closed once they have spent their commands, and the metrics say
// what happened.
func TestIdleOutsidersCannotLockOutCRM(t *testing.T) {
	admin := freeAddr(t)
	r := startRelay(t, relayOptions{Args: []string{"--admin", admin}, Config: `
intake:
  client_networks: [127.0.0.1/32]
  max_connections: 8
  reserved_connections: 2
  max_connections_per_client: 4
  max_junk_commands: 6
`})
	var outsiders []*smtp.Client
	refused := 0
	for i := range 8 {
		from := fmt.Sprintf("127.0.0.%d", 2+i%2)
		c, err := dialFrom(from, r.Addr)
		if replyCode(err) == 421 {
			refused++
			continue
		}
		if err != nil {
			t.Fatalf("outsider %d (%s): %v", i, from, err)
		}
		defer c.Close()
		outsiders = append(outsiders, c)
	}
	if len(outsiders) != 6 || refused != 2 {
		t.Errorf("%d outsiders admitted and %d refused, want 6 and 2", len(outsiders), refused)
	}
	// NOOP every so often, as in the issue: they are all still there.
	for _, c := range outsiders {
		if err := c.Noop(); err != nil {
			t.Fatalf("outsider NOOP: %v", err)
		}
	}
	if _, err := dialFrom("127.0.0.9", r.Addr); replyCode(err) != 421 {
		t.Errorf("a ninth outsider got %v, want 421 (the remaining slots are reserved)", err)
	}
	crm, err := dialFrom("127.0.0.1", r.Addr)
	if err != nil {
		t.Fatalf("the CRM on the client network was locked out: %v", err)
	}
	defer crm.Close()
	if err := submit(crm, "crm@shop.test", "ann@example.test", []byte("Subject: receipt\r\n\r\nthanks\r\n")); err != nil {
		t.Fatalf("the CRM could not submit: %v", err)
	}
	for i, c := range outsiders {
		var err error
		for n := 0; n < 20 && err == nil; n++ {
			err = c.Noop()
		}
		if replyCode(err) != 421 {
			t.Errorf("outsider %d was never closed for its NOOPs: %v", i, err)
		}
	}
	if v := metricValue(t, admin, `kadenz_intake_limit_events_total{event="refused_outsiders"}`); v < 1 {
		t.Errorf("refused_outsiders = %v", v)
	}
	if v := metricValue(t, admin, `kadenz_intake_limit_events_total{event="junk_commands"}`); v != 6 {
		t.Errorf("junk_commands = %v, want 6", v)
	}
	if !strings.Contains(string(r.log.bytes()), "reason=junk_commands") {
		t.Errorf("no log line for the closed outsiders")
	}
}

// TestAuthLockoutEngages: after auth_failure_limit wrong passwords, the
// right one is refused with 454 too, from that address and for that user
// from another outside address. (That it lifts after the window is shown
// on an injected clock in governor/intake.)
func TestAuthLockoutEngages(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	admin := freeAddr(t)
	r := startRelay(t, relayOptions{Args: []string{"--admin", admin}, Config: fmt.Sprintf(`
intake:
  client_networks: [127.0.0.1/32]
  allow_insecure_auth: true
  users:
    - name: crm
      password_hash: %q
  auth_failure_limit: 3
  auth_lockout: 1h
`, hash)})
	auth := func(from, password string) error {
		c, err := dialFrom(from, r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Auth(sasl.NewPlainClient("", "crm", password))
	}
	if err := auth("127.0.0.2", "s3cret"); err != nil {
		t.Fatalf("right password before any failure: %v", err)
	}
	for i := range 3 {
		if err := auth("127.0.0.2", fmt.Sprintf("guess%d", i)); replyCode(err) != 535 {
			t.Fatalf("guess %d: %v, want 535", i, err)
		}
	}
	if err := auth("127.0.0.2", "s3cret"); replyCode(err) != 454 {
		t.Errorf("right password from the guessing address: %v, want 454", err)
	}
	if err := auth("127.0.0.3", "s3cret"); replyCode(err) != 454 {
		t.Errorf("right password for the guessed user from another outsider: %v, want 454", err)
	}
	if v := metricValue(t, admin, `kadenz_intake_limit_events_total{event="auth_failed"}`); v != 3 {
		t.Errorf("auth_failed = %v, want 3", v)
	}
	if v := metricValue(t, admin, `kadenz_intake_limit_events_total{event="auth_locked_client"}`); v != 1 {
		t.Errorf("auth_locked_client = %v, want 1", v)
	}
	if !strings.Contains(string(r.log.bytes()), "too many failures") {
		t.Errorf("no log line for the lockout")
	}
}
