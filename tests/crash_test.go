package tests

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// shortRetryConfig makes a down upstream cheap to wait for: the first retry
// after 200 ms, never more than 1 s apart. smtp-sink and the in-process
// upstream offer no STARTTLS worth using.
const shortRetryConfig = `
delivery:
  tls: none
  retry_initial: 200ms
  retry_max: 1s
  concurrency: 8
intake:
  max_connections: 200
`

// crashMessage is message seq of the crash test: unique Message-ID and
// X-Test-Seq, about 1 KB, CRLF line ends.
func crashMessage(run string, seq int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <crash@sender.test>\r\n")
	fmt.Fprintf(&b, "To: <rcpt@receiver.test>\r\n")
	fmt.Fprintf(&b, "Subject: crash test message %d\r\n", seq)
	fmt.Fprintf(&b, "Date: Mon, 02 Jan 2026 15:04:05 +0000\r\n")
	fmt.Fprintf(&b, "Message-ID: <crash-%d-%s@kadenz.test>\r\n", seq, run)
	fmt.Fprintf(&b, "X-Test-Seq: %d\r\n", seq)
	fmt.Fprintf(&b, "\r\n")
	for i := range 14 {
		fmt.Fprintf(&b, "line %02d of message %06d: the quick brown fox jumps over the lazy dog\r\n", i, seq)
	}
	return b.Bytes()
}

// TestCrashLosesNothing is RFC 5321 section 6.1 under fire: a message that
// got its 250 must be delivered even when the relay is SIGKILLed while other
// sessions are mid-transaction and the upstream has been down all along.
func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test is long; skipped with -short")
	}
	const (
		total    = 3000
		sessions = 20
	)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	killAt := int64(total/3 + rand.IntN(total/6)) // between a third and a half

	upAddr := freeAddr(t) // nothing listens there: the upstream is down
	data := t.TempDir()
	r1 := startRelay(t, relayOptions{Config: shortRetryConfig, Data: data, Upstream: upAddr})

	// Phase 1: submit until killAt messages are accepted, then SIGKILL.
	var (
		mu        sync.Mutex
		accepted  = make([]bool, total)
		nAccepted atomic.Int64
		next      atomic.Int64
		killed    atomic.Bool
		errsEarly atomic.Int64 // client errors before the kill: should be none
		errsLate  atomic.Int64
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(120 * time.Second)
	submitStart := time.Now()
	for range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !killed.Load() && time.Now().Before(deadline) && errsEarly.Load() < 20 {
				c, err := dialSMTP(r1.Addr)
				if err != nil {
					if !killed.Load() {
						errsEarly.Add(1)
					}
					time.Sleep(50 * time.Millisecond)
					continue
				}
				for !killed.Load() && time.Now().Before(deadline) {
					seq := int(next.Add(1) - 1)
					if seq >= total {
						c.Close()
						return
					}
					if err := submit(c, "crash@sender.test", "rcpt@receiver.test", crashMessage(run, seq)); err != nil {
						if killed.Load() {
							errsLate.Add(1)
						} else {
							errsEarly.Add(1)
							t.Logf("submit %d before the kill: %v", seq, err)
						}
						break // the connection is suspect; dial again
					}
					mu.Lock()
					accepted[seq] = true
					mu.Unlock()
					if nAccepted.Add(1) == killAt {
						// Flag first: errors from here on are the kill's.
						killed.Store(true)
						r1.kill()
					}
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	submitTime := time.Since(submitStart)
	if !killed.Load() {
		t.Fatalf("relay never killed: %d accepted of %d wanted before the kill, %d client errors (deadline or errors hit first)",
			nAccepted.Load(), killAt, errsEarly.Load())
	}
	if n := errsEarly.Load(); n > 0 {
		t.Errorf("%d submissions failed before the kill; a healthy relay should accept them all", n)
	}
	var want []int
	for seq, ok := range accepted {
		if ok {
			want = append(want, seq)
		}
	}

	// Phase 2: the upstream comes up where the relay has been trying it, and
	// the relay restarts on the same data directory.
	up := startUpstream(t, upAddr, "X-Test-Seq")
	restart := time.Now()
	r2 := startRelay(t, relayOptions{Config: shortRetryConfig, Data: data, Upstream: upAddr, Listen: r1.Addr})
	missing := func() []int {
		var m []int
		for _, seq := range want {
			if !up.has(strconv.Itoa(seq)) {
				m = append(m, seq)
			}
		}
		return m
	}
	drained := waitFor(120*time.Second, func() bool { return len(missing()) == 0 })
	drainTime := time.Since(restart)

	received, distinct, dups := up.counts()
	lost := missing()
	extra := distinct - (len(want) - len(lost)) // delivered without the client seeing a 250
	t.Logf("accepted=%d (submitted in %v, killed after %d; %d sessions saw errors at the kill) delivered=%d distinct=%d duplicates=%d delivered-without-250=%d lost=%d drain=%v",
		len(want), submitTime.Round(time.Millisecond), killAt, errsLate.Load(),
		received, distinct, dups, extra, len(lost), drainTime.Round(time.Millisecond))
	if !drained || len(lost) > 0 {
		show := lost
		if len(show) > 20 {
			show = show[:20]
		}
		t.Fatalf("lost %d of %d accepted messages after %v, e.g. X-Test-Seq %v", len(lost), len(want), drainTime, show)
	}

	// What arrived must be what was submitted, whole: one prepended
	// Received header, then the exact bytes (a torn write would show here).
	for _, seq := range want {
		got, sent := up.message(strconv.Itoa(seq)), crashMessage(run, seq)
		if !bytes.HasSuffix(got, sent) || !isOneReceivedField(got[:len(got)-len(sent)]) {
			t.Errorf("message %d arrived altered: %d bytes, want one Received field + the %d submitted bytes; starts %q",
				seq, len(got), len(sent), got[:min(len(got), 200)])
			break
		}
	}

	stopStart := time.Now()
	r2.stop(20 * time.Second)
	t.Logf("SIGTERM to exit: %v", time.Since(stopStart).Round(time.Millisecond))
}

// dialSMTP opens a submission session with bounded timeouts.
func dialSMTP(addr string) (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 30 * time.Second
	if err := c.Hello("client.test"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// submit runs one mail transaction on an open session, without RSET: a new
// MAIL after a finished transaction is allowed (RFC 5321 section 3.3). It
// returns nil only on the 250 after DATA.
func submit(c *smtp.Client, from, to string, msg []byte) error {
	if err := c.Mail(from, nil); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		return fmt.Errorf("RCPT: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return fmt.Errorf("DATA write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return nil
}

// isOneReceivedField reports whether p is exactly one Received header field,
// folded or not: all Kadenz may add to a message.
func isOneReceivedField(p []byte) bool {
	_, rest, ok := cutHeaderField(p, "Received:")
	return ok && len(rest) == 0 && bytes.HasSuffix(p, []byte("\r\n"))
}
