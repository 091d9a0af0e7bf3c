package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// heldDB makes a closed database of n held messages, the kind of file the
// damage tests break, and returns its path.
func heldDB(t testing.TB, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kadenz.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("06h4kgg5%012d", i) // the shape of a real message ID
		body := bytes.Repeat([]byte(fmt.Sprintf("message %d line\r\n", i)), 60)
		if _, err := db.AcceptWith(Message{ID: id, From: "news@shop.test"}, body, []string{fmt.Sprintf("r%d@example.test", i)}, t0,
			func(_ int, e *Envelope) { e.State, e.Due = StateHeld, t0 }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenRefusesDamageAndEmptiness(t *testing.T) {
	pristine, err := os.ReadFile(heldDB(t, 60))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte // nil result: no file
	}{
		{"missing", func([]byte) []byte { return nil }},
		{"empty", func([]byte) []byte { return []byte{} }},
		{"garbled meta 0", func(b []byte) []byte { copy(b[16:80], bytes.Repeat([]byte{0xAA}, 64)); return b }},
		{"truncated", func(b []byte) []byte {
			// Cut within the pages the tree reaches: bbolt grows its file in
			// steps, so half the file may still hold every page in use.
			_, w, _ := walkFile(bytes.NewReader(b), int64(len(b)), &Report{Keys: map[string]int{}}, nil, nil)
			last := 0
			for id := range w.seen {
				last = max(last, int(id))
			}
			return b[:last*4096]
		}},
		{"garbled page", func(b []byte) []byte {
			// A page the tree reaches: a free one is no damage.
			_, w, _ := walkFile(bytes.NewReader(b), int64(len(b)), &Report{Keys: map[string]int{}}, nil, nil)
			var reached []int
			for id := range w.seen {
				reached = append(reached, int(id))
			}
			slices.Sort(reached)
			p := reached[len(reached)/2]
			copy(b[p*4096:(p+1)*4096], bytes.Repeat([]byte{0x5A, 0xC3}, 2048))
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "kadenz.db")
			if err := os.WriteFile(filepath.Join(dir, MarkerName), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			if b := tc.damage(bytes.Clone(pristine)); b != nil {
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			db, err := Open(path, Options{NoSync: true})
			var damaged *DamagedError
			if !errors.As(err, &damaged) {
				if db != nil {
					db.Close()
				}
				t.Fatalf("Open: %v, want a DamagedError", err)
			}
			if !strings.Contains(err.Error(), "kadenz db recover") {
				t.Errorf("the error does not say what to do:\n%v", err)
			}
			if tc.name == "missing" {
				if _, err := os.Stat(path); err == nil {
					t.Error("Open created a fresh file")
				}
			}
		})
	}
	// Without the marker, a missing file is a first start, and the marker
	// is written.
	path := filepath.Join(t.TempDir(), "kadenz.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), MarkerName)); err != nil {
		t.Errorf("no marker after the first open: %v", err)
	}
}

// Recover of an undamaged file copies everything and loses nothing.
func TestRecoverSoundFileLosesNothing(t *testing.T) {
	src := heldDB(t, 40)
	dst := filepath.Join(t.TempDir(), "out.db")
	rep, err := Recover(src, dst, t0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Waiting[StateHeld] != 40 || len(rep.Lost) != 0 || len(rep.Scavenged) != 0 || !strings.Contains(rep.String(), "nothing was lost") {
		t.Fatalf("report:\n%s", rep)
	}
	db, err := Open(dst, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := db.StateCounts()[StateHeld]; n != 40 {
		t.Errorf("the copy holds %d, want 40", n)
	}
}

// FuzzCheckDamage overwrites and cuts a real database file at random: the
// check and the scavenging pass must report, never fail inside.
func FuzzCheckDamage(f *testing.F) {
	pristine, err := os.ReadFile(heldDB(f, 30))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(0), []byte{0xff, 0xff}, uint32(0))
	f.Add(uint32(4096*5+16), bytes.Repeat([]byte{0xff}, 64), uint32(0))
	f.Add(uint32(0), []byte{}, uint32(len(pristine)/2))
	f.Fuzz(func(t *testing.T, at uint32, junk []byte, cut uint32) {
		b := bytes.Clone(pristine)
		if int(at) < len(b) {
			copy(b[at:], junk)
		}
		if cut > 0 && int(cut) < len(b) {
			b = b[:cut]
		}
		rep := &Report{Keys: map[string]int{}}
		_, w, err := walkFile(bytes.NewReader(b), int64(len(b)), rep, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range rep.Problems {
			if strings.Contains(p, "the check itself failed") {
				t.Fatalf("the reader failed inside: %s", p)
			}
		}
		if w != nil {
			scavenge(w.r, w.seen)
		}
	})
}

// BenchmarkCheck measures the check every start pays:
// go test ./store/ -run XXX -bench Check -benchtime 5x
func BenchmarkCheck(b *testing.B) {
	path := heldDB(b, 20000)
	fi, _ := os.Stat(path)
	b.ResetTimer()
	for b.Loop() {
		rep, err := Check(path)
		if err != nil || !rep.OK() {
			b.Fatal(err, rep)
		}
	}
	b.ReportMetric(float64(fi.Size())/1e6, "file-MB")
}

// The check says what each bucket takes: a body of 10,000 bytes needs
// three pages of its leaf, and its bytes are counted once; a nested
// bucket's pages count for it, not for its parent.
func TestCheckReportsSpacePerBucket(t *testing.T) {
	db, path := openTest(t)
	body := noise(10000) // stored as it is: it does not compress
	if _, err := db.Accept(Message{ID: "m", From: "a@example.test"}, body, []string{"b@example.test"}, t0); err != nil {
		t.Fatal(err)
	}
	acceptParted(t, db, "big", noise(BodyPartSize+5))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(path)
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v\n%s", err, rep)
	}
	bodies := rep.Space[`"bodies"`]
	if bodies == nil || bodies.KeyValueBytes != int64(len(body)+len("m")) || bodies.PageBytes != 3*int64(rep.PageSize) {
		t.Errorf("bodies: %+v; want %d bytes of key and value in 3 pages", bodies, len(body)+1)
	}
	var parts int64
	for name, sp := range rep.Space {
		if sp.KeyValueBytes > sp.PageBytes && sp.PageBytes > 0 {
			t.Errorf("bucket %s: %d bytes of keys and values in %d of pages", name, sp.KeyValueBytes, sp.PageBytes)
		}
		if strings.HasPrefix(name, `"body_chunks"/`) {
			parts += sp.KeyValueBytes
		}
	}
	if parts < BodyPartSize+5 {
		t.Errorf("the parts' buckets hold %d bytes, want the body's %d", parts, BodyPartSize+5)
	}
	if !strings.Contains(rep.String(), `bucket "bodies": 1 keys read; 12288 bytes of pages`) {
		t.Errorf("report does not say the space:\n%s", rep)
	}
}
