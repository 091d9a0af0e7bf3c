package governor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/store"
)

// adminDo sends a request to the relay's admin API and decodes a 200
// answer into v (if not nil); it returns the status and the body text.
func queueDo(t *testing.T, r *Relay, method, path, body string, v any) (int, string) {
	t.Helper()
	ct := ""
	if method == http.MethodPost {
		ct = "application/json"
	}
	code, raw := adminRequest(t, r, method, path, "", ct, strings.NewReader(body))
	if code == http.StatusOK && v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return code, string(raw)
}

// reviewConfig holds a campaign for review once a third of its decisions
// were suppressions, after two decisions.
func reviewConfig(t *testing.T, upstreamAddr string) *config.Config {
	cfg := governedConfig(t, upstreamAddr)
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Governor.CampaignRules = []config.CampaignRule{
		{Campaign: "spring-*", Review: config.ReviewRule{SuppressionShare: 0.3, MinDecisions: 2}},
	}
	return cfg
}

// startReviewed sends one "spring-sale" message to two unsubscribed
// recipients and ann, and lets the engine decide: the two suppressions
// put the campaign over its threshold, so ann's release waits for review.
func startReviewed(t *testing.T) (*Relay, *upstream, *clock, store.Envelope) {
	t.Helper()
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	r := startRelayAt(t, reviewConfig(t, up.addr), c)
	unsubscribe(t, r.DB(), "gone1@example.test")
	unsubscribe(t, r.DB(), "gone2@example.test")
	msg := marketing("Spring sale", "X-Kadenz-Campaign: spring-sale\r\n")
	if err := submit(t, dial(t, r), "news@shop.test", []string{"gone1@example.test", "gone2@example.test", "ann@example.test"}, msg); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 5*time.Minute)
	var ann store.Envelope
	waitFor(t, "ann's mail in review", func() bool {
		ann = envelopeOf(t, r.DB(), "ann@example.test", 0)
		return ann.State == store.StateReview
	})
	return r, up, c, ann
}

func TestReviewHoldThenReleaseOverAPIDelivers(t *testing.T) {
	r, up, c, ann := startReviewed(t)
	recs := decisionsOf(t, r.DB(), ann.ID)
	last := recs[len(recs)-1]
	if last.Action != "review" || !slices.Contains(last.Reasons, "review-hold") || !strings.Contains(last.Explanation, "2 of 2 decisions suppressed") {
		t.Fatalf("review record %+v", last)
	}
	// Nothing leaves while it waits, however long.
	for range 8 {
		step(t, r, c, 6*time.Hour)
	}
	waitCaughtUp(t, r)
	if n := len(up.messages()); n != 0 {
		t.Fatalf("%d messages delivered while in review", n)
	}

	var list []api.QueueEntry
	if code, body := queueDo(t, r, "GET", "/v1/queue?state=review", "", &list); code != 200 {
		t.Fatalf("list: %d %s", code, body)
	}
	if len(list) != 1 || list[0].ID != ann.ID || list[0].Campaign != "spring-sale" || list[0].Subject != "Spring sale" ||
		list[0].Class != config.ClassMarketing || list[0].LastAction != "review" {
		t.Fatalf("review listing %+v", list)
	}

	var res api.QueueActionResult
	if code, body := queueDo(t, r, "POST", "/v1/queue/release", `{"campaign": "spring-sale"}`, &res); code != 200 || len(res.Changed) != 1 {
		t.Fatalf("release: %d %s", code, body)
	}
	waitFor(t, "delivery after release", func() bool { return len(up.messages()) == 1 })
	recs = decisionsOf(t, r.DB(), ann.ID)
	if last := recs[len(recs)-1]; last.Action != "release" || last.Mode != "operator" {
		t.Errorf("release record %+v", last)
	}
	// Released again: nothing left in review for the campaign.
	if code, _ := queueDo(t, r, "POST", "/v1/queue/release", `{"campaign": "spring-sale"}`, nil); code != http.StatusNotFound {
		t.Errorf("second release of the campaign: %d, want 404", code)
	}
}

func TestDropSuppressesAndActionsAreAllOrNothing(t *testing.T) {
	r, up, _, ann := startReviewed(t)
	// One unknown ID: 404, and ann's mail stays in review.
	if code, body := queueDo(t, r, "POST", "/v1/queue/drop", `{"ids": ["`+ann.ID+`", "no-such-envelope"]}`, nil); code != http.StatusNotFound {
		t.Fatalf("drop with an unknown ID: %d %s", code, body)
	}
	if e := envelopeOf(t, r.DB(), "ann@example.test", 0); e.State != store.StateReview {
		t.Fatalf("after a refused drop: %s, want review", e.State)
	}
	// A suppressed envelope cannot be released: 409, nothing changes.
	gone := envelopeOf(t, r.DB(), "gone1@example.test", 0)
	if code, _ := queueDo(t, r, "POST", "/v1/queue/release", `{"ids": ["`+ann.ID+`", "`+gone.ID+`"]}`, nil); code != http.StatusConflict {
		t.Errorf("release of a suppressed envelope: %d, want 409", code)
	}
	if e := envelopeOf(t, r.DB(), "ann@example.test", 0); e.State != store.StateReview {
		t.Fatalf("after a refused release: %s, want review", e.State)
	}
	for _, bad := range []string{``, `{}`, `{"ids": []}`, `{"ids": ["x"], "campaign": "y"}`, `{"id": "x"}`, `{"ids": [""]}`, `[1]`} {
		if code, _ := queueDo(t, r, "POST", "/v1/queue/drop", bad, nil); code != http.StatusBadRequest {
			t.Errorf("drop %q: %d, want 400", bad, code)
		}
	}

	if code, body := queueDo(t, r, "POST", "/v1/queue/drop", `{"ids": ["`+ann.ID+`"]}`, nil); code != 200 {
		t.Fatalf("drop: %d %s", code, body)
	}
	e := envelopeOf(t, r.DB(), "ann@example.test", 0)
	recs := decisionsOf(t, r.DB(), ann.ID)
	if e.State != store.StateSuppressed || recs[len(recs)-1].Explanation != "Dropped by operator." {
		t.Errorf("after drop: %s %+v", e.State, recs[len(recs)-1])
	}
	waitCaughtUp(t, r)
	if n := len(up.messages()); n != 0 {
		t.Errorf("%d messages delivered after a drop", n)
	}
}

