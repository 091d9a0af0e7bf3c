package governor

import (
	"context"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/governor/engine"
	"kadenz/store"
)

// uiClient is a browser stand-in: a cookie jar, no redirects followed
// (so a test sees each 303), and the admin listener's address.
type uiClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newUIClient(t *testing.T, r *Relay) *uiClient {
	jar, _ := cookiejar.New(nil)
	return &uiClient{t: t, base: "http://" + r.AdminAddr().String(), c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request; form, if not nil, is posted url-encoded; header
// adds headers. It returns the status, the Location and the body.
func (u *uiClient) do(method, path string, form url.Values, header map[string]string) (int, string, string) {
	u.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u.base+path, body)
	if err != nil {
		u.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := u.c.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// page GETs a page and fails unless it is 200.
func (u *uiClient) page(path string) string {
	u.t.Helper()
	code, loc, body := u.do(http.MethodGet, path, nil, nil)
	if code != http.StatusOK {
		u.t.Fatalf("GET %s: %d (location %q) %s", path, code, loc, body)
	}
	return body
}

// overview loads the overview until its recipient counts, which are
// counted in the background after the first view, are there.
func (u *uiClient) overview() string {
	u.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		html := u.page("/ui/")
		if !strings.Contains(html, `id="recipients-counting"`) {
			return html
		}
		if time.Now().After(deadline) {
			u.t.Fatal("the overview's recipients were not counted within 10 s")
		}
	}
}

// byID returns the text of the element with the given id.
func byID(t *testing.T, html, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no element with id %q in the page", id)
	}
	return strings.TrimSpace(m[1])
}

func intByID(t *testing.T, html, id string) int {
	t.Helper()
	n, err := strconv.Atoi(byID(t, html, id))
	if err != nil {
		t.Fatalf("element %q: %v", id, err)
	}
	return n
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// checkNumbers compares numbers on a page with what the API says.
func checkNumbers(t *testing.T, page, html string, want map[string]int) {
	t.Helper()
	for id, n := range want {
		if got := intByID(t, html, id); got != n {
			t.Errorf("%s: %s shows %d, the API says %d", page, id, got, n)
		}
	}
}

// startDashboardData builds on startReviewed (ann's spring-sale mail in
// review, two unsubscribed recipients suppressed) with a holdout recipient
// who opened the mail, so every part of the overview has something to show.
func startDashboardData(t *testing.T, token string) (*Relay, *upstream, *clock, store.Envelope, string) {
	t.Helper()
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := reviewConfig(t, up.addr)
	cfg.Admin.Token = token
	// A salt that puts ann in the governed group and some hal in the holdout.
	cfg.Governor.Holdout.Share = 0.5
	hal := ""
	for i := 0; hal == ""; i++ {
		cfg.Governor.Holdout.Salt = fmt.Sprintf("s%d", i)
		if engine.InHoldout("ann@example.test", cfg.Governor.Holdout) || engine.InHoldout("gone1@example.test", cfg.Governor.Holdout) ||
			engine.InHoldout("gone2@example.test", cfg.Governor.Holdout) {
			continue
		}
		for j := range 20 {
			if a := fmt.Sprintf("hal%d@example.test", j); engine.InHoldout(a, cfg.Governor.Holdout) {
				hal = a
				break
			}
		}
	}
	r := startRelayAt(t, cfg, c)
	unsubscribe(t, r.DB(), "gone1@example.test")
	unsubscribe(t, r.DB(), "gone2@example.test")
	msg := marketing("Spring sale", "X-Kadenz-Campaign: spring-sale\r\n")
	if err := submit(t, dial(t, r), "news@shop.test", []string{"gone1@example.test", "gone2@example.test", "ann@example.test", hal}, msg); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 5*time.Minute)
	var ann store.Envelope
	waitFor(t, "ann's mail in review", func() bool {
		ann = envelopeOf(t, r.DB(), "ann@example.test", 0)
		return ann.State == store.StateReview
	})
	waitFor(t, "the holdout copy delivered", func() bool { return len(up.messages()) == 1 })
	if code, body := adminCall(t, r, http.MethodPost, "/v1/events", token,
		map[string]any{"events": []map[string]string{{"kind": "open", "recipient": hal}}}); code != http.StatusOK {
		t.Fatalf("open event: %d %s", code, body)
	}
	return r, up, c, ann, hal
}

func TestDashboardPagesShowTheAPINumbers(t *testing.T) {
	r, up, c, ann, hal := startDashboardData(t, "")
	u := newUIClient(t, r)

	// Overview against /v1/stats for today, the campaign report and the
	// queue summary.
	now := c.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	var st api.Stats
	adminJSON(t, r, http.MethodGet, "/v1/stats?since="+today.Format(time.RFC3339)+"&until="+today.AddDate(0, 0, 1).Format(time.RFC3339), nil, &st)
	var rep api.CampaignReport
	adminJSON(t, r, http.MethodGet, "/v1/campaigns/spring-sale/report", nil, &rep)
	var summary map[string]int
	adminJSON(t, r, http.MethodGet, "/v1/queue/summary", nil, &summary)
	releasedToday := 0
	for _, s := range []store.State{store.StateQueued, store.StateDelivering, store.StateDeferred, store.StateDelivered} {
		releasedToday += st.ByState[string(s)]
	}
	html := u.overview()
	checkNumbers(t, "overview", html, map[string]int{
		"total-submitted":     st.Envelopes,
		"total-released":      releasedToday,
		"total-failed":        st.ByState["failed"],
		"total-suppressed":    st.ByState["suppressed"],
		"reason-unsubscribed": rep.SuppressedBy["unsubscribed"],
		"queue-review":        summary["review"],
		"queue-delivered":     summary["delivered"],
		"card-review":         summary["review"],
		"gov-envelopes":       rep.Governed.Envelopes,
		"hold-envelopes":      rep.Holdout.Envelopes,
		"gov-suppressed":      rep.Governed.Suppressed,
		"hold-delivered":      rep.Holdout.Delivered,
		"gov-recipients":      3,
		"hold-recipients":     1,
		"hold-engaged":        1, // hal opened
		"gov-engaged":         0,
		"gov-unsubscribed":    2,
	})
	if st.Envelopes != 4 || summary["review"] != 1 || rep.Holdout.Delivered != 1 || rep.SuppressedBy["unsubscribed"] != 2 {
		t.Errorf("the data is not what the test set up: stats %+v, summary %v, report %+v", st, summary, rep)
	}
	if !strings.Contains(html, `<svg class="chart"`) {
		t.Errorf("the overview has no chart")
	}

	// Campaigns and the drill-down against the report.
	html = u.page("/ui/campaigns")
	row := html[strings.Index(html, `id="c-spring-sale"`):]
	if rep.Subject == "" || !strings.Contains(row, `class="subject">`+template.HTMLEscapeString(rep.Subject)+`<`) {
		t.Errorf("campaign list: the latest subject %q is not in the row", rep.Subject)
	}
	for cls, n := range map[string]int{"messages": rep.Messages, "envelopes": rep.Envelopes, "suppressed": rep.Governed.Suppressed,
		"held": rep.Governed.Held, "holdout": rep.Holdout.Envelopes} {
		if got := regexp.MustCompile(`class="` + cls + `">(\d+)<`).FindStringSubmatch(row); got == nil || got[1] != strconv.Itoa(n) {
			t.Errorf("campaigns: %s shows %v, the report says %d", cls, got, n)
		}
	}
	html = u.page("/ui/campaigns/spring-sale")
	checkNumbers(t, "campaign", html, map[string]int{
		"messages": rep.Messages, "envelopes": rep.Envelopes, "gov-envelopes": rep.Governed.Envelopes,
		"gov-suppressed": rep.Governed.Suppressed, "gov-held": rep.Governed.Held, "hold-delivered": rep.Holdout.Delivered,
		"reason-unsubscribed": rep.SuppressedBy["unsubscribed"],
	})
	if !strings.Contains(html, `href="/ui/envelopes/`+ann.ID+`"`) {
		t.Errorf("the campaign page does not link to ann's envelope")
	}
	if code, _, _ := u.do(http.MethodGet, "/ui/campaigns/winter", nil, nil); code != http.StatusNotFound {
		t.Errorf("unknown campaign: %d", code)
	}

	// Recipient and envelope pages against the profile view and explain.
	var pv api.ProfileView
	adminJSON(t, r, http.MethodGet, "/v1/profiles/ann@example.test", nil, &pv)
	html = u.page("/ui/recipients/ann@example.test")
	checkNumbers(t, "recipient", html, map[string]int{"total": pv.Total})
	if !strings.Contains(html, "2 of 2 decisions suppressed") {
		t.Errorf("the recipient page does not explain the review hold")
	}
	if code, loc, _ := u.do(http.MethodGet, "/ui/recipients?address=ann%40example.test", nil, nil); code != http.StatusSeeOther || loc != "/ui/recipients/ann@example.test" {
		t.Errorf("search: %d %q", code, loc)
	}
	if code, _, _ := u.do(http.MethodGet, "/ui/recipients/not-an-address", nil, nil); code != http.StatusBadRequest {
		t.Errorf("recipient page for a non-address: %d", code)
	}
	html = u.page("/ui/recipients/" + hal)
	if !strings.Contains(html, `id="opens">1.00<`) {
		t.Errorf("hal's page does not show the open")
	}
	html = u.page("/ui/envelopes/" + ann.ID)
	if byID(t, html, "state") != "review" || !strings.Contains(html, "2 of 2 decisions suppressed") {
		t.Errorf("envelope page: state %q", byID(t, html, "state"))
	}
	html = u.page("/ui/envelopes/" + envelopeOf(t, r.DB(), "gone1@example.test", 0).ID)
	if !strings.Contains(html, "unsubscribed") || byID(t, html, "state") != "suppressed" {
		t.Errorf("the suppressed envelope's page does not say why")
	}

	// The review queue, and a release through its form.
	html = u.page("/ui/review")
	if intByID(t, html, "review-count") != 1 || !strings.Contains(html, `id="r-`+ann.ID+`"`) {
		t.Fatalf("review page does not list ann's envelope")
	}
	csrf := csrfField.FindStringSubmatch(html)[1]
	code, loc, body := u.do(http.MethodPost, "/ui/review/release", url.Values{"csrf": {csrf}, "id": {ann.ID}},
		map[string]string{"Origin": u.base, "Sec-Fetch-Site": "same-origin"})
	if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/review?done=release") {
		t.Fatalf("release: %d %q %s", code, loc, body)
	}
	waitFor(t, "delivery after the release", func() bool { return len(up.messages()) == 2 })
	if html = u.page(loc); !strings.Contains(html, "Released "+ann.ID) || intByID(t, html, "review-count") != 0 {
		t.Errorf("the review page after the release does not say so")
	}
	// Released twice: 409, shown as a page.
	if code, _, _ := u.do(http.MethodPost, "/ui/review/release", url.Values{"csrf": {csrf}, "id": {ann.ID}}, nil); code != http.StatusConflict {
		t.Errorf("second release: %d, want 409", code)
	}
}

