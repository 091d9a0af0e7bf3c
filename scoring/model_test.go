package scoring

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var topicNames = []string{"shoes", "running", "wine", "travel", "garden"}

// randomProfile builds a profile with n releases over the 60 days before
// now and random engagement, from a seed, so property tests are
// reproducible.
func randomProfile(r *rand.Rand, now time.Time, n int) *Profile {
	m := DefaultMemory()
	p := &Profile{}
	at := now.Add(-60 * 24 * time.Hour)
	step := 60 * 24 * time.Hour / time.Duration(n+1)
	like := 0.1 + r.Float64()*0.8
	for i := 0; i < n; i++ {
		at = at.Add(time.Duration(r.Int64N(int64(step)*2) + 1))
		if at.After(now) {
			break
		}
		topics := []string{topicNames[r.IntN(len(topicNames))]}
		id := fmt.Sprintf("h%d", i)
		p.RecordRelease(Release{At: at, MessageID: id, Campaign: fmt.Sprintf("c%d", r.IntN(20)), Topics: topics, Fingerprint: r.Uint64()}, m)
		ev := at.Add(time.Duration(r.IntN(48)) * time.Hour)
		if ev.After(now) {
			continue
		}
		if r.Float64() < like {
			p.RecordEvent(Event{Kind: EventOpen, At: ev, MessageID: id}, nil, m)
			if r.Float64() < 0.3 {
				p.RecordEvent(Event{Kind: EventClick, At: ev, MessageID: id}, nil, m)
			}
		}
	}
	return p
}

func randomHeld(r *rand.Rand, now time.Time, n int) []Held {
	held := make([]Held, n)
	for i := range held {
		f := &Features{
			Subject:     fmt.Sprintf("message %d", i),
			Campaign:    fmt.Sprintf("c%d", r.IntN(40)),
			Topics:      []string{topicNames[r.IntN(len(topicNames))]},
			Priority:    r.IntN(101),
			Fingerprint: r.Uint64(),
		}
		if r.IntN(3) == 0 {
			f.Expires = now.Add(time.Duration(r.IntN(96)+1) * time.Hour)
		}
		if r.IntN(5) == 0 {
			f.NotBefore = now.Add(time.Duration(r.IntN(30)) * time.Hour)
		}
		held[i] = Held{ID: fmt.Sprintf("e%d", i), Features: f, Received: now.Add(-time.Duration(r.IntN(72)) * time.Hour)}
	}
	return held
}

func TestColdStartGetsPopulationDefaults(t *testing.T) {
	pop := DefaultPopulation()
	pop.TopicLift = map[string]float64{"wine": 1.5}
	pol := DefaultPolicy()
	f := &Features{Priority: DefaultPriority, Topics: []string{"shoes"}}
	rel := ScoreRelevance(f, &Profile{}, &pop, pol, t0)
	rate := pop.rate(&pol)
	if math.Abs(rel.Affinity-rate) > 1e-12 || rel.Overall != rate || rel.Value != rate || rel.NearestBits != -1 {
		t.Errorf("cold start %+v, want population rate %v", rel, rate)
	}
	f.Topics = []string{"wine"}
	if rel := ScoreRelevance(f, &Profile{}, &pop, pol, t0); math.Abs(rel.Affinity-1.5*rate) > 1e-12 {
		t.Errorf("cold start on a popular topic: %v, want %v", rel.Affinity, 1.5*rate)
	}
	fat := ScoreFatigue(&Profile{}, &pop, pol, -1, t0)
	if fat.Sensitivity != 1 || fat.CustomerValue != 1 || fat.Volume != 0 || fat.IgnoredStreak != 0 {
		t.Errorf("cold start fatigue %+v", fat)
	}
	if want := pol.Strictness * pol.LossWeight * pop.UnsubscribeRate; math.Abs(fat.Cost(0)-want) > 1e-12 {
		t.Errorf("cold start cost %v, want %v", fat.Cost(0), want)
	}
	// Decide with nil profile, population and policy uses the defaults.
	ds := Decide(Input{Now: t0, Recipient: "new@example.org", Held: []Held{{ID: "e", Features: f, Received: t0}}})
	defaults := DefaultPopulation()
	if ds[0].Numbers.PopulationRate != defaults.rate(&pol) || ds[0].Numbers.Sensitivity != 1 {
		t.Errorf("nil inputs: %+v", ds[0].Numbers)
	}
}

