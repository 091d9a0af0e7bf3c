package store

import (
	"io"
	"testing"
)

// OpenBody reads the same bytes whether the store streams bodies or not.
func TestOpenBodyWithAndWithoutStreams(t *testing.T) {
	db, _ := openTest(t)
	if _, err := db.Accept(Message{ID: "m1"}, []byte("Subject: hi\r\n\r\nbody\r\n"), []string{"a@x.test"}, t0); err != nil {
		t.Fatal(err)
	}
	type queueOnly struct{ Queue } // hides BodyStreams
	for name, s := range map[string]Queue{"streams": db, "whole": queueOnly{db}} {
		rc, err := OpenBody(s, "m1")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(b) != "Subject: hi\r\n\r\nbody\r\n" {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	if _, err := OpenBody(queueOnly{db}, "nope"); err == nil {
		t.Error("an unknown body opened without a store that streams")
	}
}