func TestDashboardRefusesPostsWithoutCSRFToken(t *testing.T) {
	r, up, _, ann, _ := startDashboardData(t, "")
	u := newUIClient(t, r)
	csrf := csrfField.FindStringSubmatch(u.page("/ui/review"))[1]
	stranger := newUIClient(t, r) // no session at all
	other := newUIClient(t, r)    // a session of its own
	otherCSRF := csrfField.FindStringSubmatch(other.page("/ui/review"))[1]
	for _, tc := range []struct {
		name   string
		client *uiClient
		form   url.Values
		header map[string]string
	}{
		{"no session", stranger, url.Values{"csrf": {csrf}, "id": {ann.ID}}, nil},
		{"no token", u, url.Values{"id": {ann.ID}}, nil},
		{"wrong token", u, url.Values{"csrf": {csrf + "x"}, "id": {ann.ID}}, nil},
		{"another session's token", u, url.Values{"csrf": {otherCSRF}, "id": {ann.ID}}, nil},
		{"cross-site", u, url.Values{"csrf": {csrf}, "id": {ann.ID}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"other origin", u, url.Values{"csrf": {csrf}, "id": {ann.ID}}, map[string]string{"Origin": "http://evil.test"}},
	} {
		for _, op := range []string{"release", "drop"} {
			if code, _, body := tc.client.do(http.MethodPost, "/ui/review/"+op, tc.form, tc.header); code != http.StatusForbidden {
				t.Errorf("%s, %s: %d, want 403: %s", tc.name, op, code, body)
			}
		}
	}
	if e, _ := r.DB().Envelope(ann.ID); e.State != store.StateReview {
		t.Errorf("after refused posts ann's mail is %s", e.State)
	}
	waitCaughtUp(t, r)
	if n := len(up.messages()); n != 1 { // the holdout copy only
		t.Errorf("%d messages delivered", n)
	}
	// The real thing still works: the refusals were about the requests.
	if code, _, body := u.do(http.MethodPost, "/ui/review/drop", url.Values{"csrf": {csrf}, "id": {ann.ID}}, nil); code != http.StatusSeeOther {
		t.Fatalf("drop with the right token: %d %s", code, body)
	}
	if e, _ := r.DB().Envelope(ann.ID); e.State != store.StateSuppressed {
		t.Errorf("after the drop ann's mail is %s", e.State)
	}
}

func TestDashboardNeedsLoginWhenTokenSet(t *testing.T) {
	const token = "s3cret-token"
	r, _, _, ann, _ := startDashboardData(t, token)
	u := newUIClient(t, r)
	for _, p := range []string{"/ui/", "/ui/campaigns", "/ui/campaigns/spring-sale", "/ui/review", "/ui/recipients/ann@example.test", "/ui/envelopes/" + ann.ID} {
		code, loc, body := u.do(http.MethodGet, p, nil, nil)
		if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/login?next=") || strings.Contains(body, "ann@example.test") {
			t.Errorf("GET %s without login: %d %q", p, code, loc)
		}
	}
	// Not by a path that only looks like the dashboard's.
	if code, _, _ := u.do(http.MethodGet, "/ui/../v1/stats", nil, nil); code == http.StatusOK {
		t.Errorf("/ui/../v1/stats answered without a token")
	}
	if code, _, _ := u.do(http.MethodGet, "/v1/stats", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("/v1/stats without the bearer token: %d", code)
	}
	if code, _, _ := u.do(http.MethodPost, "/ui/review/release", url.Values{"id": {ann.ID}}, nil); code != http.StatusForbidden {
		t.Errorf("release without login: %d", code)
	}
	if code, _, body := u.do(http.MethodGet, "/ui/login?next=/ui/review", nil, nil); code != http.StatusOK || !strings.Contains(body, `name="token"`) {
		t.Fatalf("login form: %d", code)
	}
	if code, _, _ := u.do(http.MethodPost, "/ui/login", url.Values{"token": {"guess"}, "next": {"/ui/review"}}, nil); code != http.StatusUnauthorized {
		t.Errorf("login with a wrong token: %d", code)
	}
	if code, _, _ := u.do(http.MethodGet, "/ui/", nil, nil); code != http.StatusSeeOther {
		t.Errorf("a wrong token opened a session: %d", code)
	}
	code, loc, _ := u.do(http.MethodPost, "/ui/login", url.Values{"token": {token}, "next": {"/ui/review"}}, nil)
	if code != http.StatusSeeOther || loc != "/ui/review" {
		t.Fatalf("login: %d %q", code, loc)
	}
	html := u.page("/ui/review")
	if !strings.Contains(html, ann.ID) {
		t.Errorf("the review page after login does not list ann's mail")
	}
	// A redirect after login stays inside the dashboard.
	if code, loc, _ := newUIClient(t, r).do(http.MethodPost, "/ui/login", url.Values{"token": {token}, "next": {"//evil.test/"}}, nil); code != http.StatusSeeOther || loc != "/ui/" {
		t.Errorf("login with an outside next: %d %q", code, loc)
	}
	// A reload that changes the token ends the session.
	cfg := *r.config()
	cfg.Admin.Token = "another-token"
	r.reload.live.Store(&cfg)
	if code, _, _ := u.do(http.MethodGet, "/ui/review", nil, nil); code != http.StatusSeeOther {
		t.Errorf("the session outlived a token change: %d", code)
	}
	// Logging out ends it too.
	cfg2 := cfg
	r.reload.live.Store(&cfg2)
	u.do(http.MethodPost, "/ui/login", url.Values{"token": {"another-token"}}, nil)
	csrf := csrfField.FindStringSubmatch(u.page("/ui/"))[1]
	if code, _, _ := u.do(http.MethodPost, "/ui/logout", url.Values{"csrf": {csrf}}, nil); code != http.StatusSeeOther {
		t.Errorf("logout: %d", code)
	}
	if code, _, _ := u.do(http.MethodGet, "/ui/", nil, nil); code != http.StatusSeeOther {
		t.Errorf("still logged in after logout: %d", code)
	}
	_ = config.ClassMarketing
}

