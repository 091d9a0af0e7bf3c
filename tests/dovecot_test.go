package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dovecot is a private Dovecot instance: its own config, runtime, state and
// maildirs under a temp directory, listening for plain IMAP on loopback.
type dovecot struct {
	Addr     string
	User     string
	Password string
	// Maildir is the user's INBOX; other folders are Maildir++ subfolders
	// (".Done").
	Maildir string
	log     string
	conf    string // dovecot.conf, for dovecot-lda
	uid     int
	gid     int
	cmd     *exec.Cmd
	exited  chan struct{}
}

// startDovecot runs `dovecot -F` with a minimal config written for the test
// and stops it when the test ends.
//
// Running as root (as CI does), Dovecot refuses to give mail processes uid 0
// ("userdb returned 0 as uid"), so mail is owned by nobody:nogroup, and the
// temp directories on the way to it are opened up to be traversable. Its
// internal and login processes run as the dovecot and dovenull users that
// Debian's dovecot-core creates. Not as root, everything runs as the
// current user.
func startDovecot(t *testing.T) *dovecot {
	t.Helper()
	bin := "/usr/sbin/dovecot"
	if _, err := os.Stat(bin); err != nil {
		bin = requireProgram(t, "dovecot")
	}
	dir := t.TempDir()
	d := &dovecot{Addr: freeAddr(t), User: "bounces", Password: "dovecot-test-pw", exited: make(chan struct{}),
		uid: os.Getuid(), gid: os.Getgid()}
	internalUser, loginUser := "", ""
	if d.uid == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("running as root needs a nobody user for the mail: %v", err)
		}
		d.uid, _ = strconv.Atoi(nobody.Uid)
		d.gid, _ = strconv.Atoi(nobody.Gid)
		internalUser, loginUser = "dovecot", "dovenull"
		// nobody must reach the maildirs: open t.TempDir's two levels.
		for _, p := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		me, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		internalUser, loginUser = me.Username, me.Username
	}
	host, port, _ := strings.Cut(d.Addr, ":")
	mailRoot := filepath.Join(dir, "mail")
	d.Maildir = filepath.Join(mailRoot, d.User)
	for _, sub := range []string{"", "new", "cur", "tmp"} {
		d.mkdir(t, filepath.Join(d.Maildir, sub))
	}
	if err := os.Chown(mailRoot, d.uid, d.gid); err != nil {
		t.Fatal(err)
	}
	d.log = filepath.Join(dir, "dovecot.log")
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte(d.User+":{PLAIN}"+d.Password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`# A private Dovecot for one test.
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[2]s
info_log_path = %[2]s
protocols = imap
listen = %[3]s
ssl = no
# Plain LOGIN over loopback; Dovecot counts loopback as secured anyway.
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = %[4]s
default_login_user = %[5]s
first_valid_uid = 0
mail_location = maildir:%[6]s/%%u
service imap-login {
  inet_listener imap {
    address = %[3]s
    port = %[7]s
  }
  inet_listener imaps {
    port = 0
  }
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[8]s
}
userdb {
  driver = static
  args = uid=%[9]d gid=%[10]d home=%[6]s/%%u
}
`, dir, d.log, host, internalUser, loginUser, mailRoot, port, users, d.uid, d.gid)
	confPath := filepath.Join(dir, "dovecot.conf")
	d.conf = confPath
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"run", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.cmd = exec.Command(bin, "-F", "-c", confPath)
	var out bytes.Buffer
	d.cmd.Stdout, d.cmd.Stderr = &out, &out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			logText, _ := os.ReadFile(d.log)
			t.Logf("dovecot output:\n%s\ndovecot log:\n%s", out.String(), logText)
		}
	})
	if err := waitListening(d.Addr, 20*time.Second, d.exited); err != nil {
		logText, _ := os.ReadFile(d.log)
		t.Fatalf("dovecot: %v\n%s\n%s", err, out.String(), logText)
	}
	return d
}

func (d *dovecot) mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, d.uid, d.gid); err != nil {
		t.Fatal(err)
	}
}

