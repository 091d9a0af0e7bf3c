package admin

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"kadenz/governor/admin/api"
)

// The one-pass batch decoder must agree with the strict per-event decoder
// on every batch it accepts, and leave every other body to it.
func TestDecodeBatchFastAgreesWithStrictPath(t *testing.T) {
	item := func(i int) string {
		return fmt.Sprintf(`{"id": "e%d", "kind": "click", "recipient": "r%d@example.test", "topic": "shoes", "timestamp": "2026-11-23T09:0%d:00Z"}`, i, i, i%10)
	}
	batch := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = item(i)
		}
		return `{"events": [` + strings.Join(items, ",") + `]}`
	}
	for _, n := range []int{1, 2, 100, maxEventBatch} {
		body := batch(n)
		fast, ok := decodeBatchFast([]byte(body))
		if !ok || len(fast) != n {
			t.Fatalf("batch of %d: fast path took %v with %d events", n, ok, len(fast))
		}
		var raw struct{ Events []json.RawMessage }
		if err := json.Unmarshal([]byte(body), &raw); err != nil {
			t.Fatal(err)
		}
		for i, it := range raw.Events {
			var want api.Event
			if err := strictJSON(it, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(fast[i], want) {
				t.Fatalf("event %d: fast %+v, strict %+v", i, fast[i], want)
			}
		}
	}
	for name, body := range map[string]string{
		"empty batch":     `{"events": []}`,
		"too many":        batch(maxEventBatch + 1),
		"unknown field":   `{"events": [{"id": "a", "kind": "open", "recipient": "a@b.test", "colour": "red"}]}`,
		"second key":      `{"events": [` + item(1) + `], "more": 1}`,
		"trailing data":   batch(1) + ` {}`,
		"not an array":    `{"events": {}}`,
		"single event":    item(1),
		"wrong type":      `{"events": [{"id": 5}]}`,
		"truncated":       batch(2)[:40],
		"capital E batch": `{"Events": [` + item(1) + `]}`,
		"key in capitals": `{"events": [{"Kind": "open", "recipient": "a@b.test"}]}`,
		"key given twice": `{"events": [{"kind": "open", "kind": "click", "recipient": "a@b.test"}]}`,
		"events twice":    `{"events": [` + item(1) + `], "events": [` + item(2) + `]}`,
		"escaped text":    `{"events": [{"kind": "open", "recipient": "a\u0040b.test"}]}`,
		"escaped key":     `{"events": [{"kin\u0064": "open", "recipient": "a@b.test"}]}`,
		"null value":      `{"events": [{"kind": "open", "recipient": "a@b.test", "topic": null}]}`,
		"invalid UTF-8":   "{\"events\": [{\"kind\": \"open\", \"topic\": \"\xff\", \"recipient\": \"a@b.test\"}]}",
		"control char":    "{\"events\": [{\"kind\": \"open\", \"topic\": \"a\tb\", \"recipient\": \"a@b.test\"}]}",
		"nested":          `{"events": [[` + item(1) + `]]}`,
		"trailing comma":  `{"events": [` + item(1) + `,]}`,
	} {
		if evs, ok := decodeBatchFast([]byte(body)); ok {
			t.Errorf("%s: fast path accepted it (%d events); the strict path must judge it", name, len(evs))
		}
	}
	// What the strict path says of those is unchanged: a refusal with the
	// event's index where one is at fault.
	if _, bad := decodeEvents([]byte(`{"events": [` + item(0) + `, {"id": "b", "colour": "red"}]}`)); bad == nil || bad.Index != 1 {
		t.Errorf("unknown field in event 1: %+v", bad)
	}
}

// FuzzDecodeBatchFast: whatever body the one-pass decoder accepts, the
// strict path accepts too, with the same events.
func FuzzDecodeBatchFast(f *testing.F) {
	for _, seed := range []string{
		`{"events": [{"id": "e1", "kind": "click", "recipient": "r1@example.test", "topic": "shoes", "timestamp": "2026-11-23T09:00:00Z"}]}`,
		`{"events":[{"kind":"open","recipient":"a@b.test"},{"kind":"bounce","bounce":"soft","envelope_id":"x-1"}]}` + "\n",
		` { "events" : [ { } ] } `,
		`{"events": [{"kind": "open", "message_id": "<m@x>", "url": "https://x.test/?a=1", "recipient": "é@b.test"}]}`,
		`{"events": [{"kind": "open", "kind": "open"}]}`,
		`{"kind": "open", "recipient": "a@b.test"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := decodeBatchFast(body)
		if !ok {
			return
		}
		strict, bad := decodeEventsStrict(body)
		if bad != nil {
			t.Fatalf("fast path took %q, the strict path refuses it: %+v", body, bad)
		}
		if !reflect.DeepEqual(fast, strict) {
			t.Fatalf("%q: fast %+v, strict %+v", body, fast, strict)
		}
	})
}
