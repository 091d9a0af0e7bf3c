package governor

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/governor/engine"
	"kadenz/scoring"
	"kadenz/store"
)

// In shadow mode everything is sent, and /v1/stats and the overview show
// beside it what enforce mode would have done: released, suppressed, or
// still deferred.
func TestShadowForecastInStatsAndOverview(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Governor.Mode = config.ModeShadow
	r := startRelayAt(t, cfg, c)
	// Eight offers to one person in one go: enforce would not send them all
	// today.
	const n = 8
	for i := range n {
		msg := marketing(fmt.Sprintf("Offer %d", i), fmt.Sprintf("X-Kadenz-Campaign: offer-%d\r\n", i))
		if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, msg); err != nil {
			t.Fatal(err)
		}
	}
	step(t, r, c, 10*time.Minute)
	waitFor(t, "shadow mode to send everything", func() bool { return len(up.messages()) == n })
	waitCaughtUp(t, r)

	var st api.Stats
	adminJSON(t, r, http.MethodGet, "/v1/stats", nil, &st)
	f := st.ShadowForecast
	if f == nil {
		t.Fatal("no shadow forecast in /v1/stats")
	}
	if f.Decided != n || f.WouldRelease+f.WouldSuppress+f.WouldReview+f.Pending != n || f.WouldRelease == n || f.WouldRelease == 0 {
		t.Errorf("forecast %+v: want %d decided, some but not all released", f, n)
	}
	if f.WouldDefer != f.Pending+f.DeferReleased && f.WouldDefer < f.Pending {
		t.Errorf("forecast %+v: deferrals do not add up", f)
	}
	if got := st.ByState[string(store.StateDelivered)]; got != n {
		t.Errorf("%d delivered, want all %d (shadow mode)", got, n)
	}
	// A period of days before any of it counts nothing.
	var before api.Stats
	adminJSON(t, r, http.MethodGet, "/v1/stats?since=2026-11-01T00:00:00Z&until=2026-11-02T00:00:00Z", nil, &before)
	if before.ShadowForecast != nil {
		t.Errorf("a period without mail has a forecast: %+v", before.ShadowForecast)
	}

	html := newUIClient(t, r).overview()
	if strings.Contains(html, `id="enforce-decided"`) {
		t.Error("the overview shows what enforce did, but nothing was decided in enforce mode")
	}
	checkNumbers(t, "overview", html, map[string]int{
		"shadow-sent":           int(f.Decided),
		"shadow-would-release":  int(f.WouldRelease),
		"shadow-would-suppress": int(f.WouldSuppress),
		"shadow-would-review":   int(f.WouldReview),
		"shadow-pending":        int(f.Pending),
		"gov-released":          n, // sent, beside the forecast
	})
}

// Enforce mode shows no forecast.
func TestNoShadowForecastInEnforceMode(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Admin.Listen = "127.0.0.1:0"
	r := startRelayAt(t, cfg, c)
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, marketing("Offer", "")); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 10*time.Minute)
	waitCaughtUp(t, r)
	var st api.Stats
	adminJSON(t, r, http.MethodGet, "/v1/stats", nil, &st)
	if st.ShadowForecast != nil || st.Envelopes != 1 {
		t.Errorf("enforce mode: forecast %+v, %d envelopes", st.ShadowForecast, st.Envelopes)
	}
	if html := newUIClient(t, r).page("/ui/"); regexpShadow.MatchString(html) {
		t.Errorf("the overview shows a shadow forecast in enforce mode")
	}
}

var regexpShadow = regexp.MustCompile(`id="shadow-forecast"`)

// A hard stop is forecast with enforce's reasons: mail held when the
// unsubscribe arrives is suppressed by feedback with "unsubscribed", mail
// that comes after meets the suppression list. Shadow mode sends both and
// says so in its "would".
func TestShadowForecastsStopReasons(t *testing.T) {
	got := map[string][2]engine.Record{}
	for _, mode := range []string{config.ModeEnforce, config.ModeShadow} {
		up := startUpstream(t, nil)
		c := &clock{t: monday10}
		cfg := governedConfig(t, up.addr)
		cfg.Governor.Mode = mode
		r := startRelayAt(t, cfg, c)
		if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, marketing("Boots", "")); err != nil {
			t.Fatal(err)
		}
		step(t, r, c, time.Minute) // held for the hold window (5 minutes)
		if err := r.RecordEvent("ann@example.test", scoring.Event{Kind: scoring.EventUnsubscribe, At: c.Now()}); err != nil {
			t.Fatal(err)
		}
		step(t, r, c, 10*time.Minute)
		waitCaughtUp(t, r)
		if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, marketing("Sandals", "")); err != nil {
			t.Fatal(err)
		}
		step(t, r, c, 10*time.Minute)
		waitCaughtUp(t, r)
		var recs [2]engine.Record
		for i := range recs {
			env := envelopeOf(t, r.DB(), "ann@example.test", i)
			d := decisionsOf(t, r.DB(), env.ID)
			if len(d) != 1 {
				t.Fatalf("%s: envelope %d has %d decisions: %+v", mode, i, len(d), d)
			}
			recs[i] = d[0]
			if want := map[string]store.State{config.ModeEnforce: store.StateSuppressed, config.ModeShadow: store.StateDelivered}[mode]; env.State != want {
				t.Errorf("%s: envelope %d is %s, want %s", mode, i, env.State, want)
			}
		}
		got[mode] = recs
	}
	for i, want := range []string{engine.ReasonUnsubscribed, engine.ReasonSuppressionList} {
		e, s := got[config.ModeEnforce][i], got[config.ModeShadow][i]
		if e.Action != "suppress" || !slices.Equal(e.Reasons, []string{want}) {
			t.Errorf("enforce, mail %d: %s %v, want suppress %s", i, e.Action, e.Reasons, want)
		}
		if s.Action != "release" || s.Would != "suppress" || !slices.Equal(s.Reasons, []string{want}) {
			t.Errorf("shadow, mail %d: %s, would %s %v; want release, would suppress %s (%q)", i, s.Action, s.Would, s.Reasons, want, s.Explanation)
		}
	}
}

