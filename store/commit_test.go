package store

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// waitUntilTaken waits until the committer has taken every group sent.
func waitUntilTaken(t *testing.T, db *DB) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); len(db.commits) > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the committer does not take what was sent")
		}
	}
}

// A writer on its way (counted in db.arriving, as ApplyFeedback counts
// itself while it precomputes) is waited for: the write already waiting
// and its own share one commit.
func TestCommitterWaitsForWritersOnTheirWay(t *testing.T) {
	db, _ := openTest(t)
	db.arrivingWait = func(time.Duration) time.Duration { return time.Hour } // only the arrival ends the wait
	put := func(k string) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte(k), []byte("v")) }
	}
	commits0, writes0 := db.CommitStats()
	db.arriving.Add(1)
	first := &commitRequest{fn: put("test-first"), done: make(chan error, 1)}
	db.commits <- []*commitRequest{first} // as update sends it
	waitUntilTaken(t, db)
	select {
	case err := <-first.done:
		t.Fatalf("the first write committed (%v) while a writer was on its way", err)
	default:
	}
	db.arriving.Add(-1)
	if err := db.update(put("test-second")); err != nil {
		t.Fatal(err)
	}
	if err := <-first.done; err != nil {
		t.Fatal(err)
	}
	if commits, writes := db.CommitStats(); commits-commits0 != 1 || writes-writes0 != 2 {
		t.Errorf("%d commits for %d writes, want both writes in one", commits-commits0, writes-writes0)
	}
}

// The wait ends when its time is up, whether or not the writer came.
func TestCommitterWaitIsBounded(t *testing.T) {
	db, _ := openTest(t)
	db.arrivingWait = func(time.Duration) time.Duration { return 5 * time.Millisecond }
	db.arriving.Add(1) // a writer that never arrives
	defer db.arriving.Add(-1)
	if err := db.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("test-alone"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
}

// The wait for writers on their way is never longer than the last commit
// took, nor than maxArrivingWait.
func TestWaitAsLong(t *testing.T) {
	for _, tc := range []struct{ last, want time.Duration }{
		{0, 0}, {3 * time.Millisecond, 3 * time.Millisecond}, {time.Second, maxArrivingWait},
	} {
		if got := waitAsLong(tc.last); got != tc.want {
			t.Errorf("waitAsLong(%v) = %v, want %v", tc.last, got, tc.want)
		}
	}
}