func TestShrinkageNeedsEvidence(t *testing.T) {
	// One click from one mail must move the estimate far less than twenty
	// clicks from twenty mails.
	pop, pol := DefaultPopulation(), DefaultPolicy()
	f := &Features{Priority: DefaultPriority, Topics: []string{"shoes"}}
	profile := func(n int) *Profile {
		p := &Profile{}
		for i := 0; i < n; i++ {
			id := fmt.Sprint(i)
			p.RecordRelease(Release{At: t0, MessageID: id, Topics: f.Topics}, pol.Memory)
			p.RecordEvent(Event{Kind: EventClick, At: t0, MessageID: id}, nil, pol.Memory)
		}
		return p
	}
	one := ScoreRelevance(f, profile(1), &pop, pol, t0).Affinity
	twenty := ScoreRelevance(f, profile(20), &pop, pol, t0).Affinity
	rate := pop.rate(&pol)
	if !(rate < one && one < 0.3 && one < twenty && twenty > 0.5) {
		t.Errorf("population %.3f, one click %.3f, twenty clicks %.3f", rate, one, twenty)
	}
}

// Property: more clicks on a topic never lower that topic's relevance.
func TestPropertyClicksNeverLowerRelevance(t *testing.T) {
	pop, pol := DefaultPopulation(), DefaultPolicy()
	for seed := uint64(0); seed < 300; seed++ {
		r := rand.New(rand.NewPCG(seed, 1))
		p := randomProfile(r, t0, r.IntN(120))
		topic := topicNames[r.IntN(len(topicNames))]
		f := &Features{Priority: r.IntN(101), Topics: []string{topic}}
		if r.IntN(2) == 0 {
			f.Topics = append(f.Topics, topicNames[r.IntN(len(topicNames))])
		}
		before := ScoreRelevance(f, p, &pop, pol, t0).Value
		for k := 0; k < 1+r.IntN(5); k++ {
			// A click on a released message of that topic, or on one that
			// left the history.
			ev := Event{Kind: EventClick, At: t0.Add(-time.Duration(r.IntN(100)) * time.Hour), Topics: []string{topic}}
			for i := len(p.History) - 1; i >= 0 && r.IntN(2) == 0; i-- {
				if p.History[i].Topics[0] == topic {
					ev.MessageID = p.History[i].MessageID
					break
				}
			}
			p.RecordEvent(ev, nil, pol.Memory)
			after := ScoreRelevance(f, p, &pop, pol, t0).Value
			if after < before-1e-12 {
				t.Fatalf("seed %d: a click on %q lowered value %v -> %v", seed, topic, before, after)
			}
			before = after
		}
	}
}

// Property: a near-duplicate of something released lately scores below the
// original, and an older copy of the same campaign scores below a new one.
func TestPropertyNearDuplicateScoresBelowOriginal(t *testing.T) {
	pop, pol := DefaultPopulation(), DefaultPolicy()
	for seed := uint64(0); seed < 300; seed++ {
		r := rand.New(rand.NewPCG(seed, 2))
		p := randomProfile(r, t0.Add(-24*time.Hour), r.IntN(60))
		orig := &Features{Priority: r.IntN(101), Topics: []string{topicNames[r.IntN(len(topicNames))]}, Fingerprint: r.Uint64() | 1}
		before := ScoreRelevance(orig, p, &pop, pol, t0)
		// Release a mail whose fingerprint differs in a few bits.
		dup := orig.Fingerprint
		for i := 0; i < r.IntN(pol.DuplicateBits+1); i++ {
			dup ^= 1 << uint(r.IntN(64))
		}
		p.RecordRelease(Release{At: t0.Add(-time.Duration(r.IntN(24*20)) * time.Hour), Fingerprint: dup, Topics: orig.Topics}, pol.Memory)
		after := ScoreRelevance(orig, p, &pop, pol, t0)
		if !(after.Value < before.Value) || after.Novelty != pol.DuplicateValue {
			t.Fatalf("seed %d: near-duplicate value %v (novelty %v), original %v", seed, after.Value, after.Novelty, before.Value)
		}
	}
}

