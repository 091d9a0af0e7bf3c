package tests

import (
	"context"
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

// TestDashboardInChromium drives the real binary's dashboard with headless
// Chromium, as an operator would: log in with the admin token, read the
// overview, the campaign pages, a recipient and an envelope, compare the
// numbers with the JSON API, release a message from review with a click,
// and save a screenshot of the overview.
func TestDashboardInChromium(t *testing.T) {
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
  mode: enforce
`, token)})
	if err := waitListening(admin, 20*time.Second, r.exited); err != nil {
		t.Fatal(err)
	}
	api := func(method, path, body string, into any) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+admin+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/json") // the admin API takes no other body
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %s %s", method, path, resp.Status, b)
		}
		if into != nil {
			if err := json.Unmarshal(b, into); err != nil {
				t.Fatalf("%s %s: %v in %s", method, path, err, b)
			}
		}
	}
	send := func(id, subject string, to ...string) {
		t.Helper()
		c, err := dialSMTP(r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Mail("news@shop.test", nil); err != nil {
			t.Fatal(err)
		}
		for _, rcpt := range to {
			if err := c.Rcpt(rcpt, nil); err != nil {
				t.Fatal(err)
			}
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "From: Shop News <news@shop.test>\r\nTo: customers@shop.test\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"+
			"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nX-Kadenz-Class: marketing\r\nX-Kadenz-Campaign: autumn\r\n\r\nNew in the shop.\r\n", subject, id)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		c.Quit()
	}

	// cat unsubscribed; the first autumn mail goes to ann, bob and cat:
	// two released and delivered, one suppressed.
	api(http.MethodPost, "/v1/events", `{"events":[{"kind":"unsubscribe","recipient":"cat@example.test"}]}`, nil)
	send("a1.browser@shop.test", "Autumn colours", "ann@example.test", "bob@example.test", "cat@example.test")
	advanceClock(t, admin, token, "6m")
	delivered := func() map[string]bool {
		var list []struct {
			ID string `json:"id"`
		}
		api(http.MethodGet, "/v1/queue?state=delivered&limit=100", "", &list)
		ids := map[string]bool{}
		for _, e := range list {
			ids[e.ID] = true
		}
		return ids
	}
	if !waitFor(20*time.Second, func() bool { return len(delivered()) == 2 }) {
		t.Fatalf("the first autumn mail was not delivered to ann and bob")
	}
	// The second one is held for review by an operator before it is decided.
	send("a2.browser@shop.test", "Autumn sale", "ann@example.test", "bob@example.test")
	var held struct {
		Changed []string `json:"changed"`
	}
	api(http.MethodPost, "/v1/queue/hold", `{"campaign":"autumn"}`, &held)
	if len(held.Changed) != 2 {
		t.Fatalf("hold changed %v", held.Changed)
	}

	// What the API says, to compare the pages with.
	var stats struct {
		Envelopes int            `json:"envelopes"`
		ByState   map[string]int `json:"by_state"`
	}
	api(http.MethodGet, "/v1/stats?since=2026-11-23T00:00:00Z&until=2026-11-24T00:00:00Z", "", &stats) // the overview's day
	var report struct {
		Messages     int            `json:"messages"`
		Envelopes    int            `json:"envelopes"`
		SuppressedBy map[string]int `json:"suppressed_by"`
		Governed     struct {
			Suppressed, Held, Delivered int
		} `json:"governed"`
	}
	api(http.MethodGet, "/v1/campaigns/autumn/report", "", &report)
	var summary map[string]int
	api(http.MethodGet, "/v1/queue/summary", "", &summary)
	var profile struct {
		Total int `json:"total"`
	}
	api(http.MethodGet, "/v1/profiles/ann@example.test", "", &profile)
	var review []struct {
		ID string `json:"id"`
		To string `json:"to"`
	}
	api(http.MethodGet, "/v1/queue?state=review", "", &review)
	if stats.Envelopes != 5 || stats.ByState["suppressed"] != 1 || summary["review"] != 2 || len(review) != 2 ||
		report.Governed.Delivered != 2 || len(report.SuppressedBy) != 1 {
		t.Fatalf("not the data the test set up: stats %+v, summary %v, review %v, report %+v", stats, summary, review, report)
	}
	annReview := review[0].ID
	if review[1].To == "ann@example.test" {
		annReview = review[1].ID
	}

	// The browser.
	ctx := headlessBrowser(t, chromium)
	base := "http://" + admin
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	dir := screenshotDir(t)
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(page string, want map[string]int) {
		t.Helper()
		for sel, n := range want {
			if got := text(sel); got != strconv.Itoa(n) {
				t.Errorf("%s: %s shows %q, the API says %d", page, sel, got, n)
			}
		}
	}

	// Logging in: the token is asked for once, then the page asked for opens.
	run("open the dashboard", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	if url, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.Contains(url, "/ui/login") {
		t.Fatalf("without a session the dashboard opened %s (%v), not the login form", url, err)
	}
	run("log in with a wrong token", chromedp.SendKeys(chromedp.ID("token"), "wrong"), chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("error")))
	run("log in", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("total-submitted")))
	// The holdout comparison's recipient counts read every profile, so the
	// overview counts them in the background and shows dashes until the
	// first count is done: look again until it is (bounded by ctx).
	for {
		counted, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("recipients-at") !== null`))
		if err != nil {
			t.Fatalf("waiting for the recipient counts: %v", err)
		}
		if counted {
			break
		}
		run("look at the overview again", chromedp.Sleep(200*time.Millisecond), chromedp.Reload(),
			chromedp.WaitVisible(chromedp.ID("total-submitted")))
	}
	// The exact numbers behind the charts are in tables folded under them.
	run("unfold the tables", chromedp.Click(chromedp.CSS("details:has(#reasons) summary")),
		chromedp.Click(chromedp.CSS("details:has(#queue) summary")), chromedp.WaitVisible(chromedp.ID("queue-review")))

	reason := "" // the one reason code of cat's suppression
	for r := range report.SuppressedBy {
		reason = r
	}
	expect("overview", map[string]int{
		"#total-submitted":  stats.Envelopes,
		"#total-suppressed": stats.ByState["suppressed"],
		"#total-released":   stats.ByState["delivered"] + stats.ByState["queued"] + stats.ByState["delivering"] + stats.ByState["deferred"],
		"#total-failed":     stats.ByState["failed"],
		"#queue-review":     summary["review"],
		"#queue-delivered":  summary["delivered"],
		"#card-review":      summary["review"],
		"#reason-" + reason: report.SuppressedBy[reason],
		"#gov-unsubscribed": 1,
	})

	run("campaigns", chromedp.Navigate(base+"/ui/campaigns"), chromedp.WaitVisible(chromedp.ID("c-autumn")))
	expect("campaigns", map[string]int{"#c-autumn .messages": report.Messages, "#c-autumn .envelopes": report.Envelopes,
		"#c-autumn .suppressed": report.Governed.Suppressed, "#c-autumn .held": report.Governed.Held})
	run("campaign drill-down", chromedp.Click(chromedp.CSS("#c-autumn a")), chromedp.WaitVisible(chromedp.ID("envelope-list")))
	shot("campaign")
	expect("campaign", map[string]int{"#envelopes": report.Envelopes, "#gov-suppressed": report.Governed.Suppressed,
		"#gov-held": report.Governed.Held, "#gov-delivered": report.Governed.Delivered, "#reason-" + reason: report.SuppressedBy[reason]})

	run("recipient search", chromedp.SendKeys(chromedp.CSS("header input[name=address]"), "ann@example.test"),
		chromedp.Submit(chromedp.CSS("header form.search")), chromedp.WaitVisible(chromedp.ID("decisions")))
	shot("recipient")
	expect("recipient", map[string]int{"#total": profile.Total})

	run("envelope page", chromedp.Navigate(base+"/ui/envelopes/"+annReview), chromedp.WaitVisible(chromedp.ID("state")))
	shot("envelope")
	if state, sentence := text("#state"), text("p.sentence"); state != "review" || !strings.Contains(sentence, "review by an operator") {
		t.Errorf("envelope page: state %q, explanation %q", state, sentence)
	}

	// Release ann's mail from review with a click.
	run("review page", chromedp.Navigate(base+"/ui/review"), chromedp.WaitVisible(chromedp.ID("review")))
	shot("review")
	expect("review", map[string]int{"#review-count": 2})
	run("release", chromedp.Click(chromedp.CSS("#r-"+annReview+" button.release")), chromedp.WaitVisible(chromedp.ID("done")))
	expect("review after release", map[string]int{"#review-count": 1})
	if !waitFor(20*time.Second, func() bool { return delivered()[annReview] }) {
		t.Fatalf("after the click the API does not list %s as delivered", annReview)
	}
	if _, ok := up.message("a2.browser@shop.test"); !ok {
		t.Errorf("the released mail is delivered by the API's account but the smarthost has no copy")
	}

	// The screenshot, of the overview after the release.
	run("overview again", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("total-submitted")))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	file := filepath.Join(dir, "overview.png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the overview: %s (%d bytes; the other pages next to it)", file, len(png))
}

// headlessBrowser starts chromium headless for one test, closed when the
// test ends; every step under the returned context has 90 s in all.
func headlessBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // tests run as root
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// screenshotDir is where the browser tests' screenshots go: a directory
// that outlives the test, to be looked at ($KADENZ_SCREENSHOT_DIR if set).
func screenshotDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("KADENZ_SCREENSHOT_DIR"); dir != "" {
		return dir
	}
	dir, err := os.MkdirTemp("", "kadenz-dashboard-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
