package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"kadenz/config"
	"kadenz/store"
)

const (
	testUser     = "feedback"
	testPassword = "s3cret"
	// waitLimit bounds how long a test waits for something that should
	// happen within milliseconds; only a failing test waits this long.
	waitLimit = 10 * time.Second
)

// server is an in-process IMAP server whose mail survives restarts.
type server struct {
	t    *testing.T
	mem  *imapmemserver.Server
	user *imapmemserver.User
	addr string
	srv  *imapserver.Server
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{t: t, mem: imapmemserver.New(), user: imapmemserver.NewUser(testUser, testPassword)}
	s.user.Create("INBOX", nil)
	s.mem.AddUser(s.user)
	s.start("127.0.0.1:0")
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *server) start(addr string) {
	s.t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = l.Addr().String()
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return s.mem.NewSession(), nil, nil
		},
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0), // connections cut on purpose are not news
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapMove: {}},
	})
	go s.srv.Serve(l)
}

// restart closes every connection and the listener, then listens again on
// the same address.
func (s *server) restart() {
	s.srv.Close()
	s.start(s.addr)
}

// deliver appends a message with the given subject to folder.
func (s *server) deliver(folder, subject string, flags ...imap.Flag) {
	s.t.Helper()
	raw := fmt.Sprintf("From: mailer-daemon@example.net\r\nTo: bounces@shop.test\r\nSubject: %s\r\n"+
		"Message-Id: <%s@example.net>\r\n\r\nbody of %s\r\n", subject, strings.ReplaceAll(subject, " ", "-"), subject)
	if _, err := s.user.Append(folder, bytes.NewReader([]byte(raw)), &imap.AppendOptions{Flags: flags}); err != nil {
		s.t.Fatal(err)
	}
}

// message is what a folder holds, seen through a separate client.
type message struct {
	subject string
	flags   []imap.Flag
}

func (s *server) folder(name string) []message {
	s.t.Helper()
	c, err := imapclient.DialInsecure(s.addr, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		s.t.Fatal(err)
	}
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		s.t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	var seq imap.SeqSet
	seq.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(seq, &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
	if err != nil {
		s.t.Fatal(err)
	}
	var out []message
	for _, m := range msgs {
		if m.Envelope == nil {
			// The reader expunged it between SELECT and FETCH; look again.
			return s.folder(name)
		}
		out = append(out, message{subject: m.Envelope.Subject, flags: m.Flags})
	}
	return out
}

// recorder is a handler that remembers what it was given, and fails on
// messages whose subject contains "poison".
type recorder struct {
	mu       sync.Mutex
	subjects []string
	got      chan string
}

func newRecorder() *recorder { return &recorder{got: make(chan string, 100)} }

func (rec *recorder) handle(_ context.Context, raw []byte) error {
	subject := ""
	for line := range strings.SplitSeq(string(raw), "\r\n") {
		if s, ok := strings.CutPrefix(line, "Subject: "); ok {
			subject = s
		}
	}
	rec.mu.Lock()
	rec.subjects = append(rec.subjects, subject)
	rec.mu.Unlock()
	rec.got <- subject
	if strings.Contains(subject, "poison") {
		return errors.New("cannot make sense of it")
	}
	return nil
}

// expect waits for the handler to be given exactly these subjects next.
func (rec *recorder) expect(t *testing.T, subjects ...string) {
	t.Helper()
	for _, want := range subjects {
		select {
		case got := <-rec.got:
			if got != want {
				t.Fatalf("handler got %q, want %q (all so far: %q)", got, want, rec.all())
			}
		case <-time.After(waitLimit):
			t.Fatalf("handler never got %q (all so far: %q)", want, rec.all())
		}
	}
}

func (rec *recorder) all() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.subjects)
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "kadenz.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// options are a reader's for s: plain IMAP on loopback, a schedule so far
// away that only IDLE, Kick or a reconnect makes the reader look.
func options(t *testing.T, s *server, db *store.DB, rec *recorder) Options {
	sched, err := config.ParseSchedule("@every 8760h")
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		Name:       "bounces",
		Addr:       s.addr,
		TLS:        config.MailboxTLSNone,
		Username:   testUser,
		Password:   testPassword,
		Processed:  config.ProcessedFlag,
		Schedule:   sched,
		Idle:       true,
		Handler:    rec.handle,
		DB:         db,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		BackoffMin: 5 * time.Millisecond,
		BackoffMax: 20 * time.Millisecond,
	}
}

func start(t *testing.T, opts Options) *Reader {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.Start(t.Context())
	t.Cleanup(r.Stop)
	return r
}

func hasFlags(m message, flags ...imap.Flag) bool {
	for _, f := range flags {
		if !slices.ContainsFunc(m.flags, func(g imap.Flag) bool { return strings.EqualFold(string(f), string(g)) }) {
			return false
		}
	}
	return true
}

