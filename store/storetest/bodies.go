package storetest

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"kadenz/store"
)

// bigBody is n bytes of a deterministic message: a header, then lines of
// varied text, so a part swapped, dropped or shifted shows.
func bigBody(n int) []byte {
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	b := make([]byte, 0, n)
	b = append(b, "Subject: big\r\n\r\n"...)
	for len(b) < n {
		line := make([]byte, 1+rng.IntN(76))
		for i := range line {
			line[i] = byte('!' + rng.IntN(94))
		}
		b = append(append(b, line...), '\r', '\n')
	}
	return b[:n]
}

// failingReader returns r's bytes, then err instead of EOF.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, f.err
	}
	return n, err
}

// testBodyStreams: a backend implementing store.BodyStreams keeps a
// streamed body byte for byte (Body and OpenBody agree, large or small,
// across a reopen), stores nothing when the reader fails, and purges a
// streamed body like any other.
func testBodyStreams(t *testing.T, b Backend) {
	dir := t.TempDir()
	s := b.Open(t, dir)
	bs, ok := s.(store.BodyStreams)
	if !ok {
		s.Close()
		t.Skip("this backend does not implement store.BodyStreams")
	}
	bodies := map[string][]byte{
		"small": bigBody(3000),
		"large": bigBody(3*(1<<20) + 12345), // several parts in a backend that parts, the last one short
		"exact": bigBody(2 << 20),
	}
	for id, body := range bodies {
		msg := store.Message{ID: id, From: "shop@example.test", Received: t0, Size: len(body)}
		envs, err := bs.AcceptStream(msg, bytes.NewReader(body), []string{"ann@example.test", "bob@example.test"}, t0, nil)
		if err != nil || len(envs) != 2 {
			t.Fatalf("AcceptStream %s: %d envelopes, %v", id, len(envs), err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, b, dir)
	bs = s.(store.BodyStreams)
	for id, want := range bodies {
		got, err := s.Body(id)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Body(%s) after reopen: %d bytes, %v; want the %d bytes streamed in, unchanged", id, len(got), err, len(want))
		}
		rc, err := bs.OpenBody(id)
		if err != nil {
			t.Fatalf("OpenBody(%s): %v", id, err)
		}
		got, err = io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("OpenBody(%s): %d bytes, %v; want the %d bytes streamed in, unchanged", id, len(got), err, len(want))
		}
		if has, err := s.HasBody(id); err != nil || !has {
			t.Errorf("HasBody(%s) = %v, %v", id, has, err)
		}
	}
	// OpenBody also streams a body stored whole by Accept.
	accept(t, s, "plain", []string{"cid@example.test"}, t0, nil)
	if rc, err := bs.OpenBody("plain"); err != nil {
		t.Errorf("OpenBody of an Accept-ed body: %v", err)
	} else if got, _ := io.ReadAll(rc); string(got) != "Subject: plain\r\n\r\nbody of plain\r\n" {
		t.Errorf("OpenBody of an Accept-ed body: %q", got)
	}
	if _, err := bs.OpenBody("nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OpenBody(nope): %v, want ErrNotFound", err)
	}

	// A reader that fails half-way: nothing of the message is stored, and
	// its ID is free for the retry.
	cut := &failingReader{r: bytes.NewReader(bodies["large"][:2<<20+7]), err: errors.New("client went away")}
	msg := store.Message{ID: "cut", From: "shop@example.test", Received: t0}
	if _, err := bs.AcceptStream(msg, cut, []string{"dan@example.test"}, t0, nil); err == nil {
		t.Fatal("AcceptStream with a failing reader succeeded")
	}
	if has, _ := s.HasBody("cut"); has {
		t.Error("a body whose reader failed was stored")
	}
	if _, err := s.Envelope("cut-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("envelope of a message whose body failed: %v, want ErrNotFound", err)
	}
	if _, err := bs.AcceptStream(msg, bytes.NewReader(bodies["large"]), []string{"dan@example.test"}, t0, nil); err != nil {
		t.Errorf("retry after a failed stream: %v", err)
	}
	if _, err := bs.AcceptStream(msg, bytes.NewReader(bodies["large"]), []string{"dan@example.test"}, t0, nil); err == nil {
		t.Error("a second streamed message with ID cut was accepted")
	}
	if got, err := s.Body("cut"); err != nil || !bytes.Equal(got, bodies["large"]) {
		t.Errorf("the first message's body after a refused duplicate: %d bytes, %v", len(got), err)
	}

	// Retention: a streamed body goes once its envelopes are final.
	claimed, err := s.Claim(t0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var done []store.Envelope
	for _, e := range claimed {
		if e.MessageID == "large" {
			e.State, e.Updated = store.StateDelivered, t0
			done = append(done, e)
		}
	}
	if err := s.Update(done...); err != nil || len(done) != 2 {
		t.Fatalf("settling large: %d envelopes, %v", len(done), err)
	}
	if n, err := s.PurgeBodies(t0.Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("PurgeBodies = %d, %v; want 1", n, err)
	}
	if has, _ := s.HasBody("large"); has {
		t.Error("a streamed body survived its retention")
	}
	if _, err := bs.OpenBody("large"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OpenBody after the purge: %v, want ErrNotFound", err)
	}
	if has, _ := s.HasBody("exact"); !has {
		t.Error("the purge took a body still waiting for delivery")
	}
}
