package governor

import (
	"path/filepath"
	"strings"
	"testing"

	"kadenz/governor/feedback/journal"
)

// An offline backup or copy refuses a file whose event journal holds
// events from before an unclean stop: the copy would lack them.
func TestOfflineCopyRefusesAnUnappliedJournal(t *testing.T) {
	dir := t.TempDir()
	db := DatabasePath(dir)
	j, err := journal.Open(EventJournalDir(db), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append([]byte("an event batch")); err != nil {
		t.Fatal(err)
	}
	j.Close()
	_, err = BackupDatabase(db, filepath.Join(t.TempDir(), "backup.db"))
	if err == nil || !strings.Contains(err.Error(), "event journal") {
		t.Fatalf("offline backup: %v", err)
	}
	if _, err := CopyToPostgres(db, "postgres://127.0.0.1:1/none", "", "", nil); err == nil || !strings.Contains(err.Error(), "event journal") {
		t.Fatalf("copy: %v", err)
	}
}

// A relay on bbolt answers events from its journal, and what the test
// reads through r.DB() includes them (crash and replay are tested in
// governor/feedback, TestJournalReplaysAfterACrash and its neighbours).
func TestRelayJournalsEvents(t *testing.T) {
	c := &clock{t: monday10}
	r := adminRelay(t, c)
	code, body := postEvents(t, r, `{"events": [{"id": "s1", "kind": "open", "recipient": "ann@example.test", "timestamp": "2026-11-23T10:00:00Z"}]}`)
	if code != 200 || !strings.Contains(body, `"applied":1`) {
		t.Fatalf("post: %d %s", code, body)
	}
	if r.events == nil {
		t.Fatal("a relay on bbolt runs without an event journal")
	}
	if got := profileOf(t, r.DB(), "ann@example.test").All.Opens; got != 1 {
		t.Errorf("opens %v", got)
	}
}
