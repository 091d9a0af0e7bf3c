package store

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A database from before lower-case recipient keys: its profiles and held
// index are re-keyed once, and two profiles of one address merged.
func TestLowerAddressKeysMigratesOnce(t *testing.T) {
	db, _ := openTest(t)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	envs, err := db.Accept(Message{ID: "m1"}, []byte("x"), []string{"Bob@Example.test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	held := envs[0]
	held.State, held.Due = StateHeld, now.Add(time.Hour)
	// Write the old layout by hand: keys as the address was written.
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		queued := envs[0]
		if err := putEnvelope(tx, &queued, &held); err != nil {
			return err
		}
		byRcpt := tx.Bucket(bucketHeldByRecipient)
		byRcpt.Delete(recipientKey(held.To, held.ID))
		byRcpt.Put([]byte(held.To+"\x00"+held.ID), nil)
		p := tx.Bucket(bucketProfiles)
		p.Put([]byte("ann@example.test"), []byte("lower"))
		p.Put([]byte("Ann@Example.test"), []byte("mixed"))
		p.Put([]byte("Bob@Example.test"), []byte("bob"))
		return tx.Bucket(bucketMeta).Delete(metaAddressKeys)
	})
	if err != nil {
		t.Fatal(err)
	}
	var calls [][2]string
	merge := func(kept, other []byte) ([]byte, error) {
		calls = append(calls, [2]string{string(kept), string(other)})
		return []byte(string(kept) + "+" + string(other)), nil
	}
	moved, merged, err := db.LowerAddressKeys(merge)
	if err != nil || moved != 1 || merged != 1 {
		t.Fatalf("moved %d, merged %d, %v; want 1, 1", moved, merged, err)
	}
	if len(calls) != 1 || calls[0] != [2]string{"lower", "mixed"} {
		t.Errorf("merge calls %q", calls)
	}
	for addr, want := range map[string]string{"ANN@example.test": "lower+mixed", "bob@example.test": "bob"} {
		if got, _ := db.Profile(addr); string(got) != want {
			t.Errorf("profile of %s = %q, want %q", addr, got, want)
		}
	}
	r, err := db.LoadRecipient("bob@example.test")
	if err != nil || len(r.Held) != 1 || r.Held[0].ID != held.ID || string(r.Profile) != "bob" {
		t.Fatalf("bob's held mail after the migration: %+v, %v", r, err)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProfiles).ForEach(func(k, _ []byte) error {
			if NormalizeAddress(string(k)) != string(k) {
				t.Errorf("profile key %q left", k)
			}
			return nil
		})
	})
	// Once: a second run changes nothing.
	if moved, merged, err := db.LowerAddressKeys(merge); err != nil || moved+merged != 0 || len(calls) != 1 {
		t.Errorf("second run: moved %d, merged %d, %v", moved, merged, err)
	}
}