func TestNoveltyRamp(t *testing.T) {
	pol := DefaultPolicy()
	pop := DefaultPopulation()
	var p Profile
	p.RecordRelease(Release{At: t0.Add(-time.Hour), Fingerprint: 0xffff, Campaign: "old"}, pol.Memory)
	tests := []struct {
		fp       uint64
		campaign string
		want     float64
	}{
		{0xffff, "", pol.DuplicateValue},
		{0xffff ^ (1<<pol.DuplicateBits - 1), "", pol.DuplicateValue},
		{0xffff ^ (1<<(pol.DuplicateBits+1) - 1), "", pol.DuplicateValue + (1-pol.DuplicateValue)/float64(pol.DistinctBits-pol.DuplicateBits)},
		{0xffff0000, "", 1},
		{0xffff0000, "old", pol.RepeatCampaignValue},
		{0, "", 1}, // no text, nothing to compare
	}
	for _, tt := range tests {
		f := &Features{Priority: 50, Fingerprint: tt.fp, Campaign: tt.campaign}
		if got := ScoreRelevance(f, &p, &pop, pol, t0).Novelty; math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("fingerprint %x campaign %q: novelty %v, want %v", tt.fp, tt.campaign, got, tt.want)
		}
	}
	// Outside the novelty window nothing counts.
	f := &Features{Priority: 50, Fingerprint: 0xffff, Campaign: "old"}
	if got := ScoreRelevance(f, &p, &pop, pol, t0.Add(pol.NoveltyWindow+time.Hour)).Novelty; got != 1 {
		t.Errorf("novelty after the window %v", got)
	}
}

func TestFatigueGrowsWithVolumeAndStreak(t *testing.T) {
	pop, pol := DefaultPopulation(), DefaultPolicy()
	var p Profile
	// Cost is priced in the recipient's own engagement (Worth), which
	// ignored mail lowers along with every message's value; in that unit
	// each ignored mail must make the next one dearer.
	prevCost, prevSens := 0.0, 0.0
	for i := 0; i < 12; i++ {
		p.RecordRelease(Release{At: t0.Add(-time.Duration(12-i) * 24 * time.Hour), MessageID: fmt.Sprint(i)}, pol.Memory)
		f := ScoreFatigue(&p, &pop, pol, -1, t0)
		if c := f.Cost(f.Volume) / f.Worth; c < prevCost || f.Sensitivity < prevSens {
			t.Fatalf("after %d ignored mails cost/worth %v < %v or sensitivity %v < %v", i+1, c, prevCost, f.Sensitivity, prevSens)
		}
		prevCost, prevSens = f.Cost(f.Volume)/f.Worth, f.Sensitivity
	}
	f := ScoreFatigue(&p, &pop, pol, -1, t0)
	if f.IgnoredStreak != 10 || f.Sensitivity <= 1 { // the two youngest are within the grace period
		t.Errorf("streak %d sensitivity %v", f.IgnoredStreak, f.Sensitivity)
	}
}

func TestFatigueVolumeResponse(t *testing.T) {
	// A recipient who reads mail when it is rare and ignores it when it is
	// frequent is more sensitive than one who reads everything. This is
	// the two-band response, used when the comfort is not learned.
	pop, pol := DefaultPopulation(), DefaultPolicy()
	pol.ComfortSpread = 0
	var sensitive, steady Profile
	at := t0.Add(-200 * 24 * time.Hour)
	for i := 0; i < 60; i++ {
		burst := (i/10)%2 == 1
		if burst {
			at = at.Add(8 * time.Hour)
		} else {
			at = at.Add(5 * 24 * time.Hour)
		}
		id := fmt.Sprint(i)
		sensitive.RecordRelease(Release{At: at, MessageID: id}, pol.Memory)
		steady.RecordRelease(Release{At: at, MessageID: id}, pol.Memory)
		if !burst {
			sensitive.RecordEvent(Event{Kind: EventOpen, At: at, MessageID: id}, nil, pol.Memory)
		}
		steady.RecordEvent(Event{Kind: EventOpen, At: at, MessageID: id}, nil, pol.Memory)
	}
	fs := ScoreFatigue(&sensitive, &pop, pol, -1, t0)
	ft := ScoreFatigue(&steady, &pop, pol, -1, t0)
	if !(fs.VolumeResponse > 1.5 && math.Abs(ft.VolumeResponse-1) < 1e-9) {
		t.Errorf("volume response: sensitive %v, steady %v", fs.VolumeResponse, ft.VolumeResponse)
	}
}

