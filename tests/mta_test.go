package tests

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-smtp"
)

// mtaUpstream is an in-process go-smtp smarthost that records whole
// transactions (return path, recipients with their DSN parameters, data)
// and refuses recipients by their local part: "bad..." with 550 5.1.1,
// "later..." with 451 4.2.0 every time.
type mtaUpstream struct {
	Addr string

	mu   sync.Mutex
	txns []mtaTxn
	helo []string
}

type mtaTxn struct {
	From     string
	Mail     smtp.MailOptions
	To       []string
	RcptOpts []smtp.RcptOptions
	Data     []byte
}

func startMTAUpstream(t *testing.T, utf8, dsn bool) *mtaUpstream {
	t.Helper()
	u := &mtaUpstream{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Addr = l.Addr().String()
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		u.mu.Lock()
		u.helo = append(u.helo, c.Hostname())
		u.mu.Unlock()
		return &mtaSession{u: u}, nil
	}))
	s.Domain = "upstream.test"
	s.ReadTimeout, s.WriteTimeout = 30*time.Second, 30*time.Second
	s.MaxRecipients = 1000
	s.EnableSMTPUTF8 = utf8
	s.EnableDSN = dsn
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return u
}

// transactions returns a copy of what arrived so far.
func (u *mtaUpstream) transactions() []mtaTxn {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]mtaTxn(nil), u.txns...)
}

// waitTxn waits until a transaction matching ok has arrived and returns it.
func (u *mtaUpstream) waitTxn(t *testing.T, what string, ok func(mtaTxn) bool) mtaTxn {
	t.Helper()
	var found mtaTxn
	if !waitFor(30*time.Second, func() bool {
		for _, x := range u.transactions() {
			if ok(x) {
				found = x
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no %s reached the upstream within 30s; it got %d transactions", what, len(u.transactions()))
	}
	return found
}

// reportsTo lists the transactions from the null sender (reports).
func (u *mtaUpstream) reports() []mtaTxn {
	var out []mtaTxn
	for _, x := range u.transactions() {
		if x.From == "" {
			out = append(out, x)
		}
	}
	return out
}

type mtaSession struct {
	u   *mtaUpstream
	cur mtaTxn
}

func (s *mtaSession) Reset()        { s.cur = mtaTxn{} }
func (s *mtaSession) Logout() error { return nil }
func (s *mtaSession) Mail(from string, o *smtp.MailOptions) error {
	s.cur = mtaTxn{From: from}
	if o != nil {
		s.cur.Mail = *o
	}
	return nil
}

func (s *mtaSession) Rcpt(to string, o *smtp.RcptOptions) error {
	switch {
	case strings.HasPrefix(to, "bad"):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	case strings.HasPrefix(to, "later"):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "mailbox busy, try later"}
	}
	s.cur.To = append(s.cur.To, to)
	var ro smtp.RcptOptions
	if o != nil {
		ro = *o
	}
	s.cur.RcptOpts = append(s.cur.RcptOpts, ro)
	return nil
}

func (s *mtaSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = b
	s.u.mu.Lock()
	s.u.txns = append(s.u.txns, s.cur)
	s.u.mu.Unlock()
	return nil
}

// mtaSubmit sends one message through the relay with go-smtp's client.
func mtaSubmit(t *testing.T, addr, from string, mail *smtp.MailOptions, rcpts []string, rcptOpts []*smtp.RcptOptions, msg string) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("crm.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, mail); err != nil {
		return err
	}
	for i, to := range rcpts {
		var o *smtp.RcptOptions
		if i < len(rcptOpts) {
			o = rcptOpts[i]
		}
		if err := c.Rcpt(to, o); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	io.WriteString(w, msg)
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// report is a parsed delivery status notification.
type report struct {
	Header     message.Header
	PerMsg     textproto.MIMEHeader
	PerRcpt    []textproto.MIMEHeader
	Human      string
	Returned   string // content type of the third part
	StatusType string // content type of the second part
	Original   []byte
}

// parseReport reads a DSN with go-message and checks its RFC 3462/3464
// shape: multipart/report; report-type=delivery-status with a human part,
// a message/delivery-status part and the returned message or header.
func parseReport(t *testing.T, data []byte) report {
	t.Helper()
	e, err := message.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("report does not parse: %v\n%s", err, data)
	}
	var r report
	r.Header = e.Header
	ct, params, err := e.Header.ContentType()
	if err != nil || ct != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("report Content-Type = %q %v (%v), want multipart/report; report-type=delivery-status", ct, params, err)
	}
	mr := e.MultipartReader()
	var types []string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("report parts: %v", err)
		}
		pct, _, _ := p.Header.ContentType()
		types = append(types, pct)
		body, _ := io.ReadAll(p.Body)
		switch len(types) {
		case 1:
			r.Human = string(body)
		case 2:
			tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(body, '\r', '\n'))))
			if r.PerMsg, err = tr.ReadMIMEHeader(); err != nil {
				t.Fatalf("per-message fields: %v\n%s", err, body)
			}
			for {
				h, err := tr.ReadMIMEHeader()
				if len(h) > 0 {
					r.PerRcpt = append(r.PerRcpt, h)
				}
				if err != nil {
					break
				}
			}
		case 3:
			r.Returned, r.Original = pct, body
		}
	}
	if len(types) != 3 || types[0] != "text/plain" ||
		types[1] != "message/delivery-status" && types[1] != "message/global-delivery-status" {
		t.Fatalf("report parts %v, want text/plain, message/(global-)delivery-status, then the original", types)
	}
	r.StatusType = types[1]
	return r
}

