package governor

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"kadenz/governor/address"
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

// TestAdminInputIsChecked sends what an attacker or a buggy client would:
// control characters, oversized and malformed addresses, duplicate keys,
// absurd times. Each is a 400 naming the field, none a 500, and nothing
// is written.
func TestAdminInputIsChecked(t *testing.T) {
	c := &clock{t: monday10}
	r := adminRelay(t, c)
	huge := strings.Repeat("a", 40<<10) + "@example.test"
	long := strings.Repeat("a", 1000) + "@example.test"
	for _, tc := range []struct {
		name, body, field string
	}{
		{"ESC in the recipient", `{"kind": "unsubscribe", "recipient": "ann\u001b[2J@example.test"}`, "recipient"},
		{"BEL in the recipient", `{"kind": "complaint", "recipient": "ann\u0007@example.test"}`, "recipient"},
		{"1,000-character address", `{"kind": "unsubscribe", "recipient": "` + long + `"}`, "recipient"},
		{"40 KB address", `{"kind": "unsubscribe", "recipient": "` + huge + `"}`, "recipient"},
		{"no domain", `{"kind": "unsubscribe", "recipient": "ann@"}`, "recipient"},
		{"two @", `{"kind": "unsubscribe", "recipient": "a@b@example.test"}`, "recipient"},
		{"duplicate key", `{"kind": "open", "kind": "unsubscribe", "recipient": "ann@example.test"}`, "kind"},
		{"duplicate key in a batch", `{"events": [{"kind": "open", "recipient": "ann@example.test", "recipient": "bob@example.test"}]}`, "recipient"},
		{"year 1", `{"kind": "unsubscribe", "recipient": "ann@example.test", "timestamp": "0001-01-01T00:00:00Z"}`, "timestamp"},
		{"year 9999", `{"kind": "unsubscribe", "recipient": "ann@example.test", "timestamp": "9999-12-31T23:59:59Z"}`, "timestamp"},
		{"tomorrow", `{"kind": "open", "recipient": "ann@example.test", "timestamp": "2026-11-24T10:00:00Z"}`, "timestamp"},
		{"control in the topic", `{"kind": "click", "recipient": "ann@example.test", "topic": "shoes\u0000"}`, "topic"},
		{"huge envelope ID", `{"kind": "open", "envelope_id": "` + strings.Repeat("x", 300) + `"}`, "envelope_id"},
		{"huge Message-ID", `{"kind": "open", "message_id": "` + strings.Repeat("x", 2000) + `"}`, "message_id"},
	} {
		code, body := postEvents(t, r, tc.body)
		var e EventError
		if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || e.Field != tc.field {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.name, code, clipForTest(body), tc.field)
		}
		if strings.ContainsAny(body, "\x1b\x07\x00") {
			t.Errorf("%s: the answer echoes a raw control character: %q", tc.name, clipForTest(body))
		}
	}
	// A time within the range is fine, and the relay clock is virtual.
	if code, body := postEvents(t, r, `{"kind": "open", "recipient": "ann@example.test", "timestamp": "2026-11-23T09:00:00Z"}`); code != 200 {
		t.Errorf("a good event: %d %s", code, body)
	}

	for _, tc := range []struct {
		name, method, path, ct, body, want string
	}{
		{"suppress ESC", "POST", "/v1/suppressions", "application/json", `{"address": "x\u001b@example.test"}`, "address:"},
		{"suppress 40 KB", "POST", "/v1/suppressions", "application/json", `{"address": "` + huge + `"}`, "address:"},
		{"suppress duplicate key", "POST", "/v1/suppressions", "application/json", `{"address": "a@example.test", "address": "b@example.test"}`, "duplicate key"},
		{"suppress control in reason", "POST", "/v1/suppressions", "application/json", `{"address": "a@example.test", "reason": "x\u001by"}`, "reason:"},
		{"unsuppress 40 KB", "DELETE", "/v1/suppressions/" + url.PathEscape(huge), "", "", "address:"},
		{"unsuppress ESC", "DELETE", "/v1/suppressions/" + url.PathEscape("a\x1b@example.test"), "", "", "address:"},
		{"import bad address", "POST", "/v1/suppressions/import", "text/csv", "a@example.test,x\n" + huge + ",y\n", "line 2: address:"},
		{"import year 1", "POST", "/v1/suppressions/import", "text/csv", "a@example.test,x,0001-01-01T00:00:00Z,crm\n", "line 1: at:"},
		{"import bad time", "POST", "/v1/suppressions/import", "text/csv", "a@example.test,x,yesterday,crm\n", "line 1: at:"},
		{"forget 40 KB", "POST", "/v1/forget", "application/json", `{"address": "` + huge + `"}`, "address:"},
		{"forget duplicate key", "POST", "/v1/forget", "application/json", `{"address": "a@example.test", "address": "b@example.test"}`, "duplicate key"},
		{"forget ESC", "POST", "/v1/forget", "application/json", `{"address": "a\u001b@example.test"}`, "address:"},
		{"profile 40 KB", "GET", "/v1/profiles/" + url.PathEscape(huge), "", "", "address:"},
		{"explain ESC", "GET", "/v1/explain/" + url.PathEscape("x\x1by"), "", "", "id:"},
		{"queue duplicate key", "POST", "/v1/queue/drop", "application/json", `{"campaign": "a", "campaign": "b"}`, "duplicate key"},
	} {
		code, body := adminDo(t, r, tc.method, tc.path, tc.ct, tc.body)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.name, code, clipForTest(body), tc.want)
		}
		if strings.ContainsAny(body, "\x1b\x07\x00") {
			t.Errorf("%s: the answer echoes a raw control character: %q", tc.name, clipForTest(body))
		}
	}
	if list, _ := r.DB().Suppressions(); len(list) != 0 {
		t.Errorf("refused input reached the suppression list: %+v", list)
	}
	if raw, _ := r.DB().Profile(huge); raw != nil {
		t.Error("a profile was stored for a 40 KB address")
	}
}

func clipForTest(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// checkParsedEvents is what the fuzz target and the tests hold parseEvents
// to: whatever it accepts is within the limits the store and the engine
// rely on.
func checkParsedEvents(t *testing.T, evs []Event, sigs []signal, now time.Time) {
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
		if at := sigs[i].at; at.Before(earliestTime) || at.After(now.Add(futureSkew)) {
			t.Fatalf("event %d: accepted time %v", i, at)
		}
		for _, f := range []string{ev.ID, ev.EnvelopeID, ev.MessageID, ev.Topic, ev.URL} {
			if strings.ContainsFunc(f, func(r rune) bool { return r < 0x20 || r == 0x7f }) || len(f) > maxURL {
				t.Fatalf("event %d: accepted field %q", i, f)
			}
		}
	}
}

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
