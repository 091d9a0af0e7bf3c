package scoring

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// sender is a sender with a long history: 5,000 releases read, 20% opened,
// 12.5% of opens clicked.
func senderHistory(now time.Time) CampaignCounts {
	return CampaignCounts{Released: 5000, ReleasedAt: now.Add(-10 * 24 * time.Hour), Opens: 1000, Clicks: 125, Stops: 10}
}

func TestCampaignWithoutClicksLosesWeight(t *testing.T) {
	now := t0
	pop, pol := DefaultPopulation(), DefaultPolicy()
	for _, n := range []float64{50, 200, 1000} {
		ev := &CampaignEvidence{Key: "c:spring", Sender: senderHistory(now),
			Campaign: CampaignCounts{Released: n, ReleasedAt: now.Add(-24 * time.Hour), Opens: 0.2 * n}}
		f, note := CampaignFactor(ev, &pop, pol, now)
		if f >= 1 || note.Exploring {
			t.Errorf("%.0f releases read, opened as usual, no click: factor %.3f (exploring %v), want below 1", n, f, note.Exploring)
		}
	}
	// The more releases without a click, the lower.
	prev := 2.0
	for _, n := range []float64{30, 60, 120, 240, 480} {
		ev := &CampaignEvidence{Sender: senderHistory(now), Campaign: CampaignCounts{Released: n, ReleasedAt: now.Add(-24 * time.Hour), Opens: 0.2 * n}}
		f, _ := CampaignFactor(ev, &pop, pol, now)
		if f > prev {
			t.Errorf("%.0f releases without a click: factor %.3f, above %.3f for fewer", n, f, prev)
		}
		prev = f
	}
	// A campaign that is clicked twice as often as its sender's gains.
	good := &CampaignEvidence{Sender: senderHistory(now), Campaign: CampaignCounts{Released: 400, ReleasedAt: now.Add(-24 * time.Hour), Opens: 80, Clicks: 20}}
	if f, _ := CampaignFactor(good, &pop, pol, now); f <= 1.1 {
		t.Errorf("a campaign clicked twice as often as its sender's: factor %.3f", f)
	}
	// One that makes readers leave loses weight; one with no stops gains
	// nothing for it.
	leaving := &CampaignEvidence{Sender: senderHistory(now), Campaign: CampaignCounts{Released: 1000, ReleasedAt: now.Add(-24 * time.Hour), Opens: 200, Clicks: 25, Stops: 12}}
	if f, _ := CampaignFactor(leaving, &pop, pol, now); f >= 0.9 {
		t.Errorf("a campaign with six times its sender's stops: factor %.3f", f)
	}
	usual := &CampaignEvidence{Sender: senderHistory(now), Campaign: CampaignCounts{Released: 1000, ReleasedAt: now.Add(-24 * time.Hour), Opens: 200, Clicks: 25}}
	if f, _ := CampaignFactor(usual, &pop, pol, now); f < 0.97 || f > 1.03 {
		t.Errorf("a campaign like its sender, without stops: factor %.3f, want about 1", f)
	}
	// Off.
	pol.CampaignWeight = 0
	if f, _ := CampaignFactor(good, &pop, pol, now); f != 1 {
		t.Errorf("off: factor %.3f", f)
	}
}

// Exploration: a campaign is not judged down before CampaignExplore of
// its releases could have been read, even with no engagement at all; and
// releases just made do not count as read.
func TestCampaignExploresFirst(t *testing.T) {
	now := t0
	pop, pol := DefaultPopulation(), DefaultPolicy()
	young := &CampaignEvidence{Sender: senderHistory(now), Campaign: CampaignCounts{Released: 10, ReleasedAt: now.Add(-48 * time.Hour)}}
	if f, note := CampaignFactor(young, &pop, pol, now); f != 1 || !note.Exploring {
		t.Errorf("10 releases, nothing earned: factor %.3f exploring %v, want 1 while exploring", f, note.Exploring)
	}
	fresh := &CampaignEvidence{Sender: senderHistory(now), Campaign: CampaignCounts{Released: 500, ReleasedAt: now.Add(-5 * time.Minute)}}
	if f, note := CampaignFactor(fresh, &pop, pol, now); f != 1 || note.Read > 20 {
		t.Errorf("500 releases five minutes old: factor %.3f with %.1f read, want them mostly unread", f, note.Read)
	}
	if f, _ := CampaignFactor(nil, &pop, pol, now); f != 1 {
		t.Errorf("no evidence: factor %.3f", f)
	}
}