// TestEachMessageOnceAcrossRestarts: mail is handed over once, in order,
// and a new reader on the same store does not hand it over again — even
// when the $KadenzDone keyword is gone (a server that does not keep
// keywords): the stored cursor alone must prevent it.
func TestEachMessageOnceAcrossRestarts(t *testing.T) {
	s := newServer(t)
	db := openDB(t)
	rec := newRecorder()
	s.deliver("INBOX", "one")
	s.deliver("INBOX", "two")
	r := start(t, options(t, s, db, rec))
	rec.expect(t, "one", "two")
	waitFor(t, func() bool { _, last, _ := db.MailboxState("bounces"); return last == 2 }, "the cursor to reach UID 2")
	r.Stop()
	for _, m := range s.folder("INBOX") {
		if !hasFlags(m, imap.FlagSeen, KeywordDone) || hasFlags(m, KeywordFailed) {
			t.Errorf("%q has flags %v, want \\Seen and $KadenzDone", m.subject, m.flags)
		}
	}
	if uv, last, err := db.MailboxState("bounces"); err != nil || uv == 0 || last != 2 {
		t.Errorf("stored state %d %d %v, want last UID 2", uv, last, err)
	}

	// A new reader with nothing new to read: "UID 3:*" still matches UID
	// 2, the highest (RFC 9051 section 6.4.4.1), which must not count.
	unmarkAll(t, s)
	opts := options(t, s, db, rec)
	waiting := waitSignal(&opts)
	start(t, opts)
	<-waiting
	s.deliverDuringIdle(rec, "three")
	if got := rec.all(); !slices.Equal(got[:3], []string{"one", "two", "three"}) || slices.Contains(got[3:], "one") || slices.Contains(got[3:], "two") {
		t.Errorf("handled %q, want each message once", got)
	}
}

