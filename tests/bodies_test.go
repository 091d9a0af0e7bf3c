package tests

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// TestDeliveredBytesAsAccepted: the store keeps bodies compressed when
// that pays (store/bodycodec.go), in parts when they are large; whatever
// the form, the smarthost gets the accepted bytes with only Kadenz's
// Received field on top (the messages carry their Message-ID and Date,
// which it would add otherwise). Small and large, compressible and not, 8-bit
// text, bytes of every value but CR, LF and NUL, and an SMTPUTF8 message.
func TestDeliveredBytesAsAccepted(t *testing.T) {
	up := startMTAUpstream(t, true, false)
	r := startRelay(t, relayOptions{Upstream: up.Addr})

	news, err := os.ReadFile(filepath.Join("..", "store", "testdata", "newsletter.eml"))
	if err != nil {
		t.Fatal(err)
	}
	// As a transactional message (no List-Unsubscribe, no campaign), so
	// it is delivered at once rather than held.
	var kept []string
	for _, l := range strings.SplitAfter(string(news), "\r\n") {
		if !strings.HasPrefix(l, "List-Unsubscribe") && !strings.HasPrefix(l, "X-Kadenz-") && !strings.HasPrefix(l, "Feedback-ID") {
			kept = append(kept, l)
		}
	}
	newsletter := strings.Join(kept, "")

	rng := rand.New(rand.NewPCG(3, 4))
	text8 := func(n int) string { // 8-bit text, compressible
		var b strings.Builder
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "Zeile %d: Grüße aus Köln, 20 %% Rabatt auf Schuhe – ¡hasta mañana! %s\r\n", i, strings.Repeat("ß", i%30))
		}
		return b.String()
	}
	binary := func(n int) string { // every byte value but NUL, CR and LF, in lines; incompressible
		var b strings.Builder
		for b.Len() < n {
			line := make([]byte, 76)
			for i := range line {
				for line[i] == 0 || line[i] == '\r' || line[i] == '\n' {
					line[i] = byte(rng.Uint32())
				}
			}
			b.Write(line)
			b.WriteString("\r\n")
		}
		return b.String()
	}
	head := func(subject string) string {
		return "From: <crm@sender.test>\r\nTo: <ann@receiver.test>\r\nSubject: " + subject +
			"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@sender.test>\r\nDate: Sun, 06 Dec 2026 12:00:00 +0000" +
			"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
	}
	eight := &smtp.MailOptions{Body: smtp.Body8BitMIME}
	cases := []struct {
		name, from, to string
		mail           *smtp.MailOptions
		msg            string
	}{
		{"newsletter", "crm@sender.test", "ann@receiver.test", nil, newsletter},
		{"short", "crm@sender.test", "ann@receiver.test", nil, head("short") + "Hi.\r\n"},
		{"8-bit text", "crm@sender.test", "ann@receiver.test", eight, head("8-bit text") + text8(40_000)},
		{"binary-ish", "crm@sender.test", "ann@receiver.test", eight, head("binary-ish") + binary(30_000)},
		{"large 8-bit text", "crm@sender.test", "ann@receiver.test", eight, head("large 8-bit text") + text8(3<<20+123)},
		{"large binary-ish", "crm@sender.test", "ann@receiver.test", eight, head("large binary-ish") + binary(2<<20+45)},
		{"SMTPUTF8", "jörg@sender.test", "zoë@receiver.test", &smtp.MailOptions{UTF8: true, Body: smtp.Body8BitMIME},
			"From: Jörg <jörg@sender.test>\r\nTo: Zoë <zoë@receiver.test>\r\nSubject: Grüße, SMTPUTF8\r\n" +
				"Message-ID: <utf8@sender.test>\r\nDate: Sun, 06 Dec 2026 12:00:00 +0000\r\n\r\n" + text8(8000)},
	}
	for _, c := range cases {
		if err := mtaSubmit(t, r.Addr, c.from, c.mail, []string{c.to}, nil, c.msg); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	for _, c := range cases {
		subject := c.msg[strings.Index(c.msg, "Subject: "):]
		subject = subject[:strings.Index(subject, "\r\n")]
		x := up.waitTxn(t, c.name, func(x mtaTxn) bool { return bytes.Contains(x.Data, []byte(subject+"\r\n")) })
		if !bytes.HasSuffix(x.Data, []byte(c.msg)) {
			t.Errorf("%s: the smarthost got %d bytes that do not end in the %d accepted", c.name, len(x.Data), len(c.msg))
			continue
		}
		trace := x.Data[:len(x.Data)-len(c.msg)]
		if !bytes.HasPrefix(trace, []byte("Received: ")) || bytes.Count(trace, []byte("\r\n")) > 4 || len(trace) > 400 {
			t.Errorf("%s: before the message the smarthost got %q, want only our Received field", c.name, trace)
		}
		if x.From != c.from || len(x.To) != 1 || x.To[0] != c.to {
			t.Errorf("%s: envelope %s -> %v", c.name, x.From, x.To)
		}
	}
}
