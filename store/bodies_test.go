package store

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func partedBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz0123456789\r\n"[i%38]
	}
	return b
}

// noise is n bytes that do not compress (bodies are stored compressed
// when that pays: a test of the file's layout needs bodies that stay their
// size), the same on every run, starting like a header field.
func noise(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if n > 0 {
		b[0] = 'R'
	}
	return b
}

func acceptParted(t *testing.T, db *DB, id string, body []byte) {
	t.Helper()
	msg := Message{ID: id, From: "a@example.test", Received: time.Unix(0, 0), Size: len(body)}
	if _, err := db.AcceptStream(msg, bytes.NewReader(body), []string{"b@example.test"}, time.Unix(0, 0), nil); err != nil {
		t.Fatal(err)
	}
}

func countParts(t *testing.T, db *DB) (parts, manifests int) {
	t.Helper()
	db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBodyChunks).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			parts++
		}
		manifests = tx.Bucket(bucketBodyParts).Stats().KeyN
		return nil
	})
	return parts, manifests
}

// A body larger than a part is stored in parts, and only as many as it
// needs; one that fits is stored whole, as Accept stores it.
func TestBodyPartsLayout(t *testing.T) {
	db, _ := openTest(t)
	acceptParted(t, db, "big", partedBody(2*BodyPartSize+1))
	acceptParted(t, db, "small", partedBody(BodyPartSize-1))
	if parts, manifests := countParts(t, db); parts != 3 || manifests != 1 {
		t.Errorf("%d parts and %d manifests, want 3 and 1", parts, manifests)
	}
	if size, err := db.BodySize("big"); err != nil || size != 2*BodyPartSize+1 {
		t.Errorf("BodySize(big) = %d, %v", size, err)
	}
}

// A part damaged or lost in the file is a read error: delivery must never
// send a message cut short or altered.
func TestBodyPartsDamageIsAnError(t *testing.T) {
	db, _ := openTest(t)
	body := partedBody(3*BodyPartSize + 100)
	acceptParted(t, db, "flip", body)
	acceptParted(t, db, "gone", body)
	acceptParted(t, db, "short", body)
	err := db.update(func(tx *bolt.Tx) error {
		flipped := bytes.Clone(getPart(tx, "flip", 1))
		flipped[len(flipped)/2] ^= 0x20
		if err := putPart(tx, "flip", 1, flipped); err != nil {
			return err
		}
		if err := tx.Bucket(bucketBodyChunks).DeleteBucket(partKey("gone", 2)); err != nil {
			return err
		}
		return putPart(tx, "short", 3, []byte("x"))
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"flip": "damaged", "gone": "missing", "short": "manifest says"} {
		if got, err := db.Body(id); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Body(%s): %d bytes, %v; want an error saying %q", id, len(got), err, want)
		}
		if has, _ := db.HasBody(id); has && id != "flip" {
			t.Errorf("HasBody(%s) with a part missing or cut", id)
		}
	}
	rc, err := db.OpenBody("flip")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err == nil || !strings.Contains(err.Error(), "part 2 of 4") || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("streaming a damaged body: %v, want part 2 of 4 damaged", err)
	}
	if len(got) != BodyPartSize {
		t.Errorf("streamed %d bytes before the damaged part, want the first part's %d", len(got), BodyPartSize)
	}
}

// Parts written by an accept that never reached its last commit (the
// process died) are deleted at the next start; a stored body's parts stay.
func TestOrphanPartsDroppedAtOpen(t *testing.T) {
	db, path := openTest(t)
	body := partedBody(2*BodyPartSize + 5)
	acceptParted(t, db, "kept", body)
	var man bodyManifest
	if err := db.writeParts("crashed", partedBody(BodyPartSize), bytes.NewReader(partedBody(BodyPartSize+9)), &man); err != nil {
		t.Fatal(err)
	}
	if parts, _ := countParts(t, db); parts != 6 {
		t.Fatalf("%d parts before the restart, want 3 + 3", parts)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if parts, manifests := countParts(t, db); parts != 3 || manifests != 1 {
		t.Errorf("after restart: %d parts, %d manifests; want the stored body's 3 and 1", parts, manifests)
	}
	if got, err := db.Body("kept"); err != nil || !bytes.Equal(got, body) {
		t.Errorf("stored body after restart: %d bytes, %v", len(got), err)
	}
}

// Erasure takes the parts too: forgetting the only recipient of a parted
// message leaves none of its bytes in the buckets.
func TestForgetDeletesParts(t *testing.T) {
	db, _ := openTest(t)
	acceptParted(t, db, "m", partedBody(2*BodyPartSize+5))
	rep, err := db.Forget("b@example.test", time.Unix(10, 0), ForgetRules{Keep: func(Envelope, Message) bool { return false }, HardStop: func([]byte) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Bodies != 1 {
		t.Errorf("Forget reported %d bodies, want 1", rep.Bodies)
	}
	if parts, manifests := countParts(t, db); parts != 0 || manifests != 0 {
		t.Errorf("after Forget: %d parts, %d manifests", parts, manifests)
	}
	if _, err := db.OpenBody("m"); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenBody after Forget: %v", err)
	}
}

// A body in parts passes the check, survives a backup and a recover byte
// for byte: it is all in the one file, in ordinary (nested) buckets.
func TestPartedBodyCheckBackupRecover(t *testing.T) {
	db, path := openTest(t)
	body := partedBody(3*BodyPartSize + 77)
	acceptParted(t, db, "big", body)
	backup := filepath.Join(t.TempDir(), "backup.db")
	if _, err := WriteFileAtomic(backup, func(w io.Writer) (int64, error) { return db.Backup(w, nil) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(path)
	if err != nil || !rep.OK() {
		t.Fatalf("check of a file with a parted body: %v\n%+v", err, rep)
	}
	recovered := filepath.Join(t.TempDir(), "recovered.db")
	rrep, err := Recover(path, recovered, time.Unix(0, 0))
	if err != nil || len(rrep.Lost) != 0 {
		t.Fatalf("recover: %v\n%s", err, rrep)
	}
	for _, p := range []string{backup, recovered} {
		db, err := Open(p, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.Body("big")
		db.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s: body %d bytes, %v; want the %d stored", filepath.Base(p), len(got), err, len(body))
		}
	}
}
