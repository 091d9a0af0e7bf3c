// Package tests is Kadenz's black-box suite: it builds the real binary once,
// runs it as a separate process on 127.0.0.1 and drives it with real peers —
// go-smtp clients and servers in-process, and Debian's swaks, Python's smtplib
// and Postfix's smtp-sink as outside programs.
//
// It only knows the binary's command line, config file and SMTP behaviour,
// never Kadenz's packages (except store/postgres/pgtest, which starts the
// private PostgreSQL the cluster tests share), so it checks what an
// operator would see.
//
// Tests that need an outside program skip when it is missing, except under
// CI=true, where a missing program is a failure: CI installs them
// (.ci/deps), so a skip there would hide a broken install step.
package tests

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"kadenz/store/postgres/pgtest"
)

// kadenzBin is the binary built by TestMain.
var kadenzBin string

func TestMain(m *testing.M) {
	flag.Parse()
	// `go test -list` (used by `make fuzz` to find fuzz targets) runs
	// TestMain too; building the relay for it would waste half a minute.
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "kadenz-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		os.Exit(1)
	}
	kadenzBin = filepath.Join(dir, "kadenz")
	args := []string{"build", "-o", kadenzBin}
	if buildRace() {
		args = append(args, "-race")
	}
	args = append(args, "kadenz/cmd/kadenz")
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "tests: cannot build kadenz:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// pgtest.Main runs the tests and stops the private PostgreSQL cluster
	// the cluster tests start, if any did.
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildRace says whether to build the relay with the race detector: by
// default when the tests themselves run with -race, so `make test` also
// catches data races inside the relay under real load. KADENZ_TEST_RACE=0
// or 1 overrides.
func buildRace() bool {
	switch os.Getenv("KADENZ_TEST_RACE") {
	case "0":
		return false
	case "1":
		return true
	}
	return raceEnabled
}

// inCI reports whether missing peers must fail tests rather than skip them.
func inCI() bool { return os.Getenv("CI") == "true" }

// requireProgram returns the path of an outside program the test needs.
func requireProgram(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if inCI() {
			t.Fatalf("%s is missing and CI=true: .ci/deps should have installed it (%v)", name, err)
		}
		t.Skipf("%s not installed (run `make deps`): %v", name, err)
	}
	return path
}

// freeAddr returns a loopback address with a port nothing listens on right
// now. Another process could take it before the caller does; on a test
// machine that is rare enough.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// waitListening polls a TCP connect to addr until it succeeds or the
// deadline passes; exited, if not nil, ends the wait early.
func waitListening(addr string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited before listening on %s", addr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s after %v: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// relayOptions says how to start one kadenz serve process.
type relayOptions struct {
	Config   string // YAML text; empty: no --config, embedded defaults
	Data     string // --data; empty: a fresh temp dir
	Listen   string // --listen; empty: a free loopback port
	Upstream string // --upstream; empty: outbox

	// Args are more serve flags, e.g. --admin and --clock.
	Args []string
}

// relay is one running `kadenz serve` process.
type relay struct {
	t      *testing.T
	Addr   string
	Data   string
	cmd    *exec.Cmd
	log    *lockedBuffer
	exited chan struct{} // closed when the process has been reaped
	err    error         // Wait's result, valid after exited is closed
}

// startRelay starts kadenz serve and waits until it accepts TCP connections.
// The process is killed at the end of the test if it still runs; its log is
// printed if the test failed.
func startRelay(t *testing.T, o relayOptions) *relay {
	t.Helper()
	if o.Data == "" {
		o.Data = t.TempDir()
	}
	if o.Listen == "" {
		o.Listen = freeAddr(t)
	}
	args := []string{"serve", "--listen", o.Listen, "--data", o.Data}
	if o.Config != "" {
		f := filepath.Join(t.TempDir(), "kadenz.yaml")
		if err := os.WriteFile(f, []byte(o.Config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", f)
	}
	if o.Upstream != "" {
		args = append(args, "--upstream", o.Upstream)
	}
	args = append(args, o.Args...)
	r := &relay{t: t, Addr: o.Listen, Data: o.Data, log: &lockedBuffer{}, exited: make(chan struct{})}
	r.cmd = exec.Command(kadenzBin, args...)
	r.cmd.Stdout = r.log
	r.cmd.Stderr = r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("kadenz %s log (last 8 KiB):\n%s", strings.Join(args, " "), r.log.tail(8<<10))
		}
	})
	if err := waitListening(o.Listen, 20*time.Second, r.exited); err != nil {
		t.Fatalf("kadenz %s: %v\nlog:\n%s", strings.Join(args, " "), err, r.log.tail(8<<10))
	}
	return r
}

// kill sends SIGKILL — the crash — and reaps the process.
func (r *relay) kill() {
	select {
	case <-r.exited:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// stop sends SIGTERM and fails the test unless the process exits cleanly
// (status 0) within timeout.
func (r *relay) stop(timeout time.Duration) {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-r.exited:
	case <-time.After(timeout):
		r.kill()
		r.t.Fatalf("kadenz did not exit within %v of SIGTERM", timeout)
	}
	if r.err != nil {
		var ee *exec.ExitError
		if errors.As(r.err, &ee) {
			r.t.Fatalf("kadenz exited uncleanly after SIGTERM: %v", ee)
		}
		r.t.Fatalf("kadenz wait: %v", r.err)
	}
	if bytes.Contains(r.log.bytes(), []byte("WARNING: DATA RACE")) {
		r.t.Errorf("the race detector reported a data race inside kadenz (see log)")
	}
}

// outbox lists the .eml files kadenz wrote without an upstream.
func (r *relay) outbox() []string {
	files, _ := filepath.Glob(filepath.Join(r.Data, "outbox", "*.eml"))
	return files
}

// waitFor polls cond every 50 ms until it returns true or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedBuffer collects a child's output; the process writes it from one
// goroutine while the test reads it from another.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *lockedBuffer) tail(n int) string {
	p := b.bytes()
	if len(p) > n {
		p = p[len(p)-n:]
	}
	return string(p)
}
