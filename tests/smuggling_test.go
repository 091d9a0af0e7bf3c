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
// on into two messages, the second with a forged sender. In both modes of
// intake.bare_newlines Kadenz must answer nothing on behalf of the hidden
// commands and queue nothing from the forged sender: with reject it refuses
// such DATA with a 5xx; with normalize (the default, Postfix 3.9's way) a
// bare LF is a line end stored as CRLF, so the payload stays text inside the
// one message it came in. A bare CR and a NUL are refused in both modes.
func TestKadenzRefusesSmuggling(t *testing.T) {
	const hidden = "MAIL FROM:<ceo@victim.test>\r\nRCPT TO:<someone@receiver.test>\r\nDATA\r\n" +
		"From: <ceo@victim.test>\r\nSubject: smuggled\r\n\r\nwire the money\r\n"
	cases := []struct {
		name, data string
		normalized bool // accepted (as one message) in normalize mode
		always     bool // accepted in both modes
	}{
		{"LF.CRLF", "Subject: a\r\n\r\nhello\n.\r\n" + hidden, true, false},
		{"LF.LF", "Subject: a\r\n\r\nhello\n.\n" + hidden, true, false},
		{"CR.CR", "Subject: a\r\n\r\nhello\r.\r" + hidden, false, false},
		{"CRLF.CR", "Subject: a\r\n\r\nhello\r\n.\r" + hidden, true, true}, // go-smtp drops ".<CR>"
		{"LF.CR.LF", "Subject: a\r\n\r\nhello\n.\r\n.\n" + hidden, true, false},
		{"bare LF", "Subject: a\r\n\r\nhello\nworld\r\n", true, false},
		{"bare CR", "Subject: a\r\n\r\nhello\rworld\r\n", false, false},
		{"NUL", "Subject: a\r\n\r\nhello\x00world\r\n", false, false},
	}
	for _, mode := range []string{"normalize", "reject"} {
		t.Run(mode, func(t *testing.T) {
			r := startRelay(t, relayOptions{Config: "intake:\n  bare_newlines: " + mode + "\n"})
			accepted := 0
			for _, tc := range cases {
				want := tc.always || tc.normalized && mode == "normalize"
				t.Run(tc.name, func(t *testing.T) {
					replies := rawTransaction(t, r.Addr, tc.data)
					// Expected: the reply to the end of DATA, then QUIT's
					// 221 — or nothing more, if the server hangs up.
					ok := len(replies) >= 1 && (len(replies) == 1 || (len(replies) == 2 && replies[1] == 221))
					if !ok {
						t.Fatalf("replies after DATA = %v, want [code 221]: anything else means the hidden commands were answered", replies)
					}
					if want && replies[0] != 250 || !want && (replies[0] < 500 || replies[0] > 599) {
						t.Errorf("end of DATA answered %d, want %s", replies[0], map[bool]string{true: "250", false: "5xx"}[want])
					}
				})
				if want {
					accepted++
				}
			}
			// A clean message on a fresh connection is the sync point: once
			// it is in the outbox, anything accepted before it would be too.
			if got := rawTransaction(t, r.Addr, "Subject: clean\r\n\r\nclean\r\n"); len(got) < 1 || got[0] != 250 {
				t.Fatalf("clean message: replies %v, want 250 first", got)
			}
			var files []string
			if !waitFor(30*time.Second, func() bool { files = r.outbox(); return len(files) > accepted }) {
				t.Fatalf("outbox has %d messages within 30s, want %d", len(files), accepted+1)
			}
			if len(files) != accepted+1 {
				t.Errorf("outbox has %d messages, want %d: one per accepted submission, none smuggled", len(files), accepted+1)
			}
			for _, f := range files {
				b, _ := os.ReadFile(f)
				if strings.Contains(string(b), "Return-Path: <ceo@victim.test>") {
					t.Errorf("a smuggled message was queued: %s\n%s", f, b)
				}
				for i, c := range b {
					if c == '\n' && (i == 0 || b[i-1] != '\r') || c == '\r' && (i+1 == len(b) || b[i+1] != '\n') || c == 0 {
						t.Errorf("%s: bare CR, bare LF or NUL at offset %d stored:\n%q", f, i, b)
						break
					}
				}
			}
		})
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
