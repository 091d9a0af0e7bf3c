package governor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/scoring"
	"kadenz/store"
)

// walk steps virtual time until cond holds or limit is spent.
func walk(t *testing.T, r *Relay, c *clock, by, limit time.Duration, cond func() bool) {
	t.Helper()
	for spent := time.Duration(0); spent < limit && !cond(); spent += by {
		step(t, r, c, by)
		waitCaughtUp(t, r)
	}
}

func TestSendWindowRespected(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Governor.SendWindows = []string{"* 14-15 * * *"}
	r := startRelayAt(t, cfg, c)
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	walk(t, r, c, 15*time.Minute, 48*time.Hour, func() bool { return len(up.messages()) > 0 })
	waitFor(t, "release", func() bool { return len(up.messages()) == 1 })
	env := envelopeOf(t, r.DB(), "ann@example.test", 0)
	var at time.Time
	for _, rec := range decisionsOf(t, r.DB(), env.ID) {
		if rec.Action == "release" {
			at = rec.At
		}
	}
	if h := at.UTC().Hour(); h < 14 || h > 15 {
		t.Errorf("released at %v, outside the send window 14:00-15:59", at)
	}
}

// A rule's caps count only its own mail: one deal a day from this sender,
// whatever else the recipient gets.
func TestSenderRuleCapRespected(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Governor.Caps = config.Caps{PerDay: 10}
	cfg.Governor.Strictness = 0.1 // the model would send everything
	cfg.Governor.CampaignRules = []config.CampaignRule{{Sender: "deals@shop.test", Caps: config.Caps{PerDay: 1}}}
	r := startRelayAt(t, cfg, c)
	conn := dial(t, r)
	subjects := []string{"Garden chairs", "Kitchen knives", "Rain coats"}
	topics := []string{"garden", "kitchen", "outdoor"}
	for i, s := range subjects {
		if err := submit(t, conn, "deals@shop.test", []string{"ann@example.test"},
			marketing(s, "X-Kadenz-Campaign: deal-"+topics[i]+"\r\nX-Kadenz-Priority: 90\r\n")); err != nil {
			t.Fatal(err)
		}
		c.advance(time.Hour)
	}
	walk(t, r, c, time.Hour, 3*24*time.Hour, func() bool { return false })
	var releases []time.Time
	capped := 0
	for i := range subjects {
		env := envelopeOf(t, r.DB(), "ann@example.test", i)
		for _, rec := range decisionsOf(t, r.DB(), env.ID) {
			if slices.Contains(rec.Reasons, "campaign-cap") {
				capped++
			}
			if rec.Action == "release" {
				releases = append(releases, rec.At)
			}
		}
	}
	if capped == 0 {
		t.Errorf("no decision names the rule's cap")
	}
	assertApart(t, releases, 24*time.Hour)
}

