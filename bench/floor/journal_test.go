package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"testing"
)

// TestJournalStoresEveryMessage stores messages from many sessions at once,
// marks some delivered, and reads the segments back: every message is
// there whole, under its own number, and every mark names one of them. With
// small segments the log moves from segment to segment.
func TestJournalStoresEveryMessage(t *testing.T) {
	for _, size := range []int64{1 << 20, 4096} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			defer func(was int64) { segmentSize = was }(segmentSize)
			segmentSize = size
			testJournal(t)
		})
	}
}

func testJournal(t *testing.T) {
	dir := t.TempDir()
	j, err := openJournal(dir)
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
			if err := j.store(&msgs[i]); err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				j.delivered(msgs[i])
			}
		})
	}
	wg.Wait()
	if err := j.close(); err != nil {
		t.Fatal(err)
	}

	stored := map[uint64]message{}
	marks := map[uint64]bool{}
	segments := 0
	for ; ; segments++ {
		data, err := os.ReadFile(segmentPath(dir, segments))
		if os.IsNotExist(err) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		for len(data) > 0 && data[0] != 0 {
			if len(data) < headerSize {
				t.Fatalf("segment %d: %d bytes left over, not a record", segments, len(data))
			}
			kind, seq, size := data[0], binary.BigEndian.Uint64(data[1:9]), binary.BigEndian.Uint32(data[9:headerSize])
			payload := data[headerSize : headerSize+size]
			data = data[headerSize+size:]
			switch kind {
			case recMessage:
				if _, dup := stored[seq]; dup {
					t.Fatalf("message number %d stored twice", seq)
				}
				stored[seq] = decodeMessage(t, payload)
			case recDelivered:
				marks[seq] = true
			default:
				t.Fatalf("record kind %q", kind)
			}
		}
		if bytes.ContainsFunc(data, func(r rune) bool { return r != 0 }) {
			t.Fatalf("segment %d: bytes after its end", segments)
		}
	}
	if len(stored) != n || len(marks) != n/2 {
		t.Fatalf("%d messages and %d marks read back from %d segments, want %d and %d", len(stored), len(marks), segments, n, n/2)
	}
	if segmentSize < 10000 && segments < 2 {
		t.Errorf("%d segment of %d bytes for %d messages: the log never moved on", segments, segmentSize, n)
	}
	for i, m := range msgs {
		got, ok := stored[m.seq]
		if !ok || got.from != m.from || len(got.to) != 2 || got.to[1] != m.to[1] || !bytes.Equal(got.body, m.body) {
			t.Fatalf("message %d (number %d) read back as %+v", i, m.seq, got)
		}
		if marks[m.seq] != (i%2 == 0) {
			t.Errorf("message %d: delivered mark %v", i, marks[m.seq])
		}
	}
}

func decodeMessage(t *testing.T, b []byte) message {
	t.Helper()
	next := func() string {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			t.Fatal("truncated message record")
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s
	}
	m := message{from: next()}
	count, k := binary.Uvarint(b)
	b = b[k:]
	for range count {
		m.to = append(m.to, next())
	}
	m.body = b
	return m
}