// fortnight builds the history of two weeks at perDay releases a day (the
// last three days too young to count), opening a release when open says
// so; i counts the releases, v is the decayed volume before it.
func fortnight(pol Policy, perDay float64, open func(i int, v float64) bool) Profile {
	var p Profile
	gap := time.Duration(float64(24*time.Hour) / perDay)
	v := 0.0
	i := 0
	for at := t0.Add(-14 * 24 * time.Hour); at.Before(t0); at = at.Add(gap) {
		id := fmt.Sprint(i)
		p.RecordRelease(Release{At: at, MessageID: id}, pol.Memory)
		if open(i, v) {
			p.RecordEvent(Event{Kind: EventOpen, At: at.Add(time.Hour), MessageID: id}, nil, pol.Memory)
		}
		v = v*decay(gap, pol.VolumeHalfLife) + 1
		i++
	}
	return p
}

func TestFatigueComfortLearned(t *testing.T) {
	pop, pol := DefaultPopulation(), DefaultPolicy()
	// Two mails a day for two weeks. The tiring reader opened the first
	// three, while volume was still low, and nothing after, as it rose;
	// the keen reader opens one in three throughout.
	tiring := fortnight(pol, 2, func(i int, _ float64) bool { return i < 3 })
	keen := fortnight(pol, 2, func(i int, _ float64) bool { return i%3 == 0 })
	ft := ScoreFatigue(&tiring, &pop, pol, -1, t0)
	fk := ScoreFatigue(&keen, &pop, pol, -1, t0)
	if !(ft.Comfort < 0.8*pol.ComfortVolume) {
		t.Errorf("tiring reader's comfort %.2f, want well below %v", ft.Comfort, pol.ComfortVolume)
	}
	if fk.Comfort != pol.ComfortVolume {
		t.Errorf("keen reader's comfort %.2f, want %v (never above the population's)", fk.Comfort, pol.ComfortVolume)
	}
	if ft.VolumeResponse != 1 || fk.VolumeResponse != 1 {
		t.Errorf("volume response %v, %v: the learned comfort replaces it", ft.VolumeResponse, fk.VolumeResponse)
	}
	// The tiring reader's ignored streak has already taken their
	// sensitivity to its bound; the comfort is what makes more volume
	// dearer still, and more so the higher the volume.
	if ft.Sensitivity != pol.MaxSensitivity {
		t.Fatalf("sensitivity %v, want the bound %v", ft.Sensitivity, pol.MaxSensitivity)
	}
	per := func(f Fatigue, v float64) float64 { return f.Cost(v) / (f.Worth * f.Sensitivity) }
	for _, v := range []float64{3, 6, 12} {
		if !(per(ft, v) > per(fk, v)) {
			t.Errorf("cost at volume %v per worth and sensitivity: tiring %.4f, keen %.4f", v, per(ft, v), per(fk, v))
		}
	}
	if !(per(ft, 12)/per(fk, 12) > per(ft, 3)/per(fk, 3)) {
		t.Errorf("the tiring reader's extra cost does not grow with volume")
	}
	// A new recipient starts from the population's comfort; with the
	// spread at 0 nobody's comfort is learned.
	if f := ScoreFatigue(&Profile{}, &pop, pol, -1, t0); f.Comfort != pol.ComfortVolume {
		t.Errorf("new recipient's comfort %v", f.Comfort)
	}
	off := pol
	off.ComfortSpread = 0
	if f := ScoreFatigue(&tiring, &pop, off, -1, t0); f.Comfort != pol.ComfortVolume {
		t.Errorf("comfort %v with ComfortSpread 0", f.Comfort)
	}
	// Deterministic: the same history gives the same number.
	if again := ScoreFatigue(&tiring, &pop, pol, -1, t0); again.Comfort != ft.Comfort {
		t.Errorf("comfort %v then %v", ft.Comfort, again.Comfort)
	}
	// One open when volume was high is evidence of tolerance: the model
	// expects almost none there at the population's comfort.
	late := fortnight(pol, 2, func(i int, _ float64) bool { return i == 19 })
	if f := ScoreFatigue(&late, &pop, pol, -1, t0); f.Comfort != pol.ComfortVolume {
		t.Errorf("reader who opened at high volume: comfort %.2f", f.Comfort)
	}
}

