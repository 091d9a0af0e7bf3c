package store

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// newsletter is bench/campaign's realistic newsletter (go run ./bench/campaign
// -body newsletter -print 4242): HTML and text in quoted-printable with a
// recipient's links and tokens.
func newsletter(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "newsletter.eml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every body comes back as it went in, and is stored compressed exactly
// when that saves an eighth.
func TestBodyCodecRoundTrip(t *testing.T) {
	nl := newsletter(t)
	cases := []struct {
		name       string
		body       []byte
		compressed bool
	}{
		{"empty", nil, false},
		{"short", []byte("Subject: hi\r\n\r\nhello\r\n"), false},
		{"NUL first, short", []byte("\x00\x01 not mail"), false},
		{"NUL first, compressible", append([]byte{0}, bytes.Repeat([]byte("abc"), 1000)...), true},
		{"newsletter", nl, true},
		{"incompressible", noise(6000), false},
		{"just under the threshold", bytes.Repeat([]byte("a"), minCompress-1), false},
	}
	for _, c := range cases {
		v := encodeBody(c.body)
		if got := len(v) > 1 && v[0] == 0 && v[1] == bodyS2; got != c.compressed {
			t.Errorf("%s: stored compressed = %v, want %v", c.name, got, c.compressed)
		}
		if c.compressed && len(v) > len(c.body)-len(c.body)/8 {
			t.Errorf("%s: stored in %d bytes for %d", c.name, len(v), len(c.body))
		}
		got, err := decodeBody(nil, v)
		if err != nil || !bytes.Equal(got, c.body) {
			t.Errorf("%s: decoded %d bytes, %v; want the %d bytes stored", c.name, len(got), err, len(c.body))
		}
		if size, err := storedBodySize(v); err != nil || size != int64(len(c.body)) {
			t.Errorf("%s: size %d, %v; want %d", c.name, size, err, len(c.body))
		}
		prefix := []byte("kept")
		if got, err := decodeBody(prefix, v); err != nil || !bytes.Equal(got, append([]byte("kept"), c.body...)) {
			t.Errorf("%s: decoding after a prefix: %q..., %v", c.name, got[:min(len(got), 10)], err)
		}
	}
	t.Logf("newsletter: %d bytes stored in %d (%.2f)", len(nl), len(encodeBody(nl)), float64(len(encodeBody(nl)))/float64(len(nl)))
}

// A compressed body damaged in the file is an error, never other bytes:
// every single-byte change of a stored newsletter after its first byte is
// caught (by the block's structure, its length or the CRC). A changed first byte makes
// the value one stored as it is, which is read unchecked, as every body
// was before compression.
func TestBodyCodecDamageIsAnError(t *testing.T) {
	nl := newsletter(t)
	v := encodeBody(nl)
	for i := 1; i < len(v); i++ {
		for _, flip := range []byte{0x01, 0x80, 0xff} {
			d := bytes.Clone(v)
			d[i] ^= flip
			got, err := decodeBody(nil, d)
			if err == nil && !bytes.Equal(got, nl) {
				t.Fatalf("byte %d ^ %#x: decoded %d other bytes without an error", i, flip, len(got))
			}
		}
	}
	for _, cut := range []int{1, 2, 5, len(v) / 2, len(v) - 1} {
		if _, err := decodeBody(nil, v[:cut]); err == nil {
			t.Errorf("cut to %d of %d bytes: no error", cut, len(v))
		}
	}
	if _, err := decodeBody(nil, []byte{0, 9, 1, 2}); err == nil || !strings.Contains(err.Error(), "unknown encoding") {
		t.Errorf("an unknown encoding: %v", err)
	}
}

// Through the store: a damaged compressed body makes Body, OpenBody and
// export fail.
func TestDamagedCompressedBodyIsAnError(t *testing.T) {
	db, _ := openTest(t)
	nl := newsletter(t)
	if _, err := db.Accept(Message{ID: "m", From: "a@example.test"}, nl, []string{"b@example.test"}, t0); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Body("m"); err != nil || !bytes.Equal(got, nl) {
		t.Fatalf("Body: %d bytes, %v", len(got), err)
	}
	err := db.update(func(tx *bolt.Tx) error {
		v := bytes.Clone(tx.Bucket(bucketBodies).Get([]byte("m")))
		if len(v) >= len(nl) {
			return fmt.Errorf("stored in %d bytes, not compressed", len(v))
		}
		v[len(v)/2] ^= 0x10
		return tx.Bucket(bucketBodies).Put([]byte("m"), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Body("m"); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("Body of a damaged body: %v", err)
	}
	if _, err := db.OpenBody("m"); err == nil {
		t.Error("OpenBody of a damaged body: no error")
	}
	if size, err := db.BodySize("m"); err != nil || size != int64(len(nl)) {
		t.Errorf("BodySize = %d, %v; want %d (the header is intact)", size, err, len(nl))
	}
}

// A large body is compressed part by part and streams back whole; the
// manifest says the parts are encoded.
func TestPartedBodyCompressed(t *testing.T) {
	db, _ := openTest(t)
	nl := newsletter(t)
	var body []byte
	for len(body) < 2*BodyPartSize+777 {
		body = append(body, nl...)
	}
	body[BodyPartSize] = 0 // a part that starts with NUL
	acceptParted(t, db, "big", body)
	var stored int
	db.view(func(tx *bolt.Tx) error {
		man, err := manifestOf(tx, "big")
		if err != nil || man.Enc != partsEncoded || len(man.CRCs) != 3 {
			t.Errorf("manifest %+v, %v", man, err)
		}
		for i := range man.CRCs {
			stored += len(getPart(tx, "big", i))
		}
		return nil
	})
	if stored >= len(body)/2 {
		t.Errorf("%d bytes of newsletters stored in %d", len(body), stored)
	}
	rc, err := db.OpenBody("big")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, body) {
		t.Errorf("streamed %d bytes, %v; want the %d stored", len(got), err, len(body))
	}
	if size, err := db.BodySize("big"); err != nil || size != int64(len(body)) {
		t.Errorf("BodySize = %d, %v", size, err)
	}
	if whole, err := db.Body("big"); err != nil || !bytes.Equal(whole, body) {
		t.Errorf("Body: %d bytes, %v", len(whole), err)
	}
}

// releaseBodies are the bodies testdata/release-7cb74f6/make.go stored with
// the release before compression (the same function there).
func releaseBodies() map[string][]byte {
	text := func(n int) []byte {
		var b bytes.Buffer
		b.WriteString("Received: from client.test by kadenz.test; Mon, 23 Nov 2026 09:00:00 +0000\r\nSubject: old\r\n\r\n")
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "Line %d of a message stored before bodies were compressed.\r\n", i)
		}
		return b.Bytes()[:n]
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		r := rand.New(rand.NewPCG(7, 7))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		b[0] = 'R'
		return b
	}
	big := text(2*BodyPartSize + 1000)
	big[BodyPartSize] = 0 // the second part starts with NUL, as a part may
	big[BodyPartSize+1] = 1
	return map[string][]byte{
		"small":  text(200),
		"news":   text(5500),
		"big":    big,
		"binary": random(3000),
	}
}

