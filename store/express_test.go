package store

import (
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Express mail (transactional) is claimed before ordinary mail that has
// been due for longer: a receipt does not queue behind a backlog of
// released marketing mail. Listing and the next due time see both lanes.
func TestExpressLaneClaimedFirst(t *testing.T) {
	db, _ := openTest(t)
	for i := range 5 { // a backlog, due since t0
		if _, err := db.Accept(Message{ID: fmt.Sprintf("bulk%d", i)}, nil, []string{"a@x.test"}, t0); err != nil {
			t.Fatal(err)
		}
	}
	later := t0.Add(time.Minute)
	envs, err := db.AcceptWith(Message{ID: "receipt"}, nil, []string{"b@x.test"}, later, func(_ int, e *Envelope) { e.Express = true })
	if err != nil {
		t.Fatal(err)
	}
	if next, ok, _ := db.NextDue(); !ok || !next.Equal(t0) {
		t.Errorf("NextDue = %v %v, want the backlog's %v", next, ok, t0)
	}
	var listed []string
	db.EnvelopesInState(StateQueued, func(e Envelope) bool { listed = append(listed, e.MessageID); return true })
	if len(listed) != 6 || listed[5] != "receipt" {
		t.Errorf("queued, earliest first: %v, want the five bulk then the receipt", listed)
	}
	got, err := db.Claim(later, 2)
	if err != nil || len(got) != 2 || got[0].ID != envs[0].ID || got[1].MessageID != "bulk0" {
		t.Fatalf("claim 2: %+v %v, want the receipt, then the oldest bulk", got, err)
	}
	// Back to due with a retry: still express, still first.
	got[0].State, got[0].Due = StateDeferred, later
	if err := db.Update(got[0]); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Claim(later, 1); len(got) != 1 || got[0].ID != envs[0].ID {
		t.Errorf("after a deferral: %+v, want the receipt first again", got)
	}
	// Deleting an express envelope waiting for a retry leaves nothing in
	// either lane.
	again, _ := db.Envelope(envs[0].ID)
	again.State, again.Due = StateDeferred, later.Add(time.Hour)
	if err := db.Update(again); err != nil {
		t.Fatal(err)
	}
	keepNone := ForgetRules{Keep: func(Envelope, Message) bool { return false }, HardStop: func([]byte) bool { return false }}
	if _, err := db.Forget("b@x.test", later, keepNone); err != nil {
		t.Fatal(err)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketDueExpress).Cursor().First(); k != nil {
			t.Errorf("%q left in the express lane after forget", k)
		}
		return nil
	})
}

// A version-1 file (before the express lane) is upgraded in place.
func TestSchemaUpgradeFromVersion1(t *testing.T) {
	db, path := openTest(t)
	if _, err := db.Accept(Message{ID: "old"}, nil, []string{"a@x.test"}, t0); err != nil {
		t.Fatal(err)
	}
	db.bolt.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketDueExpress); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte("1"))
	})
	db.Close()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("opening a version-1 file: %v", err)
	}
	defer db.Close()
	var version string
	db.bolt.View(func(tx *bolt.Tx) error {
		version = string(tx.Bucket(bucketMeta).Get([]byte("schema")))
		return nil
	})
	if version != fmt.Sprint(SchemaVersion) {
		t.Errorf("schema after open: %s, want %d", version, SchemaVersion)
	}
	if got, err := db.Claim(t0, 5); err != nil || len(got) != 1 {
		t.Errorf("the version-1 envelope after the upgrade: %+v %v", got, err)
	}
}
