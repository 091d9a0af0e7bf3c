package governor

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"kadenz/governor/admin/api"
)

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
		var e api.EventError
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
