package feedback

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor/engine"
	"kadenz/governor/feedback/journal"
	"kadenz/scoring"
	"kadenz/store"
)

var journalNow = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// journalRig is an Applier on a bbolt file in dir with its event journal
// beside it; the journal's timer is the test's (timers), so nothing is
// applied in the background unless the test fires it.
type journalRig struct {
	dir    string
	db     *store.DB
	f      *Applier
	ej     *EventJournal
	timers chan chan time.Time
	log    *bytes.Buffer
}

func openRig(t *testing.T, dir string, opts JournalOptions) *journalRig {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, "kadenz.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	now := func() time.Time { return journalNow }
	eng, err := engine.New(engine.Options{Governor: &cfg.Governor, Store: db, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	rig := &journalRig{dir: dir, db: db, timers: make(chan chan time.Time, 100), log: &bytes.Buffer{}}
	var logMu sync.Mutex
	rig.f = New(Options{Store: db, Engine: eng, Config: func() *config.Config { return cfg }, Now: now,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, rig.log}, nil))})
	opts.Dir = filepath.Join(dir, "kadenz.db.events")
	opts.After = func(time.Duration) <-chan time.Time {
		c := make(chan time.Time, 1)
		rig.timers <- c
		return c
	}
	if rig.ej, err = rig.f.OpenJournal(opts); err != nil {
		t.Fatalf("open journal: %v", err)
	}
	return rig
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// crash stops the rig as a kill would: nothing journalled is applied.
func (r *journalRig) crash() {
	r.ej.abandon()
	r.db.Close()
}

func (r *journalRig) close(t *testing.T) {
	t.Helper()
	if err := r.ej.Close(); err != nil {
		t.Fatal(err)
	}
	r.db.Close()
}

func (r *journalRig) profile(t *testing.T, rcpt string) scoring.Profile {
	t.Helper()
	raw, err := r.db.Profile(rcpt)
	if err != nil {
		t.Fatal(err)
	}
	p, err := scoring.DecodeProfile(raw)
	if err != nil {
		t.Fatal(err)
	}
	return *p
}

func opens(id, rcpt string, n int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = Event{Kind: "open", At: journalNow, Recipient: rcpt}
		if id != "" {
			evs[i].ID = fmt.Sprintf("%s-%d", id, i)
		}
	}
	return evs
}

func accept(t *testing.T, ej *EventJournal, evs []Event, wantAccepted, wantDup int) {
	t.Helper()
	a, d, err := ej.Accept(evs)
	if err != nil || a != wantAccepted || d != wantDup {
		t.Fatalf("Accept: %d accepted, %d duplicates, %v; want %d, %d", a, d, err, wantAccepted, wantDup)
	}
}

// An answered event survives a crash before it was applied, and is applied
// once however often the journal is opened again.
func TestJournalReplaysAfterACrash(t *testing.T) {
	dir := t.TempDir()
	rig := openRig(t, dir, JournalOptions{Batch: 1 << 30})
	accept(t, rig.ej, opens("a", "ann@example.test", 3), 3, 0)
	accept(t, rig.ej, opens("", "bob@example.test", 2), 2, 0) // no IDs: only the journal's mark keeps these once
	if raw, _ := rig.db.Profile("ann@example.test"); raw != nil {
		t.Fatal("applied before the timer fired; the test shows nothing")
	}
	rig.crash()

	for round := range 3 {
		rig = openRig(t, dir, JournalOptions{Batch: 1 << 30})
		if got := rig.profile(t, "ann@example.test").All.Opens; got != 3 {
			t.Errorf("round %d: ann's opens %v, want 3", round, got)
		}
		if got := rig.profile(t, "bob@example.test").All.Opens; got != 2 {
			t.Errorf("round %d: bob's opens %v, want 2 (replayed twice?)", round, got)
		}
		if n := rig.ej.Pending(); n != 0 {
			t.Errorf("round %d: %d pending after replay", round, n)
		}
		// A retry of the first batch after the replay is a duplicate.
		accept(t, rig.ej, opens("a", "ann@example.test", 3), 0, 3)
		rig.crash()
	}
	if round0 := strings.Count(rig.log.String(), "replayed events"); round0 != 0 {
		t.Errorf("the last open replayed again: %s", rig.log)
	}
}