func TestComfortGrowsWithEvidence(t *testing.T) {
	// More ignored mail at high volume means a lower comfort, and a
	// stronger prior (smaller spread) holds it nearer the population's.
	pop, pol := DefaultPopulation(), DefaultPolicy()
	prev := pol.ComfortVolume
	for _, perDay := range []float64{1, 2, 3} {
		p := fortnight(pol, perDay, func(_ int, v float64) bool { return v < 2 })
		c := ScoreFatigue(&p, &pop, pol, -1, t0).Comfort
		if !(c < prev) {
			t.Errorf("%v a day ignored after the first: comfort %.2f, not below %.2f", perDay, c, prev)
		}
		prev = c
	}
	p := fortnight(pol, 2, func(_ int, v float64) bool { return v < 2 })
	tight := pol
	tight.ComfortSpread = 0.3
	loose, strict := ScoreFatigue(&p, &pop, pol, -1, t0).Comfort, ScoreFatigue(&p, &pop, tight, -1, t0).Comfort
	if !(strict > loose && strict < pol.ComfortVolume) {
		t.Errorf("comfort with spread 1 %.2f, with 0.3 %.2f", loose, strict)
	}
}

func TestCustomerValueProtects(t *testing.T) {
	pop, pol := DefaultPopulation(), DefaultPolicy()
	var p Profile
	low := ScoreFatigue(&p, &pop, pol, 10, t0).Cost(2)
	mid := ScoreFatigue(&p, &pop, pol, -1, t0).Cost(2)
	high := ScoreFatigue(&p, &pop, pol, 100, t0).Cost(2)
	if !(low < mid && mid < high) {
		t.Errorf("cost by value: 10 -> %v, unknown -> %v, 100 -> %v", low, mid, high)
	}
	p.Value, p.HasValue = 100, true // the profile's value wins over a header's
	if got := ScoreFatigue(&p, &pop, pol, 10, t0).Cost(2); got != high {
		t.Errorf("profile value ignored: %v", got)
	}
}

func TestHourModel(t *testing.T) {
	pol := DefaultPolicy()
	pop := DefaultPopulation()
	p := &Profile{}
	d := decider{prof: p, pop: &pop, pol: pol, now: t0}
	m := d.newHourModel()
	for h := 0; h < HoursPerWeek; h++ {
		if m.lift(h) != 1 {
			t.Fatalf("flat prior, empty profile: lift(%d) = %v", h, m.lift(h))
		}
	}
	// Twenty opens on Tuesdays at 19:00 make that hour (and, smoothed, its
	// neighbours) better than 03:00.
	for i := 0; i < 20; i++ {
		p.RecordEvent(Event{Kind: EventOpen, At: time.Date(2025, 2, 25, 19, 5, 0, 0, time.UTC)}, nil, pol.Memory)
	}
	d.now = p.DecayedAt
	m = d.newHourModel()
	tue := 2 * 24
	if !(m.lift(tue+19) > m.lift(tue+20) && m.lift(tue+20) > m.lift(tue+3)) || m.lift(tue+19) > 2 || m.lift(tue+3) < 0.5 {
		t.Errorf("lifts 19h %v 20h %v 3h %v", m.lift(tue+19), m.lift(tue+20), m.lift(tue+3))
	}
	// Daily pooling: Tuesday's evening habit carries over to Wednesday,
	// though less strongly than on Tuesday itself.
	wed := 3 * 24
	if !(m.lift(wed+19) > 1.2 && m.lift(wed+19) > m.lift(wed+3) && m.lift(tue+19) > m.lift(wed+19)) {
		t.Errorf("pooled lifts: Wednesday 19h %v 3h %v, Tuesday 19h %v", m.lift(wed+19), m.lift(wed+3), m.lift(tue+19))
	}
	// Without pooling an hour of week learns from itself alone.
	d.pol.DailyPooling = 0
	if m = d.newHourModel(); m.lift(wed+19) >= m.lift(wed+3)+1e-9 {
		t.Errorf("unpooled: Wednesday 19h %v > 3h %v", m.lift(wed+19), m.lift(wed+3))
	}
}