// The profile view shows shadow mode's copies as a reader can read them:
// each an object with the message's subject and campaign, not the
// engine's features as a base64 string.
func TestProfileViewShowsShadowCopies(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10.Add(12 * time.Hour)} // 22:00, quiet hours: enforce would defer to the morning
	cfg := governedConfig(t, up.addr)
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Governor.Mode = config.ModeShadow
	r := startRelayAt(t, cfg, c)
	const n = 4
	for i := range n {
		msg := marketing(fmt.Sprintf("Offer %d", i), fmt.Sprintf("X-Kadenz-Campaign: offer-%d\r\n", i))
		if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, msg); err != nil {
			t.Fatal(err)
		}
	}
	step(t, r, c, 10*time.Minute)
	waitCaughtUp(t, r)

	var pv struct {
		Profile map[string]any `json:"profile"`
	}
	adminJSON(t, r, http.MethodGet, "/v1/profiles/ann@example.test", nil, &pv)
	copies, ok := pv.Profile["shadow_held"].([]any)
	if !ok || len(copies) == 0 {
		t.Fatalf("no shadow copies in the profile view (%T): the scenario tests nothing: %v", pv.Profile["shadow_held"], pv.Profile)
	}
	for i, c := range copies {
		obj, ok := c.(map[string]any)
		if !ok {
			t.Fatalf("copy %d is a %T, want an object: %v", i, c, c)
		}
		if f, has := obj["features"]; has {
			t.Errorf("copy %d shows features (%T): %v", i, f, f)
		}
		subject, _ := obj["subject"].(string)
		campaign, _ := obj["campaign"].(string)
		if !strings.HasPrefix(subject, "Offer ") || campaign != "offer-"+strings.TrimPrefix(subject, "Offer ") {
			t.Errorf("copy %d: subject %v, campaign %v: %v", i, obj["subject"], obj["campaign"], obj)
		}
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(obj["due"])); err != nil {
			t.Errorf("copy %d: due %v: %v", i, obj["due"], err)
		}
	}
	// The dashboard's recipient page, which reads the same view, still
	// shows the profile.
	if html := newUIClient(t, r).page("/ui/recipients/ann@example.test"); !strings.Contains(html, `id="profile"`) {
		t.Errorf("the recipient page shows no profile")
	}
}

// After a trial in shadow mode, enforce mode: the overview sets what
// enforce did with its own mail of the period beside shadow's forecast,
// each with its shares.
func TestOverviewShowsForecastAndEnforce(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Governor.Mode = config.ModeShadow
	r := startRelayAt(t, cfg, c)
	const n = 8
	offers := func(to string) {
		t.Helper()
		for i := range n {
			msg := marketing(fmt.Sprintf("Offer %d for %s", i, to), fmt.Sprintf("X-Kadenz-Campaign: offer-%d\r\n", i))
			if err := submit(t, dial(t, r), "news@shop.test", []string{to}, msg); err != nil {
				t.Fatal(err)
			}
		}
		step(t, r, c, 10*time.Minute)
		waitCaughtUp(t, r)
	}
	offers("ann@example.test")
	next := *cfg
	next.Governor.Mode = config.ModeEnforce
	if err := r.Reload(&next); err != nil {
		t.Fatal(err)
	}
	offers("bob@example.test")

	var st api.Stats
	adminJSON(t, r, http.MethodGet, "/v1/stats", nil, &st)
	f := st.ShadowForecast
	if f == nil || f.Decided != n {
		t.Fatalf("forecast %+v, want %d decided", f, n)
	}
	bob := map[store.State]int{}
	for i := range n {
		bob[envelopeOf(t, r.DB(), "bob@example.test", i).State]++
	}
	released := bob[store.StateQueued] + bob[store.StateDelivering] + bob[store.StateDeferred] + bob[store.StateDelivered] +
		bob[store.StateFailed]
	if released == n {
		t.Fatalf("enforce released all of bob's %d (%v): the comparison shows nothing", n, bob)
	}
	html := newUIClient(t, r).overview()
	checkNumbers(t, "overview", html, map[string]int{
		"shadow-sent":           int(f.Decided),
		"shadow-would-suppress": int(f.WouldSuppress),
		"enforce-decided":       n,
		"enforce-suppressed":    bob[store.StateSuppressed],
		"enforce-released":      released,
		"enforce-pending":       bob[store.StateHeld],
		"enforce-review":        bob[store.StateReview],
	})
	if got, want := byID(t, html, "enforce-release-share"), fmt.Sprintf("%.1f%%", 100*float64(released)/n); got != want {
		t.Errorf("enforce's released share shows %q, want %s", got, want)
	}
}