// TestReportOnSmarthostRefusal: the smarthost refuses one recipient of a
// message with 550 5.1.1; the sender gets one RFC 3464 report from <> with
// the upstream's status and diagnostic, the other recipient gets the mail
// with the client's DSN parameters passed on. A recipient with NOTIFY=NEVER
// and a message from the null sender earn no report.
func TestReportOnSmarthostRefusal(t *testing.T) {
	up := startMTAUpstream(t, false, true)
	// One delivery worker: envelopes are tried in the order they arrived,
	// so when the report on the last one is in, every earlier decision to
	// report or not has been made (and its report would have come first).
	r := startRelay(t, relayOptions{Upstream: up.Addr, Config: "hostname: relay.kadenz.test\ndelivery:\n  concurrency: 1\n"})

	never := &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyNever}}
	if err := mtaSubmit(t, r.Addr, "crm@sender.test", nil, []string{"bad-never@receiver.test"}, []*smtp.RcptOptions{never},
		"Subject: never\r\n\r\nno report wanted\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := mtaSubmit(t, r.Addr, "", nil, []string{"bad-null@receiver.test"}, nil,
		"Subject: from null\r\n\r\na report itself\r\n"); err != nil {
		t.Fatal(err)
	}
	ok := &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure}, OriginalRecipientType: smtp.DSNAddressTypeRFC822,
		OriginalRecipient: "ok-orig@receiver.test"}
	err := mtaSubmit(t, r.Addr, "crm@sender.test", &smtp.MailOptions{EnvelopeID: "crm-envid-42", Return: smtp.DSNReturnHeaders},
		[]string{"ok@receiver.test", "bad-user@receiver.test", "bad-other@receiver.test"}, []*smtp.RcptOptions{ok, nil, nil},
		"From: crm@sender.test\r\nSubject: password reset\r\nMessage-ID: <reset-1@sender.test>\r\n\r\nyour link\r\n")
	if err != nil {
		t.Fatal(err)
	}

	got := up.waitTxn(t, "delivery to ok@", func(x mtaTxn) bool { return len(x.To) == 1 && x.To[0] == "ok@receiver.test" })
	if n := bytes.Count(got.Data, []byte("Message-ID:")); n != 1 {
		t.Errorf("%d Message-ID fields, want only the client's own", n)
	}
	if got.Mail.EnvelopeID != "crm-envid-42" || got.Mail.Return != smtp.DSNReturnHeaders {
		t.Errorf("upstream got ENVID %q RET %q, want the client's crm-envid-42 and HDRS", got.Mail.EnvelopeID, got.Mail.Return)
	}
	if o := got.RcptOpts[0]; len(o.Notify) != 1 || o.Notify[0] != smtp.DSNNotifyFailure || o.OriginalRecipient != "ok-orig@receiver.test" {
		t.Errorf("upstream got RCPT options %+v, want NOTIFY=FAILURE ORCPT=rfc822;ok-orig@receiver.test", o)
	}

	dsn := up.waitTxn(t, "report about bad-user@", func(x mtaTxn) bool {
		return x.From == "" && bytes.Contains(x.Data, []byte("bad-user@receiver.test"))
	})
	if len(dsn.To) != 1 || dsn.To[0] != "crm@sender.test" {
		t.Errorf("report went to %v, want the envelope sender crm@sender.test", dsn.To)
	}
	rep := parseReport(t, dsn.Data)
	if v := rep.PerMsg.Get("Reporting-MTA"); v != "dns; relay.kadenz.test" {
		t.Errorf("Reporting-MTA = %q", v)
	}
	if v := rep.PerMsg.Get("Original-Envelope-Id"); v != "crm-envid-42" {
		t.Errorf("Original-Envelope-Id = %q, want the client's", v)
	}
	// Both refused recipients failed in one transaction: one report names
	// both, the delivered one not at all.
	if len(rep.PerRcpt) != 2 || rep.PerRcpt[1].Get("Final-Recipient") != "rfc822; bad-other@receiver.test" {
		t.Fatalf("report has recipient sections %v, want bad-user@ then bad-other@", rep.PerRcpt)
	}
	want := map[string]string{
		"Final-Recipient": "rfc822; bad-user@receiver.test",
		"Action":          "failed",
		"Status":          "5.1.1",
		"Diagnostic-Code": "smtp; 550 5.1.1 no such user here",
		"Remote-MTA":      "dns; 127.0.0.1",
	}
	for k, v := range want {
		if got := rep.PerRcpt[0].Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if rep.Returned != "text/rfc822-headers" || !bytes.Contains(rep.Original, []byte("Subject: password reset")) ||
		bytes.Contains(rep.Original, []byte("your link")) {
		t.Errorf("returned part %s:\n%s\nwant the original header only (RET=HDRS)", rep.Returned, rep.Original)
	}
	if rep.StatusType != "message/delivery-status" {
		t.Errorf("report on ASCII recipients is %s, want message/delivery-status", rep.StatusType)
	}
	if v := rep.Header.Get("Auto-Submitted"); v != "auto-replied" {
		t.Errorf("Auto-Submitted = %q", v)
	}
	for _, x := range up.reports() {
		if bytes.Contains(x.Data, []byte("bad-never@")) || bytes.Contains(x.Data, []byte("bad-null@")) {
			t.Errorf("a report went out for NOTIFY=NEVER or a null-sender message:\n%s", x.Data)
		}
	}
	if n := len(up.reports()); n != 1 {
		t.Errorf("%d reports went out, want 1", n)
	}
}

