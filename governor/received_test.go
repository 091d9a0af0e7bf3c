package governor

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"kadenz/governor/intake"
)

// The Received field is appended without fmt on the accept path; it must
// read exactly as the fmt version that came before it.
func TestReceivedHeaderAsFormatted(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 30, 1, 0, time.FixedZone("", 3600))
	formatted := func(sub *intake.Submission, hostname, id string) string {
		proto := "ESMTP"
		if sub.TLS {
			proto += "S"
		}
		if sub.AuthUser != "" {
			proto += "A"
		}
		return fmt.Sprintf("Received: from %s ([%s])\r\n\tby %s (Kadenz) with %s id %s;\r\n\t%s\r\n",
			headerSafe(sub.Helo), sub.ClientAddr, hostname, proto, id, sub.Received.Format(time.RFC1123Z))
	}
	for _, sub := range []*intake.Submission{
		{Helo: "crm.example", ClientAddr: netip.MustParseAddr("192.0.2.7"), Received: at},
		{Helo: "crm (x); y", ClientAddr: netip.MustParseAddr("2001:db8::1"), TLS: true, Received: at},
		{Helo: "", ClientAddr: netip.MustParseAddr("::ffff:192.0.2.8"), AuthUser: "crm", Received: at.UTC()},
		{Helo: "h\u00e9llo", TLS: true, AuthUser: "u", Received: at}, // no client address (Submit)
	} {
		want := formatted(sub, "kadenz.test", "0abc")
		if got := receivedHeader(sub, "kadenz.test", "0abc"); got != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
		if got := string(appendReceived([]byte("x"), sub, "kadenz.test", "0abc")); got != "x"+want {
			t.Errorf("appended: got %q", got)
		}
	}
}
