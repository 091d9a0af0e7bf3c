package store

import (
	"encoding/json"
	"testing"
	"time"
)

// The scavenging pass must tell a message record from a body in both
// stored forms: before it knew only JSON records, and after schema 6 it
// filed every binary message record as a body, so a file cut short lost
// all its message records (tests/dbdamage_test.go, "truncated to half").
func TestScavengeTellsMessagesFromBodies(t *testing.T) {
	const id = "06h4qxeztp08vw5ksqeg"
	m := Message{ID: id, Class: "marketing", From: "news@shop.test", Received: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC),
		Size: 5000, Features: json.RawMessage(`{"topics":["boots"]}`)}
	asJSON, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("Received: from client\r\nSubject: boots\r\n\r\nhello\r\n")
	for _, c := range []struct {
		name  string
		value []byte
		want  string
	}{
		{"binary message record", encodeMessage(&m), "message"},
		{"JSON message record", asJSON, "message"},
		{"body as received", body, "body"},
		{"body compressed", encodeBody(append(body, make([]byte, 4096)...)), "body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &scavenged{messages: map[string][]byte{}, bodies: map[string][]byte{}, envelopes: map[string]Envelope{}}
			s.page([]leafElem{{key: []byte(id), value: c.value}})
			_, isMessage := s.messages[id]
			_, isBody := s.bodies[id]
			if got := map[bool]string{true: "message", false: "body"}[isMessage]; got != c.want || isMessage == isBody {
				t.Errorf("filed as message %v, body %v; want %s", isMessage, isBody, c.want)
			}
		})
	}
	// A binary record under another message's key is not that message's.
	other := []byte("06h4qxezvdt0b8rzvf7g")
	if isMessageRecord(other, encodeMessage(&m)) {
		t.Error("a record naming another ID was taken as the message keyed by this one")
	}
}
