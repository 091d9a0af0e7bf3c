package tests

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestMalformedNewsletterIsHeld: issue 15's bypass. A newsletter with
// List-Unsubscribe and one header line without a colon was classified
// "header could not be read: passed through" and sent at once. Now it is
// held. A receipt sent after it is delivered, which shows the relay
// delivers at all, before the newsletter is checked.
func TestMalformedNewsletterIsHeld(t *testing.T) {
	admin := freeAddr(t)
	r := startRelay(t, relayOptions{Args: []string{"--admin", admin}})
	c, err := dialSMTP(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	newsletter := "From: <news@shop.test>\r\nSubject: spring offers\r\nMessage-ID: <malformed-1@shop.test>\r\n" +
		"this header line has no colon\r\nList-Unsubscribe: <mailto:unsub@shop.test>\r\n\r\nour offers\r\n"
	if err := submit(c, "news@shop.test", "ann@example.test", []byte(newsletter)); err != nil {
		t.Fatal(err)
	}
	receipt := "From: <shop@shop.test>\r\nSubject: your receipt\r\nMessage-ID: <receipt-1@shop.test>\r\n\r\nthanks\r\n"
	if err := submit(c, "shop@shop.test", "ann@example.test", []byte(receipt)); err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool { return len(r.outbox()) > 0 }) {
		t.Fatal("the receipt was never delivered")
	}
	for _, f := range r.outbox() {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "spring offers") {
			t.Fatalf("the malformed newsletter was delivered at once: %s", f)
		}
	}
	if got := heldCount(t, admin); got != 1 {
		t.Errorf("%d envelopes held, want the newsletter's 1", got)
	}
	if !strings.Contains(string(r.log.bytes()), `class_reason="header not well-formed, read line by line: bulk marker List-Unsubscribe"`) {
		t.Errorf("the log does not say why the newsletter was held")
	}
}

// TestOnlyTrustedSubmittersSetClass: with governor.header_trust, a client
// the rule does not name cannot make a newsletter transactional with
// X-Kadenz-Class; the one it names can.
func TestOnlyTrustedSubmittersSetClass(t *testing.T) {
	admin := freeAddr(t)
	r := startRelay(t, relayOptions{Args: []string{"--admin", admin}, Config: `
intake:
  client_networks: [127.0.0.0/8]
governor:
  header_trust:
    - networks: [127.0.0.1/32]
      headers: [X-Kadenz-Class]
`})
	msg := func(n string) []byte {
		return []byte("From: <news@shop.test>\r\nSubject: offer " + n + "\r\nX-Kadenz-Class: transactional\r\n" +
			"List-Unsubscribe: <mailto:unsub@shop.test>\r\n\r\nbuy now\r\n")
	}
	for _, from := range []string{"127.0.0.2", "127.0.0.1"} {
		c, err := dialFrom(from, r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := submit(c, "news@shop.test", "ann@example.test", msg(from)); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if !waitFor(20*time.Second, func() bool { return len(r.outbox()) > 0 }) {
		t.Fatal("the trusted client's transactional mail was never delivered")
	}
	for _, f := range r.outbox() {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "offer 127.0.0.2") {
			t.Fatalf("the untrusted client's X-Kadenz-Class was believed: %s delivered", f)
		}
		if strings.Contains(string(b), "X-Kadenz-Class") {
			t.Errorf("X-Kadenz-Class reached the recipient: %s", f)
		}
	}
	if got := heldCount(t, admin); got != 1 {
		t.Errorf("%d envelopes held, want the untrusted client's 1", got)
	}
}
