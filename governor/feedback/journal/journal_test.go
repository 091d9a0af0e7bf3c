package journal

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func records(t *testing.T, j *Journal) []string {
	t.Helper()
	var out []string
	for _, r := range j.Durable() {
		out = append(out, fmt.Sprintf("%d:%s", r.Seq, r.Data))
	}
	return out
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAppendReopenApplied(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		seq, err := j.Append([]byte(fmt.Sprint("r", i)))
		if err != nil || seq != uint64(i) {
			t.Fatalf("append %d: seq %d, %v", i, seq, err)
		}
	}
	j.Close()
	if _, err := j.Append([]byte("late")); err != ErrClosed {
		t.Fatalf("append after close: %v", err)
	}

	// Reopened with record 1 applied: 2 and 3 come back, and appends go on
	// after them.
	j, err = Open(dir, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(records(t, j), " "); got != "2:r2 3:r3" {
		t.Fatalf("replayed %q", got)
	}
	if seq, err := j.Append([]byte("r4")); err != nil || seq != 4 {
		t.Fatalf("append after reopen: %d, %v", seq, err)
	}
	j.Applied(3)
	if got := strings.Join(records(t, j), " "); got != "4:r4" {
		t.Fatalf("after Applied(3): %q", got)
	}
	// The first segment (1-3) is gone; the one appended to stays.
	if files := segmentFiles(t, dir); len(files) != 1 {
		t.Fatalf("segments after Applied(3): %v", files)
	}
	j.Close()
	j, err = Open(dir, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if got := strings.Join(records(t, j), " "); got != "4:r4" {
		t.Fatalf("second reopen: %q", got)
	}
}

// TestTornTail cuts the journal at every byte offset of its last record (and
// flips each of its bytes): the records before it always come back, the
// last one only when whole, Open never fails, and appends go on after what
// was read.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"first", "second", "the last record, a little longer"} {
		if _, err := j.Append([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	files := segmentFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("segments: %v", files)
	}
	whole, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	end := len(magic)
	for _, d := range []string{"first", "second", "the last record, a little longer"} {
		end += frameHeader + seqLen + len(d)
	}
	if len(whole) <= end || !bytes.Equal(whole[end:], make([]byte, len(whole)-end)) {
		t.Fatalf("a segment of %d bytes, records end at %d: want zeros after them", len(whole), end)
	}
	lastLen := frameHeader + seqLen + len("the last record, a little longer")
	lastStart := end - lastLen
	try := func(name string, content []byte, want string) {
		t.Helper()
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, filepath.Base(files[0])), content, 0o600); err != nil {
			t.Fatal(err)
		}
		var logged bytes.Buffer
		j, err := Open(d, 0, slog.New(slog.NewTextHandler(&logged, nil)))
		if err != nil {
			t.Fatalf("%s: Open refused: %v", name, err)
		}
		defer j.Close()
		got := strings.Join(records(t, j), " ")
		if got != want {
			t.Fatalf("%s: replayed %q, want %q", name, got, want)
		}
		if want != "1:first 2:second 3:the last record, a little longer" && tornAt(content, lastStart) && !strings.Contains(logged.String(), "torn record") {
			t.Fatalf("%s: no log line for the dropped record: %q", name, logged.String())
		}
		next := uint64(strings.Count(want, ":") + 1)
		if seq, err := j.Append([]byte("after")); err != nil || seq != next {
			t.Fatalf("%s: append after the cut: seq %d (want %d), %v", name, seq, next, err)
		}
	}
	for cut := lastStart; cut < end; cut++ {
		// The file cut there (a crash while it grew), or the record's
		// bytes from there on still the zeros written ahead.
		try(fmt.Sprint("cut at ", cut), whole[:cut], "1:first 2:second")
		zeroed := bytes.Clone(whole)
		clear(zeroed[cut:end])
		try(fmt.Sprint("zeros from ", cut), zeroed, "1:first 2:second")
	}
	try("whole", whole, "1:first 2:second 3:the last record, a little longer")
	try("without the zeros", whole[:end], "1:first 2:second 3:the last record, a little longer")
	for i := lastStart; i < end; i++ {
		bad := bytes.Clone(whole)
		bad[i] ^= 0x40
		want := "1:first 2:second"
		try(fmt.Sprint("byte ", i, " flipped"), bad, want)
	}
}

func TestSegmentsRotateAndRelease(t *testing.T) {
	old := SegmentSize
	SegmentSize = 100
	defer func() { SegmentSize = old }()
	dir := t.TempDir()
	j, err := Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := j.Append(bytes.Repeat([]byte{'x'}, 40)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(segmentFiles(t, dir)); n < 5 {
		t.Fatalf("%d segments for 20 records of 56 bytes at a 100-byte segment size", n)
	}
	j.Applied(10)
	if n := j.Pending(); n != 10 {
		t.Fatalf("pending after Applied(10): %d", n)
	}
	j.Close()
	j, err = Open(dir, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	rs := j.Durable()
	if len(rs) != 10 || rs[0].Seq != 11 || rs[9].Seq != 20 {
		t.Fatalf("replayed %d records from %v", len(rs), rs)
	}
	j.Applied(20)
	if n := len(segmentFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments once everything is applied, want the one appended to", n)
	}
}

func TestConcurrentAppendsAreOrdered(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	seqs := make([]uint64, 200)
	for i := range seqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := j.Append([]byte(fmt.Sprint(i)))
			if err != nil {
				t.Error(err)
			}
			seqs[i] = s
		}()
	}
	wg.Wait()
	rs := j.Durable()
	if len(rs) != 200 {
		t.Fatalf("%d durable", len(rs))
	}
	for i, r := range rs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		if seqs[mustAtoi(t, string(r.Data))] != r.Seq {
			t.Fatalf("record %q: Append returned another seq", r.Data)
		}
	}
	j.Close()
	j, err = Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if n := len(j.Durable()); n != 200 {
		t.Fatalf("reopened: %d", n)
	}
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// tornAt says whether content holds some of a record from start on (not
// only zeros or nothing): what must be logged as torn.
func tornAt(content []byte, start int) bool {
	return len(content) > start && !bytes.Equal(content[start:], make([]byte, len(content)-start))
}

func TestHasRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "j")
	if has, err := HasRecords(dir); has || err != nil {
		t.Fatalf("missing directory: %v %v", has, err)
	}
	j, err := Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if has, _ := HasRecords(dir); has {
		t.Fatal("a new journal has records")
	}
	if _, err := j.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if has, _ := HasRecords(dir); !has {
		t.Fatal("an appended record not seen")
	}
	j.Applied(1)
	if err := j.Rotate(); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if has, _ := HasRecords(dir); has {
		t.Fatalf("records after everything was applied and the journal rotated: %v", segmentFiles(t, dir))
	}
}
