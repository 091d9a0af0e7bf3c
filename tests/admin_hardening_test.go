package tests

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// adminHTTP sends one request to the real binary's admin listener with the
// given Host (empty: the listener's address) and headers.
func adminHTTP(t *testing.T, admin, method, path, host string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// cli runs a kadenz subcommand against the admin listener (no token).
func cli(t *testing.T, admin string, args ...string) string {
	t.Helper()
	return string(kadenzCLI(t, admin, "", args...))
}

// TestAdminRefusesWhatABrowserIsTrickedInto drives the default setup (no
// token, loopback admin listener) with the requests a hostile web page
// can make the operator's browser send, then checks that the kadenz CLI,
// which sends JSON with a loopback Host, still works.
func TestAdminRefusesWhatABrowserIsTrickedInto(t *testing.T) {
	admin := freeAddr(t)
	r := startRelay(t, relayOptions{Args: []string{"--admin", admin}})
	if err := waitListening(admin, 20*time.Second, r.exited); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(admin, ":")
	unsub := `{"kind": "unsubscribe", "recipient": "victim@example.test"}`
	for _, tc := range []struct {
		name, method, path, host string
		header                   map[string]string
		body                     string
	}{
		{"form-like text/plain POST", "POST", "/v1/events", "", map[string]string{"Content-Type": "text/plain"}, unsub},
		{"Origin of another site", "POST", "/v1/events", "", map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"}, unsub},
		{"Sec-Fetch-Site cross-site", "POST", "/v1/forget", "", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
			`{"address": "victim@example.test"}`},
		{"Sec-Fetch-Site same-site", "POST", "/v1/suppressions", "", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"},
			`{"address": "victim@example.test"}`},
		{"text/plain drop", "POST", "/v1/queue/drop", "", map[string]string{"Content-Type": "text/plain"}, `{"campaign": "autumn"}`},
		{"DNS rebinding read", "GET", "/v1/stats", "rebind.evil.example:" + port, nil, ""},
		{"DNS rebinding profile", "GET", "/v1/profiles/victim@example.test", "rebind.evil.example:" + port, nil, ""},
		{"DNS rebinding dashboard", "GET", "/ui/", "rebind.evil.example:" + port, nil, ""},
	} {
		if code, body := adminHTTP(t, admin, tc.method, tc.path, tc.host, tc.header, tc.body); code != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", tc.name, code, body)
		}
	}
	// Nothing of it was applied.
	if out := cli(t, admin, "suppress", "--json", "ls"); strings.Contains(out, "victim") {
		t.Errorf("a refused request changed the suppression list: %s", out)
	}
	if code, body := adminHTTP(t, admin, "GET", "/v1/stats", "localhost:"+port, nil, ""); code != 200 {
		t.Errorf("stats with Host localhost: %d %s", code, body)
	}
	if code, body := adminHTTP(t, admin, "POST", "/v1/events", "", map[string]string{"Content-Type": "application/json"}, unsub); code != 200 {
		t.Errorf("same-origin JSON without Origin (curl): %d %s", code, body)
	}
	cli(t, admin, "suppress", "--reason", "asked", "add", "other@example.test")
	if out := cli(t, admin, "suppress", "ls"); !strings.Contains(out, "other@example.test") || !strings.Contains(out, "victim@example.test") {
		t.Errorf("suppression list after CLI and curl-like requests:\n%s", out)
	}
}

// scanDir counts needle (any case) in every file under dir, as raw bytes.
func scanDir(t *testing.T, dir, needle string) map[string]int {
	t.Helper()
	hits := map[string]int{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if n := bytes.Count(bytes.ToLower(b), []byte(strings.ToLower(needle))); n > 0 {
			hits[strings.TrimPrefix(path, dir)] = n
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestForgetLeavesNoByteOnDisk gives the real binary a recipient in every
// place an address is kept — a delivered receipt in the outbox whose
// Message-ID contains it, held marketing mail, an event ID, an operator's
// suppression quoting it, a profile — erases them with `kadenz forget`,
// and reads every file of the data directory byte by byte, while the
// daemon runs and after it stopped.
func TestForgetLeavesNoByteOnDisk(t *testing.T) {
	admin := freeAddr(t)
	r := startRelay(t, relayOptions{Args: []string{"--admin", admin}})
	if err := waitListening(admin, 20*time.Second, r.exited); err != nil {
		t.Fatal(err)
	}
	const typed = "Dora.Smith@Example.TEST"
	receipt := "From: shop@shop.test\r\nTo: " + typed + "\r\nSubject: Your receipt\r\n" +
		"Message-ID: <order-77." + typed + ">\r\n\r\nThank you.\r\n"
	newsletter := "From: news@shop.test\r\nTo: undisclosed-recipients:;\r\nSubject: Winter boots\r\n" +
		"List-Unsubscribe: <mailto:u@shop.test>\r\nMessage-ID: <boots-1@shop.test>\r\n\r\nNew boots.\r\n"
	if err := smtp.SendMail(r.Addr, nil, "shop@shop.test", []string{typed}, []byte(receipt)); err != nil {
		t.Fatal(err)
	}
	if err := smtp.SendMail(r.Addr, nil, "news@shop.test", []string{"dora.smith@example.test", "eve@example.test"}, []byte(newsletter)); err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool { return len(r.outbox()) == 1 }) {
		t.Fatalf("the receipt never reached the outbox: %v", r.outbox())
	}
	cli(t, admin, "suppress", "--reason", "phoned: "+typed+" wants no mail", "add", typed)
	events := `{"events": [{"id": "open/dora.smith@example.test/1", "kind": "open", "recipient": "dora.smith@example.test"},
		{"id": "u-2", "kind": "unsubscribe", "recipient": "` + typed + `"}]}`
	if code, body := adminHTTP(t, admin, "POST", "/v1/events", "", map[string]string{"Content-Type": "application/json"}, events); code != 200 {
		t.Fatalf("events: %d %s", code, body)
	}
	if hits := scanDir(t, r.Data, typed); len(hits) == 0 {
		t.Fatal("before forget the scan finds nothing: it would prove nothing after")
	}

	out := cli(t, admin, "forget", "--json", typed)
	var res struct {
		OutboxFiles   int    `json:"outbox_files"`
		ScrubbedPages int    `json:"scrubbed_pages"`
		Incomplete    string `json:"incomplete"`
		Erased        struct {
			Suppressions int  `json:"suppressions_pseudonymised"`
			EventIDs     int  `json:"event_ids_pseudonymised"`
			Tombstone    bool `json:"tombstone"`
		} `json:"erased"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("forget --json: %v in %s", err, out)
	}
	if res.Incomplete != "" || res.OutboxFiles != 1 || res.ScrubbedPages == 0 || res.Erased.Suppressions != 1 || res.Erased.EventIDs != 2 || !res.Erased.Tombstone {
		t.Errorf("forget: %s", out)
	}
	forms := []string{typed, "dora.smith@example.test", "order-77.dora.smith", "open/dora.smith"}
	for _, f := range forms {
		if hits := scanDir(t, r.Data, f); len(hits) > 0 {
			t.Errorf("after forget, with kadenz running, %q is still in %v", f, hits)
		}
	}
	if hits := scanDir(t, r.Data, "eve@example.test"); len(hits) == 0 {
		t.Error("eve's held copy was erased too")
	}
	// Still suppressed, under a hash.
	if ls := cli(t, admin, "suppress", "ls"); !strings.Contains(ls, "(erased, hash ") || strings.Contains(strings.ToLower(ls), "dora") {
		t.Errorf("suppression list after forget:\n%s", ls)
	}
	r.stop(20 * time.Second)
	for _, f := range forms {
		if hits := scanDir(t, r.Data, f); len(hits) > 0 {
			t.Errorf("after forget and a clean stop, %q is still in %v", f, hits)
		}
	}
}
