package store

import (
	"fmt"
	"testing"
	"time"
)

// A batch large enough to be precomputed in parts (one per processor)
// gives each recipient the result of its changes in their order, as one
// pass would; and the journal position is recorded with it, never lowered.
func TestApplyJournalledLargeBatch(t *testing.T) {
	db, _ := openTest(t)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	const n, recipients = 3000, 37
	changes := make([]FeedbackChange, n)
	want := map[string]string{}
	for i := range changes {
		rcpt := fmt.Sprintf("r%d@example.test", i%recipients)
		step := fmt.Sprintf("%d,", i)
		want[rcpt] += step
		changes[i] = FeedbackChange{EventID: fmt.Sprint("id-", i), Recipient: rcpt, Apply: func(old []byte) (FeedbackOutcome, error) {
			return FeedbackOutcome{Profile: append(old, step...)}, nil
		}}
	}
	applied, dups, err := db.ApplyJournalled(now, changes, 7)
	if err != nil || applied != n || dups != 0 {
		t.Fatalf("applied %d, duplicates %d, %v", applied, dups, err)
	}
	for rcpt, w := range want {
		got, err := db.Profile(rcpt)
		if err != nil || string(got) != w {
			t.Fatalf("%s: %q, want %q (%v)", rcpt, got, w, err)
		}
	}
	if seq, err := db.JournalApplied(); err != nil || seq != 7 {
		t.Fatalf("journal position %d, %v", seq, err)
	}
	if _, _, err := db.ApplyJournalled(now, nil, 3); err != nil {
		t.Fatal(err)
	}
	if seq, _ := db.JournalApplied(); seq != 7 {
		t.Fatalf("journal position lowered to %d", seq)
	}
	seen, err := db.SeenEventIDs([]string{"id-0", "id-2999", "id-3000"})
	if err != nil || !seen[0] || !seen[1] || seen[2] {
		t.Fatalf("seen %v, %v", seen, err)
	}
	// Erased recipients' IDs are found too.
	if _, err := db.Forget("r0@example.test", now, forgetAll); err != nil {
		t.Fatal(err)
	}
	seen, err = db.SeenEventIDs([]string{"id-0", "id-1"})
	if err != nil || !seen[0] || !seen[1] {
		t.Fatalf("after erasure: seen %v, %v", seen, err)
	}
}