// TestOneTransactionPerMessage: a transactional message to 100 recipients
// reaches the smarthost in one SMTP transaction, not 100.
func TestOneTransactionPerMessage(t *testing.T) {
	up := startMTAUpstream(t, false, false)
	r := startRelay(t, relayOptions{Upstream: up.Addr})
	var rcpts []string
	for i := range 100 {
		rcpts = append(rcpts, "member"+strconv.Itoa(i)+"@receiver.test")
	}
	if err := mtaSubmit(t, r.Addr, "crm@sender.test", nil, rcpts, nil, "Subject: to a hundred\r\n\r\nhello all\r\n"); err != nil {
		t.Fatal(err)
	}
	total := func() (n int) {
		for _, x := range up.transactions() {
			n += len(x.To)
		}
		return n
	}
	if !waitFor(30*time.Second, func() bool { return total() >= 100 }) {
		t.Fatalf("%d of 100 recipients reached the upstream within 30s", total())
	}
	if txns := up.transactions(); len(txns) != 1 || len(txns[0].To) != 100 {
		sizes := []int{}
		for _, x := range txns {
			sizes = append(sizes, len(x.To))
		}
		t.Errorf("transactions of %v recipients, want one of 100", sizes)
	}
}

// TestReportOnExpiry: a recipient the upstream defers for ever earns one
// delay notice after delivery.delay_warning and a failure report when the
// queue lifetime runs out, with the whole message returned (RET=FULL).
func TestReportOnExpiry(t *testing.T) {
	up := startMTAUpstream(t, false, false)
	r := startRelay(t, relayOptions{Upstream: up.Addr, Config: `hostname: relay.kadenz.test
delivery:
  retry_initial: 200ms
  retry_max: 400ms
  max_queue_lifetime: 3s
  delay_warning: 1s
`})
	err := mtaSubmit(t, r.Addr, "crm@sender.test", &smtp.MailOptions{Return: smtp.DSNReturnFull, EnvelopeID: "exp-1"},
		[]string{"later@receiver.test", "later-too@receiver.test"}, nil, "Subject: expiring\r\n\r\nbody text to return\r\n")
	if err != nil {
		t.Fatal(err)
	}
	failed := up.waitTxn(t, "failure report", func(x mtaTxn) bool {
		return x.From == "" && bytes.Contains(x.Data, []byte("Action: failed"))
	})
	var delays []mtaTxn
	for _, x := range up.reports() {
		if bytes.Contains(x.Data, []byte("Action: delayed")) {
			delays = append(delays, x)
		}
	}
	// Both recipients are retried together, so each event is one report
	// naming both.
	if len(delays) != 1 {
		t.Fatalf("%d delay notices, want exactly 1 before the failure", len(delays))
	}
	if n := len(parseReport(t, delays[0].Data).PerRcpt); n != 2 {
		t.Errorf("delay notice names %d recipients, want 2", n)
	}
	if n := len(up.reports()); n != 2 {
		t.Errorf("%d reports, want 2 (one delay, one failure)", n)
	}
	d := parseReport(t, delays[0].Data)
	if v := d.PerRcpt[0].Get("Will-Retry-Until"); v == "" {
		t.Errorf("delay notice without Will-Retry-Until: %v", d.PerRcpt[0])
	}
	if d.Returned != "text/rfc822-headers" {
		t.Errorf("delay notice returns %s, want only the header (RFC 3461 4.3)", d.Returned)
	}
	f := parseReport(t, failed.Data)
	if len(failed.To) != 1 || failed.To[0] != "crm@sender.test" {
		t.Errorf("failure report went to %v", failed.To)
	}
	if len(f.PerRcpt) != 2 || f.PerRcpt[1].Get("Final-Recipient") != "rfc822; later-too@receiver.test" {
		t.Fatalf("failure report sections %v, want later@ and later-too@", f.PerRcpt)
	}
	for k, v := range map[string]string{
		"Final-Recipient": "rfc822; later@receiver.test",
		"Action":          "failed",
		"Status":          "4.2.0",
		"Diagnostic-Code": "smtp; 451 4.2.0 mailbox busy, try later",
	} {
		if got := f.PerRcpt[0].Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if f.PerMsg.Get("Original-Envelope-Id") != "exp-1" {
		t.Errorf("Original-Envelope-Id = %q", f.PerMsg.Get("Original-Envelope-Id"))
	}
	if f.Returned != "message/rfc822" || !bytes.Contains(f.Original, []byte("body text to return")) {
		t.Errorf("failure report returns %s:\n%s\nwant the whole message (RET=FULL)", f.Returned, f.Original)
	}
	if !strings.Contains(f.Human, "later@receiver.test") {
		t.Errorf("human part does not name the recipient:\n%s", f.Human)
	}
}

// TestSmtplibBareLFNormalised: Python's sendmail(..., msg.as_bytes())
// sends LF line endings. Kadenz accepts it (intake.bare_newlines:
// normalize, the default) and the upstream gets CRLF only; with
// bare_newlines: reject the same message is refused with 554 5.6.0.
func TestSmtplibBareLFNormalised(t *testing.T) {
	py := requireProgram(t, "python3")
	up := startMTAUpstream(t, false, false)
	const script = `
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "crm@sender.test"
m["To"] = "lf@receiver.test"
m["Subject"] = "as_bytes"
m.set_content("line one\nline two\n.\nline after a dot\n")
assert b"\r" not in m.as_bytes()
try:
    with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20) as s:
        s.sendmail("crm@sender.test", ["lf@receiver.test"], m.as_bytes())
    print("250")
except smtplib.SMTPResponseException as e:
    print(e.smtp_code, e.smtp_error.decode())
`
	run := func(addr string) string {
		host, port, _ := net.SplitHostPort(addr)
		out, err := exec.Command(py, "-c", script, host, port).CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	normal := startRelay(t, relayOptions{Upstream: up.Addr})
	if got := run(normal.Addr); got != "250" {
		t.Fatalf("normalize mode: smtplib got %q, want 250", got)
	}
	x := up.waitTxn(t, "the as_bytes message", func(x mtaTxn) bool { return bytes.Contains(x.Data, []byte("as_bytes")) })
	for i, c := range x.Data {
		if c == '\n' && (i == 0 || x.Data[i-1] != '\r') {
			t.Fatalf("bare LF at offset %d reached the upstream:\n%q", i, x.Data)
		}
	}
	if !bytes.Contains(x.Data, []byte("line one\r\nline two\r\n.\r\nline after a dot\r\n")) {
		t.Errorf("body not CRLF-normalised as sent:\n%q", x.Data)
	}
	// EmailMessage sets neither Message-ID nor Date: Kadenz adds both
	// (intake.add_missing_headers), once.
	hdr, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(x.Data))).ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	if ids := hdr.Values("Message-Id"); len(ids) != 1 || !strings.HasSuffix(ids[0], "@localhost>") {
		t.Errorf("Message-ID fields at the upstream: %q, want one added by Kadenz", ids)
	}
	if dates := hdr.Values("Date"); len(dates) != 1 {
		t.Errorf("Date fields at the upstream: %q, want one added by Kadenz", dates)
	} else if _, err := mail.ParseDate(dates[0]); err != nil {
		t.Errorf("added Date %q does not parse: %v", dates[0], err)
	}
	strict := startRelay(t, relayOptions{Upstream: up.Addr, Config: "intake:\n  bare_newlines: reject\n"})
	if got := run(strict.Addr); !strings.HasPrefix(got, "554 5.6.0") {
		t.Errorf("reject mode: smtplib got %q, want 554 5.6.0", got)
	}
}

