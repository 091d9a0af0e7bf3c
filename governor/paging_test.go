package governor

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"kadenz/governor/admin/api"
	"kadenz/store"
)

// getLinked fetches path with the test token and returns the body and the
// path of the next page from the Link header ("" on the last page).
func getLinked(t *testing.T, r *Relay, path string) ([]byte, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.AdminAddr().String()+path, nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, out)
	}
	link := resp.Header.Get("Link")
	if link == "" {
		return out, ""
	}
	target, rel, _ := strings.Cut(link, ";")
	if strings.TrimSpace(rel) != `rel="next"` {
		t.Fatalf("Link %q", link)
	}
	return out, strings.Trim(target, "<>")
}

// Every list of the admin API pages the same way: limit and after, and a
// Link rel="next" to follow; the pages make up the whole list, each entry
// once, in order. Without limit the queue answers its first page of 100,
// as it did before it had pages; the suppression list answers all of it.
func TestListsPageThroughLinks(t *testing.T) {
	c := &clock{t: monday10}
	r := adminRelay(t, c)
	for i := range 105 {
		submitDriven(t, r, c, []string{fmt.Sprintf("r%03d@example.test", i)}, marketing(fmt.Sprintf("Offer %d", i), ""))
	}
	var first []api.QueueEntry
	out, next := getLinked(t, r, "/v1/queue?state=held")
	if err := json.Unmarshal(out, &first); err != nil || len(first) != 100 || next == "" {
		t.Fatalf("first page without limit: %d entries, next %q, %v", len(first), next, err)
	}
	var paged []string
	for path, n := "/v1/queue?state=held&limit=7", 0; path != ""; n++ {
		if n > 20 {
			t.Fatal("the pages do not end")
		}
		var page []api.QueueEntry
		out, path = getLinked(t, r, path)
		if err := json.Unmarshal(out, &page); err != nil || len(page) > 7 {
			t.Fatalf("page %d: %d entries, %v", n, len(page), err)
		}
		for _, e := range page {
			paged = append(paged, e.ID)
		}
	}
	all := make([]string, 0, 105)
	for _, e := range first {
		all = append(all, e.ID)
	}
	if len(paged) != 105 || !slices.Equal(paged[:100], all) {
		t.Fatalf("the pages list %d envelopes; the first 100 differ from the unpaged list: %v", len(paged), paged)
	}
	seen := map[string]bool{}
	for _, id := range paged {
		if seen[id] {
			t.Errorf("%s is listed twice", id)
		}
		seen[id] = true
	}
	if code, _ := adminDo(t, r, http.MethodGet, "/v1/queue?after=nonsense", "", ""); code != http.StatusBadRequest {
		t.Errorf("a bad after token: %d, want 400", code)
	}

	for i := range 5 {
		body := fmt.Sprintf(`{"address": "u%d@example.test", "reason": "asked"}`, i)
		if code, out := adminDo(t, r, http.MethodPost, "/v1/suppressions", "application/json", body); code/100 != 2 {
			t.Fatalf("suppress: %d %s", code, out)
		}
	}
	var whole []api.Suppression
	out, next = getLinked(t, r, "/v1/suppressions")
	if err := json.Unmarshal(out, &whole); err != nil || len(whole) != 5 || next != "" {
		t.Fatalf("suppressions without limit: %d, next %q, %v", len(whole), next, err)
	}
	var got []string
	for path := "/v1/suppressions?limit=2"; path != ""; {
		var page []api.Suppression
		out, path = getLinked(t, r, path)
		if err := json.Unmarshal(out, &page); err != nil {
			t.Fatal(err)
		}
		for _, s := range page {
			got = append(got, s.Address)
		}
		if u, _ := url.Parse(path); path != "" && u.Query().Get("limit") != "2" {
			t.Fatalf("next link %q lost the limit", path)
		}
	}
	want := []string{}
	for _, s := range whole {
		want = append(want, s.Address)
	}
	if !slices.Equal(got, want) {
		t.Errorf("suppressions in pages %v, want %v", got, want)
	}
}

// The dashboard's long lists end in a next-page link: the review page's
// held mail and a campaign's envelopes, 500 to a page; the next page holds
// the rest, and the totals count them all.
func TestDashboardListsLinkTheNextPage(t *testing.T) {
	c := &clock{t: monday10}
	cfg := governedConfig(t, "")
	cfg.Admin.Listen = "127.0.0.1:0"
	r := startRelayAt(t, cfg, c)
	const n = 503
	rcpts := make([]string, n)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("r%03d@example.test", i)
	}
	submitDriven(t, r, c, rcpts, marketing("Winter boots", "X-Kadenz-Campaign: winter\r\n"))
	u := newUIClient(t, r)
	rows := func(html, prefix string) int { return strings.Count(html, `<tr id="`+prefix) }

	html := u.page("/ui/review")
	if got := rows(html, "h-"); got != 500 || intByID(t, html, "held-count") != n {
		t.Fatalf("review page: %d held rows, count %d; want 500 of %d", got, intByID(t, html, "held-count"), n)
	}
	next := regexp.MustCompile(`id="next-held" href="([^"]+)"`).FindStringSubmatch(html)
	if next == nil {
		t.Fatal("the review page has no link to the next page of held mail")
	}
	html = u.page(strings.ReplaceAll(next[1], "&amp;", "&"))
	if got := rows(html, "h-"); got != n-500 || strings.Contains(html, `id="next-held"`) {
		t.Errorf("the second page: %d held rows (want %d) or a link to a third", got, n-500)
	}

	html = u.page("/ui/campaigns/winter")
	next = regexp.MustCompile(`id="next-envelopes" href="([^"]+)"`).FindStringSubmatch(html)
	if next == nil {
		t.Fatal("the campaign page has no link to the next page of envelopes")
	}
	first := strings.Count(html, `href="/ui/envelopes/`)
	html = u.page(strings.ReplaceAll(next[1], "&amp;", "&"))
	if second := strings.Count(html, `href="/ui/envelopes/`); first != 500 || second != n-500 || strings.Contains(html, `id="next-envelopes"`) {
		t.Errorf("campaign pages: %d then %d envelope links, want 500 then %d and no third page", first, second, n-500)
	}
}

