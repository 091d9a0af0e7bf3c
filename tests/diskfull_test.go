package tests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// A full disk: the relay answers 451 (try again later) rather than 250 or a
// permanent refusal, keeps running, says in its log what is wrong, and once
// there is room again accepts as before and delivers every message it said
// 250 to, and none it refused.
//
// The data directory is a tmpfs of 8 MiB (mounting it needs root, which CI
// has), filled up to a few hundred KiB by a file the test removes later.
func TestFullDiskDefersAndLosesNothing(t *testing.T) {
	dir := mountSmallTmpfs(t, "8m")
	up := startRecordingUpstream(t)
	r := startRelay(t, relayOptions{
		Data:     filepath.Join(dir, "data"),
		Upstream: up.Addr,
		Config:   "delivery:\n  tls: none\n",
	})
	filler := filepath.Join(dir, "filler")
	fillUpTo(t, dir, filler, 384<<10)

	c, err := dialSMTP(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var accepted, refused []string
	body := strings.Repeat("All the news that fits, and then some.\r\n", 800) // ~32 KB
	for i := 0; i < 200 && len(refused) == 0; i++ {
		id := fmt.Sprintf("full-%d@shop.test", i)
		msg := fmt.Sprintf("From: crm@shop.test\r\nTo: ann@example.test\r\nMessage-ID: <%s>\r\nSubject: %d\r\n\r\n%s", id, i, body)
		err := submit(c, "crm@shop.test", "ann@example.test", []byte(msg))
		var se *smtp.SMTPError
		switch {
		case err == nil:
			accepted = append(accepted, id)
		case errors.As(err, &se) && se.Code == 451:
			refused = append(refused, id)
		default:
			t.Fatalf("message %d on a filling disk: %v, want 250 or 451", i, err)
		}
	}
	if len(refused) == 0 {
		t.Fatalf("%d messages accepted and none refused: the disk never filled", len(accepted))
	}
	if len(accepted) == 0 {
		t.Fatal("nothing accepted before the disk filled: the filler left too little room to test")
	}
	select {
	case <-r.exited:
		t.Fatalf("kadenz exited on a full disk: %v", r.err)
	default:
	}
	if !waitFor(5*time.Second, func() bool { return bytes.Contains(r.log.bytes(), []byte("no space left on device")) }) {
		t.Error("the log does not say the disk is full")
	}
	// Still answering new sessions while full.
	c2, err := dialSMTP(r.Addr)
	if err != nil {
		t.Fatalf("a new session on a full disk: %v", err)
	}
	c2.Close()

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	after := "after-1@shop.test"
	msg := fmt.Sprintf("From: crm@shop.test\r\nTo: ann@example.test\r\nMessage-ID: <%s>\r\nSubject: room again\r\n\r\nHello.\r\n", after)
	if err := submit(c, "crm@shop.test", "ann@example.test", []byte(msg)); err != nil {
		t.Fatalf("with room again: %v", err)
	}
	accepted = append(accepted, after)
	if !waitFor(60*time.Second, func() bool {
		for _, id := range accepted {
			if _, ok := up.message(id); !ok {
				return false
			}
		}
		return true
	}) {
		missing := 0
		for _, id := range accepted {
			if _, ok := up.message(id); !ok {
				missing++
			}
		}
		t.Fatalf("%d of %d accepted messages never reached the upstream", missing, len(accepted))
	}
	for _, id := range refused {
		if _, ok := up.message(id); ok {
			t.Errorf("%s was refused with 451 but delivered anyway", id)
		}
	}
	t.Logf("accepted %d, refused %d with 451 on a full disk; all accepted delivered once there was room", len(accepted)-1, len(refused))
	c.Quit() // an open session would hold the shutdown for its grace period
	r.stop(30 * time.Second)
}

// mountSmallTmpfs mounts a tmpfs of the given size on a new directory and
// unmounts it when the test ends. It needs root: without it the test skips,
// or fails under CI=true.
func mountSmallTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("mounting a %s tmpfs (needs root): %v: %s", size, err, strings.TrimSpace(string(out)))
		if inCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillUpTo writes a file at path that leaves about room bytes free in
// dir's file system.
func fillUpTo(t *testing.T, dir, path string, room int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	if free <= room {
		t.Fatalf("only %d bytes free in %s, want more than %d", free, dir, room)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for left := free - room; left > 0; left -= int64(len(chunk)) {
		n := min(int64(len(chunk)), left)
		if _, err := f.Write(chunk[:n]); err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
}
