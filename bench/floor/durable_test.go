package main

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"kadenz/governor/feedback/journal"
)

// TestDurableStoresEveryMessage stores messages from many sessions at once
// and opens the journal again: every message is there whole, under the
// number store gave it.
func TestDurableStoresEveryMessage(t *testing.T) {
	dir := t.TempDir()
	d, err := openDurable(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	msgs := make([]message, n)
	var wg sync.WaitGroup
	for i := range msgs {
		wg.Go(func() {
			msgs[i] = message{from: fmt.Sprintf("s%d@x.test", i), to: []string{"a@y.test", fmt.Sprintf("r%d@y.test", i)},
				body: bytes.Repeat([]byte{byte('a' + i%26)}, 100+i)}
			if err := d.store(&msgs[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := d.close(); err != nil {
		t.Fatal(err)
	}

	j, err := journal.Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	stored := map[uint64]message{}
	for _, r := range j.Durable() {
		m, err := decodeMessage(r.Data)
		if err != nil {
			t.Fatalf("record %d: %v", r.Seq, err)
		}
		stored[r.Seq] = m
	}
	if len(stored) != n {
		t.Fatalf("%d messages read back, want %d", len(stored), n)
	}
	for i, m := range msgs {
		got, ok := stored[m.seq]
		if !ok || got.from != m.from || len(got.to) != 2 || got.to[1] != m.to[1] || !bytes.Equal(got.body, m.body) {
			t.Fatalf("message %d (record %d) read back as %+v", i, m.seq, got)
		}
	}
	if _, err := openDurable(dir); err == nil {
		t.Error("a directory with an earlier run's messages was taken")
	}
}

// TestDurableLetsGoBelowTheFirstUnfinished finishes messages out of order:
// the journal keeps every record from the first unfinished one on, and
// drops the rest.
func TestDurableLetsGoBelowTheFirstUnfinished(t *testing.T) {
	d, err := openDurable(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	msgs := make([]message, 6)
	for i := range msgs {
		msgs[i] = message{from: "s@x.test", to: []string{"a@y.test"}, body: []byte("hello")}
		if err := d.store(&msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	kept := func() []uint64 {
		var seqs []uint64
		for _, r := range d.j.Durable() {
			seqs = append(seqs, r.Seq)
		}
		return seqs
	}
	for _, step := range []struct {
		finish int
		want   string
	}{
		{1, "[1 2 3 4 5 6]"}, // the first is not finished yet
		{2, "[1 2 3 4 5 6]"},
		{0, "[4 5 6]"}, // 1, 2 and 3 now all are
		{4, "[4 5 6]"},
		{3, "[6]"},
		{5, "[]"},
	} {
		d.finish(msgs[step.finish])
		if got := fmt.Sprint(kept()); got != step.want {
			t.Fatalf("after finishing message %d (record %d): the journal keeps %s, want %s",
				step.finish, msgs[step.finish].seq, got, step.want)
		}
	}
}

// FuzzMessageCodec: what encodeMessage writes, decodeMessage reads back;
// anything else is refused or read without panicking.
func FuzzMessageCodec(f *testing.F) {
	f.Add("s@x.test", "a@y.test", []byte("body"))
	f.Add("", "", []byte{})
	f.Fuzz(func(t *testing.T, from, to string, body []byte) {
		m := message{from: from, to: []string{to, from}, body: body}
		got, err := decodeMessage(encodeMessage(m))
		if err != nil || got.from != from || len(got.to) != 2 || got.to[0] != to || got.to[1] != from || !bytes.Equal(got.body, body) {
			t.Fatalf("%+v read back as %+v, %v", m, got, err)
		}
		decodeMessage(body) // arbitrary bytes: an error or a message, never a panic
	})
}
