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