// Property: more clicks never lower a campaign's factor, and the factor
// stays within its bounds.
func TestCampaignMoreClicksNeverLower(t *testing.T) {
	pop, pol := DefaultPopulation(), DefaultPolicy()
	for seed := range uint64(500) {
		r := rand.New(rand.NewPCG(seed, 3))
		now := t0
		s := CampaignCounts{Released: float64(r.IntN(5000)), ReleasedAt: now.Add(-time.Duration(r.IntN(500)) * time.Hour)}
		s.Opens = float64(r.IntN(int(s.Released)/3 + 1))
		s.Clicks = float64(r.IntN(int(s.Opens)/4 + 1))
		s.Stops = float64(r.IntN(10))
		c := CampaignCounts{Released: float64(r.IntN(400)), ReleasedAt: now.Add(-time.Duration(r.IntN(48)) * time.Hour)}
		c.Opens = float64(r.IntN(int(c.Released)/2 + 1))
		c.Clicks = float64(r.IntN(int(c.Opens)/2 + 1))
		c.Stops = float64(r.IntN(3))
		ev := &CampaignEvidence{Sender: s, Campaign: c}
		f0, _ := CampaignFactor(ev, &pop, pol, now)
		ev.Campaign.Clicks++
		ev.Campaign.Opens++ // a click implies an open
		f1, _ := CampaignFactor(ev, &pop, pol, now)
		if f1 < f0-1e-12 {
			t.Fatalf("seed %d: one more click lowered the factor from %.6f to %.6f (%+v)", seed, f0, f1, ev)
		}
		if f0 < 1/pol.CampaignMaxLift-1e-12 || f0 > pol.CampaignMaxLift+1e-12 {
			t.Fatalf("seed %d: factor %.4f out of bounds", seed, f0)
		}
	}
}

// Deterministic replay: the same evidence gives the same decisions, and
// a campaign that earned nothing after many releases loses its slot to
// one that earned clicks, with the reason in the explanation.
func TestCampaignFactorInDecisions(t *testing.T) {
	now := t0
	p := &Profile{}
	mk := func(id, campaign string, ev *CampaignEvidence) Held {
		return Held{ID: id, Features: &Features{Campaign: campaign, Subject: campaign, Priority: DefaultPriority, Topics: []string{"shoes"}}, Received: now, Campaign: ev}
	}
	bad := &CampaignEvidence{Key: "c:bad", Sender: senderHistory(now), Campaign: CampaignCounts{Released: 600, ReleasedAt: now.Add(-24 * time.Hour), Opens: 40}}
	good := &CampaignEvidence{Key: "c:good", Sender: senderHistory(now), Campaign: CampaignCounts{Released: 600, ReleasedAt: now.Add(-24 * time.Hour), Opens: 160, Clicks: 40}}
	in := Input{Now: now, Recipient: "ann@example.test", Profile: p, Held: []Held{mk("a", "bad", bad), mk("b", "good", good)},
		Caps: Caps{PerDay: 1}}
	d1, d2 := Decide(in), Decide(in)
	for i := range d1 {
		if d1[i].Action != d2[i].Action || !d1[i].At.Equal(d2[i].At) || !reflect.DeepEqual(d1[i].Numbers, d2[i].Numbers) {
			t.Fatalf("replay differs: %+v vs %+v", d1[i], d2[i])
		}
	}
	if d1[0].Numbers.Campaign >= 1 || d1[1].Numbers.Campaign <= 1 {
		t.Fatalf("factors: bad %.3f, good %.3f", d1[0].Numbers.Campaign, d1[1].Numbers.Campaign)
	}
	if d1[1].Action != ActionRelease || d1[0].Action == ActionRelease && d1[0].At.Equal(d1[1].At) {
		t.Errorf("the good campaign did not win the day's slot: bad %v, good %v", d1[0].Action, d1[1].Action)
	}
	if got := d1[0].Explain(); !containsString(got, "campaign bad: 0 clicks, 40 opens") {
		t.Errorf("explanation: %s", got)
	}
}