// A database written by the release before compression reads the same:
// whole bodies and parted ones (one of whose parts starts with the bytes
// of a compressed value's header), through Body, OpenBody, BodySize and
// Export; new bodies written into it are compressed; it checks clean.
func TestBodiesOfReleaseBeforeCompressionRead(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "release-7cb74f6", "bodies.db.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kadenz.db")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	out.Close()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte("schema")); string(v) != fmt.Sprint(SchemaVersion) {
			t.Errorf("schema %s after open, want %d (so that an older kadenz refuses the file)", v, SchemaVersion)
		}
		return nil
	})
	want := releaseBodies()
	check := func(id string, body []byte) {
		t.Helper()
		if got, err := db.Body(id); err != nil || !bytes.Equal(got, body) {
			t.Errorf("Body(%s): %d bytes, %v; want %d", id, len(got), err, len(body))
		}
		rc, err := db.OpenBody(id)
		if err != nil {
			t.Fatalf("OpenBody(%s): %v", id, err)
		}
		if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, body) {
			t.Errorf("OpenBody(%s): %d bytes, %v; want %d", id, len(got), err, len(body))
		}
		if size, err := db.BodySize(id); err != nil || size != int64(len(body)) {
			t.Errorf("BodySize(%s) = %d, %v", id, size, err)
		}
	}
	for id, body := range want {
		check(id, body)
	}
	var exported int
	if err := db.Export(exportCheck(func(m Message, body []byte) {
		exported++
		if w, ok := want[m.ID]; ok && len(w) <= BodyPartSize && !bytes.Equal(body, w) {
			t.Errorf("export of %s: %d bytes, want %d", m.ID, len(body), len(w))
		}
	})); err != nil {
		t.Fatal(err)
	}
	if exported != len(want) {
		t.Errorf("exported %d messages, want %d", exported, len(want))
	}
	// New copies beside the old: compressed, and read the same.
	for id, body := range want {
		acceptParted(t, db, "new-"+id, body)
		check("new-"+id, body)
	}
	db.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBodies).Get([]byte("new-news")); len(v) >= len(want["news"])/2 {
			t.Errorf("new-news stored in %d bytes for %d", len(v), len(want["news"]))
		}
		if v := tx.Bucket(bucketBodies).Get([]byte("news")); len(v) != len(want["news"]) {
			t.Errorf("the old news body is %d bytes, want %d as written", len(v), len(want["news"]))
		}
		return nil
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Check(path); err != nil || !rep.OK() {
		t.Errorf("check: %v\n%s", err, rep)
	}
}

