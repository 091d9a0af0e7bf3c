package admin

import (
	"strings"
	"testing"
	"time"

	"kadenz/governor/address"
	"kadenz/governor/admin/api"
)

func TestCheckDuplicateKeys(t *testing.T) {
	for in, want := range map[string]string{
		`{"a": 1, "b": 2}`:                                    "",
		`{"a": 1, "a": 2}`:                                    "a",
		`{"events": [{"kind": "x", "kind": "y"}]}`:            "kind",
		`{"a": {"b": 1}, "b": {"a": 1}}`:                      "",
		`{"a": [{"x": 1}, {"x": 2}], "a": 3}`:                 "a",
		`[{"k": 1}, {"k": 1}]`:                                "",
		`{"a": {"c": 1, "d": [1, {"c": 2}]}, "e": 1, "e": 2}`: "e",
		`{"a": "\u0061", "\u0061": 2}`:                        "a",
		`{"a": 1,`:                                            "",
	} {
		err := checkDuplicateKeys([]byte(in))
		var dup *duplicateKeyError
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", in, err)
		case want != "" && (err == nil || !errorsAs(err, &dup) || dup.Key != want):
			t.Errorf("%s: %v, want duplicate %q", in, err, want)
		}
	}
}

func errorsAs(err error, dup **duplicateKeyError) bool {
	d, ok := err.(*duplicateKeyError)
	*dup = d
	return ok
}

// checkParsedEvents is what the fuzz target and the tests hold parseEvents
// to: whatever it accepts is within the limits the store and the engine
// rely on.
func checkParsedEvents(t *testing.T, evs []api.Event, sigs []CheckedEvent, now time.Time) {
	t.Helper()
	if len(evs) == 0 || len(evs) > maxEventBatch || len(sigs) != len(evs) {
		t.Fatalf("accepted %d events, %d signals", len(evs), len(sigs))
	}
	for i, ev := range evs {
		if ev.Recipient != "" && address.Check(ev.Recipient, true) != nil {
			t.Fatalf("event %d: accepted recipient %q", i, ev.Recipient)
		}
		if ev.EnvelopeID == "" && ev.MessageID == "" && ev.Recipient == "" {
			t.Fatalf("event %d names nobody", i)
		}
		if at := sigs[i].At; at.Before(earliestTime) || at.After(now.Add(futureSkew)) {
			t.Fatalf("event %d: accepted time %v", i, at)
		}
		for _, f := range []string{ev.ID, ev.EnvelopeID, ev.MessageID, ev.Topic, ev.URL} {
			if strings.ContainsFunc(f, func(r rune) bool { return r < 0x20 || r == 0x7f }) || len(f) > maxURL {
				t.Fatalf("event %d: accepted field %q", i, f)
			}
		}
	}
}

// monday10 is a Monday morning, the tests' usual now.
var monday10 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func FuzzEventsJSON(f *testing.F) {
	now := monday10
	for _, s := range []string{
		`{"kind": "open", "recipient": "ann@example.test"}`,
		`{"events": [{"id": "e1", "kind": "click", "envelope_id": "m-1", "url": "https://x.test/", "topic": "shoes"},
			{"kind": "bounce", "bounce": "soft", "message_id": "<a@b>", "recipient": "\"q q\"@[127.0.0.1]"}]}`,
		`{"kind": "unsubscribe", "recipient": "ann@example.test", "timestamp": "2026-11-23T09:00:00+01:00"}`,
		`{"kind": "open", "kind": "open", "recipient": "a@b.test"}`,
		`{"events": [], "x": 1}`,
		`{"kind": "complaint", "recipient": "ännä@bücher.test"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, sigs, bad := parseEvents(body, now)
		if bad != nil {
			if bad.Index < -1 || bad.Index >= maxEventBatch || bad.Error == "" {
				t.Fatalf("refusal %+v", bad)
			}
			if checkDuplicateKeys(body) == nil && bad.Field == "" && bad.Index >= 0 && !strings.Contains(bad.Error, "bad event") {
				t.Fatalf("refusal of event %d names no field: %+v", bad.Index, bad)
			}
			return
		}
		if checkDuplicateKeys(body) != nil {
			t.Fatalf("accepted a body with a duplicate key: %q", body)
		}
		checkParsedEvents(t, evs, sigs, now)
	})
}

func FuzzSuppressionCSV(f *testing.F) {
	now := monday10
	for _, s := range []string{
		"address,reason\nann@example.test,asked by phone\n",
		"ann@example.test,x,2026-01-02T03:04:05Z,crm\n\"b,c\"@example.test,\"quoted, reason\"\n",
		"ann@example.test\n\n bob@example.test , y\n",
		"a@b,x,0001-01-01T00:00:00Z\n",
		"\"unterminated,\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		list, err := parseSuppressionCSV(strings.NewReader(string(body)), now)
		if err != nil {
			if list != nil {
				t.Fatal("a refused import returned entries")
			}
			return
		}
		for _, s := range list {
			if address.Check(s.Address, true) != nil {
				t.Fatalf("accepted address %q", s.Address)
			}
			if s.At.Before(earliestTime) || s.At.After(now.Add(futureSkew)) {
				t.Fatalf("accepted time %v", s.At)
			}
			if len(s.Reason) > maxReason || strings.ContainsFunc(s.Reason, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("accepted reason %q", s.Reason)
			}
		}
	})
}
