package tests

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strings"
	"testing"
	"time"
)

// TestKadenzRefusesSmuggling sends SMTP smuggling payloads over a raw
// connection: a message whose DATA hides a second transaction behind a
// non-standard end of data. A downstream MTA that ends DATA on <LF>.<LF> or
// <LF>.<CR><LF> (Postfix 3.7 by default does) would split what Kadenz passes
// on into two messages, the second with a forged sender. Kadenz must refuse
// such DATA with a 5xx, answer nothing on behalf of the hidden commands, and
// queue nothing.
func TestKadenzRefusesSmuggling(t *testing.T) {
	r := startRelay(t, relayOptions{})
	const hidden = "MAIL FROM:<ceo@victim.test>\r\nRCPT TO:<someone@receiver.test>\r\nDATA\r\n" +
		"From: <ceo@victim.test>\r\nSubject: smuggled\r\n\r\nwire the money\r\n"
	cases := []struct{ name, data string }{
		{"LF.CRLF", "Subject: a\r\n\r\nhello\n.\r\n" + hidden},
		{"LF.LF", "Subject: a\r\n\r\nhello\n.\n" + hidden},
		{"CR.CR", "Subject: a\r\n\r\nhello\r.\r" + hidden},
		{"bare LF", "Subject: a\r\n\r\nhello\nworld\r\n"},
		{"bare CR", "Subject: a\r\n\r\nhello\rworld\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			replies := rawTransaction(t, r.Addr, tc.data)
			// Expected: the reply to the end of DATA, then QUIT's 221 —
			// or nothing more, if the server hangs up on such a client.
			ok := len(replies) >= 1 && replies[0] >= 500 && replies[0] <= 599 &&
				(len(replies) == 1 || (len(replies) == 2 && replies[1] == 221))
			if !ok {
				t.Errorf("replies after DATA = %v, want [5xx 221]: anything else means the hidden commands were answered", replies)
			}
		})
	}
	// A clean message on a fresh connection is the sync point: once it is
	// in the outbox, anything accepted before it would be too.
	if got := rawTransaction(t, r.Addr, "Subject: clean\r\n\r\nclean\r\n"); len(got) < 1 || got[0] != 250 {
		t.Fatalf("clean message: replies %v, want 250 first", got)
	}
	var files []string
	if !waitFor(30*time.Second, func() bool { files = r.outbox(); return len(files) > 0 }) {
		t.Fatalf("clean message not in the outbox within 30s")
	}
	if len(files) != 1 {
		t.Errorf("outbox has %d messages, want only the clean one", len(files))
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "smuggled") || strings.Contains(string(b), "hello") {
			t.Errorf("smuggling payload reached the outbox: %s\n%s", f, b)
		}
	}
}

// rawTransaction runs EHLO, MAIL, RCPT, DATA, writes data exactly as given
// plus CRLF.CRLF, then QUIT, and returns the reply codes that came after the
// 354 until the server closed the connection.
func rawTransaction(t *testing.T, addr, data string) []int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	tp := textproto.NewConn(conn)
	expect := func(want int, format string, args ...any) {
		t.Helper()
		if format != "" {
			if err := tp.PrintfLine(format, args...); err != nil {
				t.Fatal(err)
			}
		}
		if _, msg, err := tp.ReadResponse(want); err != nil {
			t.Fatalf("%q: %v %s", fmt.Sprintf(format, args...), err, msg)
		}
	}
	expect(220, "")
	expect(250, "EHLO client.test")
	expect(250, "MAIL FROM:<crm@sender.test>")
	expect(250, "RCPT TO:<someone@receiver.test>")
	expect(354, "DATA")
	w := bufio.NewWriter(conn)
	io.WriteString(w, data)
	io.WriteString(w, ".\r\nQUIT\r\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var codes []int
	for range 10 {
		code, _, err := tp.ReadResponse(0)
		if err != nil && code == 0 {
			break // closed by the server (or the deadline passed)
		}
		codes = append(codes, code)
		if code == 221 {
			break
		}
	}
	return codes
}
