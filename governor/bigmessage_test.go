package governor

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"kadenz/governor/admin/api"
	"kadenz/store"
)

// bigMessage is a message of about n bytes: the given header fields, then
// lines of varied 8-bit text (so a shifted, dropped or repeated byte
// anywhere shows).
func bigMessage(header string, n int) []byte {
	var b bytes.Buffer
	b.WriteString(header + "\r\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %07d: caf\xc3\xa9 %s\r\n", i, strings.Repeat(string(rune('a'+i%26)), i%60))
	}
	return b.Bytes()
}

// submitRaw submits msg over SMTP and returns the queue ID from the 250.
func submitRaw(t *testing.T, addr, from string, to []string, msg []byte) string {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = 30*time.Second, 60*time.Second
	if err := c.Hello("crm.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from, &smtp.MailOptions{Body: smtp.Body8BitMIME}); err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(msg); err != nil {
		t.Fatal(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	_, id, ok := strings.Cut(resp.StatusText, "OK: queued as ")
	if !ok {
		t.Fatalf("250 without a queue ID: %q", resp.StatusText)
	}
	return id
}

func spoolLeft(t *testing.T, dataDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A message far over the spool threshold reaches the smarthost byte for
// byte as a small one would: the relay's Received field on top, X-Kadenz-*
// fields gone except the one a DKIM-Signature names (as stripKadenzHeaders
// does for a message in memory), nothing else changed. It was stored in
// parts, and no spool file is left.
func TestLargeMessageRoundTripToSmarthost(t *testing.T) {
	up := startUpstream(t, nil)
	cfg := testConfig(t, up.addr)
	cfg.Intake.SpoolThreshold = 64 << 10
	r := startRelay(t, cfg)
	header := "From: <crm@shop.test>\r\nTo: <ann@example.test>\r\nSubject: big\r\nMessage-ID: <big@shop.test>\r\n" +
		"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nX-Kadenz-Class: transactional\r\nX-Kadenz-Topics: shoes\r\n" +
		"DKIM-Signature: v=1; a=rsa-sha256; d=shop.test; s=k; h=from:subject:x-kadenz-topics; bh=x; b=y\r\n"
	msg := bigMessage(header, 3<<20+777)
	id := submitRaw(t, r.Addr().String(), "crm@shop.test", []string{"ann@example.test"}, msg)
	if left := spoolLeft(t, cfg.DataDir); len(left) != 0 {
		t.Errorf("spool files left after the 250: %v", left)
	}
	waitFor(t, "the upstream to receive the message", func() bool { return len(up.messages()) == 1 })
	got := up.messages()[0].data

	want := stripKadenzHeaders(msg) // the in-memory path's rule
	if bytes.Contains(want, []byte("X-Kadenz-Class")) || !bytes.Contains(want, []byte("X-Kadenz-Topics: shoes")) {
		t.Fatal("test premise: stripKadenzHeaders keeps only the signed X-Kadenz field")
	}
	if !bytes.HasSuffix(got, want) {
		t.Fatalf("the upstream got %d bytes that do not end in the %d bytes submitted (X-Kadenz-* removed as for a small message)", len(got), len(want))
	}
	trace := got[:len(got)-len(want)]
	if !bytes.HasPrefix(trace, []byte("Received: from crm.test")) || !bytes.Contains(trace, []byte("id "+id+";")) || len(trace) > 300 {
		t.Errorf("before the message the upstream got %q, want only our Received field", trace)
	}

	m, err := r.DB().Message(id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Size != len(got) || m.Class != "transactional" || m.HeaderID != "big@shop.test" {
		t.Errorf("stored message: size %d (sent %d), class %q, Message-ID %q", m.Size, len(got), m.Class, m.HeaderID)
	}
	if stored, err := r.DB().Body(id); err != nil || !bytes.Equal(stored, got) {
		t.Errorf("stored body differs from what the upstream got: %d bytes, %v", len(stored), err)
	}
}

// A spooled newsletter is classified and governed from its header like a
// small one: held, its features read from the beginning of its body.
func TestLargeNewsletterIsHeld(t *testing.T) {
	up := startUpstream(t, nil)
	cfg := testConfig(t, up.addr)
	cfg.Intake.SpoolThreshold = 64 << 10
	r := startRelay(t, cfg)
	msg := bigMessage("From: <news@shop.test>\r\nTo: <ann@example.test>\r\nSubject: Winter sale on boots\r\n"+
		"List-Unsubscribe: <mailto:u@shop.test>\r\nX-Kadenz-Campaign: winter\r\n", 2<<20)
	id := submitRaw(t, r.Addr().String(), "news@shop.test", []string{"ann@example.test"}, msg)
	m, err := r.DB().Message(id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Class != "marketing" || !strings.Contains(string(m.Features), `"winter"`) {
		t.Errorf("class %q (%s), features %s; want marketing with campaign winter", m.Class, m.ClassReason, m.Features)
	}
	envs, err := r.DB().EnvelopesOf(id)
	if err != nil || len(envs) != 1 || envs[0].State != store.StateHeld {
		t.Errorf("envelopes %+v, %v; want one held", envs, err)
	}
	if size, err := r.DB().(*store.DB).BodySize(id); err != nil || size != int64(m.Size) || size < 2<<20 {
		t.Errorf("stored body size %d, %v; message says %d", size, err, m.Size)
	}
}

// A spool file left by a crash (the message was never acknowledged) is
// gone once the relay starts again.
func TestSpoolClearedWhenRelayStarts(t *testing.T) {
	up := startUpstream(t, nil)
	cfg := testConfig(t, up.addr)
	spool := filepath.Join(cfg.DataDir, "spool")
	if err := os.MkdirAll(spool, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(spool, "data-4711"), []byte("Subject: half\r\n\r\nwas being recei"), 0o600); err != nil {
		t.Fatal(err)
	}
	startRelay(t, cfg)
	if left := spoolLeft(t, cfg.DataDir); len(left) != 0 {
		t.Errorf("spool files after the start: %v", left)
	}
}

// Forgetting the recipient of a large message (stored in parts, delivered
// to the outbox) leaves no byte of the address anywhere in the data dir:
// not in a part, not in a freed page, not in the spool.
func TestForgetLargeMessageLeavesNoByte(t *testing.T) {
	cfg := governedConfig(t, "") // no upstream: the outbox
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Intake.SpoolThreshold = 64 << 10
	r := startRelay(t, cfg)
	const addr = "frank.large@example.test"
	msg := bigMessage("From: <shop@shop.test>\r\nTo: <"+addr+">\r\nSubject: your invoice\r\nMessage-ID: <inv@shop.test>\r\n", 1<<20)
	msg = append(msg, "Dear "+addr+", the rest of your invoice follows.\r\n"...) // in the last part too
	msg = append(msg, bigMessage("", 1<<20)...)
	submitRaw(t, r.Addr().String(), "shop@shop.test", []string{addr}, msg)
	waitFor(t, "the message in the outbox", func() bool {
		files, _ := filepath.Glob(filepath.Join(cfg.DataDir, "outbox", "*.eml"))
		return len(files) == 1
	})
	if len(rawHits(t, cfg.DataDir, addr)) == 0 {
		t.Fatal("before forget no file holds the address: the scan would prove nothing")
	}
	var fr api.ForgetResult
	adminJSON(t, r, http.MethodPost, "/v1/forget", map[string]string{"address": addr}, &fr)
	if fr.Erased.Bodies != 1 {
		t.Errorf("forget erased %d bodies, want 1: %+v", fr.Erased.Bodies, fr)
	}
	if hits := rawHits(t, cfg.DataDir, addr); len(hits) > 0 {
		t.Errorf("after forget the address is still in %v", hits)
	}
}