// The cost of tiring someone is priced in their own engagement: a reader
// who engages twice as much as average is twice as costly to lose, and
// one who never engages is cheap, as are their messages' values.
func TestFatigueWorth(t *testing.T) {
	pop, pol := DefaultPopulation(), DefaultPolicy()
	fresh := ScoreFatigue(&Profile{}, &pop, pol, -1, t0)
	if fresh.Worth != 1 {
		t.Fatalf("new recipient worth %v, want 1", fresh.Worth)
	}
	var keen, idle Profile
	for i := 0; i < 30; i++ {
		at := t0.Add(-time.Duration(60-i) * 24 * time.Hour)
		id := fmt.Sprint(i)
		keen.RecordRelease(Release{At: at, MessageID: id}, pol.Memory)
		idle.RecordRelease(Release{At: at, MessageID: id}, pol.Memory)
		keen.RecordEvent(Event{Kind: EventClick, At: at.Add(time.Hour), MessageID: id}, nil, pol.Memory)
	}
	fk := ScoreFatigue(&keen, &pop, pol, -1, t0)
	fi := ScoreFatigue(&idle, &pop, pol, -1, t0)
	if !(fk.Worth > 2 && fi.Worth < 0.5) {
		t.Errorf("worth: keen %v, idle %v", fk.Worth, fi.Worth)
	}
	for _, f := range []Fatigue{fk, fi} {
		want := pol.Strictness * pol.LossWeight * pop.UnsubscribeRate * f.Sensitivity * f.CustomerValue * f.Worth
		if math.Abs(f.Scale-want) > 1e-12 {
			t.Errorf("scale %v, want %v", f.Scale, want)
		}
	}
}

// The list's stop rate: the prior until there are releases, then the
// measured rate, shrunk toward the prior by StopRatePrior stops, never
// below the prior and at most MaxStopRateLift times it; more stops never
// lower it, more releases without stops never raise it.
func TestStopRate(t *testing.T) {
	const prior = 0.002
	for _, c := range []struct{ stops, released int64 }{{0, 0}, {5, 0}, {0, -1}} {
		if r := StopRate(c.stops, c.released, prior); r != prior {
			t.Errorf("%d stops of %d releases: %v, want the prior", c.stops, c.released, r)
		}
	}
	// Ten stops in 5,000 releases is the prior's own rate.
	if r := StopRate(10, 5000, prior); math.Abs(r-prior) > 1e-15 {
		t.Errorf("the prior's rate measured: %v", r)
	}
	// Much evidence: the measured rate; little: near the prior.
	if r := StopRate(3000, 1_000_000, prior); math.Abs(r-0.003) > 0.00002 {
		t.Errorf("3,000 stops in a million releases: %v, want about 0.003", r)
	}
	if r := StopRate(2, 200, prior); r <= prior || r > 0.0025 {
		t.Errorf("2 stops in 200 releases (1%%): %v, want a little above the prior", r)
	}
	// Never cheaper than the prior, at most MaxStopRateLift times dearer.
	for _, c := range []struct{ stops, released int64 }{{0, 10_000_000}, {100, 100_000}, {9, 5000}} {
		if r := StopRate(c.stops, c.released, prior); r != prior {
			t.Errorf("%d stops in %d releases: %v, want the prior (the floor)", c.stops, c.released, r)
		}
	}
	if r := StopRate(1_000_000, 10_000_000, prior); r != prior*MaxStopRateLift {
		t.Errorf("10%% stops: %v, want the ceiling %v", r, prior*MaxStopRateLift)
	}
	rng := rand.New(rand.NewPCG(21, 1))
	for range 500 {
		n := rng.Int64N(100_000) + 1
		s := rng.Int64N(n/50 + 1)
		r := StopRate(s, n, prior)
		if up := StopRate(s+1, n, prior); up < r {
			t.Fatalf("a stop more lowered the rate: %d/%d %v, %d/%d %v", s, n, r, s+1, n, up)
		}
		if more := StopRate(s, n+100, prior); more > r {
			t.Fatalf("releases without stops raised the rate: %d/%d %v, %d/%d %v", s, n, r, s, n+100, more)
		}
	}
}
