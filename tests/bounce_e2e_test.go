package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// recordingUpstream is a smarthost that offers DSN (RFC 3461) and keeps
// each message with its envelope: the return path and ENVID it came with.
type recordingUpstream struct {
	Addr string
	// refuse answers RCPT TO for these (lower-case) addresses with its
	// error; byRecipient keys copies by Message-ID and recipient.
	refuse      map[string]*smtp.SMTPError
	byRecipient bool
	mu          sync.Mutex
	got         map[string]upstreamCopy // by Message-ID (and recipient)
}

type upstreamCopy struct {
	From, EnvID, To string
	Data            []byte
}

func startRecordingUpstream(t *testing.T) *recordingUpstream {
	t.Helper()
	return startUpstreamRecorder(t, nil, false)
}

func startUpstreamRecorder(t *testing.T, refuse map[string]*smtp.SMTPError, byRecipient bool) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{got: map[string]upstreamCopy{}, refuse: refuse, byRecipient: byRecipient}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Addr = l.Addr().String()
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &recordingSession{u: u}, nil }))
	s.Domain = "smarthost.test"
	s.EnableDSN = true
	s.ReadTimeout, s.WriteTimeout = 30*time.Second, 30*time.Second
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return u
}

func (u *recordingUpstream) message(id string) (upstreamCopy, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	c, ok := u.got[id]
	return c, ok
}

type recordingSession struct {
	u   *recordingUpstream
	cur upstreamCopy
}

func (s *recordingSession) Reset()        { s.cur = upstreamCopy{} }
func (s *recordingSession) Logout() error { return nil }
func (s *recordingSession) Mail(from string, o *smtp.MailOptions) error {
	s.cur.From = from
	if o != nil {
		s.cur.EnvID = o.EnvelopeID
	}
	return nil
}
func (s *recordingSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if e := s.u.refuse[strings.ToLower(to)]; e != nil {
		return e
	}
	s.cur.To = to
	return nil
}
func (s *recordingSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	hdr, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(data))).ReadMIMEHeader()
	c := s.cur
	c.Data = data
	key := strings.Trim(hdr.Get("Message-Id"), "<>")
	if s.u.byRecipient {
		key += " " + strings.ToLower(c.To)
	}
	s.u.mu.Lock()
	s.u.got[key] = c
	s.u.mu.Unlock()
	return nil
}

