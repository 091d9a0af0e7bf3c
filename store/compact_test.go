package store

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// After retention purges the bodies of delivered mail, the file keeps its
// size; Compact gives the space back and keeps every key.
func TestCompactShrinksAfterPurgeAndKeepsData(t *testing.T) {
	db, path := openTest(t)
	body := noise(20_000) // its size as stored: it does not compress
	for i := range 300 {
		envs, err := db.Accept(Message{ID: fmt.Sprintf("m%03d", i)}, body, []string{"a@x.test"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // half delivered, half still waiting
			envs[0].State, envs[0].Updated = StateDelivered, t0
			if err := db.Update(envs[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, err := db.PurgeBodies(t0.Add(1)); err != nil || n != 150 {
		t.Fatalf("purged %d bodies, %v; want 150", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Compact(path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.After >= rep.Before/2 {
		t.Errorf("compacted %d bytes to %d: want less than half, as half the bodies are gone", rep.Before, rep.After)
	}
	if info, err := os.Stat(path); err != nil || info.Size() != rep.After {
		t.Errorf("file is %v bytes (%v), report says %d", info.Size(), err, rep.After)
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Errorf("the temporary copy is left behind: %v", err)
	}
	if !strings.Contains(rep.String(), "bytes before") {
		t.Errorf("report: %q", rep.String())
	}

	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	counts, err := db.CountByState()
	if err != nil || counts[StateQueued] != 150 || counts[StateDelivered] != 150 {
		t.Errorf("after compaction: %v, %v", counts, err)
	}
	if b, err := db.Body("m001"); err != nil || !bytes.Equal(b, body) {
		t.Errorf("waiting mail's body after compaction: %d bytes, %v", len(b), err)
	}
	if ok, err := db.HasBody("m000"); err != nil || ok {
		t.Errorf("purged body is back: %v, %v", ok, err)
	}
}

// A running relay holds the file: Compact must refuse, not copy a file
// being written.
func TestCompactRefusesOpenDatabase(t *testing.T) {
	db, path := openTest(t)
	if _, err := db.Accept(Message{ID: "m1"}, []byte("body"), []string{"a@x.test"}, t0); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	_, err := Compact(path)
	if err == nil || !strings.Contains(err.Error(), "stop kadenz") {
		t.Fatalf("Compact of an open database: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("the refused compaction changed the file")
	}
}