// exportCheck is a Sink that hands messages to fn and takes the rest.
type exportCheck func(Message, []byte)

func (f exportCheck) Message(m Message, body []byte) error            { f(m, body); return nil }
func (exportCheck) Secret([]byte) error                               { return nil }
func (exportCheck) Envelope(Envelope) error                           { return nil }
func (exportCheck) Decisions(string, json.RawMessage) error           { return nil }
func (exportCheck) Profile(string, []byte) error                      { return nil }
func (exportCheck) Counter(string, int64) error                       { return nil }
func (exportCheck) Suppression([]byte, Suppression) error             { return nil }
func (exportCheck) EventID([]byte, time.Time, []byte) error           { return nil }
func (exportCheck) Mailbox(string, uint32, uint32) error              { return nil }
func (exportCheck) Tombstone([]byte, time.Time) error                 { return nil }
func (exportCheck) SuspendedCampaign(string, SuspendedCampaign) error { return nil }

// The reader takes any bytes without panicking or allocating beyond its
// bound, and what it returns without an error is what the header claims.
func FuzzDecodeBody(f *testing.F) {
	f.Add(encodeBody(newsletter(f)))
	f.Add(encodeBody(append([]byte{0}, bytes.Repeat([]byte("z"), 600)...)))
	f.Add([]byte("Received: plain"))
	f.Add([]byte{0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xff})
	f.Fuzz(func(t *testing.T, v []byte) {
		if size, err := storedBodySize(v); err == nil && size > 1<<20 {
			return // a length up to maxCompress is allocated before the block is found damaged: slow, not different
		}
		got, err := decodeBody(nil, v)
		if err != nil {
			return
		}
		if size, err := storedBodySize(v); err != nil || size != int64(len(got)) {
			t.Fatalf("decoded %d bytes, header says %d (%v)", len(got), size, err)
		}
		if len(v) > 0 && v[0] != 0 && !bytes.Equal(got, v) {
			t.Fatal("a value without the codec's header did not read as itself")
		}
	})
}

// Whatever the body, it comes back byte for byte.
func FuzzBodyRoundTrip(f *testing.F) {
	f.Add(newsletter(f))
	f.Add([]byte{0})
	f.Add(bytes.Repeat([]byte{0, 1}, 400))
	f.Fuzz(func(t *testing.T, body []byte) {
		v := encodeBody(body)
		got, err := decodeBody(nil, v)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("round trip of %d bytes: %d back, %v", len(body), len(got), err)
		}
	})
}

// BenchmarkEncodeBody and BenchmarkDecodeBody: a realistic newsletter
// stored and read back (docs/benchmarks.md has their instruction counts):
// go test ./store/ -run XXX -bench 'EncodeBody|DecodeBody'
func BenchmarkEncodeBody(b *testing.B) {
	nl := newsletter(b)
	b.SetBytes(int64(len(nl)))
	b.ReportAllocs()
	var v []byte
	for b.Loop() {
		v = encodeBody(nl)
	}
	b.ReportMetric(float64(len(v))/float64(len(nl)), "ratio")
}

func BenchmarkDecodeBody(b *testing.B) {
	nl := newsletter(b)
	v := encodeBody(nl)
	b.SetBytes(int64(len(nl)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeBody(nil, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAcceptNewsletter is the store's side of accepting a realistic
// newsletter, one at a time, without fsync (the CPU, not the disk):
// encoding the body, the write transaction and its commit. Compare builds
// by instruction counts (docs/benchmarks.md, "Bodies stored compressed"):
//
//	go test -c -o store.test ./store/ && GODEBUG=asyncpreemptoff=1 valgrind --tool=cachegrind --cache-sim=no \
//	  ./store.test -test.run '^$' -test.bench AcceptNewsletter -test.cpu 1 -test.benchtime 2000x
func BenchmarkAcceptNewsletter(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "kadenz.db"), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	body := newsletter(b)
	b.SetBytes(int64(len(body)))
	i := 0
	for b.Loop() {
		i++
		// Spread like the campaign's IDs, which share their time prefix.
		id := fmt.Sprintf("06h4q4a%08x", uint32(i)*2654435761)
		if _, err := db.Accept(Message{ID: id, From: "news@shop.test"}, body, []string{"r@example.test"}, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// Writing a large body allocates its part buffers once, not per part: the
// compressed part goes into memory reused from part to part.
func TestPartedBodyAllocatesPerBodyNotPerPart(t *testing.T) {
	db, _ := openTest(t)
	nl := newsletter(t)
	var body []byte
	for len(body) < 8*BodyPartSize {
		body = append(body, nl...)
	}
	allocated := func() uint64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.TotalAlloc
	}
	before := allocated()
	acceptParted(t, db, "big", body)
	if got := allocated() - before; got > 5*BodyPartSize {
		t.Errorf("storing %d parts allocated %d bytes, want about two parts' worth", len(body)/BodyPartSize, got)
	}
}
