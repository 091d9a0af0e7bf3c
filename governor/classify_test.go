package governor

import (
	"net/netip"
	"strings"
	"testing"

	"kadenz/config"
)

// A header that does not parse still shows its bulk markers: the
// newsletter of issue 15 (one line without a colon) is marketing.
func TestMalformedHeaderWithBulkMarkerIsMarketing(t *testing.T) {
	g := &config.Default().Governor
	for _, tc := range []struct{ header, want, reason string }{
		{"Subject: news\r\nthis line has no colon\r\nList-Unsubscribe: <mailto:u@shop.test>\r\n", config.ClassMarketing, "List-Unsubscribe"},
		{"Subject: news\r\n\tfolded line before any field is fine, this one lacks a colon\r\nno colon here\r\nList-Id: offers <offers.shop.test>\r\n", config.ClassMarketing, "List-Id"},
		{"Subject: news\r\nbroken\r\nPrecedence:\r\n  bulk\r\n", config.ClassMarketing, "Precedence: bulk"},
		{"Subject: receipt\r\nbroken\r\n", config.ClassTransactional, "default"},
	} {
		data := []byte(tc.header + "\r\nbody\r\n")
		if readHeader(data) != nil {
			t.Fatalf("%q parses: the case tests nothing", tc.header)
		}
		h, tolerant := readHeaderTolerant(data)
		got, reason := classify(h, "news@shop.test", g)
		if !tolerant || got != tc.want || !strings.Contains(reason, tc.reason) {
			t.Errorf("%q: %s (%s, tolerant %v), want %s by %s", tc.header, got, reason, tolerant, tc.want, tc.reason)
		}
	}
	// A well-formed header is read as before.
	if _, tolerant := readHeaderTolerant([]byte("Subject: hi\r\n\r\nbody\r\n")); tolerant {
		t.Error("a good header was read tolerantly")
	}
	// Degenerate input does not panic.
	for _, d := range []string{"", "\r\n", "x", "\r\n\r\n", " folded first\r\n\r\n", "no end of header"} {
		readHeaderTolerant([]byte(d))
		stripKadenzHeaders([]byte(d))
	}
}

// Only the submitters governor.header_trust names may set the X-Kadenz-*
// headers it lists; for everyone else they are as if absent.
func TestHeaderTrust(t *testing.T) {
	g := &config.Default().Governor
	g.HeaderTrust = []config.HeaderTrust{
		{Users: []string{"crm"}, Headers: []string{"*"}},
		{Networks: []string{"10.1.2.0/24"}, Headers: []string{"x-kadenz-campaign"}},
	}
	msg := []byte("X-Kadenz-Class: transactional\r\nX-Kadenz-Campaign: spring\r\nList-Unsubscribe: <mailto:u@shop.test>\r\n\r\nbody\r\n")
	for _, tc := range []struct {
		user, addr, class string
		campaign          bool
	}{
		{"crm", "192.0.2.1", config.ClassTransactional, true},
		{"", "10.1.2.7", config.ClassMarketing, true},
		{"newsletter", "192.0.2.1", config.ClassMarketing, false},
		{"", "127.0.0.1", config.ClassMarketing, false},
	} {
		view, ignored := untrustedRemoved(msg, headerTrust(g.HeaderTrust, tc.user, netip.MustParseAddr(tc.addr)))
		h, _ := readHeaderTolerant(view)
		class, reason := classify(h, "news@shop.test", g)
		if class != tc.class {
			t.Errorf("user %q at %s: %s (%s), want %s (ignored %v)", tc.user, tc.addr, class, reason, tc.class, ignored)
		}
		if has := h.Get("X-Kadenz-Campaign") != ""; has != tc.campaign {
			t.Errorf("user %q at %s: campaign read %v, want %v", tc.user, tc.addr, has, tc.campaign)
		}
	}
	// No rules: everyone is believed, as before.
	view, ignored := untrustedRemoved(msg, headerTrust(nil, "", netip.MustParseAddr("127.0.0.1")))
	if ignored != nil || string(view) != string(msg) {
		t.Errorf("without rules, headers were removed: %v", ignored)
	}
}

// A DKIM-Signature keeps the X-Kadenz-* fields its h= names, not all.
func TestStripKeepsOnlyDKIMSignedKadenzHeaders(t *testing.T) {
	in := "DKIM-Signature: v=1; a=rsa-sha256; d=shop.test;\r\n\th=from:subject:X-Kadenz-Class; b=abc\r\n" +
		"X-Kadenz-Class: marketing\r\nX-Kadenz-Topics: shoes\r\nx-kadenz-campaign: spring\r\nSubject: hi\r\n\r\nX-Kadenz-Topics: body\r\n"
	want := "DKIM-Signature: v=1; a=rsa-sha256; d=shop.test;\r\n\th=from:subject:X-Kadenz-Class; b=abc\r\n" +
		"X-Kadenz-Class: marketing\r\nSubject: hi\r\n\r\nX-Kadenz-Topics: body\r\n"
	if got := string(stripKadenzHeaders([]byte(in))); got != want {
		t.Errorf("strip:\n got %q\nwant %q", got, want)
	}
}
