package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestShadowForecastInChromium runs the real binary in shadow mode, sends
// one person more offers than enforce mode would let through in a day, and
// reads the overview in headless Chromium: everything was sent, and beside
// it stands what enforce would have released, suppressed or still held —
// the numbers /v1/stats gives. A screenshot of the overview is saved.
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
	for i := range n {
		c, err := dialSMTP(r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("news@shop.test", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("ann@example.test", nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "From: Shop News <news@shop.test>\r\nTo: ann@example.test\r\nSubject: Offer %d\r\nMessage-ID: <o%d.shadow@shop.test>\r\n"+
			"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nX-Kadenz-Class: marketing\r\nX-Kadenz-Campaign: offer-%d\r\n\r\nNew in the shop.\r\n", i, i, i)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		c.Quit()
	}
	advanceClock(t, admin, token, "10m")
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
}
