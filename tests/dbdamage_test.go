package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// heldMessages is how many marketing messages the damage tests hold.
const heldMessages = 300

// heldMessage is newsletter n: List-Unsubscribe makes it marketing, so the
// relay holds it.
func heldMessage(n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <news@shop.test>\r\nTo: <reader%d@example.test>\r\n", n)
	fmt.Fprintf(&b, "Subject: newsletter %d\r\nMessage-ID: <news-%d@shop.test>\r\n", n, n)
	b.WriteString("List-Unsubscribe: <mailto:unsub@shop.test>\r\n\r\n")
	for i := range 20 {
		fmt.Fprintf(&b, "newsletter %d, line %d: our spring offers, with more words to fill a page\r\n", n, i)
	}
	return b.Bytes()
}

// populatedData returns a data directory holding heldMessages held
// messages, made by the real relay and stopped cleanly.
func populatedData(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	admin := freeAddr(t)
	r := startRelay(t, relayOptions{Data: data, Args: []string{"--admin", admin}})
	c, err := dialSMTP(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	for n := range heldMessages {
		if err := submit(c, "news@shop.test", fmt.Sprintf("reader%d@example.test", n), heldMessage(n)); err != nil {
			t.Fatalf("message %d: %v", n, err)
		}
	}
	c.Quit()
	if got := heldCount(t, admin); got != heldMessages {
		t.Fatalf("held %d messages, want %d", got, heldMessages)
	}
	r.stop(30 * time.Second)
	return data
}

// heldCount asks a running relay how many envelopes it holds.
func heldCount(t *testing.T, admin string) int {
	t.Helper()
	return stateCounts(t, admin)["held"]
}

// stateCounts asks a running relay how many envelopes it has in each state.
func stateCounts(t *testing.T, admin string) map[string]int {
	t.Helper()
	// startRelay waits for SMTP; the admin listener may come a moment later.
	if err := waitListening(admin, 20*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + admin + "/v1/queue/summary")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var counts map[string]int
	if err := json.NewDecoder(resp.Body).Decode(&counts); err != nil {
		t.Fatal(err)
	}
	return counts
}

// copyData copies the files of a data directory (not subdirectories).
func copyData(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// runKadenz runs the binary to completion and returns its exit status and
// output.
func runKadenz(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(kadenzBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String(), errb.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out.String(), errb.String()
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("kadenz %s did not exit within 60 s (it should refuse at once)\n%s%s", strings.Join(args, " "), out.String(), errb.String())
		return 0, "", ""
	}
}

// noCrash fails the test if output shows a Go panic or runtime fault.
func noCrash(t *testing.T, what, output string) {
	t.Helper()
	for _, sign := range []string{"panic:", "fatal error:", "goroutine ", "SIGBUS", "SIGSEGV", "runtime."} {
		if strings.Contains(output, sign) {
			t.Fatalf("%s crashed (%q in its output):\n%s", what, sign, output)
		}
	}
}

// garblePage overwrites page n of the file with bytes that are not a page.
func garblePage(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := bytes.Repeat([]byte{0xA5, 0x3C, 0xFF, 0x07}, 1024)
	if _, err := f.WriteAt(junk, n*4096); err != nil {
		t.Fatal(err)
	}
}

// garbleReachedPage garbles the first page from page `from` on whose loss
// is damage: a free page (bbolt keeps a few, copies of pages rewritten
// since) is not, and serve rightly opens a file with one garbled. Which
// pages are free differs from run to run, so db check tells.
func garbleReachedPage(t *testing.T, db string, from int64) {
	t.Helper()
	pristine, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for p := from; p < from+40; p++ {
		if err := os.WriteFile(db, pristine, 0o600); err != nil {
			t.Fatal(err)
		}
		garblePage(t, db, p)
		if code, _, _ := runKadenz(t, "db", "check", db); code == 1 {
			t.Logf("garbled page %d", p)
			return
		}
	}
	t.Fatalf("no page from %d on is reached by the tree", from)
}

// TestDamagedDatabaseIsRefused damages a database holding 300 messages in
// each way an unlucky operator meets, and checks that serve refuses it with
// a clear message and exit status 3 instead of starting empty, starting
// with less, or crashing; that "db check" reports it; and that "db
// recover" copies what is readable into a file the relay then serves.
func TestDamagedDatabaseIsRefused(t *testing.T) {
	pristine := populatedData(t)
	size := func(dir string) int64 {
		fi, err := os.Stat(filepath.Join(dir, "kadenz.db"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	damages := []struct {
		name   string
		damage func(t *testing.T, db string)
		// recoverable: recover makes a copy holding at least min messages.
		recoverable bool
		min         int
	}{
		{"missing file", func(t *testing.T, db string) { os.Remove(db) }, false, 0},
		{"zero-length file", func(t *testing.T, db string) { os.Truncate(db, 0) }, false, 0},
		// bbolt alone would open this from meta page 1 and start with one
		// transaction fewer (299 of 300 in the issue).
		{"garbled meta page 0", func(t *testing.T, db string) { garblePage(t, db, 0) }, true, heldMessages - 1},
		{"truncated to half", func(t *testing.T, db string) {
			fi, _ := os.Stat(db)
			os.Truncate(db, fi.Size()/2)
		}, true, heldMessages / 3},
		// The middle page may be a leaf of envelopes or of messages: what it
		// held is lost, a page's worth, which since records are stored in
		// binary (schema 6) can be 12 or more of this test's (CI lost 12).
		{"garbled middle page", func(t *testing.T, db string) { garbleReachedPage(t, db, size(pristine)/4096/2) }, true, heldMessages - 24},
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			data := copyData(t, pristine)
			db := filepath.Join(data, "kadenz.db")
			d.damage(t, db)

			code, out, errOut := runKadenz(t, "serve", "--data", data, "--listen", freeAddr(t))
			noCrash(t, "serve", out+errOut)
			if code != 3 {
				t.Fatalf("serve exited with %d, want 3 (damaged database)\n%s%s", code, out, errOut)
			}
			for _, want := range []string{"refusing to open", "kadenz db recover", "restore the latest backup"} {
				if !strings.Contains(errOut, want) {
					t.Errorf("serve's error lacks %q:\n%s", want, errOut)
				}
			}
			if d.name == "missing file" {
				if _, err := os.Stat(db); err == nil {
					t.Errorf("serve created a fresh %s", db)
				}
			}

			code, out, errOut = runKadenz(t, "db", "check", "--data", data)
			noCrash(t, "db check", out+errOut)
			if code != 1 {
				t.Errorf("db check exited with %d, want 1 (damaged)\n%s%s", code, out, errOut)
			}

			recovered := filepath.Join(t.TempDir(), "recovered.db")
			code, out, errOut = runKadenz(t, "db", "recover", "--data", data, recovered)
			noCrash(t, "db recover", out+errOut)
			if !d.recoverable {
				if code == 0 {
					t.Errorf("db recover of a %s succeeded:\n%s", d.name, out)
				}
				return
			}
			if code != 0 {
				t.Fatalf("db recover exited with %d\n%s%s", code, out, errOut)
			}
			t.Logf("db recover:\n%s", out)
			m := regexp.MustCompile(`envelopes waiting in the copy: (\d+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("recover's report lacks the waiting count:\n%s", out)
			}
			waiting, _ := strconv.Atoi(m[1])

			// The recovered file, put in place, is served with what it says.
			restored := copyData(t, data)
			if err := os.Rename(recovered, filepath.Join(restored, "kadenz.db")); err != nil {
				t.Fatal(err)
			}
			admin := freeAddr(t)
			r := startRelay(t, relayOptions{Data: restored, Args: []string{"--admin", admin}})
			// Held, or in review: recovered from outside the tree, where a
			// person decides (it may be stale).
			counts := stateCounts(t, admin)
			held := counts["held"] + counts["review"]
			t.Logf("%s: the recovered database holds %d of %d messages (%d in review)", d.name, held, heldMessages, counts["review"])
			if held != waiting || held < d.min || held > heldMessages {
				t.Errorf("the recovered database holds %d messages; the report said %d, want between %d and %d",
					held, waiting, d.min, heldMessages)
			}
			r.stop(30 * time.Second)
		})
	}
}

// TestDatabaseBackupWhileServing backs up a serving relay through its
// admin API, and a stopped one from the file, and serves each copy.
func TestDatabaseBackupWhileServing(t *testing.T) {
	data := populatedData(t)
	admin := freeAddr(t)
	r := startRelay(t, relayOptions{Data: data, Args: []string{"--admin", admin}})
	online := filepath.Join(t.TempDir(), "online.db")
	code, out, errOut := runKadenz(t, "db", "backup", "--admin", admin, "--data", data, online)
	if code != 0 || !strings.Contains(out, "from the running kadenz") {
		t.Fatalf("db backup while serving: exit %d\n%s%s", code, out, errOut)
	}
	// Checking the file of a running relay is refused: its pages are being
	// rewritten, and a report on them would be noise.
	if code, _, errOut := runKadenz(t, "db", "check", "--data", data); code != 2 || !strings.Contains(errOut, "locked") {
		t.Errorf("db check of a served database: exit %d, stderr %q; want 2 and the lock named", code, errOut)
	}
	// Offline copying of a file the daemon holds is refused, not attempted.
	code, _, errOut = runKadenz(t, "db", "backup", "--offline", "--data", data, filepath.Join(t.TempDir(), "x.db"))
	if code == 0 || !strings.Contains(errOut, "locked") {
		t.Errorf("offline backup of a served database: exit %d, stderr %q; want a refusal naming the lock", code, errOut)
	}
	r.stop(30 * time.Second)
	offline := filepath.Join(t.TempDir(), "offline.db")
	code, out, errOut = runKadenz(t, "db", "backup", "--offline", "--data", data, offline)
	if code != 0 {
		t.Fatalf("db backup --offline: exit %d\n%s%s", code, out, errOut)
	}
	for _, copyPath := range []string{online, offline} {
		code, out, errOut := runKadenz(t, "db", "check", copyPath)
		if code != 0 {
			t.Fatalf("db check %s: exit %d\n%s%s", copyPath, code, out, errOut)
		}
		restored := t.TempDir()
		in, err := os.Open(copyPath)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(restored, "kadenz.db"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(dst, in)
		in.Close()
		dst.Close()
		admin := freeAddr(t)
		r := startRelay(t, relayOptions{Data: restored, Args: []string{"--admin", admin}})
		if got := heldCount(t, admin); got != heldMessages {
			t.Errorf("the backup %s holds %d messages, want %d", copyPath, got, heldMessages)
		}
		r.stop(30 * time.Second)
	}
}

// TestDatabaseCompact: compaction is refused while the relay serves, and
// on a stopped relay it leaves a sound, no larger file the relay serves
// with the same held mail.
func TestDatabaseCompact(t *testing.T) {
	data := populatedData(t)
	admin := freeAddr(t)
	r := startRelay(t, relayOptions{Data: data, Args: []string{"--admin", admin}})
	if code, _, errOut := runKadenz(t, "db", "compact", "--data", data); code == 0 || !strings.Contains(errOut, "stop kadenz") {
		t.Errorf("db compact of a served database: exit %d, stderr %q; want a refusal", code, errOut)
	}
	r.stop(30 * time.Second)
	path := filepath.Join(data, "kadenz.db")
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runKadenz(t, "db", "compact", "--data", data)
	if code != 0 || !strings.Contains(out, "bytes before") {
		t.Fatalf("db compact: exit %d\n%s%s", code, out, errOut)
	}
	after, err := os.Stat(path)
	if err != nil || after.Size() > before.Size() {
		t.Fatalf("compacted file: %v bytes (was %d), %v", after.Size(), before.Size(), err)
	}
	if code, out, errOut := runKadenz(t, "db", "check", "--data", data); code != 0 {
		t.Fatalf("db check after compact: exit %d\n%s%s", code, out, errOut)
	}
	r = startRelay(t, relayOptions{Data: data, Args: []string{"--admin", admin}})
	if got := heldCount(t, admin); got != heldMessages {
		t.Errorf("after compaction the relay holds %d messages, want %d", got, heldMessages)
	}
	r.stop(30 * time.Second)
}