// kadenzCLI runs a kadenz command against the running daemon's admin API.
func kadenzCLI(t *testing.T, admin, token string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(kadenzBin, args...)
	cmd.Env = append(os.Environ(), "KADENZ_ADMIN="+admin, "KADENZ_ADMIN_TOKEN="+token)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("kadenz %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// advanceClock moves the daemon's virtual clock.
func advanceClock(t *testing.T, admin, token, by string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+admin+"/v1/clock", strings.NewReader(`{"advance":"`+by+`"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/clock advance %s: %s %s", by, resp.Status, body)
	}
}

// explainedEnvelope is the part of `kadenz explain --json` this test reads.
type explainedEnvelope struct {
	ID        string `json:"id"`
	To        string `json:"to"`
	State     string `json:"state"`
	Decisions []struct {
		Action      string   `json:"action"`
		Reasons     []string `json:"reasons"`
		Explanation string   `json:"explanation"`
	} `json:"decisions"`
}

func explainEnvelopes(t *testing.T, admin, token, id string) []explainedEnvelope {
	t.Helper()
	var ex struct {
		Envelopes []explainedEnvelope `json:"envelopes"`
	}
	out := kadenzCLI(t, admin, token, "explain", "--json", id)
	if err := json.Unmarshal(out, &ex); err != nil {
		t.Fatalf("explain --json %s: %v\n%s", id, err, out)
	}
	return ex.Envelopes
}

// deliverLDA hands a message to Dovecot's own delivery agent, as the MTA
// of the bounce domain would: dovecot-lda -d USER reads it from stdin and
// stores it in the user's INBOX.
func (d *dovecot) deliverLDA(t *testing.T, confPath, from, to string, msg []byte) {
	t.Helper()
	lda := "/usr/lib/dovecot/dovecot-lda"
	if _, err := os.Stat(lda); err != nil {
		lda = requireProgram(t, "dovecot-lda")
	}
	cmd := exec.Command(lda, "-c", confPath, "-d", d.User, "-f", from, "-a", to)
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		logText, _ := os.ReadFile(d.log)
		t.Fatalf("dovecot-lda: %v\n%s\n%s", err, out, logText)
	}
}

// TestDovecotBounceSuppressesNextMarketing is the feedback loop end to end,
// with nothing but real programs and protocols between the parts: marketing
// mail submitted over SMTP is released and delivered to the smarthost with
// a VERP return path, ENVID and X-Kadenz-Envelope; the DSN a receiving
// server would send for it (5.1.1, to that return path) is delivered into a
// real Dovecot by dovecot-lda; kadenz reads it over IMAP, puts the
// recipient on the suppression list, suppresses their next marketing mail
// with reason "hard bounce" — and still delivers their receipts.
//
// The DSN names a forwarding address as its Final-Recipient, as bounces
// from a forwarded mailbox do: only the envelope ID it carries ties it to
// the recipient kadenz sent to.
func TestDovecotBounceSuppressesNextMarketing(t *testing.T) {
	d := startDovecot(t)
	up := startRecordingUpstream(t)
	admin, token := freeAddr(t), "e2e-admin-token"
	const rcpt = "ann@example.test"
	r := startRelay(t, relayOptions{
		Upstream: up.Addr,
		Args:     []string{"--admin", admin, "--clock", "virtual:2026-11-23T10:00:00Z"}, // a Monday morning
		Config: fmt.Sprintf(`hostname: relay.shop.test
admin:
  token: %s
delivery:
  tls: none
  retry_initial: 1s
governor:
  mode: enforce
feedback:
  verp:
    domain: bounces.shop.test
  mailboxes:
    - name: bounces
      address: %s
      tls: none
      username: %s
      password: %s
      processed: flag
      move_to: Done
      schedule: "@every 1m"
      idle: true
`, token, d.Addr, d.User, d.Password)})
	if err := waitListening(admin, 20*time.Second, r.exited); err != nil {
		t.Fatal(err)
	}

	send := func(class, id, subject string) {
		t.Helper()
		c, err := dialSMTP(r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := fmt.Sprintf("From: Shop News <news@shop.test>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"+
			"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nX-Kadenz-Class: %s\r\n\r\nHello Ann.\r\n", rcpt, subject, id, class)
		if err := submit(c, "news@shop.test", rcpt, []byte(msg)); err != nil {
			t.Fatalf("submitting %s: %v", id, err)
		}
		c.Quit()
	}

	// 1. The first marketing mail is held for the hold window, then released.
	send("marketing", "m1.e2e@shop.test", "Winter boots")
	advanceClock(t, admin, token, "6m")
	var first upstreamCopy
	if !waitFor(20*time.Second, func() bool { var ok bool; first, ok = up.message("m1.e2e@shop.test"); return ok }) {
		t.Fatalf("the first marketing mail never reached the smarthost: %+v", explainEnvelopes(t, admin, token, "m1.e2e@shop.test"))
	}
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(first.Data))).ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	envID := hdr.Get("X-Kadenz-Envelope")
	if envID == "" || first.EnvID != envID || first.From != "bounce+"+envID+"@bounces.shop.test" {
		t.Fatalf("delivered with return path %q, ENVID %q, X-Kadenz-Envelope %q: want all three to name the envelope",
			first.From, first.EnvID, envID)
	}

	// 2. The recipient's server refuses it later: a DSN to the VERP return
	// path, carrying the ENVID and the delivered message's header.
	headerEnd := bytes.Index(first.Data, []byte("\r\n\r\n"))
	if headerEnd < 0 {
		t.Fatal("delivered message has no header end")
	}
	dsn := fmt.Sprintf(`Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.test>
To: %[1]s
Subject: Undelivered Mail Returned to Sender
Date: Mon, 23 Nov 2026 10:07:00 +0000
Message-ID: <dsn-1.e2e@mx.example.test>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

Your message could not be delivered: the mailbox ann.forwarded@mailbox.example.test does not exist.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.test
Original-Envelope-Id: %[2]s
Arrival-Date: Mon, 23 Nov 2026 10:06:30 +0000

Final-Recipient: rfc822; ann.forwarded@mailbox.example.test
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <ann.forwarded@mailbox.example.test>: Recipient address rejected: User unknown

--b1
Content-Type: text/rfc822-headers

%[3]s
--b1--
`, first.From, envID, first.Data[:headerEnd])
	dsn = strings.ReplaceAll(strings.ReplaceAll(dsn, "\r\n", "\n"), "\n", "\r\n")
	d.deliverLDA(t, d.conf, "", first.From, []byte(dsn))
	delivered := time.Now()

	// 3. kadenz reads it out of Dovecot and lists the recipient.
	var listed bool
	waitFor(20*time.Second, func() bool {
		var list []struct{ Address, Reason, Source string }
		out := kadenzCLI(t, admin, token, "suppress", "--json", "ls")
		if err := json.Unmarshal(out, &list); err != nil {
			t.Fatalf("suppress ls --json: %v\n%s", err, out)
		}
		for _, s := range list {
			if s.Address == rcpt && s.Reason == "hard bounce" && s.Source == "imap" {
				listed = true
			}
		}
		return listed
	})
	if !listed {
		t.Fatalf("%s is not on the suppression list with reason hard bounce: %s\nDovecot INBOX %q, Done %q", rcpt,
			kadenzCLI(t, admin, token, "suppress", "--json", "ls"), d.files(""), d.files("Done"))
	}

	t.Logf("on the suppression list %v after dovecot-lda returned (polled every 50 ms through the CLI)", time.Since(delivered).Round(time.Millisecond))
	if !waitFor(10*time.Second, func() bool { return len(d.files("Done")) == 1 && len(d.files("")) == 0 }) {
		t.Errorf("the DSN was not moved to Done: INBOX %q, Done %q", d.files(""), d.files("Done"))
	}

	// 4. Their next marketing mail is suppressed, their receipt delivered.
	send("marketing", "m2.e2e@shop.test", "More winter boots")
	send("transactional", "t1.e2e@shop.test", "Your order 1234")
	if !waitFor(20*time.Second, func() bool { _, ok := up.message("t1.e2e@shop.test"); return ok }) {
		t.Fatalf("the receipt to a suppressed address was not delivered: %+v", explainEnvelopes(t, admin, token, "t1.e2e@shop.test"))
	}
	advanceClock(t, admin, token, "6m")
	var env explainedEnvelope
	if !waitFor(20*time.Second, func() bool {
		envs := explainEnvelopes(t, admin, token, "m2.e2e@shop.test")
		if len(envs) != 1 {
			t.Fatalf("m2 has %d envelopes", len(envs))
		}
		env = envs[0]
		return env.State == "suppressed"
	}) {
		t.Fatalf("the next marketing mail was not suppressed: %+v", env)
	}
	last := env.Decisions[len(env.Decisions)-1]
	if last.Action != "suppress" || !strings.Contains(last.Explanation, "hard bounce") {
		t.Fatalf("m2's decision: %+v, want suppress with reason hard bounce", last)
	}
	t.Logf("m2: %s: %s (%v)", last.Action, last.Explanation, last.Reasons)
	if _, ok := up.message("m2.e2e@shop.test"); ok {
		t.Fatal("the suppressed marketing mail reached the smarthost")
	}
	r.stop(10 * time.Second)
}