// A recipient's profile view pages their envelopes as the lists do: the
// latest first, limit and after, a Link rel="next" to follow, the total on
// every page; without limit the first 50. The dashboard's recipient page
// links its older envelopes the same way.
func TestProfilePagesThroughLinks(t *testing.T) {
	c := &clock{t: monday10}
	r := adminRelay(t, c)
	const n = 53
	for i := range n {
		submitDriven(t, r, c, []string{"Ann@example.test", fmt.Sprintf("r%03d@example.test", i)}, marketing(fmt.Sprintf("Offer %d", i), ""))
	}
	var whole api.ProfileView
	out, next := getLinked(t, r, "/v1/profiles/ann@example.test")
	if err := json.Unmarshal(out, &whole); err != nil || len(whole.Envelopes) != 50 || whole.Total != n || next == "" {
		t.Fatalf("first page without limit: %d envelopes of %d, next %q, %v", len(whole.Envelopes), whole.Total, next, err)
	}
	var paged []string
	for path, pages := "/v1/profiles/ann@example.test?limit=10", 0; path != ""; pages++ {
		if pages > 10 {
			t.Fatal("the pages do not end")
		}
		var page api.ProfileView
		out, path = getLinked(t, r, path)
		if err := json.Unmarshal(out, &page); err != nil || len(page.Envelopes) > 10 || page.Total != n {
			t.Fatalf("page %d: %d envelopes, total %d, %v", pages, len(page.Envelopes), page.Total, err)
		}
		for _, e := range page.Envelopes {
			paged = append(paged, e.ID)
		}
	}
	var first []string
	for _, e := range whole.Envelopes {
		first = append(first, e.ID)
	}
	if len(paged) != n || !slices.Equal(paged[:50], first) {
		t.Fatalf("the pages list %d envelopes, want %d; the first 50 differ from the unpaged view", len(paged), n)
	}
	if !slices.IsSortedFunc(paged, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("not the latest first: %v", paged)
	}
	if code, _ := adminDo(t, r, http.MethodGet, "/v1/profiles/ann@example.test?page=2", "", ""); code != http.StatusBadRequest {
		t.Errorf("an unknown parameter: %d, want 400", code)
	}

	// The dashboard without an admin token (open on loopback), as in
	// TestDashboardListsLinkTheNextPage.
	cfg := governedConfig(t, "")
	cfg.Admin.Listen = "127.0.0.1:0"
	r = startRelayAt(t, cfg, c)
	for i := range n {
		submitDriven(t, r, c, []string{"ann@example.test"}, marketing(fmt.Sprintf("Offer %d", i), ""))
	}
	u := newUIClient(t, r)
	html := u.page("/ui/recipients/ann@example.test")
	link := regexp.MustCompile(`id="next-envelopes" href="([^"]+)"`).FindStringSubmatch(html)
	if link == nil {
		t.Fatal("the recipient page has no link to older envelopes")
	}
	html = u.page(strings.ReplaceAll(link[1], "&amp;", "&"))
	if strings.Contains(html, `id="next-envelopes"`) || intByID(t, html, "total") != n {
		t.Errorf("the second recipient page links a third, or counts %d envelopes (want %d)", intByID(t, html, "total"), n)
	}
}

// The campaigns page lists 100 campaigns, by name, with a link to the
// next page; the pages make up every campaign once.
func TestDashboardCampaignsPageThrough(t *testing.T) {
	c := &clock{t: monday10}
	cfg := governedConfig(t, "")
	cfg.Admin.Listen = "127.0.0.1:0"
	r := startRelayAt(t, cfg, c)
	const n = 103
	for i := range n {
		msg := store.Message{ID: fmt.Sprintf("k%04d", i), From: "shop@example.test", Received: monday10, Class: "marketing",
			Features: []byte(fmt.Sprintf(`{"campaign":"c%03d","subject":"Sale %d"}`, i, i))}
		if _, err := r.DB().Accept(msg, []byte("Subject: x\r\n\r\nx\r\n"), []string{"ann@example.test"}, monday10); err != nil {
			t.Fatal(err)
		}
	}
	u := newUIClient(t, r)
	rowID := regexp.MustCompile(`<tr id="c-(c[0-9]+)">`)
	var names []string
	html := u.page("/ui/campaigns")
	for page := 0; ; page++ {
		if page > 2 {
			t.Fatal("the campaigns pages do not end")
		}
		for _, m := range rowID.FindAllStringSubmatch(html, -1) {
			names = append(names, m[1])
		}
		next := regexp.MustCompile(`id="next-campaigns" href="([^"]+)"`).FindStringSubmatch(html)
		if next == nil {
			break
		}
		if len(names) != 100 {
			t.Fatalf("the first page lists %d campaigns, want 100", len(names))
		}
		html = u.page(strings.ReplaceAll(next[1], "&amp;", "&"))
	}
	if len(names) != n || !slices.IsSorted(names) || names[0] != "c000" || names[n-1] != fmt.Sprintf("c%03d", n-1) {
		t.Errorf("the pages list %d campaigns (%v ... ), want %d in order", len(names), names[:min(3, len(names))], n)
	}
}