func TestRecordEventCounted(t *testing.T) {
	p := &Profile{}
	m := DefaultMemory()
	p.RecordRelease(Release{At: t0, MessageID: "e1", Sender: "news@shop.test", Quality: "c:spring"}, m)
	p.RecordRelease(Release{At: t0, MessageID: "e2", Sender: "news@shop.test"}, m) // not counted: no key
	at := t0.Add(time.Hour)
	cases := []struct {
		ev   Event
		want Engagement
	}{
		{Event{Kind: EventOpen, At: at, MessageID: "e1"}, Engagement{Quality: "c:spring", Sender: "news@shop.test", Open: true, OpenedAfter: time.Hour}},
		{Event{Kind: EventOpen, At: at, MessageID: "e1"}, Engagement{}}, // a repeat
		{Event{Kind: EventClick, At: at, MessageID: "e1"}, Engagement{Quality: "c:spring", Sender: "news@shop.test", Click: true}},
		{Event{Kind: EventClick, At: at, MessageID: "e1"}, Engagement{}},
		{Event{Kind: EventClick, At: at, MessageID: "e2"}, Engagement{Sender: "news@shop.test", Open: true, Click: true, OpenedAfter: time.Hour}}, // no key: population counts only
		{Event{Kind: EventClick, At: at, MessageID: "unknown"}, Engagement{}},
		{Event{Kind: EventUnsubscribe, At: at, MessageID: "e1"}, Engagement{Quality: "c:spring", Sender: "news@shop.test", Stop: true}},
		{Event{Kind: EventComplaint, At: at, MessageID: "e1"}, Engagement{}}, // already stopped
	}
	for i, c := range cases {
		got := p.RecordEventCounted(c.ev, nil, m)
		got.Topics, got.Terms = nil, TermBits{}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%d (%v on %s): %+v, want %+v", i, c.ev.Kind, c.ev.MessageID, got, c.want)
		}
	}
	// A stop that names no message counts (for the list's stop rate); one
	// about a message they were not released counts nothing.
	for _, c := range []struct {
		id   string
		want Engagement
	}{{"", Engagement{Stop: true}}, {"transactional-1", Engagement{}}} {
		r := &Profile{}
		r.RecordRelease(Release{At: t0, MessageID: "e1", Quality: "s:1"}, m)
		if got := r.RecordEventCounted(Event{Kind: EventComplaint, At: at, MessageID: c.id}, nil, m); !reflect.DeepEqual(got, c.want) {
			t.Errorf("a complaint about %q: %+v, want %+v", c.id, got, c.want)
		}
		if got := r.RecordEventCounted(Event{Kind: EventUnsubscribe, At: at}, nil, m); got.Counted() {
			t.Errorf("a second stop about %q counted: %+v", c.id, got)
		}
	}
	q := &Profile{}
	q.RecordRelease(Release{At: t0, MessageID: "e1", Quality: "s:1"}, m)
	if got := q.RecordEventCounted(Event{Kind: EventClick, At: at, MessageID: "e1"}, nil, m); !got.Open || !got.Click {
		t.Errorf("a first click counts as an open too: %+v", got)
	}
}

func TestQualityKey(t *testing.T) {
	for _, c := range []struct {
		f    *Features
		want string
	}{
		{&Features{Campaign: "Spring-Sale", Subject: "x"}, "c:spring-sale"},
		{&Features{Campaign: "news.example", CampaignFromList: true, Subject: "Issue 12"}, QualityKey(&Features{Subject: "issue 12"})},
		{&Features{}, ""},
		{nil, ""},
	} {
		if got := QualityKey(c.f); got != c.want {
			t.Errorf("%+v: %q, want %q", c.f, got, c.want)
		}
	}
	if QualityKey(&Features{Subject: "a"}) == QualityKey(&Features{Subject: "b"}) {
		t.Error("different subjects share a key")
	}
}

// A list's next post is not a repeat of its campaign: posts share the
// List-Id, not the offer. A campaign named by the sender still is.
func TestListPostIsNotARepeatCampaign(t *testing.T) {
	p := &Profile{}
	p.RecordRelease(Release{At: t0.Add(-24 * time.Hour), MessageID: "old", Campaign: "news.example", Fingerprint: 0xffff}, DefaultMemory())
	pop, pol := DefaultPopulation(), DefaultPolicy()
	post := &Features{Campaign: "news.example", CampaignFromList: true, Priority: DefaultPriority, Fingerprint: 0xffff00000000}
	if r := ScoreRelevance(post, p, &pop, pol, t0); r.RepeatCampaign || r.Novelty != 1 {
		t.Errorf("a list's new post: repeat %v, novelty %.2f", r.RepeatCampaign, r.Novelty)
	}
	again := &Features{Campaign: "news.example", Priority: DefaultPriority, Fingerprint: 0xffff00000000}
	if r := ScoreRelevance(again, p, &pop, pol, t0); !r.RepeatCampaign {
		t.Error("a named campaign's second message is not a repeat")
	}
}

// The factor follows clicks per release, not opens: a campaign opened
// twice as often as its sender's mail with the sender's clicks per
// release gains little, one opened as often and clicked twice as often
// gains more.
func TestCampaignFactorFollowsClicksNotOpens(t *testing.T) {
	now := t0
	pop, pol := DefaultPopulation(), DefaultPolicy()
	at := now.Add(-24 * time.Hour)
	opened := &CampaignEvidence{Sender: senderHistory(now), Campaign: CampaignCounts{Released: 1000, ReleasedAt: at, Opens: 400, Clicks: 25}}
	clicked := &CampaignEvidence{Sender: senderHistory(now), Campaign: CampaignCounts{Released: 1000, ReleasedAt: at, Opens: 200, Clicks: 50}}
	fo, _ := CampaignFactor(opened, &pop, pol, now)
	fc, _ := CampaignFactor(clicked, &pop, pol, now)
	if fo > 1.15 || fc < 1.4 {
		t.Errorf("opened twice as often: factor %.3f (want about 1); clicked twice as often: %.3f (want well above)", fo, fc)
	}
}
