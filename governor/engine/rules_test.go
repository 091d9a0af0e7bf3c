package engine

import (
	"testing"
	"time"

	"kadenz/config"
	"kadenz/scoring"
)

func TestSendWindowsAllowAndNext(t *testing.T) {
	w, err := newSendWindows([]string{"* 9-17 * * 1-5", "0-29 10 * * 6"})
	if err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, c := range []struct {
		t     time.Time
		allow bool
		next  time.Time
	}{
		{monday10, true, monday10},
		{time.Date(2026, 11, 23, 17, 59, 30, 0, time.UTC), true, time.Date(2026, 11, 23, 17, 59, 30, 0, time.UTC)},
		{time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC), false, time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)},
		{time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC), false, time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}, // Friday night -> Saturday 10:00
		{time.Date(2026, 11, 28, 10, 30, 0, 0, time.UTC), false, time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)},
		// Read in the time's own zone: 08:30 UTC is 09:30 in Berlin.
		{time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC).In(berlin), true, time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC)},
		{time.Date(2026, 11, 23, 8, 30, 0, 0, time.UTC), false, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)},
	} {
		if got := w.Allows(c.t); got != c.allow {
			t.Errorf("Allows(%v) = %v", c.t, got)
		}
		if got := w.next(c.t); !got.Equal(c.next) {
			t.Errorf("next(%v) = %v, want %v", c.t, got, c.next)
		}
	}
}

func TestRuleCapFree(t *testing.T) {
	rule := &config.CampaignRule{Sender: "deals@shop.test", Caps: config.Caps{PerDay: 1, MinGap: 2 * time.Hour}}
	hist := []scoring.Release{
		{At: monday10, Sender: "deals@shop.test"},
		{At: monday10.Add(time.Hour), Sender: "news@shop.test"}, // another sender: does not count
	}
	for _, c := range []struct{ at, want time.Time }{
		{monday10.Add(3 * time.Hour), monday10.Add(24 * time.Hour)},
		{monday10.Add(25 * time.Hour), monday10.Add(25 * time.Hour)},
		{monday10.Add(-30 * time.Hour), monday10.Add(-30 * time.Hour)},
	} {
		if got := ruleCapFree(rule, hist, c.at); !got.Equal(c.want) {
			t.Errorf("ruleCapFree(%v) = %v, want %v", c.at, got, c.want)
		}
	}
	gap := &config.CampaignRule{Campaign: "x", Caps: config.Caps{MinGap: 2 * time.Hour}}
	if got := ruleCapFree(gap, []scoring.Release{{At: monday10, Campaign: "X"}}, monday10.Add(time.Hour)); !got.Equal(monday10.Add(2 * time.Hour)) {
		t.Errorf("min gap: free at %v", got)
	}
}

func TestFirstMatchingRuleWins(t *testing.T) {
	g := &config.Governor{CampaignRules: []config.CampaignRule{
		{Campaign: "spring-*", Sender: "*@news.shop.test", Exempt: true},
		{Campaign: "spring-*", Caps: config.Caps{PerDay: 1}},
		{Sender: "*@shop.test", Caps: config.Caps{PerWeek: 2}},
	}}
	for _, c := range []struct {
		campaign, sender string
		want             int
	}{
		{"Spring-Sale", "a@news.shop.test", 0},
		{"spring-sale", "a@shop.test", 1},
		{"winter", "a@shop.test", 2},
		{"winter", "a@other.test", -1},
	} {
		if _, got := ruleFor(g, c.campaign, c.sender); got != c.want {
			t.Errorf("rule for %s from %s: %d, want %d", c.campaign, c.sender, got, c.want)
		}
	}
}

var monday10 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func TestAddNoteGoesIntoTheFirstLine(t *testing.T) {
	rec := Record{Explanation: "\"Sale\" is released at Mon 10:00.\nvalue 0.1 = …\nreasons: worth-it"}
	rec.addNote("Moved to the next send window.")
	want := "\"Sale\" is released at Mon 10:00. Moved to the next send window.\nvalue 0.1 = …\nreasons: worth-it"
	if rec.Explanation != want {
		t.Errorf("explanation %q, want %q", rec.Explanation, want)
	}
	one := Record{}
	one.addNote("Held for review.")
	if one.Explanation != "Held for review." {
		t.Errorf("note on an empty explanation: %q", one.Explanation)
	}
}
