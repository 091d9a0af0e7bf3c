package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPReload sends real SIGHUPs to a running kadenz: a bad file is
// refused with its line numbers and the old configuration stays; a good
// one takes effect; both outcomes show on the admin API and in /metrics.
func TestSIGHUPReload(t *testing.T) {
	admin := freeAddr(t)
	head := fmt.Sprintf("admin:\n  listen: %s\n  token: tok\n", admin)
	r := startRelay(t, relayOptions{Config: head + "governor:\n  mode: enforce\n"})
	if err := waitListening(admin, 10*time.Second, r.exited); err != nil {
		t.Fatal(err)
	}
	file := r.cmd.Args[slices.Index(r.cmd.Args, "--config")+1]

	get := func(path string) string {
		req, _ := http.NewRequest(http.MethodGet, "http://"+admin+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s", path, resp.Status, b)
		}
		return string(b)
	}
	type status struct {
		LoadedAt    time.Time `json:"loaded_at"`
		LastAttempt time.Time `json:"last_attempt"`
		OK          bool      `json:"ok"`
		Errors      []string  `json:"errors"`
	}
	// reload rewrites the file, sends SIGHUP and waits for the attempt.
	reload := func(content string) status {
		t.Helper()
		var before status
		json.Unmarshal([]byte(get("/v1/config/status")), &before)
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		var st status
		if !waitFor(10*time.Second, func() bool {
			st = status{}
			json.Unmarshal([]byte(get("/v1/config/status")), &st)
			return st.LastAttempt.After(before.LastAttempt)
		}) {
			t.Fatalf("no reload attempt recorded after SIGHUP; log:\n%s", r.log.tail(4096))
		}
		return st
	}

	bad := reload(head + "governor:\n  mode: loud\n  strictness: 0\n")
	if bad.OK || len(bad.Errors) != 2 || !strings.HasPrefix(bad.Errors[0], file+":5: governor.mode") ||
		!strings.HasPrefix(bad.Errors[1], file+":6: governor.strictness") {
		t.Errorf("status after a bad file: %+v", bad)
	}
	if m := get("/metrics"); !strings.Contains(m, `kadenz_config_reload_total{result="error"} 1`) {
		t.Errorf("/metrics does not count the failed reload")
	}
	if !strings.Contains(string(r.log.bytes()), "config reload refused") {
		t.Errorf("the refused reload was not logged")
	}

	good := reload(head + "governor:\n  mode: shadow\n")
	if !good.OK || len(good.Errors) != 0 || !good.LoadedAt.Equal(good.LastAttempt) {
		t.Errorf("status after a good file: %+v", good)
	}
	if m := get("/metrics"); !strings.Contains(m, `kadenz_config_reload_total{result="ok"} 1`) {
		t.Errorf("/metrics does not count the reload")
	}
	r.stop(20 * time.Second)
}
