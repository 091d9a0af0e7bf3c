package tests

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEventsSurviveSIGKILL: every event POST /v1/events answered 200 is in
// the recipient's profile after the relay is SIGKILLed right after the last
// answer and started again on the same data directory (the event journal
// replays what the database did not have yet), and none is counted twice,
// with or without an id. How many of the last batches the applier had
// moved into the database before the kill depends on timing (it runs 50 ms
// after the first waiting event); the outcome must not.
func TestEventsSurviveSIGKILL(t *testing.T) {
	data := t.TempDir()
	admin := freeAddr(t)
	r := startRelay(t, relayOptions{Data: data, Args: []string{"--admin", admin}})
	if err := waitListening(admin, 20*time.Second, r.exited); err != nil {
		t.Fatal(err)
	}
	json200 := map[string]string{"Content-Type": "application/json"}
	const batches, per = 20, 10
	for b := range batches {
		var evs []string
		for i := range per {
			id := ""
			if i%2 == 0 { // half with an id, half without
				id = fmt.Sprintf(`"id": "k%d-%d", `, b, i)
			}
			evs = append(evs, fmt.Sprintf(`{%s"kind": "open", "recipient": "ann@example.test"}`, id))
		}
		code, body := adminHTTP(t, admin, "POST", "/v1/events", "", json200, `{"events": [`+strings.Join(evs, ",")+`]}`)
		if code != 200 || !strings.Contains(body, fmt.Sprintf(`"applied":%d`, per)) {
			t.Fatalf("batch %d: %d %s", b, code, body)
		}
	}
	r.kill()
	segs, _ := filepath.Glob(filepath.Join(data, "kadenz.db.events", "*.journal"))
	if len(segs) == 0 {
		t.Fatal("no event journal beside the database")
	}

	for round := range 2 { // and once more: a second start replays nothing
		r = startRelay(t, relayOptions{Data: data, Args: []string{"--admin", admin}})
		if err := waitListening(admin, 20*time.Second, r.exited); err != nil {
			t.Fatal(err)
		}
		code, body := adminHTTP(t, admin, "GET", "/v1/profiles/ann@example.test", "", nil, "")
		var view struct {
			Profile struct {
				All struct {
					Opens float64 `json:"opens"`
				} `json:"all"`
			} `json:"profile"`
		}
		if err := json.Unmarshal([]byte(body), &view); code != 200 || err != nil {
			t.Fatalf("round %d: profile: %d %s %v", round, code, body, err)
		}
		if got := view.Profile.All.Opens; got < batches*per-0.5 || got > batches*per+0.5 {
			t.Errorf("round %d: %v opens after SIGKILL and restart, want %d", round, got, batches*per)
		}
		// A retry of an answered batch is a duplicate.
		code, body = adminHTTP(t, admin, "POST", "/v1/events", "", json200, `{"events": [{"id": "k0-0", "kind": "open", "recipient": "ann@example.test"}]}`)
		if code != 200 || !strings.Contains(body, `"duplicates":1`) {
			t.Errorf("round %d: retry: %d %s", round, code, body)
		}
		r.kill()
	}
}
