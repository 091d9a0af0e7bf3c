package store

import "testing"

func TestMailboxStateRoundTripAndSurvivesReopen(t *testing.T) {
	db, path := openTest(t)
	if uv, last, err := db.MailboxState("bounces"); err != nil || uv != 0 || last != 0 {
		t.Fatalf("unknown mailbox: %d %d %v, want 0 0 nil", uv, last, err)
	}
	if err := db.SetMailboxState("bounces", 7, 42); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMailboxState("replies", 9, 3); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMailboxState("bounces", 8, 1); err != nil { // a later write wins
		t.Fatal(err)
	}
	db.Close()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, want := range map[string][2]uint32{"bounces": {8, 1}, "replies": {9, 3}} {
		uv, last, err := db.MailboxState(name)
		if err != nil || uv != want[0] || last != want[1] {
			t.Errorf("%s after reopen: %d %d %v, want %d %d", name, uv, last, err, want[0], want[1])
		}
	}
	if err := db.SetMailboxState("", 1, 1); err == nil {
		t.Error("a mailbox without a name was accepted")
	}
	if _, _, err := db.MailboxState(""); err == nil {
		t.Error("reading a mailbox without a name succeeded")
	}
}