// TestSMTPUTF8Relay: a UTF-8 recipient is accepted only with SMTPUTF8,
// reaches an upstream that offers SMTPUTF8, and is reported as failed with
// 5.6.7 when the upstream does not offer it. Addresses with control
// characters are refused; quoted local parts accepted.
func TestSMTPUTF8Relay(t *testing.T) {
	withUTF8 := startMTAUpstream(t, true, false)
	r := startRelay(t, relayOptions{Upstream: withUTF8.Addr})
	msg := "From: jörg@sender.test\r\nSubject: utf8\r\n\r\nHallo Zoë\r\n"
	var se *smtp.SMTPError
	if err := mtaSubmit(t, r.Addr, "crm@sender.test", nil, []string{"zoë@receiver.test"}, nil, msg); !errors.As(err, &se) ||
		se.Code != 553 || se.EnhancedCode != (smtp.EnhancedCode{5, 6, 7}) {
		t.Errorf("UTF-8 recipient without SMTPUTF8: %v, want 553 5.6.7", err)
	}
	if err := mtaSubmit(t, r.Addr, "jörg@sender.test", &smtp.MailOptions{UTF8: true}, []string{"zoë@receiver.test"}, nil, msg); err != nil {
		t.Fatalf("UTF-8 addresses with SMTPUTF8: %v", err)
	}
	x := withUTF8.waitTxn(t, "the UTF-8 message", func(x mtaTxn) bool { return len(x.To) == 1 && x.To[0] == "zoë@receiver.test" })
	if !x.Mail.UTF8 || x.From != "jörg@sender.test" {
		t.Errorf("upstream got MAIL FROM %q SMTPUTF8=%v, want jörg@sender.test with SMTPUTF8", x.From, x.Mail.UTF8)
	}
	for _, bad := range []string{"a\x01b@receiver.test", "a\x7fb@receiver.test", "x@exa_mple.test"} {
		if err := mtaSubmit(t, r.Addr, "crm@sender.test", nil, []string{bad}, nil, "Subject: x\r\n\r\nx\r\n"); !errors.As(err, &se) || se.Code != 553 {
			t.Errorf("RCPT TO:<%q>: %v, want 553", bad, err)
		}
	}
	for _, good := range []string{`"john doe"@receiver.test`} {
		if err := mtaSubmit(t, r.Addr, "crm@sender.test", nil, []string{good}, nil, "Subject: accepted\r\n\r\nx\r\n"); err != nil {
			t.Errorf("RCPT TO:<%s>: %v, want accepted", good, err)
		}
	}

	without := startMTAUpstream(t, false, false)
	r2 := startRelay(t, relayOptions{Upstream: without.Addr})
	if err := mtaSubmit(t, r2.Addr, "crm@sender.test", &smtp.MailOptions{UTF8: true}, []string{"zoë@receiver.test"}, nil, msg); err != nil {
		t.Fatalf("UTF-8 recipient with SMTPUTF8: %v", err)
	}
	dsn := without.waitTxn(t, "report on the UTF-8 recipient", func(x mtaTxn) bool { return x.From == "" })
	rep := parseReport(t, dsn.Data)
	if got := rep.PerRcpt[0].Get("Status"); got != "5.6.7" {
		t.Errorf("Status = %q, want 5.6.7", got)
	}
	if got := rep.PerRcpt[0].Get("Final-Recipient"); got != "utf-8; zoë@receiver.test" {
		t.Errorf("Final-Recipient = %q, want utf-8; zoë@receiver.test (RFC 6533)", got)
	}
	if rep.StatusType != "message/global-delivery-status" {
		t.Errorf("report on a UTF-8 recipient is %s, want message/global-delivery-status (RFC 6533 6)", rep.StatusType)
	}
	for _, x := range without.transactions() {
		for _, to := range x.To {
			if to == "zoë@receiver.test" {
				t.Errorf("the UTF-8 recipient was sent to an upstream without SMTPUTF8")
			}
		}
	}
}

