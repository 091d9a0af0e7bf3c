package tests

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// swaksMessage has what tends to break a relay's transparency: folded
// headers, a tab, lines that start with dots (dot-stuffing both ways), a long
// line and trailing spaces.
var swaksMessage = strings.Join([]string{
	"From: CRM <crm@sender.test>",
	"To: <someone@receiver.test>",
	"Subject: swaks through kadenz",
	"Message-ID: <swaks-1@sender.test>",
	"X-Folded: first part",
	"\tsecond part after a tab",
	"List-Unsubscribe: <https://sender.test/u/1>",
	"",
	"Hello,",
	".a line that starts with a dot",
	"..two dots",
	".",
	"trailing spaces   ",
	strings.Repeat("0123456789", 90),
	"last line of the swaks test",
	"",
}, "\r\n")

// TestSwaksToSmtpSink sends one message with swaks to Postfix's smtp-sink
// twice, once directly and once through Kadenz, and requires the two copies
// to be the same apart from Kadenz's Received field. Comparing against the
// direct copy keeps swaks' and smtp-sink's own habits (swaks adds a line
// end, smtp-sink writes LF and adds a blank line) out of the assertion.
func TestSwaksToSmtpSink(t *testing.T) {
	swaks := requireProgram(t, "swaks")
	sink := startSmtpSink(t)

	msgFile := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(msgFile, []byte(swaksMessage), 0o644); err != nil {
		t.Fatal(err)
	}
	send := func(addr string) {
		t.Helper()
		host, port, _ := strings.Cut(addr, ":")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, swaks, "--server", host, "--port", port,
			"--helo", "client.test", "--from", "crm@sender.test", "--to", "someone@receiver.test",
			"--data", "@"+msgFile, "--timeout", "30")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("swaks to %s: %v\n%s", addr, err, out)
		}
	}

	send(sink.Addr)
	direct := sink.take(t, "last line of the swaks test")

	// The reference itself must be the whole message, or comparing with
	// it proves little.
	if want := strings.ReplaceAll(swaksMessage, "\r\n", "\n"); !bytes.HasPrefix(direct.message, []byte(want)) {
		t.Fatalf("smtp-sink's direct copy is not the submitted message:\n%s\nwant prefix:\n%s", direct.message, want)
	}

	// The message carries List-Unsubscribe, so the governor would hold it
	// as marketing; this test is about the relay's transparency.
	r := startRelay(t, relayOptions{Config: shortRetryConfig + "governor:\n  mode: off\n", Upstream: sink.Addr})
	send(r.Addr)
	relayed := sink.take(t, "last line of the swaks test")

	if !bytes.Contains(relayed.meta, []byte("X-Mail-Args: <crm@sender.test>")) ||
		!bytes.Contains(relayed.meta, []byte("X-Rcpt-Args: <someone@receiver.test>")) {
		t.Errorf("envelope changed on the way through kadenz:\n%s", relayed.meta)
	}
	// Marketing mail carries its envelope ID for feedback correlation
	// (governor/verp.go): exactly that one field may come first.
	message := relayed.message
	if id, after, ok := cutHeaderField(message, "X-Kadenz-Envelope:"); ok {
		t.Logf("kadenz added: %q", id)
		message = after
	}
	added, rest, ok := cutHeaderField(message, "Received:")
	if !ok {
		t.Fatalf("relayed message does not start with kadenz's Received field:\n%s", relayed.message)
	}
	t.Logf("kadenz added: %q", added)
	// The message has no Date field: Kadenz adds one (RFC 5322 3.6
	// requires it; intake.add_missing_headers), and nothing else.
	if date, after, ok := cutHeaderField(rest, "Date:"); !ok {
		t.Errorf("kadenz did not add the missing Date field:\n%s", rest)
	} else {
		t.Logf("kadenz added: %q", date)
		rest = after
	}
	if !bytes.Equal(rest, direct.message) {
		t.Errorf("message changed on the way through kadenz (beyond %q)\ndirect:\n%s\nrelayed:\n%s", added, direct.message, rest)
	}
	r.stop(15 * time.Second)
}

// smtpSink is a running /usr/sbin/smtp-sink that dumps each transaction to
// a file of its own.
type smtpSink struct {
	Addr string
	dir  string
}

func startSmtpSink(t *testing.T) *smtpSink {
	t.Helper()
	bin := "/usr/sbin/smtp-sink"
	if _, err := os.Stat(bin); err != nil {
		requireProgram(t, "smtp-sink") // skips or fails with the right words
		bin = "smtp-sink"
	}
	// As root smtp-sink must drop to another user (-u), which then needs
	// to write the dumps: a world-writable directory outside t.TempDir,
	// whose parents are private to root.
	dir, err := os.MkdirTemp("", "kadenz-sink-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{Addr: freeAddr(t), dir: dir}
	args := []string{"-d", filepath.Join(dir, "dump."), s.Addr, "100"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(bin, args...)
	var log lockedBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	if err := waitListening(s.Addr, 10*time.Second, exited); err != nil {
		t.Fatalf("smtp-sink: %v\n%s", err, log.bytes())
	}
	return s
}

// sinkDump is one transaction as smtp-sink wrote it: its own X- fields and
// Received field (meta), then the message as received, LF line ends.
type sinkDump struct{ meta, message []byte }

// take waits (bounded) for exactly one complete dump that contains marker,
// returns it and removes the file, so the next take sees only new mail.
func (s *smtpSink) take(t *testing.T, marker string) sinkDump {
	t.Helper()
	var (
		file string
		prev []byte
	)
	ok := waitFor(30*time.Second, func() bool {
		files, _ := filepath.Glob(filepath.Join(s.dir, "dump.*"))
		if len(files) != 1 {
			if len(files) > 1 {
				t.Fatalf("smtp-sink got %d messages, want 1: %v", len(files), files)
			}
			return false
		}
		b, err := os.ReadFile(files[0])
		if err != nil || !bytes.Contains(b, []byte(marker)) {
			return false
		}
		// smtp-sink closes the file at the end of the transaction; the
		// same contents on two reads means it is done.
		if file == files[0] && bytes.Equal(b, prev) {
			return true
		}
		file, prev = files[0], b
		return false
	})
	if !ok {
		t.Fatalf("smtp-sink got no complete message containing %q within 30s", marker)
	}
	os.Remove(file)
	// smtp-sink's Received field ends its own headers.
	i := bytes.Index(prev, []byte("\nReceived:"))
	if i < 0 {
		t.Fatalf("smtp-sink dump without its Received field:\n%s", prev)
	}
	field, rest, ok := cutHeaderField(prev[i+1:], "Received:")
	if !ok {
		t.Fatalf("cannot parse smtp-sink dump:\n%s", prev)
	}
	return sinkDump{meta: append(prev[:i+1:i+1], field...), message: rest}
}

// cutHeaderField splits off the first header field of msg (LF or CRLF line
// ends), including its folded continuation lines, if it starts with name.
func cutHeaderField(msg []byte, name string) (field, rest []byte, ok bool) {
	if !bytes.HasPrefix(msg, []byte(name)) {
		return nil, msg, false
	}
	end := 0
	for {
		nl := bytes.IndexByte(msg[end:], '\n')
		if nl < 0 {
			return nil, msg, false
		}
		end += nl + 1
		if end >= len(msg) || (msg[end] != ' ' && msg[end] != '\t') {
			return msg[:end], msg[end:], true
		}
	}
}