func TestHoldPutsHeldMarketingIntoReview(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Admin.Listen = "127.0.0.1:0"
	r := startRelayAt(t, cfg, c)
	conn := dial(t, r)
	if err := submit(t, conn, "news@shop.test", []string{"ann@example.test"}, marketing("Winter boots", "X-Kadenz-Campaign: winter\r\n")); err != nil {
		t.Fatal(err)
	}
	var res api.QueueActionResult
	if code, body := queueDo(t, r, "POST", "/v1/queue/hold", `{"campaign": "winter"}`, &res); code != 200 || len(res.Changed) != 1 {
		t.Fatalf("hold: %d %s", code, body)
	}
	for range 12 {
		step(t, r, c, 4*time.Hour)
	}
	waitCaughtUp(t, r)
	if e := envelopeOf(t, r.DB(), "ann@example.test", 0); e.State != store.StateReview || len(up.messages()) != 0 {
		t.Fatalf("held for review: %s, %d delivered", e.State, len(up.messages()))
	}
	// Transactional mail is not the governor's to hold.
	if err := submit(t, conn, "crm@shop.test", []string{"bob@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	bob := envelopeOf(t, r.DB(), "bob@example.test", 0)
	if code, _ := queueDo(t, r, "POST", "/v1/queue/hold", `{"ids": ["`+bob.ID+`"]}`, nil); code != http.StatusConflict && code != http.StatusOK {
		t.Errorf("hold of transactional mail: %d", code)
	} else if e, _ := r.DB().Envelope(bob.ID); e.State == store.StateReview {
		t.Errorf("transactional mail put into review")
	}
}

func TestQueueListFiltersAndRefusesBadInput(t *testing.T) {
	c := &clock{t: monday10}
	cfg := governedConfig(t, "")
	cfg.Admin.Listen = "127.0.0.1:0"
	r := startRelayAt(t, cfg, c)
	conn := dial(t, r)
	for _, to := range []string{"ann@example.test", "bob@example.test"} {
		if err := submit(t, conn, "news@shop.test", []string{to}, marketing("Winter boots "+to, "X-Kadenz-Campaign: winter\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := submit(t, conn, "news@shop.test", []string{"ann@example.test"}, marketing("Rain coats", "X-Kadenz-Campaign: rain\r\n")); err != nil {
		t.Fatal(err)
	}
	for query, want := range map[string]int{
		"":                 3,
		"?state=held":      3,
		"?state=delivered": 0,
		"?campaign=winter": 2,
		"?campaign=WINTER&recipient=bob@example.test": 1,
		"?recipient=ann@example.test":                 2,
		"?limit=1":                                    1,
	} {
		var list []api.QueueEntry
		if code, body := queueDo(t, r, "GET", "/v1/queue"+query, "", &list); code != 200 || len(list) != want {
			t.Errorf("GET /v1/queue%s: %d, %d entries (want %d) %s", query, code, len(list), want, body)
		}
	}
	for _, query := range []string{"?state=lost", "?limit=0", "?limit=x", "?color=red"} {
		if code, _ := queueDo(t, r, "GET", "/v1/queue"+query, "", nil); code != http.StatusBadRequest {
			t.Errorf("GET /v1/queue%s: %d, want 400", query, code)
		}
	}
}

// BenchmarkQueueList lists held mail from a store holding 5,000 held
// envelopes: the first 100 (the default page) and all of them.
func BenchmarkQueueList(b *testing.B) {
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	r, err := New(Options{Config: cfg, Store: store.Options{NoSync: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Shutdown(context.Background())
	feat := []byte(`{"subject":"Winter boots","campaign":"winter"}`)
	for i := range 5000 {
		msg := store.Message{ID: fmt.Sprintf("m%05d", i), Class: config.ClassMarketing, Features: feat}
		if _, err := r.DB().AcceptWith(msg, nil, []string{fmt.Sprintf("r%d@example.test", i)}, monday10, func(_ int, e *store.Envelope) {
			e.State, e.Due = store.StateHeld, monday10.Add(time.Duration(i)*time.Second)
		}); err != nil {
			b.Fatal(err)
		}
	}
	for _, q := range []string{"state=held", "state=held&limit=10000"} {
		b.Run(q, func(b *testing.B) {
			for b.Loop() {
				w := httptest.NewRecorder()
				req := httptest.NewRequest("GET", "/v1/queue?"+q, nil)
				req.Host = "localhost" // the admin guard's rule for a loopback listener
				r.admin.Handler().ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