// assertApart checks that at least two releases happened, no two closer
// than d.
func assertApart(t *testing.T, releases []time.Time, d time.Duration) {
	t.Helper()
	if len(releases) < 2 {
		t.Fatalf("only %d releases; the test needs two to compare", len(releases))
	}
	slices.SortFunc(releases, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(releases); i++ {
		if gap := releases[i].Sub(releases[i-1]); gap < d {
			t.Errorf("releases %v and %v are %v apart; the cap allows one per %v", releases[i-1], releases[i], gap, d)
		}
	}
}

// The same mail sent again with a word changed is a near-duplicate of what
// the recipient already got, and is suppressed with that reason, at the
// default strictness: a near-duplicate is worth nothing (DuplicateValue 0),
// however low the strictness.
func TestNearDuplicateSuppressed(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	r := startRelayAt(t, governedConfig(t, up.addr), c)
	conn := dial(t, r)
	const body = "Our winter boots collection is here: lined leather, waterproof soles, new colours and sizes. " +
		"Order before Friday and delivery is free. Every pair comes with a two year guarantee, and if they do not fit " +
		"you can send them back within thirty days. Visit the shop to see the whole range of boots, gloves and scarves.\r\n"
	first := marketing("Winter boots", "X-Kadenz-Campaign: winter-1\r\n") + body
	if err := submit(t, conn, "news@shop.test", []string{"ann@example.test"}, first); err != nil {
		t.Fatal(err)
	}
	walk(t, r, c, 15*time.Minute, 48*time.Hour, func() bool { return len(up.messages()) > 0 })
	waitFor(t, "the first release", func() bool { return len(up.messages()) == 1 })
	step(t, r, c, 24*time.Hour)
	// Resent under another campaign, with the deadline moved.
	again := strings.Replace(first, "before Friday", "before Sunday", 1)
	again = strings.Replace(again, "winter-1", "winter-2", 1)
	again = strings.Replace(again, "<winter-boots@", "<winter-boots-2@", 1)
	if err := submit(t, conn, "news@shop.test", []string{"ann@example.test"}, again); err != nil {
		t.Fatal(err)
	}
	var env store.Envelope
	walk(t, r, c, 15*time.Minute, 48*time.Hour, func() bool {
		env = envelopeOf(t, r.DB(), "ann@example.test", 1)
		return env.State == store.StateSuppressed
	})
	recs := decisionsOf(t, r.DB(), env.ID)
	if env.State != store.StateSuppressed || !slices.Contains(recs[len(recs)-1].Reasons, "near-duplicate") {
		t.Fatalf("resent mail: %s %+v %+v", env.State, recs, recs[len(recs)-1].Numbers)
	}
	if n := len(up.messages()); n != 1 {
		t.Errorf("%d deliveries; the near-duplicate went out", n)
	}
}

// Global caps: with one release a day and no gap, three messages a few
// hours apart go out at least a day apart.
func TestGlobalCapRespected(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Governor.Caps = config.Caps{PerDay: 1}
	cfg.Governor.Strictness = 0.1
	r := startRelayAt(t, cfg, c)
	conn := dial(t, r)
	for i, s := range []string{"Garden chairs", "Kitchen knives", "Rain coats"} {
		if err := submit(t, conn, "news@shop.test", []string{"ann@example.test"},
			marketing(s, "X-Kadenz-Topics: t"+string(rune('a'+i))+"\r\nX-Kadenz-Priority: 90\r\n")); err != nil {
			t.Fatal(err)
		}
		step(t, r, c, 3*time.Hour)
	}
	walk(t, r, c, time.Hour, 5*24*time.Hour, func() bool { return false })
	var releases []time.Time
	for i := range 3 {
		for _, rec := range decisionsOf(t, r.DB(), envelopeOf(t, r.DB(), "ann@example.test", i).ID) {
			if rec.Action == "release" {
				releases = append(releases, rec.At)
			}
		}
	}
	assertApart(t, releases, 24*time.Hour)
}

// Exempt mail is released at once, like holdout mail, and still counted
// in the recipient's history; an unsubscribe still wins.
func TestExemptCampaignReleasedAtOnceAndCounted(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Governor.CampaignRules = []config.CampaignRule{{Campaign: "price-alert", Exempt: true}}
	r := startRelayAt(t, cfg, c)
	unsubscribe(t, r.DB(), "gone@example.test")
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test", "gone@example.test"},
		marketing("Price alert", "X-Kadenz-Campaign: price-alert\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "undelayed exempt delivery", func() bool { return len(up.messages()) == 1 })
	ann := envelopeOf(t, r.DB(), "ann@example.test", 0)
	if recs := decisionsOf(t, r.DB(), ann.ID); len(recs) != 1 || !slices.Contains(recs[0].Reasons, "exempt") {
		t.Errorf("exempt record %+v", recs)
	}
	raw, _ := r.DB().Profile("ann@example.test")
	if p, err := scoring.DecodeProfile(raw); err != nil || len(p.History) != 1 || p.History[0].Campaign != "price-alert" {
		t.Errorf("history after an exempt release: %+v %v", p, err)
	}
	if e := envelopeOf(t, r.DB(), "gone@example.test", 0); e.State != store.StateHeld {
		t.Errorf("unsubscribed recipient's exempt mail: %s; want held for the engine to suppress", e.State)
	}
}