// unmarkAll removes Kadenz's keywords from every message in INBOX.
func unmarkAll(t *testing.T, s *server) {
	t.Helper()
	c, err := imapclient.DialInsecure(s.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	if err := c.Store(all, &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true,
		Flags: []imap.Flag{KeywordDone, KeywordFailed, imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
}

// TestUIDValidityChangeStartsOver: a folder re-created with a new
// UIDVALIDITY reuses UIDs, which the old cursor would skip; the reader
// starts over, passing by messages already marked $KadenzDone.
func TestUIDValidityChangeStartsOver(t *testing.T) {
	s := newServer(t)
	db := openDB(t)
	rec := newRecorder()
	s.deliver("INBOX", "one")
	s.deliver("INBOX", "two")
	r := start(t, options(t, s, db, rec))
	rec.expect(t, "one", "two")
	waitFor(t, func() bool { _, last, _ := db.MailboxState("bounces"); return last == 2 }, "the cursor to reach UID 2")
	r.Stop()
	oldValidity, _, _ := db.MailboxState("bounces")

	if err := s.user.Delete("INBOX"); err != nil {
		t.Fatal(err)
	}
	s.user.Create("INBOX", nil)
	s.deliver("INBOX", "restored", KeywordDone) // UID 1, handled before the move
	s.deliver("INBOX", "new")                   // UID 2: at or below the old cursor
	start(t, options(t, s, db, rec))
	rec.expect(t, "new")
	waitFor(t, func() bool { _, last, _ := db.MailboxState("bounces"); return last == 2 }, "the cursor to reach UID 2")
	if got := rec.all(); !slices.Equal(got, []string{"one", "two", "new"}) {
		t.Errorf("handled %q", got)
	}
	if uv, last, _ := db.MailboxState("bounces"); uv == oldValidity || last != 2 {
		t.Errorf("state after the change: UIDVALIDITY %d (was %d), last UID %d; want a new one and 2", uv, oldValidity, last)
	}
}

func TestFlagAndMove(t *testing.T) {
	s := newServer(t)
	rec := newRecorder()
	s.deliver("INBOX", "one")
	opts := options(t, s, openDB(t), rec)
	opts.MoveTo = "Kadenz/Done"
	start(t, opts)
	rec.expect(t, "one")
	waitFor(t, func() bool { return len(s.folder("INBOX")) == 0 }, "INBOX to be emptied")
	done := s.folder("Kadenz/Done")
	if len(done) != 1 || done[0].subject != "one" || !hasFlags(done[0], imap.FlagSeen, KeywordDone) {
		t.Errorf("Kadenz/Done holds %+v, want one message flagged \\Seen $KadenzDone", done)
	}
}

// TestDeleteAndHandlerError: a message the handler fails on does not block
// the next one; with processed: delete it stays in the folder, flagged,
// while handled ones are expunged.
func TestDeleteAndHandlerError(t *testing.T) {
	s := newServer(t)
	rec := newRecorder()
	s.deliver("INBOX", "poison")
	s.deliver("INBOX", "fine")
	opts := options(t, s, openDB(t), rec)
	opts.Processed = config.ProcessedDelete
	start(t, opts)
	rec.expect(t, "poison", "fine")
	waitFor(t, func() bool { return len(s.folder("INBOX")) == 1 }, "the handled message to be expunged")
	left := s.folder("INBOX")
	if left[0].subject != "poison" || !hasFlags(left[0], KeywordDone, KeywordFailed) || hasFlags(left[0], imap.FlagDeleted) {
		t.Errorf("left in INBOX: %+v, want the poison message flagged $KadenzDone $KadenzFailed", left)
	}
}

// TestIdleWakesReader: with a schedule a year away, only IDLE can make the
// reader see a message delivered while it waits.
func TestIdleWakesReader(t *testing.T) {
	s := newServer(t)
	rec := newRecorder()
	s.deliver("INBOX", "one")
	opts := options(t, s, openDB(t), rec)
	waiting := waitSignal(&opts)
	start(t, opts)
	rec.expect(t, "one")
	<-waiting
	s.deliverDuringIdle(rec, "two")
}

// deliverDuringIdle delivers a message to a reader in IDLE and waits for
// the handler to get it.
//
// imapmemserver starts listening for a session's updates a moment after it
// has acknowledged IDLE, and forgets an append that falls in between until
// the next one; so if the message has not arrived after a while, another
// message nudges the server. Without IDLE nothing ever arrives.
func (s *server) deliverDuringIdle(rec *recorder, subject string) {
	s.t.Helper()
	s.deliver("INBOX", subject)
	deadline := time.After(waitLimit)
	for nudges := 0; ; nudges++ {
		select {
		case got := <-rec.got:
			if got != subject {
				s.t.Fatalf("handler got %q, want %q first", got, subject)
			}
			return
		case <-time.After(200 * time.Millisecond):
			s.deliver("INBOX", fmt.Sprintf("nudge %d", nudges))
		case <-deadline:
			s.t.Fatalf("handler never got %q (all so far: %q)", subject, rec.all())
		}
	}
}

// waitSignal makes the reader report each time it starts waiting.
func waitSignal(opts *Options) <-chan struct{} {
	ch := make(chan struct{}, 100)
	opts.waiting = func() { ch <- struct{}{} }
	return ch
}

// TestPollWithoutIdle: with idle off the reader looks on its schedule; here
// the injected timer fires at once for the schedule and Kick is not needed.
func TestPollWithoutIdle(t *testing.T) {
	s := newServer(t)
	rec := newRecorder()
	opts := options(t, s, openDB(t), rec)
	opts.Idle = false
	polls := make(chan time.Time)
	opts.After = func(d time.Duration) <-chan time.Time {
		if d > time.Hour { // the schedule's wait
			return polls
		}
		return time.After(d)
	}
	start(t, opts)
	s.deliver("INBOX", "one")
	polls <- time.Time{} // blocks until the reader waits on the schedule
	rec.expect(t, "one")
	s.deliver("INBOX", "two")
	polls <- time.Time{}
	rec.expect(t, "two")
}

// TestReconnectsAfterServerRestart: the reader survives the server closing
// every connection and coming back on the same address.
func TestReconnectsAfterServerRestart(t *testing.T) {
	s := newServer(t)
	rec := newRecorder()
	s.deliver("INBOX", "before")
	start(t, options(t, s, openDB(t), rec))
	rec.expect(t, "before")
	s.srv.Close()
	s.deliver("INBOX", "during")
	time.Sleep(50 * time.Millisecond) // let it fail to reconnect a few times
	s.start(s.addr)
	rec.expect(t, "during")
	s.restart()
	s.deliver("INBOX", "after")
	rec.expect(t, "after")
}

func TestNewRefusesPlainIMAPOffLoopback(t *testing.T) {
	s := newServer(t)
	opts := options(t, s, openDB(t), newRecorder())
	opts.Addr = "192.0.2.1:143"
	if _, err := New(opts); err == nil || !strings.Contains(err.Error(), "in clear") {
		t.Errorf("New with tls none off loopback: %v, want a refusal", err)
	}
}

func TestBackoffGrowsWithJitterAndIsBounded(t *testing.T) {
	for _, jitter := range []float64{0, 0.5, 0.999} {
		r := &Reader{opts: Options{BackoffMin: time.Second, BackoffMax: 5 * time.Minute, Jitter: func() float64 { return jitter }}}
		for failures, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 9: 256 * time.Second, 10: 5 * time.Minute, 50: 5 * time.Minute} {
			want := base/2 + time.Duration(jitter*float64(base/2))
			if d := r.backoff(failures); d != want {
				t.Errorf("failures %d jitter %v: %v, want %v", failures, jitter, d, want)
			}
		}
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