// TestMsmtpAsksForDSN: msmtp (-N, -R) fails outright against a server
// without DSN. Through Kadenz its request reaches a DSN-capable smarthost
// intact; to a smarthost without DSN, its NOTIFY=SUCCESS is answered by
// Kadenz itself with "Action: relayed" (RFC 3461 4.1).
func TestMsmtpAsksForDSN(t *testing.T) {
	msmtp := requireProgram(t, "msmtp")
	rc := filepath.Join(t.TempDir(), "msmtprc")
	if err := os.WriteFile(rc, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	send := func(addr, notify, to string) {
		t.Helper()
		host, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(msmtp, "-C", rc, "--host="+host, "--port="+port, "--auth=off", "--tls=off",
			"--domain=crm.test", "--from=crm@sender.test", "-N", notify, "-R", "hdrs", to)
		cmd.Stdin = strings.NewReader("Subject: msmtp " + notify + "\n\nsent by msmtp\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("msmtp -N %s: %v\n%s", notify, err, out)
		}
	}

	withDSN := startMTAUpstream(t, false, true)
	r := startRelay(t, relayOptions{Upstream: withDSN.Addr})
	send(r.Addr, "failure,delay", "m1@receiver.test")
	x := withDSN.waitTxn(t, "msmtp's message", func(x mtaTxn) bool { return len(x.To) == 1 && x.To[0] == "m1@receiver.test" })
	if x.Mail.Return != smtp.DSNReturnHeaders {
		t.Errorf("upstream got RET=%q, want HDRS", x.Mail.Return)
	}
	if n := x.RcptOpts[0].Notify; len(n) != 2 || n[0] != smtp.DSNNotifyFailure || n[1] != smtp.DSNNotifyDelayed {
		t.Errorf("upstream got NOTIFY=%v, want FAILURE,DELAY", n)
	}
	if len(withDSN.reports()) != 0 {
		t.Errorf("Kadenz reported on a message the DSN-capable upstream took")
	}

	without := startMTAUpstream(t, false, false)
	r2 := startRelay(t, relayOptions{Upstream: without.Addr})
	send(r2.Addr, "success", "m2@receiver.test")
	dsn := without.waitTxn(t, "relayed notice", func(x mtaTxn) bool { return x.From == "" })
	rep := parseReport(t, dsn.Data)
	if len(dsn.To) != 1 || dsn.To[0] != "crm@sender.test" {
		t.Errorf("relayed notice went to %v", dsn.To)
	}
	if got := rep.PerRcpt[0].Get("Action"); got != "relayed" {
		t.Errorf("Action = %q, want relayed", got)
	}
	if got := rep.PerRcpt[0].Get("Status"); got != "2.0.0" {
		t.Errorf("Status = %q, want 2.0.0", got)
	}
}

// TestOverlongLineAnswered: a line in DATA longer than
// intake.max_line_length gets a proper SMTP reply (500 5.5.2), not go-smtp's
// internal error text.
func TestOverlongLineAnswered(t *testing.T) {
	r := startRelay(t, relayOptions{Config: "intake:\n  max_line_length: 1000\n"})
	conn, err := net.DialTimeout("tcp", r.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	tp := textproto.NewConn(conn)
	step := func(want int, line string) string {
		t.Helper()
		if line != "" {
			if err := tp.PrintfLine("%s", line); err != nil {
				t.Fatal(err)
			}
		}
		_, msg, err := tp.ReadResponse(want)
		if err != nil {
			t.Fatalf("%.40q: %v", line, err)
		}
		return msg
	}
	step(220, "")
	step(250, "EHLO client.test")
	step(250, "MAIL FROM:<crm@sender.test>")
	step(250, "RCPT TO:<someone@receiver.test>")
	step(354, "DATA")
	tp.PrintfLine("Subject: long\r\n\r\n%s\r\n.", strings.Repeat("x", 3000))
	code, msg, _ := tp.ReadResponse(0)
	if code != 500 || !strings.HasPrefix(msg, "5.5.2 ") || strings.Contains(msg, "smtp:") {
		t.Errorf("over-long line answered %d %q, want 500 5.5.2 in our words", code, msg)
	}
}

// nodemailerScript sends one message with nodemailer's dsn option (ENVID,
// RET, NOTIFY, ORCPT); nodemailer drops that option silently when the
// server does not offer DSN.
const nodemailerScript = `
const nodemailer = require("nodemailer");
const host = process.env.SMTP_HOST, port = process.env.SMTP_PORT;
const t = nodemailer.createTransport({host, port: Number(port), secure: false, ignoreTLS: true, name: "crm.test"});
t.sendMail({from: "crm@sender.test", to: "nm@receiver.test", subject: "nodemailer dsn", text: "hello",
	dsn: {id: "nm-envid-9", return: "headers", notify: ["failure", "delay"], recipient: "crm@sender.test"}})
	.then(info => console.log(info.response))
	.catch(e => { console.error(String(e)); process.exit(1); });
`

// TestNodemailerDSN: nodemailer's dsn option reaches a DSN-capable
// smarthost through Kadenz, ENVID kept.
func TestNodemailerDSN(t *testing.T) {
	node := requireProgram(t, "node")
	const modules = "/usr/share/nodejs" // Debian's node-nodemailer
	if _, err := os.Stat(filepath.Join(modules, "nodemailer")); err != nil {
		if inCI() {
			t.Fatalf("nodemailer is missing and CI=true: .ci/deps should have installed node-nodemailer (%v)", err)
		}
		t.Skipf("nodemailer not installed (run make deps): %v", err)
	}
	up := startMTAUpstream(t, false, true)
	r := startRelay(t, relayOptions{Upstream: up.Addr})
	host, port, _ := net.SplitHostPort(r.Addr)
	cmd := exec.Command(node, "-e", nodemailerScript)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "SMTP_HOST="+host, "SMTP_PORT="+port)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nodemailer: %v\n%s", err, out)
	}
	x := up.waitTxn(t, "nodemailer's message", func(x mtaTxn) bool { return len(x.To) == 1 && x.To[0] == "nm@receiver.test" })
	if x.Mail.EnvelopeID != "nm-envid-9" || x.Mail.Return != smtp.DSNReturnHeaders {
		t.Errorf("upstream got ENVID %q RET %q, want nm-envid-9 and HDRS", x.Mail.EnvelopeID, x.Mail.Return)
	}
	o := x.RcptOpts[0]
	if len(o.Notify) != 2 || o.Notify[0] != smtp.DSNNotifyFailure || o.Notify[1] != smtp.DSNNotifyDelayed ||
		o.OriginalRecipient != "crm@sender.test" {
		t.Errorf("upstream got RCPT options %+v, want NOTIFY=FAILURE,DELAY ORCPT=rfc822;crm@sender.test", o)
	}
}
