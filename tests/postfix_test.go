package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// privatePostfix is a Postfix instance of the test's own (queue, config and
// log in a temp dir, smtpd on a loopback port), relaying everything from
// 127.0.0.0/8 to next.
type privatePostfix struct {
	Addr string
	dir  string
}

// startPostfix runs Debian's Postfix as a smarthost that wants STARTTLS
// and checks the client's HELO name when it is given
// (reject_non_fqdn_helo_hostname with smtpd_delay_reject = no), as a careful
// ISP smarthost would, and that does not offer 8BITMIME. It needs root, like any Postfix master.
func startPostfix(t *testing.T, next string) *privatePostfix {
	t.Helper()
	postfix := requireProgram(t, "/usr/sbin/postfix")
	if os.Geteuid() != 0 {
		// Not a missing peer but a missing privilege (a Postfix master
		// starts as root): skipped even under CI=true, and said so.
		t.Skip("a private Postfix master needs root; skipping the Postfix smarthost test")
	}
	// Postfix's daemons run as the postfix user and must reach the queue:
	// a world-searchable directory of our own, not t.TempDir (0700).
	dir, err := os.MkdirTemp("", "kadenz-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	for _, d := range []string{"etc", "queue", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "postfix", filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	cert, key := writeSelfSignedCert(t, filepath.Join(dir, "etc"))
	os.Chmod(key, 0o644)
	p := &privatePostfix{Addr: freeAddr(t), dir: dir}
	master, err := os.ReadFile("/etc/postfix/master.cf")
	if err != nil {
		t.Fatal(err)
	}
	// The shipped master.cf with smtpd on our port and no chroot.
	var mc strings.Builder
	for _, line := range strings.Split(string(master), "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && !strings.HasPrefix(line, "#") && line[0] != ' ' && line[0] != '\t' {
			if f[0] == "smtp" && f[1] == "inet" {
				f[0] = p.Addr
			}
			f[4] = "n"
			line = strings.Join(f, " ")
		}
		mc.WriteString(line + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "master.cf"), []byte(mc.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	mainCf := strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(dir, "queue"),
		"data_directory = " + filepath.Join(dir, "data"),
		"maillog_file = " + filepath.Join(dir, "maillog"),
		"maillog_file_prefixes = " + dir,
		"myhostname = smarthost.postfix.test",
		"mydestination =",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"relayhost = [" + strings.Replace(next, ":", "]:", 1),
		"smtp_tls_security_level = none",
		"smtpd_tls_security_level = encrypt",
		"smtpd_tls_cert_file = " + cert,
		"smtpd_tls_key_file = " + key,
		"smtpd_helo_required = yes",
		"smtpd_delay_reject = no",
		"smtpd_helo_restrictions = reject_non_fqdn_helo_hostname",
		// An old-fashioned smarthost: no 8BITMIME (RFC 6152) on offer.
		"smtpd_discard_ehlo_keywords = 8bitmime",
		"alias_maps =",
		"alias_database =",
		"",
	}, "\n")
	if err := os.WriteFile(filepath.Join(dir, "etc", "main.cf"), []byte(mainCf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(postfix, "-c", filepath.Join(dir, "etc"), "start-fg")
	var log lockedBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		exec.Command(postfix, "-c", filepath.Join(dir, "etc"), "stop").Run()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "maillog"))
			t.Logf("postfix start-fg output:\n%s\npostfix maillog:\n%s", log.tail(4<<10), b)
		}
		os.RemoveAll(dir)
	})
	if err := waitListening(p.Addr, 30*time.Second, exited); err != nil {
		t.Fatalf("postfix: %v\n%s", err, log.tail(4<<10))
	}
	return p
}

// maillog returns Postfix's log so far.
func (p *privatePostfix) maillog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

