package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// startRefusingRecorder is a recording upstream (bounce_e2e_test.go) that
// refuses RCPT TO for the addresses its table names (a synchronous
// refusal) and keeps the copies it accepts by Message-ID and recipient:
// one message to several recipients arrives once per envelope.
func startRefusingRecorder(t *testing.T, refuse map[string]*smtp.SMTPError) *recordingUpstream {
	t.Helper()
	return startUpstreamRecorder(t, refuse, true)
}

// crlf turns a message written with LF line ends into the CRLF form mail
// stores hold.
func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n"))
}

// headerOf returns the header section of a delivered copy.
func headerOf(t *testing.T, c upstreamCopy) string {
	t.Helper()
	end := bytes.Index(c.Data, []byte("\r\n\r\n"))
	if end < 0 {
		t.Fatal("delivered message has no header end")
	}
	return string(c.Data[:end])
}

// TestFeedbackClassesEndToEnd drives the real binary with real mail: a
// Dovecot feedback mailbox fed by dovecot-lda and a smarthost on loopback.
// It checks the classification policy where it matters to a sender:
//
//   - a mailbox-full DSN (5.2.2) leaves the customer reachable: one soft
//     bounce counted, not suppressed;
//   - an ARF report naming three recipients suppresses all three;
//   - an ARF report whose recipient is redacted is attributed through the
//     X-Kadenz-Envelope of the original embedded in it;
//   - a mailing-list notice answering our mail is neither a reply (no
//     pause) nor a bounce (no suppression);
//   - the smarthost's 550 5.1.1 at RCPT TO suppresses the address, with
//     the reason and status in the decision record.
func TestFeedbackClassesEndToEnd(t *testing.T) {
	d := startDovecot(t)
	up := startRefusingRecorder(t, map[string]*smtp.SMTPError{
		"gone@example.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<gone@example.test>: Recipient address rejected: User unknown"},
	})
	admin, token := freeAddr(t), "e2e-feedback-token"
	r := startRelay(t, relayOptions{
		Upstream: up.Addr,
		Args:     []string{"--admin", admin, "--clock", "virtual:2026-11-23T10:00:00Z"},
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
    - name: feedback
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
	send := func(class, id string, to ...string) {
		t.Helper()
		c, err := dialSMTP(r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := fmt.Sprintf("From: Shop News <news@shop.test>\r\nTo: %s\r\nSubject: Winter boots\r\nMessage-ID: <%s>\r\n"+
			"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nX-Kadenz-Class: %s\r\n\r\nHello.\r\n", strings.Join(to, ", "), id, class)
		if err := c.Mail("news@shop.test", nil); err != nil {
			t.Fatal(err)
		}
		for _, a := range to {
			if err := c.Rcpt(a, nil); err != nil {
				t.Fatal(err)
			}
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(msg))
		if err := w.Close(); err != nil {
			t.Fatalf("submitting %s: %v", id, err)
		}
		c.Quit()
	}
	send("marketing", "full.fb@shop.test", "full@example.test")
	send("marketing", "multi.fb@shop.test", "r1@example.test", "r2@example.test", "r3@example.test")
	send("marketing", "red.fb@shop.test", "red@example.test")
	send("transactional", "gone.fb@shop.test", "gone@example.test")
	advanceClock(t, admin, token, "6m")
	copies := map[string]upstreamCopy{}
	for _, k := range []string{"full.fb@shop.test full@example.test", "multi.fb@shop.test r1@example.test",
		"multi.fb@shop.test r2@example.test", "multi.fb@shop.test r3@example.test", "red.fb@shop.test red@example.test"} {
		if !waitFor(20*time.Second, func() bool { c, ok := up.message(k); copies[k] = c; return ok }) {
			t.Fatalf("%s never reached the smarthost", k)
		}
	}

	// The smarthost's refusal at RCPT TO: suppressed, source smarthost.
	suppressions := func() map[string]string {
		var list []struct{ Address, Reason, Source string }
		out := kadenzCLI(t, admin, token, "suppress", "--json", "ls")
		if err := json.Unmarshal(out, &list); err != nil {
			t.Fatalf("suppress ls --json: %v\n%s", err, out)
		}
		m := map[string]string{}
		for _, s := range list {
			m[s.Address] = s.Reason + "/" + s.Source
		}
		return m
	}
	if !waitFor(20*time.Second, func() bool { return suppressions()["gone@example.test"] == "hard bounce/smarthost" }) {
		t.Fatalf("gone@ after 550 5.1.1 at RCPT: suppression list %v", suppressions())
	}

	full := copies["full.fb@shop.test full@example.test"]
	d.deliverLDA(t, d.conf, "", full.From, crlf(fmt.Sprintf(`Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.test>
To: %s
Subject: Undelivered Mail Returned to Sender
Date: Mon, 23 Nov 2026 10:07:00 +0000
Message-ID: <dsn-full.fb@mx.example.test>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain

This is the mail system at host mx.example.test.

<full@example.test>: host mx.example.test[192.0.2.9] said: 552 5.2.2
    <full@example.test>: Mailbox full (in reply to RCPT TO command)

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.test

Final-Recipient: rfc822; full@example.test
Action: failed
Status: 5.2.2
Diagnostic-Code: smtp; 552 5.2.2 <full@example.test>: Mailbox full

--b1
Content-Type: text/rfc822-headers

%s
--b1--
`, full.From, headerOf(t, full))))

	multi := copies["multi.fb@shop.test r1@example.test"]
	arf := func(id, rcptFields, mailFrom, embedded string) []byte {
		return crlf(fmt.Sprintf(`From: Feedback Loop <fbl@isp.example.test>
To: abuse@shop.test
Subject: Abuse report
Date: Mon, 23 Nov 2026 12:00:00 +0000
Message-ID: <%s@isp.example.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="arf"

--arf
Content-Type: text/plain

A recipient reported this message as spam.

--arf
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Mail-From: %s
%sArrival-Date: Mon, 23 Nov 2026 10:06:00 +0000
Source-IP: 192.0.2.200

--arf
Content-Type: text/rfc822-headers

%s
--arf--
`, id, mailFrom, rcptFields, embedded))
	}
	d.deliverLDA(t, d.conf, "fbl@isp.example.test", "abuse@shop.test", arf("arf-multi", "Original-Rcpt-To: <r1@example.test>\nOriginal-Rcpt-To: <r2@example.test>\nOriginal-Rcpt-To: <r3@example.test>\n",
		"<news@shop.test>", headerOf(t, multi)))
	// Redacted: no recipient, no VERP return path; only the embedded
	// original's X-Kadenz-Envelope says who it was.
	red := copies["red.fb@shop.test red@example.test"]
	redHeader := strings.ReplaceAll(headerOf(t, red), "red@example.test", "redacted@example.test")
	if !strings.Contains(redHeader, "X-Kadenz-Envelope:") {
		t.Fatalf("delivered copy without X-Kadenz-Envelope:\n%s", redHeader)
	}
	d.deliverLDA(t, d.conf, "fbl@isp.example.test", "abuse@shop.test", arf("arf-red", "Original-Rcpt-To: redacted@example.test\n", "<redacted@shop.test>", redHeader))
	// A list server's notice answering our mail.
	d.deliverLDA(t, d.conf, "", full.From, crlf(`From: announce-owner@lists.example.test
To: `+full.From+`
Subject: Re: Winter boots
Date: Mon, 23 Nov 2026 10:08:00 +0000
Message-ID: <mm-1@lists.example.test>
In-Reply-To: <full.fb@shop.test>
Precedence: bulk
List-Id: <announce.lists.example.test>
X-Mailman-Version: 3.3.8
Content-Type: text/plain; charset=us-ascii

Your message to Announce is being held until the list moderator can review it.
`))
	if !waitFor(30*time.Second, func() bool { return len(d.files("Done")) == 4 && len(d.files("")) == 0 }) {
		t.Fatalf("the four messages were not all handled: INBOX %q, Done %q", d.files(""), d.files("Done"))
	}

	sup := suppressions()
	for _, a := range []string{"r1@example.test", "r2@example.test", "r3@example.test", "red@example.test"} {
		if sup[a] != "complaint/imap" {
			t.Errorf("%s: suppression %q, want complaint/imap (list %v)", a, sup[a], sup)
		}
	}
	if _, ok := sup["full@example.test"]; ok {
		t.Errorf("mailbox full suppressed the customer: %v", sup)
	}
	for a := range sup {
		if strings.Contains(a, "redacted") || strings.Contains(a, "lists.example.test") {
			t.Errorf("%s on the suppression list", a)
		}
	}
	profile := func(addr string) map[string]any {
		var v struct {
			Profile map[string]any `json:"profile"`
		}
		out := kadenzCLI(t, admin, token, "profile", "--json", addr)
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("profile --json %s: %v\n%s", addr, err, out)
		}
		return v.Profile
	}
	if p := profile("full@example.test"); p["soft_bounces"] != float64(1) || p["hard_bounced"] != nil {
		t.Errorf("full@'s profile after a mailbox-full DSN: soft_bounces %v, hard_bounced %v; want 1 and none", p["soft_bounces"], p["hard_bounced"])
	} else if lb, _ := p["last_bounce"].(map[string]any); lb["reason"] != "mailbox-full" || lb["status"] != "5.2.2" {
		t.Errorf("full@'s last bounce: %v, want mailbox-full 5.2.2", p["last_bounce"])
	}
	// A reply would have made a profile for its writer (engagement and a
	// pause); the list's address must have none.
	cmd := exec.Command(kadenzBin, "profile", "--json", "announce-owner@lists.example.test")
	cmd.Env = append(os.Environ(), "KADENZ_ADMIN="+admin, "KADENZ_ADMIN_TOKEN="+token)
	if out, err := cmd.CombinedOutput(); err == nil || !bytes.Contains(out, []byte("nothing is stored about")) {
		t.Errorf("the list notice left a profile behind (read as a reply?): %v\n%s", err, out)
	}
	if !bytes.Contains(r.log.bytes(), []byte("format=auto-generated")) {
		t.Errorf("no log line records the list notice as auto-generated")
	}
	envs := explainEnvelopes(t, admin, token, "gone.fb@shop.test")
	if len(envs) != 1 || envs[0].State != "failed" {
		t.Fatalf("gone@'s receipt: %+v", envs)
	}
	r.stop(10 * time.Second)
}
