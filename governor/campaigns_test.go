package governor

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"kadenz/governor/admin/api"
	"kadenz/store"
)

func TestSuspendHoldsACampaignAndResumeLetsItGo(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Admin.Listen = "127.0.0.1:0"
	r := startRelayAt(t, cfg, c)
	winter := marketing("Winter sale", "X-Kadenz-Campaign: Winter\r\n")
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test", "bob@example.test"}, winter); err != nil {
		t.Fatal(err)
	}

	// Suspended while held: both envelopes go to review at once.
	var res api.CampaignChange
	if code, body := queueDo(t, r, "POST", "/v1/campaigns/winter/suspend", "", &res); code != http.StatusOK || len(res.Changed) != 2 || !res.Suspended {
		t.Fatalf("suspend: %d %s", code, body)
	}
	for _, to := range []string{"ann@example.test", "bob@example.test"} {
		if e := envelopeOf(t, r.DB(), to, 0); e.State != store.StateReview {
			t.Fatalf("%s after suspend: %s, want review", to, e.State)
		}
	}
	// Mail of the campaign that arrives while it is suspended is decided,
	// and what would be released goes to review instead.
	late := marketing("Winter sale again", "X-Kadenz-Campaign: WINTER\r\n")
	if err := submit(t, dial(t, r), "news@shop.test", []string{"carl@example.test"}, late); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 5*time.Minute)
	var carl store.Envelope
	waitFor(t, "carl's mail decided", func() bool {
		carl = envelopeOf(t, r.DB(), "carl@example.test", 0)
		return carl.State != store.StateHeld
	})
	recs := decisionsOf(t, r.DB(), carl.ID)
	if last := recs[len(recs)-1]; carl.State != store.StateReview || !slices.Contains(last.Reasons, "campaign-suspended") {
		t.Fatalf("carl's mail while suspended: %s, %+v", carl.State, last)
	}
	// Names are quoted for a person, not escaped as Go strings (a name
	// with quotes in it would show backslashes).
	if last := recs[len(recs)-1]; !strings.Contains(last.Explanation, "campaign “WINTER” is suspended") {
		t.Errorf("explanation %q: want the campaign named in typographic quotes", last.Explanation)
	}
	for range 4 {
		step(t, r, c, 6*time.Hour)
	}
	waitCaughtUp(t, r)
	if n := len(up.messages()); n != 0 {
		t.Fatalf("%d messages of a suspended campaign delivered", n)
	}
	var list []map[string]any
	if code, body := queueDo(t, r, "GET", "/v1/campaigns/suspended", "", &list); code != http.StatusOK || len(list) != 1 || list[0]["campaign"] != "winter" {
		t.Fatalf("suspended list: %d %s", code, body)
	}

	// Resumed: the engine decides the three afresh and they go out.
	if code, body := queueDo(t, r, "POST", "/v1/campaigns/Winter/resume", "", &res); code != http.StatusOK || len(res.Changed) != 3 || res.Suspended {
		t.Fatalf("resume: %d %s", code, body)
	}
	for range 8 {
		step(t, r, c, 3*time.Hour)
		if len(up.messages()) == 3 {
			break
		}
	}
	waitFor(t, "the resumed campaign delivered", func() bool { return len(up.messages()) == 3 })
	if code, _ := queueDo(t, r, "POST", "/v1/campaigns/winter/resume", "", nil); code != http.StatusNotFound {
		t.Errorf("resuming a campaign that is not suspended: %d, want 404", code)
	}
}

// Holdout mail goes out undelayed, but not while its campaign is
// suspended; on resume it goes out at once, without a decision.
func TestSuspendHoldsHoldoutMailToo(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Governor.Holdout.Share, cfg.Governor.Holdout.Salt = 1, "s" // everyone is in the holdout
	r := startRelayAt(t, cfg, c)
	if code, body := queueDo(t, r, "POST", "/v1/campaigns/winter/suspend", "", nil); code != http.StatusOK {
		t.Fatalf("suspend: %d %s", code, body)
	}
	if err := submit(t, dial(t, r), "news@shop.test", []string{"hal@example.test"}, marketing("Winter sale", "X-Kadenz-Campaign: winter\r\n")); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, time.Hour)
	waitCaughtUp(t, r)
	if e := envelopeOf(t, r.DB(), "hal@example.test", 0); e.State != store.StateReview || !e.Holdout || len(up.messages()) != 0 {
		t.Fatalf("holdout mail of a suspended campaign: %s (holdout %v), %d delivered", e.State, e.Holdout, len(up.messages()))
	}
	if code, body := queueDo(t, r, "POST", "/v1/campaigns/winter/resume", "", nil); code != http.StatusOK {
		t.Fatalf("resume: %d %s", code, body)
	}
	waitFor(t, "the holdout mail delivered after resume", func() bool { return len(up.messages()) == 1 })
	recs := decisionsOf(t, r.DB(), envelopeOf(t, r.DB(), "hal@example.test", 0).ID)
	if last := recs[len(recs)-1]; last.Action != "release" || last.Mode != "operator" {
		t.Errorf("resume record %+v", last)
	}
}
