package scoring

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 4, 10, 17, 0, 0, time.UTC) // a Tuesday

func TestRecordEventCountsOncePerRelease(t *testing.T) {
	m := DefaultMemory()
	var p Profile
	p.RecordRelease(Release{At: t0, MessageID: "m1", Topics: []string{"Shoes"}}, m)
	for i := 0; i < 5; i++ { // an image proxy opening the same mail again and again
		p.RecordEvent(Event{Kind: EventOpen, At: t0, MessageID: "m1"}, nil, m)
	}
	p.RecordEvent(Event{Kind: EventClick, At: t0, MessageID: "m1"}, nil, m)
	p.RecordEvent(Event{Kind: EventClick, At: t0, MessageID: "m1"}, nil, m)
	want := Counts{Sends: 1, Opens: 1, Clicks: 1}
	if p.All != want || p.Topics["shoes"] != want {
		t.Errorf("all %+v, shoes %+v, want %+v", p.All, p.Topics["shoes"], want)
	}
	if h := p.History[0]; !h.Opened || !h.Clicked || h.Replied {
		t.Errorf("history flags %+v", h)
	}
	if got := p.Hours[HourOfWeek(t0)]; got != 2 { // one open, one click
		t.Errorf("hour bucket %v", got)
	}
}

func TestRecordEventClickImpliesOpen(t *testing.T) {
	m := DefaultMemory()
	var p Profile
	p.RecordRelease(Release{At: t0, MessageID: "m1"}, m)
	p.RecordEvent(Event{Kind: EventClick, At: t0.Add(time.Hour), MessageID: "m1"}, nil, m)
	if p.All.Opens != 1 || p.All.Clicks != 1 {
		t.Errorf("counts %+v", p.All)
	}
}

func TestRecordEventUnknownMessageUsesEventTopics(t *testing.T) {
	m := DefaultMemory()
	var p Profile
	p.RecordEvent(Event{Kind: EventReply, At: t0, MessageID: "gone", Topics: []string{"wine"}}, nil, m)
	if p.Topics["wine"].Replies != 1 || p.All.Replies != 1 {
		t.Errorf("counts %+v", p.Topics)
	}
}

func TestProfileDecay(t *testing.T) {
	m := DefaultMemory()
	var p Profile
	p.RecordRelease(Release{At: t0}, m)
	p.RecordRelease(Release{At: t0.Add(m.HalfLife)}, m)
	if math.Abs(p.All.Sends-1.5) > 1e-9 {
		t.Errorf("sends %v, want 1.5 after one half-life", p.All.Sends)
	}
	// A late event older than DecayedAt weighs what it would have by now.
	p.RecordEvent(Event{Kind: EventOpen, At: t0}, nil, m)
	if math.Abs(p.All.Opens-0.5) > 1e-9 {
		t.Errorf("opens %v, want 0.5", p.All.Opens)
	}
}

func TestHistoryBoundedAndSorted(t *testing.T) {
	m := Memory{MaxHistory: 10}
	var p Profile
	for i := 0; i < 30; i++ {
		// Out of order by a few hours now and then.
		at := t0.Add(time.Duration(i)*time.Hour - time.Duration(i%3)*90*time.Minute)
		p.RecordRelease(Release{At: at}, m)
	}
	if len(p.History) != 10 {
		t.Fatalf("history has %d entries", len(p.History))
	}
	for i := 1; i < len(p.History); i++ {
		if p.History[i].At.Before(p.History[i-1].At) {
			t.Fatalf("history not sorted at %d", i)
		}
	}
}

func TestHardSignals(t *testing.T) {
	m := DefaultMemory()
	var p Profile
	p.RecordEvent(Event{Kind: EventUnsubscribe, At: t0}, nil, m)
	p.RecordEvent(Event{Kind: EventUnsubscribe, At: t0.Add(time.Hour)}, nil, m)
	p.RecordEvent(Event{Kind: EventComplaint, At: t0}, nil, m)
	p.RecordEvent(Event{Kind: EventHardBounce, At: t0}, nil, m)
	p.RecordEvent(Event{Kind: EventAway, At: t0, Until: t0.Add(48 * time.Hour)}, nil, m)
	p.RecordEvent(Event{Kind: EventAway, At: t0, Until: t0.Add(24 * time.Hour)}, nil, m)
	if !p.Unsubscribed.Equal(t0) || !p.Complained.Equal(t0) || !p.HardBounced.Equal(t0) || !p.AwayUntil.Equal(t0.Add(48*time.Hour)) {
		t.Errorf("signals %+v", p)
	}
}

func TestHourOfWeekUsesRecipientZone(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	var p Profile
	p.RecordEvent(Event{Kind: EventOpen, At: t0}, tokyo, DefaultMemory()) // Tue 19:17 in Tokyo
	if p.Hours[2*24+19] != 1 {
		t.Errorf("open not in Tuesday 19:00 bucket")
	}
}

func TestProfileJSONRoundTrip(t *testing.T) {
	m := DefaultMemory()
	var p Profile
	p.Timezone, p.Value, p.HasValue = "Europe/Berlin", 70, true
	p.RecordRelease(Release{At: t0, MessageID: "m1", Campaign: "c", Topics: []string{"a"}, Fingerprint: 42}, m)
	p.RecordEvent(Event{Kind: EventClick, At: t0.Add(time.Hour), MessageID: "m1"}, nil, m)
	p.RecordEvent(Event{Kind: EventAway, Until: t0.Add(time.Hour)}, nil, m)
	b, err := json.Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	var q Profile
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Errorf("round trip changed the profile:\n%+v\n%+v", p, q)
	}
}

// The stored form round-trips, and no bytes at all is a new profile.
func TestProfileCodec(t *testing.T) {
	p, err := DecodeProfile(nil)
	if err != nil || p == nil || p.HardStopped() {
		t.Fatalf("DecodeProfile(nil) = %+v, %v; want an empty profile", p, err)
	}
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	p.Timezone, p.Complained = "Europe/Berlin", at
	p.RecordRelease(Release{At: at, MessageID: "m1-1", Campaign: "boots", Topics: []string{"shoes"}}, DefaultMemory())
	raw, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	q, err := DecodeProfile(raw)
	if err != nil || q.Timezone != "Europe/Berlin" || !q.HardStopped() || len(q.History) != 1 || q.History[0].MessageID != "m1-1" {
		t.Errorf("round trip: %+v, %v", q, err)
	}
	if _, err := DecodeProfile([]byte("{broken")); err == nil {
		t.Error("a damaged profile decoded without an error")
	}
	out, err := UpdateStored(raw, func(p *Profile) { p.Complained = time.Time{} })
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := DecodeProfile(out); q.HardStopped() || q.Timezone != "Europe/Berlin" {
		t.Errorf("UpdateStored lost or kept the wrong fields: %+v", q)
	}
}