// TestPostfixSmarthost: Kadenz relays through a Postfix smarthost that
// requires STARTTLS and refuses a non-FQDN HELO name, so Kadenz must name
// itself by its hostname in the EHLO before STARTTLS too. The client's
// ENVID and NOTIFY travel through both relays to the final server. And the
// chain Kadenz -> Postfix 3.7 (which by default ends DATA at <LF>.<LF>)
// does not let a smuggled second message through: Kadenz sends the payload
// on as text inside the one message. 8-bit octets never go raw to this
// smarthost without 8BITMIME: a body is converted to quoted-printable, a
// header fails with 5.6.3 and a report.
func TestPostfixSmarthost(t *testing.T) {
	final := startMTAUpstream(t, false, true)
	pf := startPostfix(t, final.Addr)
	r := startRelay(t, relayOptions{Upstream: pf.Addr, Config: `hostname: relay.kadenz.test
delivery:
  tls: required
  insecure_skip_verify: true
`})
	notify := &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyFailure}}
	if err := mtaSubmit(t, r.Addr, "crm@sender.test", &smtp.MailOptions{EnvelopeID: "via-postfix-7"},
		[]string{"pf@receiver.test"}, []*smtp.RcptOptions{notify}, "Subject: via postfix\r\n\r\nhello\r\n"); err != nil {
		t.Fatal(err)
	}
	x := final.waitTxn(t, "the message through Postfix", func(x mtaTxn) bool { return bytes.Contains(x.Data, []byte("via postfix")) })
	if x.Mail.EnvelopeID != "via-postfix-7" {
		t.Errorf("ENVID at the final server: %q, want the client's via-postfix-7", x.Mail.EnvelopeID)
	}
	if n := x.RcptOpts[0].Notify; len(n) != 1 || n[0] != smtp.DSNNotifyFailure {
		t.Errorf("NOTIFY at the final server: %v, want FAILURE", n)
	}
	if !bytes.Contains(x.Data, []byte("from relay.kadenz.test (")) {
		t.Errorf("Postfix's Received field does not show Kadenz's hostname:\n%s", x.Data)
	}
	if log := pf.maillog(); strings.Contains(log, "Helo command rejected") {
		t.Errorf("Postfix rejected a HELO from Kadenz:\n%s", log)
	}

	// An 8-bit body goes as quoted-printable (RFC 6152; Postfix does the
	// same); 8 bits in a header cannot be converted: 5.6.3 and a report.
	if err := mtaSubmit(t, r.Addr, "crm@sender.test", nil, []string{"eight@receiver.test"}, nil,
		"Subject: eight bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n"); err != nil {
		t.Fatal(err)
	}
	qp := final.waitTxn(t, "the converted 8-bit message", func(x mtaTxn) bool {
		return x.From != "" && bytes.Contains(x.Data, []byte("Subject: eight bit"))
	})
	if !bytes.Contains(qp.Data, []byte("\r\nContent-Transfer-Encoding: quoted-printable\r\n")) ||
		!bytes.HasSuffix(qp.Data, []byte("\r\n\r\nGr=C3=BC=C3=9Fe\r\n")) {
		t.Errorf("8-bit body not sent as quoted-printable:\n%q", qp.Data)
	}
	if err := mtaSubmit(t, r.Addr, "crm@sender.test", nil, []string{"eight-hdr@receiver.test"}, nil,
		"Subject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	dsn := final.waitTxn(t, "report on the 8-bit header", func(x mtaTxn) bool {
		return x.From == "" && bytes.Contains(x.Data, []byte("eight-hdr@receiver.test"))
	})
	if rep := parseReport(t, dsn.Data); rep.PerRcpt[0].Get("Status") != "5.6.3" {
		t.Errorf("8-bit header report: Status %q, want 5.6.3", rep.PerRcpt[0].Get("Status"))
	}

	// Smuggling through the chain: Kadenz (normalize, the default) takes
	// the bare-LF message as one, and so must Postfix.
	const hidden = "MAIL FROM:<ceo@victim.test>\r\nRCPT TO:<someone@receiver.test>\r\nDATA\r\n" +
		"From: <ceo@victim.test>\r\nSubject: smuggled\r\n\r\nwire the money\r\n"
	for _, data := range []string{
		"Subject: lf-dot-crlf\r\n\r\nhello\n.\r\n" + hidden,
		"Subject: lf-dot-lf\r\n\r\nhello\n.\n" + hidden,
	} {
		if replies := rawTransaction(t, r.Addr, data); len(replies) < 1 || replies[0] != 250 {
			t.Fatalf("replies %v, want 250 then at most 221", replies)
		}
	}
	final.waitTxn(t, "both smuggling carriers", func(mtaTxn) bool {
		n := 0
		for _, x := range final.transactions() {
			if bytes.Contains(x.Data, []byte("Subject: lf-dot-")) {
				n++
			}
		}
		return n == 2
	})
	if err := mtaSubmit(t, r.Addr, "crm@sender.test", nil, []string{"sync@receiver.test"}, nil, "Subject: sync\r\n\r\nlast\r\n"); err != nil {
		t.Fatal(err)
	}
	final.waitTxn(t, "the sync message", func(x mtaTxn) bool { return bytes.Contains(x.Data, []byte("Subject: sync")) })
	for _, x := range final.transactions() {
		if !isSevenBit(x.Data) {
			t.Errorf("8-bit octets went out through a smarthost without 8BITMIME:\n%q", x.Data)
		}
		if x.From == "ceo@victim.test" || bytes.HasPrefix(bytes.TrimSpace(x.Data), []byte("From: <ceo@victim.test>")) {
			t.Errorf("a smuggled message came out of the chain: from %q\n%s", x.From, x.Data)
		}
	}
}

func isSevenBit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
