package store

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var forgetAll = ForgetRules{Keep: func(Envelope, Message) bool { return false }, HardStop: func([]byte) bool { return false }}

func TestForgetPseudonymisesSuppressionAndEventIDs(t *testing.T) {
	db, path := openTest(t)
	if _, err := db.Suppress(false, Suppression{Address: "Ann@X.test", Reason: "550 <ann@x.test> said stop", At: t0, Source: "imap"},
		Suppression{Address: "bob@x.test", Reason: "imported", At: t0}); err != nil {
		t.Fatal(err)
	}
	changes := []FeedbackChange{
		{EventID: "click-ann@x.test", Recipient: "ann@x.test", Apply: func([]byte) (FeedbackOutcome, error) { return FeedbackOutcome{}, nil }},
		{EventID: "e-2", Recipient: "ANN@x.test", Apply: func([]byte) (FeedbackOutcome, error) { return FeedbackOutcome{}, nil }},
		{EventID: "e-3", Recipient: "bob@x.test", Apply: func([]byte) (FeedbackOutcome, error) { return FeedbackOutcome{}, nil }},
	}
	if _, _, err := db.ApplyFeedback(t0, changes); err != nil {
		t.Fatal(err)
	}
	rep, err := db.Forget("ann@x.test", t0, forgetAll)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Suppressions != 1 || rep.EventIDs != 2 || !rep.Tombstone {
		t.Fatalf("report %+v", rep)
	}
	// Still suppressed, found by the address; listed without it.
	s, ok, err := db.SuppressionOf(" ANN@x.test")
	if err != nil || !ok || s.Address != "ann@x.test" || s.Reason != "550 <[erased address]> said stop" {
		t.Fatalf("SuppressionOf after forget: %+v %v %v", s, ok, err)
	}
	list, _ := db.Suppressions()
	if len(list) != 2 || list[0].Address != "" || len(list[0].Pseudonym) != 16 || list[1].Address != "bob@x.test" {
		t.Fatalf("list after forget: %+v", list)
	}
	// Her event IDs are still duplicates; bob's is untouched.
	applied, dups, err := db.ApplyFeedback(t0, changes)
	if err != nil || applied != 0 || dups != 3 {
		t.Fatalf("replayed events: applied %d, duplicates %d, %v", applied, dups, err)
	}
	// A new unsubscribe does not bring the address back into the file.
	if n, _ := db.Suppress(false, Suppression{Address: "ann@x.test", Reason: "again", At: t0}); n != 0 {
		t.Fatalf("a second entry was written for an erased address")
	}
	if _, err := db.ScrubFreePages(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(bytes.ToLower(raw), []byte("ann@x.test")) {
		t.Fatal("the address is still in the file")
	}
	if !bytes.Contains(raw, []byte("bob@x.test")) {
		t.Fatal("bob is gone from the file")
	}
	// Removing the erased entry by its address works, and then the address
	// may be listed again.
	if found, err := db.Unsuppress("ann@x.test", nil); err != nil || !found {
		t.Fatalf("Unsuppress of an erased entry: %v %v", found, err)
	}
	if _, ok, _ := db.SuppressionOf("ann@x.test"); ok {
		t.Fatal("still suppressed after Unsuppress")
	}
	// Pruning reads the time from both value layouts.
	n, err := db.PruneEventIDs(t0.Add(time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("pruned %d, %v", n, err)
	}
}

func TestScrubFreePagesWaitsForReaders(t *testing.T) {
	db, path := openTest(t)
	secret := strings.Repeat("s3cr3t-value ", 400)
	if _, err := db.Suppress(false, Suppression{Address: "c@x.test", Reason: secret[:400], At: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Unsuppress("c@x.test", nil); err != nil {
		t.Fatal(err)
	}
	// A read transaction from before the deletion may still read the
	// freed pages: while it is open, the scrub does not touch them.
	tx, err := db.bolt.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.scrubOnce(); err != ErrScrubBusy {
		t.Fatalf("scrub with a reader open: %v, want ErrScrubBusy", err)
	}
	tx.Rollback()
	rep, err := db.ScrubFreePages()
	if err != nil || rep.Pages == 0 || rep.FreePages == 0 {
		t.Fatalf("scrub: %+v %v", rep, err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("s3cr3t-value")) {
		t.Fatal("deleted data is still in the file")
	}
	// The database is intact and writable afterwards.
	if _, err := db.Suppress(false, Suppression{Address: "d@x.test", Reason: "x", At: t0}); err != nil {
		t.Fatal(err)
	}
	if list, err := db.Suppressions(); err != nil || len(list) != 1 {
		t.Fatalf("after the scrub: %+v %v", list, err)
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("consistency check after the scrub: %v", err)
	}
}

// BenchmarkScrubFreePages measures the scrub after an erasure in a file of
// 20,000 messages of 5 KB: the time the writer is held.
func BenchmarkScrubFreePages(b *testing.B) {
	path := b.TempDir() + "/kadenz.db"
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	body := bytes.Repeat([]byte("x"), 5000)
	for i := range 20000 {
		to := "someone@x.test"
		if i%20 == 0 {
			to = "erased@x.test"
		}
		if _, err := db.Accept(Message{ID: fmt.Sprintf("m%06d", i)}, body, []string{to}, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if _, err := db.Forget("erased@x.test", t0, forgetAll); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Accept(Message{ID: fmt.Sprintf("n%d", b.N)}, body, []string{"erased@x.test"}, t0); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rep, err := db.ScrubFreePages()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rep.Pages), "pages/op")
	}
	if st, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(st.Size())/1e6, "MB")
	}
}
