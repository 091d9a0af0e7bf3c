package governor

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Event IDs are forgotten by the hourly chore once older than
// feedback.event_id_retention, on the relay's clock: a repeat after that is
// applied again, a repeat within it is still a duplicate.
func TestEventIDsForgottenAfterRetention(t *testing.T) {
	cfg := governedConfig(t, "")
	cfg.Admin.Listen, cfg.Admin.Token = "127.0.0.1:0", "s3cret"
	cfg.Feedback.EventIDRetention = 30 * 24 * time.Hour
	vc := NewVirtualClock(monday10)
	r := startRelayWith(t, Options{Config: cfg, Clock: vc})
	event := func(id string) string {
		return `{"id": "` + id + `", "kind": "open", "recipient": "ann@example.test"}`
	}
	post := func(id, want string) {
		t.Helper()
		if code, body := postEvents(t, r, event(id)); code != 200 || !strings.Contains(body, want) {
			t.Fatalf("event %s: %d %s, want %s", id, code, body, want)
		}
	}
	advance := func(d string) {
		t.Helper()
		if code, body := adminDo(t, r, http.MethodPost, "/v1/clock", "application/json", `{"advance": "`+d+`"}`); code != 200 {
			t.Fatalf("clock: %d %s", code, body)
		}
	}
	count := func() int {
		n, err := r.DB().EventIDCount()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	post("old", `"applied":1`)
	advance("696h") // 29 days
	post("recent", `"applied":1`)
	advance("24h") // "old" is 30 days old, not older: kept
	waitCaughtUp(t, r)
	if n := count(); n != 2 {
		t.Fatalf("%d event IDs after 30 days, want 2", n)
	}
	advance("1h") // the next hourly run sees "old" past the retention
	waitFor(t, "the chore to forget the old ID", func() bool { return count() == 1 })
	post("old", `"applied":1`)
	post("recent", `"duplicates":1`)
}
