package store

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A file written before the recipient index (schema version 5) gets it
// built when it is opened: a recipient's page then lists their envelopes.
func TestRecipientIndexBuiltForAnOlderFile(t *testing.T) {
	path := t.TempDir() + "/kadenz.db"
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	for _, id := range []string{"ma", "mb", "mc"} {
		if _, err := db.Accept(Message{ID: id, From: "shop@example.test", Received: at}, []byte("x"),
			[]string{"Ann@example.test", "bob@example.test"}, at); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	db = reopenAsVersion(t, path, "5", bucketByRecipient)
	defer db.Close()
	p, err := db.RecipientEnvelopes("ann@example.test", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range p.Records {
		got = append(got, r.Envelope.ID)
	}
	if p.Total != 3 || len(got) != 3 || got[0] != "mc-1" || got[2] != "ma-1" || p.Next != "" {
		t.Errorf("ann's envelopes after the upgrade: %v (total %d, next %q), want mc-1 mb-1 ma-1", got, p.Total, p.Next)
	}
}

// reopenAsVersion makes the closed file at path look as an older release
// wrote it (schema version, without the buckets that version lacked) and
// opens it again, so that Open upgrades it.
func reopenAsVersion(t *testing.T, path, version string, lacked ...[]byte) *DB {
	t.Helper()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range lacked {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put([]byte("schema"), []byte(version))
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return db
}
