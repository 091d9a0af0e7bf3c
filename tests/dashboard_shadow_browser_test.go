package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestShadowForecastInChromium runs the real binary in shadow mode, sends
// one person more offers than enforce mode would let through in a day, and
// reads the overview in headless Chromium: everything was sent, and beside
// it stands what enforce would have released, suppressed or still held —
// the numbers /v1/stats gives. Then the relay is switched to enforce mode
// (SIGHUP) and a second person gets the same offers: the overview sets what
// enforce did beside the forecast. A screenshot of each overview is saved.
func TestShadowForecastInChromium(t *testing.T) {
	chromium := requireProgram(t, "chromium")
	up := startRecordingUpstream(t)
	admin, token := freeAddr(t), "browser-admin-token"
	r := startRelay(t, relayOptions{
		Upstream: up.Addr,
		Args:     []string{"--admin", admin, "--clock", "virtual:2026-11-23T10:00:00Z"},
		Config: fmt.Sprintf(`admin:
  token: %s
delivery:
  tls: none
governor:
  mode: shadow
`, token)})
	if err := waitListening(admin, 20*time.Second, r.exited); err != nil {
		t.Fatal(err)
	}
	get := func(path string, into any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+admin+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, into) != nil {
			t.Fatalf("GET %s: %s %s", path, resp.Status, b)
		}
	}
	const n = 8
	offers := func(to string) {
		t.Helper()
		for i := range n {
			c, err := dialSMTP(r.Addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Mail("news@shop.test", nil); err != nil {
				t.Fatal(err)
			}
			if err := c.Rcpt(to, nil); err != nil {
				t.Fatal(err)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(w, "From: Shop News <news@shop.test>\r\nTo: %s\r\nSubject: Offer %d\r\nMessage-ID: <o%d.%s>\r\n"+
				"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nX-Kadenz-Class: marketing\r\nX-Kadenz-Campaign: offer-%d\r\n\r\nNew in the shop.\r\n",
				to, i, i, strings.ReplaceAll(to, "@", ".at."), i)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			c.Quit()
		}
		advanceClock(t, admin, token, "10m")
	}
	offers("ann@example.test")
	var stats struct {
		ByState  map[string]int `json:"by_state"`
		Forecast *struct {
			Decided       int `json:"decided"`
			WouldRelease  int `json:"would_release"`
			WouldSuppress int `json:"would_suppress"`
			WouldReview   int `json:"would_review"`
			Pending       int `json:"pending"`
		} `json:"shadow_forecast"`
	}
	if !waitFor(20*time.Second, func() bool {
		get("/v1/stats?since=2026-11-23T00:00:00Z&until=2026-11-24T00:00:00Z", &stats)
		return stats.ByState["delivered"] == n
	}) {
		t.Fatalf("shadow mode did not deliver all %d offers: %v", n, stats.ByState)
	}
	f := stats.Forecast
	if f == nil || f.Decided != n || f.WouldRelease == 0 || f.WouldRelease == n {
		t.Fatalf("forecast %+v: want %d decided, some but not all released", f, n)
	}

	ctx := headlessBrowser(t, chromium)
	base := "http://" + admin
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("shadow-forecast"))); err != nil {
		t.Fatalf("log in and open the overview: %v", err)
	}
	for sel, want := range map[string]int{
		"#shadow-sent": f.Decided, "#shadow-would-release": f.WouldRelease, "#shadow-would-suppress": f.WouldSuppress,
		"#shadow-would-review": f.WouldReview, "#shadow-pending": f.Pending, "#gov-released": n,
	} {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		if got := strings.TrimSpace(s); got != strconv.Itoa(want) {
			t.Errorf("overview: %s shows %q, the API says %d", sel, got, want)
		}
	}
	dir := screenshotDir(t)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	file := filepath.Join(dir, "overview-shadow.png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the overview in shadow mode: %s (%d bytes)", file, len(png))

	// Enforce mode from now on: the same offers to bob.
	var loaded struct {
		LoadedAt time.Time `json:"loaded_at"`
		OK       bool      `json:"ok"`
	}
	get("/v1/config/status", &loaded)
	before := loaded.LoadedAt
	configFile := r.cmd.Args[slices.Index(r.cmd.Args, "--config")+1]
	old, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configFile, []byte(strings.Replace(string(old), "mode: shadow", "mode: enforce", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { get("/v1/config/status", &loaded); return loaded.LoadedAt.After(before) }) || !loaded.OK {
		t.Fatalf("the switch to enforce mode was not loaded: %+v", loaded)
	}
	// The next day: the overview's period changes with it, so its
	// background count (kept five minutes for one period) is made afresh.
	advanceClock(t, admin, token, "24h")
	offers("bob@example.test")
	var clock struct {
		CaughtUp bool `json:"caught_up"`
	}
	if !waitFor(20*time.Second, func() bool { get("/v1/clock", &clock); return clock.CaughtUp }) {
		t.Fatal("the relay did not catch up with its clock")
	}
	var all struct {
		ByState map[string]int `json:"by_state"`
	}
	get("/v1/stats?since=2026-11-23T00:00:00Z&until=2026-11-25T00:00:00Z", &all)
	// Ann's n were all sent; what else left the hold is bob's.
	released := all.ByState["queued"] + all.ByState["delivering"] + all.ByState["deferred"] + all.ByState["delivered"] +
		all.ByState["failed"] - n
	if released == n {
		t.Fatalf("enforce released all of bob's offers (%v): the comparison shows nothing", all.ByState)
	}
	// The enforce column is counted in the background after a view.
	if !waitFor(20*time.Second, func() bool {
		if chromedp.Do(ctx, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("shadow-forecast"))) != nil {
			return false
		}
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("enforce-decided") !== null`))
		return err == nil && shown
	}) {
		t.Fatal("the overview does not show what enforce did")
	}
	for sel, want := range map[string]int{
		"#shadow-sent": f.Decided, "#shadow-would-suppress": f.WouldSuppress,
		"#enforce-decided": n, "#enforce-released": released, "#enforce-suppressed": all.ByState["suppressed"],
		"#enforce-pending": all.ByState["held"], "#enforce-review": all.ByState["review"],
	} {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		if got := strings.TrimSpace(s); got != strconv.Itoa(want) {
			t.Errorf("overview after the switch: %s shows %q, want %d", sel, got, want)
		}
	}
	if png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	file = filepath.Join(dir, "overview-shadow-enforce.png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the overview with forecast and enforce: %s (%d bytes)", file, len(png))
}