// A crash after the applier's commit but before the journal let go of the
// records (the segment is still on disk) replays nothing: the commit
// recorded how far it reached.
func TestJournalCrashAfterApply(t *testing.T) {
	dir := t.TempDir()
	rig := openRig(t, dir, JournalOptions{Batch: 1 << 30})
	accept(t, rig.ej, opens("", "bob@example.test", 2), 2, 0)
	(<-rig.timers) <- journalNow
	waitPending(t, rig.ej, 0)
	rig.crash()
	segs, _ := filepath.Glob(filepath.Join(dir, "kadenz.db.events", "*.journal"))
	if len(segs) != 1 {
		t.Fatalf("segments %v: the applier's own commits should leave the segment appended to", segs)
	}
	if fi, err := os.Stat(segs[0]); err != nil || fi.Size() <= 8 {
		t.Fatalf("the segment holds no record: %v %v", fi, err)
	}
	rig = openRig(t, dir, JournalOptions{Batch: 1 << 30})
	defer rig.close(t)
	if got := rig.profile(t, "bob@example.test").All.Opens; got != 2 {
		t.Errorf("bob's opens %v, want 2", got)
	}
}

// A record torn by a crash (cut at any byte, or damaged) is dropped with a
// log line; the records before it are applied; the journal opens.
func TestJournalTornLastRecord(t *testing.T) {
	pristine := t.TempDir()
	rig := openRig(t, pristine, JournalOptions{Batch: 1 << 30})
	accept(t, rig.ej, opens("first", "ann@example.test", 2), 2, 0)
	accept(t, rig.ej, opens("last", "bob@example.test", 1), 1, 0)
	rig.crash()
	segs, _ := filepath.Glob(filepath.Join(pristine, "kadenz.db.events", "*.journal"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	whole, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	// The records end here; zeros written ahead of them follow.
	last := len(encodeJournalEvents(opens("last", "bob@example.test", 1))) + 16 // frame header and seq
	end := 8 + len(encodeJournalEvents(opens("first", "ann@example.test", 2))) + 16 + last
	dbFile, err := os.ReadFile(filepath.Join(pristine, "kadenz.db"))
	if err != nil {
		t.Fatal(err)
	}
	for cut := end - last; cut < end; cut++ {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "kadenz.db.events"), 0o700)
		os.WriteFile(filepath.Join(dir, "kadenz.db"), dbFile, 0o600)
		os.WriteFile(filepath.Join(dir, "kadenz.db.events", filepath.Base(segs[0])), whole[:cut], 0o600)
		rig := openRig(t, dir, JournalOptions{Batch: 1 << 30})
		if got := rig.profile(t, "ann@example.test").All.Opens; got != 2 {
			t.Errorf("cut at %d: ann's opens %v, want 2", cut, got)
		}
		if raw, _ := rig.db.Profile("bob@example.test"); raw != nil {
			t.Errorf("cut at %d: the torn record was applied", cut)
		}
		if cut > end-last && !strings.Contains(rig.log.String(), "torn record") {
			t.Errorf("cut at %d: no log line: %s", cut, rig.log)
		}
		// The torn event was never answered: its sender's retry applies.
		accept(t, rig.ej, opens("last", "bob@example.test", 1), 1, 0)
		rig.close(t)
	}
}

// A batch retried while its first try is only journalled counts as
// duplicates, as do IDs repeated inside a batch and IDs raced by
// concurrent batches; each is applied once.
func TestJournalRetryWhilePending(t *testing.T) {
	rig := openRig(t, t.TempDir(), JournalOptions{Batch: 1 << 30})
	defer rig.close(t)
	batch := opens("r", "ann@example.test", 4)
	accept(t, rig.ej, batch, 4, 0)
	accept(t, rig.ej, batch, 0, 4)
	twice := append(opens("t", "ann@example.test", 1), opens("t", "ann@example.test", 1)...)
	accept(t, rig.ej, twice, 1, 1)

	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, _, err := rig.ej.Accept(opens("race", "ann@example.test", 1))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += a
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total != 1 {
		t.Errorf("8 racing batches of one ID accepted %d times", total)
	}
	if err := rig.ej.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := rig.profile(t, "ann@example.test").All.Opens; got != 6 {
		t.Errorf("ann's opens %v, want 6 (4 + 1 + 1)", got)
	}
	// Once applied, the database answers for them.
	accept(t, rig.ej, batch, 0, 4)
}

