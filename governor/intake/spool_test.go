package intake

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// rawSession speaks SMTP over a plain connection so that a test can send
// bytes a client library would repair (bare LF). It returns the reply code
// to the end of DATA.
func rawSession(t *testing.T, addr string, payload []byte) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	reply := func() int {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading reply: %v", err)
			}
			if len(line) >= 4 && line[3] == ' ' {
				var code int
				fmt.Sscanf(line, "%d", &code)
				return code
			}
		}
	}
	reply()
	for _, cmd := range []string{"EHLO client.test", "MAIL FROM:<a@shop.test>", "RCPT TO:<b@example.test>", "DATA"} {
		fmt.Fprintf(conn, "%s\r\n", cmd)
		if code := reply(); code >= 400 {
			t.Fatalf("%s: %d", cmd, code)
		}
	}
	go func() { // the server may answer before reading everything
		conn.Write(payload)
		if !bytes.HasSuffix(payload, []byte("\r\n")) {
			conn.Write([]byte("\r\n")) // this CRLF is the message's
		}
		conn.Write([]byte(".\r\n"))
	}()
	return reply()
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// bigPayload is a message of about n bytes whose lines end in CRLF and
// bare LF by turns, with dot-stuffed lines after bare LFs, so that the
// normalisation has something to do on both sides of the threshold.
func bigPayload(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: <a@shop.test>\r\nSubject: big\r\n\r\n")
	for i := 0; b.Len() < n; i++ {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, "line %d ends in CRLF\r\n", i)
		case 1:
			fmt.Fprintf(&b, "line %d ends in a bare LF\n", i)
		case 2:
			fmt.Fprintf(&b, "..line %d was dot-stuffed after a bare LF\r\n", i)
		}
	}
	b.WriteString("end\r\n")
	return b.Bytes()
}

type spoolCapture struct {
	mu                sync.Mutex
	message, data     []byte
	spooled           bool
	size              int64
	filesDuringAccept []string
}

func startSpoolServer(t *testing.T, threshold int, acceptErr error) (addr, dir string, got *spoolCapture) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "spool")
	got = &spoolCapture{}
	opts := Options{
		Hostname: "kadenz.test", MaxConnections: 4, MaxLineLength: 2000, MaxMessageBytes: 10 << 20,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, NormalizeBareLF: true,
		ClientNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, SpoolDir: dir, SpoolThreshold: threshold,
		Accept: func(_ context.Context, sub *Submission) (string, error) {
			got.mu.Lock()
			defer got.mu.Unlock()
			m, err := io.ReadAll(sub.Message())
			if err != nil {
				return "", err
			}
			got.message, got.data = m, bytes.Clone(sub.Data)
			got.spooled, got.size = sub.Spooled != nil, sub.Size
			got.filesDuringAccept = spoolFiles(t, dir)
			return "id1", acceptErr
		},
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l, false)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), dir, got
}

// A message over the threshold reaches Accept whole and normalised, from
// a file that exists while Accept runs and is gone after; Data is its
// first threshold bytes.
func TestSpooledMessageArrivesWhole(t *testing.T) {
	const threshold = 4096
	addr, dir, got := startSpoolServer(t, threshold, nil)
	payload := bigPayload(300 << 10)
	want, err := normalizeLineEndings(payload)
	if err != nil {
		t.Fatal(err)
	}
	if code := rawSession(t, addr, payload); code != 250 {
		t.Fatalf("DATA answered %d, want 250", code)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if !got.spooled || got.size != int64(len(want)) {
		t.Errorf("spooled %v, size %d; want spooled, %d", got.spooled, got.size, len(want))
	}
	if !bytes.Equal(got.message, want) {
		t.Errorf("spooled message differs from the normalised one (%d bytes, want %d)", len(got.message), len(want))
	}
	if !bytes.Equal(got.data, want[:threshold]) {
		t.Errorf("Data is not the message's first %d bytes (got %d bytes)", threshold, len(got.data))
	}
	if len(got.filesDuringAccept) != 1 {
		t.Errorf("spool directory during Accept: %v, want one file", got.filesDuringAccept)
	}
	if left := spoolFiles(t, dir); len(left) != 0 {
		t.Errorf("spool files left after the 250: %v", left)
	}
}

// Under the threshold nothing is spooled.
func TestSmallMessageNotSpooled(t *testing.T) {
	addr, _, got := startSpoolServer(t, 4096, nil)
	if code := rawSession(t, addr, []byte("Subject: small\r\n\r\nhi\nthere\r\n")); code != 250 {
		t.Fatalf("DATA answered %d", code)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if got.spooled || string(got.message) != "Subject: small\r\n\r\nhi\r\nthere\r\n" || len(got.filesDuringAccept) != 0 {
		t.Errorf("small message: spooled %v, %q, files %v", got.spooled, got.message, got.filesDuringAccept)
	}
}

// Every refusal and failure removes the spool file too.
func TestSpoolFileRemovedOnEveryPath(t *testing.T) {
	big := bigPayload(100 << 10)
	bareCR := append(bytes.Clone(big), "late bare\rCR\r\n"...)
	longHeader := []byte("Subject: " + strings.Repeat("x", 998) + "\r\n")
	longHeader = append(bytes.Repeat(longHeader, 10), "\r\nbody\r\n"...)
	for _, tc := range []struct {
		name      string
		payload   []byte
		acceptErr error
		want      int
	}{
		{"Accept fails", big, errors.New("disk full"), 451},
		{"bare CR past the threshold", bareCR, nil, 554},
		{"header longer than the threshold", longHeader, nil, 552},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, dir, _ := startSpoolServer(t, 4096, tc.acceptErr)
			if code := rawSession(t, addr, tc.payload); code != tc.want {
				t.Errorf("DATA answered %d, want %d", code, tc.want)
			}
			if left := spoolFiles(t, dir); len(left) != 0 {
				t.Errorf("spool files left: %v", left)
			}
		})
	}
}

// What a crash left in the spool directory was never acknowledged: a new
// server deletes it.
func TestSpoolClearedAtStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	os.MkdirAll(dir, 0o750)
	os.WriteFile(filepath.Join(dir, "data-123"), []byte("half a message"), 0o600)
	if _, err := New(Options{MaxConnections: 1, SpoolDir: dir, SpoolThreshold: 1 << 20,
		Accept: func(context.Context, *Submission) (string, error) { return "", nil }}); err != nil {
		t.Fatal(err)
	}
	if left := spoolFiles(t, dir); len(left) != 0 {
		t.Errorf("files left from before the start: %v", left)
	}
}

// A client that declares the size (SIZE=, RFC 1870) of a large message
// has it spooled from the first byte, with the same result.
func TestDeclaredLargeMessageSpooled(t *testing.T) {
	const threshold = 64 << 10
	addr, dir, got := startSpoolServer(t, threshold, nil)
	payload := bigPayload(200 << 10)
	want, _ := normalizeLineEndings(payload)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@shop.test", &smtp.MailOptions{Size: int64(len(want))}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(want)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if !got.spooled || !bytes.Equal(got.message, want) || !bytes.Equal(got.data, want[:threshold]) {
		t.Errorf("declared-size message: spooled %v, %d bytes (want %d), prefix ok %v",
			got.spooled, len(got.message), len(want), bytes.Equal(got.data, want[:threshold]))
	}
	if left := spoolFiles(t, dir); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}