// stop asks Dovecot to quit and waits for it, killing it after a while.
func (d *dovecot) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

// deliver writes a message into the INBOX the way an MDA does: into tmp/,
// then renamed into new/ (the maildir protocol).
func (d *dovecot) deliver(t *testing.T, name string, msg []byte) {
	t.Helper()
	tmp := filepath.Join(d.Maildir, "tmp", name)
	if err := os.WriteFile(tmp, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, d.uid, d.gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.Maildir, "new", name)); err != nil {
		t.Fatal(err)
	}
}

// files lists the message files of a folder's cur/ ("" is the INBOX), with
// their maildir info (":2,S" for \Seen).
func (d *dovecot) files(folder string) []string {
	dir := d.Maildir
	if folder != "" {
		dir = filepath.Join(dir, "."+folder)
	}
	var names []string
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			names = append(names, sub+"/"+e.Name())
		}
	}
	return names
}

// TestDovecotFeedbackMailbox: kadenz reads a bounce out of a real Dovecot,
// marks it \Seen and $KadenzDone and moves it to another folder; a second
// bounce, delivered while kadenz waits in IDLE with a schedule a year away,
// is read too — so IDLE, not polling, woke it.
func TestDovecotFeedbackMailbox(t *testing.T) {
	d := startDovecot(t)
	bounce, err := os.ReadFile("../governor/feedback/report/testdata/dsn-rfc3464-hard.eml")
	if err != nil {
		t.Fatal(err)
	}
	d.deliver(t, "1.kadenz-test-1.localhost", bounce)

	r := startRelay(t, relayOptions{Config: fmt.Sprintf(`feedback:
  mailboxes:
    - name: dovecot
      address: %s
      tls: none
      username: %s
      password: %s
      processed: flag
      move_to: Done
      schedule: "@every 8760h"
      idle: true
log:
  level: debug
`, d.Addr, d.User, d.Password)})

	moved := func(n int) bool {
		files := d.files("Done")
		if len(files) != n {
			return false
		}
		for _, f := range files {
			// Dovecot keeps \Seen as "S" in the maildir info and keywords as
			// letters from "a" (listed in dovecot-keywords).
			_, info, _ := strings.Cut(f, ":2,")
			if !strings.Contains(info, "S") || !strings.ContainsAny(info, "abcdefghijklmnopqrstuvwxyz") {
				return false
			}
		}
		return len(d.files("")) == 0
	}
	if !waitFor(15*time.Second, func() bool { return moved(1) }) {
		t.Fatalf("the bounce was not moved to Done, flagged: INBOX %q, Done %q", d.files(""), d.files("Done"))
	}
	keywords, _ := os.ReadFile(filepath.Join(d.Maildir, ".Done", "dovecot-keywords"))
	if !bytes.Contains(keywords, []byte("$KadenzDone")) {
		t.Errorf("Done/dovecot-keywords = %q, want $KadenzDone", keywords)
	}
	if !bytes.Contains(r.log.bytes(), []byte("kind=bounce")) {
		t.Errorf("kadenz did not log the bounce report:\n%s", r.log.tail(4<<10))
	}

	// IDLE: nothing else would make kadenz look again within the year.
	// Deliver once it is idling, so that its last SEARCH cannot be what
	// finds the message.
	if !waitFor(15*time.Second, func() bool {
		return bytes.Contains(r.log.bytes(), []byte(`msg="waiting for new mail" part=feedback mailbox=dovecot idle=true`))
	}) {
		t.Fatalf("kadenz never went into IDLE:\n%s", r.log.tail(4<<10))
	}
	d.deliver(t, "2.kadenz-test-2.localhost", bounce)
	start := time.Now()
	if !waitFor(15*time.Second, func() bool { return moved(2) }) {
		t.Fatalf("the second bounce was not read while kadenz was in IDLE: INBOX %q, Done %q", d.files(""), d.files("Done"))
	}
	t.Logf("second bounce read %v after delivery, through IDLE", time.Since(start).Round(time.Millisecond))
	r.stop(10 * time.Second)
}