// The applier starts Lag after the first waiting event (the clock's timer),
// or at once when Batch events wait.
func TestJournalApplierLagAndBatch(t *testing.T) {
	rig := openRig(t, t.TempDir(), JournalOptions{Lag: 50 * time.Millisecond, Batch: 5})
	defer rig.close(t)
	accept(t, rig.ej, opens("l", "ann@example.test", 2), 2, 0)
	timer := <-rig.timers // the applier is waiting on its lag
	if n := rig.ej.Pending(); n != 2 {
		t.Fatalf("pending %d before the timer fired", n)
	}
	timer <- journalNow
	waitPending(t, rig.ej, 0)
	if got := rig.profile(t, "ann@example.test").All.Opens; got != 2 {
		t.Errorf("after the lag: %v opens", got)
	}
	// Five at once: applied without the timer.
	accept(t, rig.ej, opens("b", "bob@example.test", 5), 5, 0)
	<-rig.timers // started, never fired
	waitPending(t, rig.ej, 0)
	if got := rig.profile(t, "bob@example.test").All.Opens; got != 5 {
		t.Errorf("after a full batch: %v opens", got)
	}
}

// waitPending waits for the applier (which runs on its own goroutine) to
// bring the pending count to n.
func waitPending(t *testing.T, ej *EventJournal, n int) {
	t.Helper()
	ej.mu.Lock()
	defer ej.mu.Unlock()
	for ej.events != n {
		ej.applied.Wait()
	}
}

// Close applies what is journalled: a clean stop leaves nothing to replay.
func TestJournalCloseApplies(t *testing.T) {
	dir := t.TempDir()
	rig := openRig(t, dir, JournalOptions{Batch: 1 << 30})
	accept(t, rig.ej, opens("c", "ann@example.test", 3), 3, 0)
	rig.close(t)
	rig = openRig(t, dir, JournalOptions{Batch: 1 << 30})
	defer rig.close(t)
	if strings.Contains(rig.log.String(), "replayed") {
		t.Errorf("replayed after a clean stop: %s", rig.log)
	}
	if got := rig.profile(t, "ann@example.test").All.Opens; got != 3 {
		t.Errorf("opens %v", got)
	}
}

func TestJournalEventCodec(t *testing.T) {
	zone := time.FixedZone("x", 5*3600+1800)
	evs := []Event{
		{ID: "e1", Kind: "click", At: journalNow.In(zone), Topic: "Sandals", Recipient: "ann@example.test", EnvelopeID: "env-1"},
		{Kind: "soft-bounce", At: journalNow, Recipient: "bob@example.test"},
		{ID: strings.Repeat("x", 300), Kind: "open", At: journalNow.Add(time.Nanosecond), Recipient: "é@example.test"},
	}
	b := encodeJournalEvents(evs)
	got, err := decodeJournalEvents(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if got[i] != evs[i] && !(got[i].At.Equal(evs[i].At) && got[i].At.Format(time.RFC3339Nano) == evs[i].At.Format(time.RFC3339Nano)) {
			t.Errorf("event %d: %+v, want %+v", i, got[i], evs[i])
		}
	}
	for cut := range len(b) {
		if _, err := decodeJournalEvents(b[:cut]); err == nil {
			t.Errorf("a record cut at %d of %d decoded", cut, len(b))
		}
	}
}

// A clean stop leaves no record in the journal's files (what the offline
// database commands check); a crash leaves them.
func TestJournalCleanStopLeavesNoRecord(t *testing.T) {
	dir := t.TempDir()
	jdir := filepath.Join(dir, "kadenz.db.events")
	rig := openRig(t, dir, JournalOptions{Batch: 1 << 30})
	accept(t, rig.ej, opens("s", "ann@example.test", 2), 2, 0)
	rig.close(t)
	if has, err := journal.HasRecords(jdir); has || err != nil {
		t.Fatalf("after a clean stop: %v %v", has, err)
	}
	rig = openRig(t, dir, JournalOptions{Batch: 1 << 30})
	accept(t, rig.ej, opens("u", "ann@example.test", 2), 2, 0)
	rig.crash()
	if has, err := journal.HasRecords(jdir); !has || err != nil {
		t.Fatalf("after a crash: %v %v", has, err)
	}
}