// BenchmarkDashboardPages renders the pages that walk every envelope, on
// a database of 10,000 marketing envelopes in 20 campaigns (go test
// ./governor/ -run XXX -bench DashboardPages -benchtime 20x).
func BenchmarkDashboardPages(b *testing.B) {
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	now := monday10
	r, err := New(Options{Config: cfg, Now: func() time.Time { return now }, Store: store.Options{NoSync: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer r.DB().Close()
	cfg.Admin.Listen = "127.0.0.1:0"
	if err := r.startAdmin(); err != nil { // the API alone: nothing else runs
		b.Fatal(err)
	}
	defer r.admin.Shutdown(context.Background())
	body := make([]byte, 2000)
	rcpts := make([]string, 10)
	for i := range 1000 {
		for j := range rcpts {
			rcpts[j] = fmt.Sprintf("r%d@example.test", (i*10+j)%3000)
		}
		m := store.Message{ID: fmt.Sprintf("m%08d", i), From: "news@shop.test", Class: config.ClassMarketing,
			Features: []byte(fmt.Sprintf(`{"campaign":"c%d"}`, i%20))}
		if _, err := r.DB().Accept(m, body, rcpts, now.Add(-time.Duration(i)*time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	mux := r.admin.Handler()
	for _, page := range []string{"/ui/", "/ui/campaigns", "/ui/campaigns/c7", "/ui/review", "/ui/recipients/r7@example.test"} {
		b.Run(page, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, page, nil)
				req.Host = "localhost" // the admin guard's rule for a loopback listener
				mux.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", page, rec.Code, rec.Body)
				}
			}
		})
	}
}

func TestDashboardCampaignActions(t *testing.T) {
	r, up, c, ann, _ := startDashboardData(t, "")
	u := newUIClient(t, r)
	post := func(action string, csrf string) (int, string) {
		code, loc, _ := u.do(http.MethodPost, "/ui/campaigns/spring-sale/"+action, url.Values{"csrf": {csrf}},
			map[string]string{"Origin": u.base, "Sec-Fetch-Site": "same-origin"})
		return code, loc
	}
	html := u.page("/ui/campaigns/spring-sale")
	csrf := csrfField.FindStringSubmatch(html)[1]
	if intByID(t, html, "in-review") != 1 || !strings.Contains(byID(t, html, "campaign-state"), "Running") {
		t.Fatalf("campaign page before any action: in review %d, state %q", intByID(t, html, "in-review"), byID(t, html, "campaign-state"))
	}
	// Without the CSRF token nothing happens.
	if code, _ := post("suspend", csrf+"x"); code != http.StatusForbidden {
		t.Fatalf("suspend with a wrong CSRF token: %d, want 403", code)
	}
	if r.engine.IsSuspended("spring-sale") {
		t.Fatal("suspended without a valid CSRF token")
	}

	// Suspend, then a new message of the campaign goes to review too.
	if code, loc := post("suspend", csrf); code != http.StatusSeeOther || loc != "/ui/campaigns/spring-sale?done=suspend" {
		t.Fatalf("suspend: %d %q", code, loc)
	}
	if err := submit(t, dial(t, r), "news@shop.test", []string{"bea@example.test"}, marketing("Spring sale two", "X-Kadenz-Campaign: spring-sale\r\n")); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 5*time.Minute)
	waitFor(t, "bea's mail in review", func() bool {
		return envelopeOf(t, r.DB(), "bea@example.test", 0).State == store.StateReview
	})
	html = u.page("/ui/campaigns/spring-sale?done=suspend")
	if !strings.Contains(byID(t, html, "campaign-state"), "Suspended") || intByID(t, html, "in-review") != 2 || !strings.Contains(html, `id="done"`) {
		t.Fatalf("campaign page after suspend: state %q, in review %d", byID(t, html, "campaign-state"), intByID(t, html, "in-review"))
	}

	// Release all in review: both go out, suspended or not (an operator's call).
	delivered := len(up.messages())
	if code, _ := post("release", csrf); code != http.StatusSeeOther {
		t.Fatalf("release all: %d", code)
	}
	waitFor(t, "both released mails delivered", func() bool { return len(up.messages()) == delivered+2 })
	// The upstream has them; the queue records the outcome a moment later.
	waitFor(t, "ann's mail recorded as delivered", func() bool {
		return envelopeOf(t, r.DB(), ann.To, 0).State == store.StateDelivered
	})
	// Resume, and with nothing left to release, release is refused (404).
	if code, _ := post("resume", csrf); code != http.StatusSeeOther || r.engine.IsSuspended("spring-sale") {
		t.Fatalf("resume: %d, suspended %v", code, r.engine.IsSuspended("spring-sale"))
	}
	if code, _ := post("release", csrf); code != http.StatusNotFound {
		t.Errorf("release all with nothing in review: %d, want 404", code)
	}
	if code, _ := post("launch", csrf); code != http.StatusNotFound {
		t.Errorf("unknown campaign action: %d, want 404", code)
	}
}
