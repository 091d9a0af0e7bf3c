package scoring

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The decision model is sped up by keeping derived state (the learned
// comfort's running sums) in the profile and by avoiding repeated work in
// the planner. None of that may change a single decision: the golden test
// below runs thousands of deterministic random recipients, and sequences of
// decisions interleaved with releases, engagement, merges and codec round
// trips, through Decide and hashes every output bit (float64 scores as
// their bits). The digest was computed with the implementation before the
// speed-ups (commit f9bfe76) and is kept in testdata/decide.golden.
//
// A change that is meant to move decisions (a new learner, a retuned
// default) regenerates it with
//
//	go test ./scoring -run TestDecideGolden -update-golden
//
// and says so, and why, in its commit.

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/decide.golden from the current implementation")

const goldenFile = "decide.golden"

// digest hashes decisions exactly.
type digest struct {
	h   hash.Hash
	buf []byte
	n   int
}

func newDigest() *digest { return &digest{h: sha256.New()} }

func (g *digest) u64(v uint64)  { g.buf = binary.LittleEndian.AppendUint64(g.buf, v) }
func (g *digest) f64(v float64) { g.u64(math.Float64bits(v)) }
func (g *digest) str(s string) {
	g.u64(uint64(len(s)))
	g.buf = append(g.buf, s...)
}

func (g *digest) time(t time.Time) {
	g.u64(uint64(t.UnixNano()))
	name, off := t.Zone()
	g.str(name)
	g.u64(uint64(int64(off)))
}

func (g *digest) decisions(ds []Decision) {
	g.u64(uint64(len(ds)))
	for i := range ds {
		d := &ds[i]
		g.str(d.ID)
		g.u64(uint64(d.Action))
		g.time(d.At)
		g.u64(uint64(d.Reasons))
		g.str(d.Subject)
		g.str(d.Campaign)
		n := &d.Numbers
		for _, f := range []float64{n.Affinity, n.PopulationRate, n.Priority, n.Novelty, n.Freshness, n.TimeLift,
			n.Delay, n.Value, n.Volume, n.Sensitivity, n.Comfort, n.CustomerValue, n.Cost, n.Draw} {
			g.f64(f)
		}
		g.u64(uint64(int64(n.NearestBits)))
		g.u64(uint64(int64(n.IgnoredStreak)))
		g.u64(uint64(int64(n.SinceLastRelease)))
		g.f64(d.LookEvidence)
		g.n++
	}
	g.h.Write(g.buf)
	g.buf = g.buf[:0]
}

func (g *digest) sum() string { return hex.EncodeToString(g.h.Sum(nil)) }

var goldenTopics = []string{"wine", "shoes", "travel", "books", "garden", "sale"}

// goldenPolicy draws a policy around the defaults, covering both comfort
// models (learned and the low/high volume response), the holdout and the
// knobs the planner reads.
func goldenPolicy(r *rand.Rand) *Policy {
	if r.IntN(10) == 0 {
		return nil
	}
	pol := DefaultPolicy()
	pol.Strictness = []float64{0, 0.5, 1, 1, 2}[r.IntN(5)]
	pol.ComfortSpread = []float64{0, 0.5, 1, 1, 2}[r.IntN(5)]
	pol.ComfortVolume = []float64{1, 3, 3, 5}[r.IntN(4)]
	pol.VolumeHalfLife = []time.Duration{2, 4, 4, 7}[r.IntN(4)] * 24 * time.Hour
	pol.EngageGrace = []time.Duration{0, 1, 3, 3}[r.IntN(4)] * 24 * time.Hour
	pol.ExploreShare = []float64{0, 0.02, 0.2}[r.IntN(3)]
	pol.HoldoutShare = []float64{0, 0, 0.3}[r.IntN(3)]
	pol.DailyPooling = []float64{0, 0.7, 1}[r.IntN(3)]
	pol.Horizon = []time.Duration{0, 24 * time.Hour, 72 * time.Hour}[r.IntN(3)]
	pol.Slot = []time.Duration{0, 30 * time.Minute, 2 * time.Hour}[r.IntN(3)]
	pol.Floor = []time.Duration{0, 14 * 24 * time.Hour}[r.IntN(2)]
	if r.IntN(4) == 0 {
		pol.Memory.MaxHistory = 20 + r.IntN(30) // trimming
	}
	return &pol
}

func goldenPopulation(r *rand.Rand) *Population {
	if r.IntN(5) == 0 {
		return nil
	}
	pop := DefaultPopulation()
	if r.IntN(2) == 0 {
		pop.TopicLift = map[string]float64{"wine": 1.4, "sale": 0.7}
		pop.LookOdds = 1.2 // a list whose readers lean to looking
		for i := range pop.HourOfWeek {
			pop.HourOfWeek[i] = 1 + float64((i*7)%11)/10
		}
	}
	return &pop
}

func goldenHeld(r *rand.Rand, now time.Time, n int) []Held {
	held := make([]Held, n)
	for i := range held {
		f := &Features{
			Subject:     fmt.Sprintf("message %d", i),
			Campaign:    fmt.Sprintf("c%d", r.IntN(12)),
			Topics:      []string{goldenTopics[r.IntN(len(goldenTopics))]},
			Priority:    r.IntN(101),
			Fingerprint: r.Uint64(),
		}
		switch r.IntN(6) {
		case 0:
			f.Campaign = ""
		case 1:
			f.CampaignFromList = true
		}
		if r.IntN(3) == 0 {
			f.Expires = now.Add(time.Duration(r.IntN(96)-4) * time.Hour)
		}
		if r.IntN(5) == 0 {
			f.NotBefore = now.Add(time.Duration(r.IntN(80)) * time.Hour)
		}
		if r.IntN(4) == 0 {
			f.Value, f.HasValue = r.IntN(101), true
		}
		if r.IntN(8) == 0 {
			f.Topics = nil
		}
		h := Held{ID: fmt.Sprintf("e%02d", r.IntN(40)), Features: f, Received: now.Add(-time.Duration(r.IntN(24*9)) * time.Hour)}
		if r.IntN(15) == 0 {
			h.Features = nil
		}
		held[i] = h
	}
	return held
}

// goldenLive adds n releases ending before until (the last ones may be
// scheduled after now), with engagement that comes late as often as early.
func goldenLive(r *rand.Rand, p *Profile, from, until time.Time, n int, m Memory, loc *time.Location) {
	if n == 0 {
		return
	}
	step := until.Sub(from) / time.Duration(n)
	at := from
	like := r.Float64()
	for i := 0; i < n; i++ {
		at = at.Add(time.Duration(r.Int64N(int64(step)*2) + 1))
		id := fmt.Sprintf("h%d-%d", at.Unix(), i)
		p.RecordRelease(Release{At: at, MessageID: id, Campaign: fmt.Sprintf("c%d", r.IntN(12)),
			Topics: []string{goldenTopics[r.IntN(len(goldenTopics))]}, Fingerprint: r.Uint64()}, m)
		if r.Float64() < like {
			ev := at.Add(time.Duration(r.IntN(24*8)) * time.Hour)
			if ev.Before(until) {
				kind := []EventKind{EventOpen, EventOpen, EventClick, EventReply}[r.IntN(4)]
				p.RecordEvent(Event{Kind: kind, At: ev, MessageID: id}, loc, m)
			}
		}
	}
}

func goldenInput(r *rand.Rand) Input {
	now := t0.Add(time.Duration(r.IntN(30*24*60)) * time.Minute)
	zones := []*time.Location{nil, time.UTC, time.FixedZone("A", 5*3600+1800), time.FixedZone("B", -7*3600)}
	pol := goldenPolicy(r)
	m := DefaultMemory()
	if pol != nil {
		m = pol.Memory
	}
	loc := zones[r.IntN(len(zones))]
	p := &Profile{}
	n := []int{0, 3, 20, 60, 100, 150, 250}[r.IntN(7)]
	goldenLive(r, p, now.Add(-90*24*time.Hour), now.Add(time.Duration(r.IntN(30))*time.Hour), n, m, loc)
	switch r.IntN(12) {
	case 0:
		p.Unsubscribed = now.Add(-time.Hour)
	case 1:
		p.AwayUntil = now.Add(time.Duration(r.IntN(200)) * time.Hour)
	case 2:
		// Hand-edited or written by an older version: out of order.
		r.Shuffle(len(p.History), func(i, j int) { p.History[i], p.History[j] = p.History[j], p.History[i] })
	case 3:
		p.Value, p.HasValue = r.IntN(101), true
	}
	in := Input{
		Now:       now,
		Recipient: fmt.Sprintf("r%d@example.org", r.IntN(1000)),
		Profile:   p,
		Location:  loc,
		Held:      goldenHeld(r, now, 1+r.IntN(8)),
		Caps:      Caps{PerDay: r.IntN(4), PerWeek: r.IntN(8), PerMonth: r.IntN(20), MinGap: time.Duration(r.IntN(6)) * time.Hour},
		Policy:    pol,
	}
	in.Population = goldenPopulation(r)
	if r.IntN(3) == 0 {
		in.Profile = nil
	}
	if r.IntN(2) == 0 {
		in.Quiet = QuietHours{Start: time.Duration(18+r.IntN(6)) * time.Hour, End: time.Duration(6+r.IntN(4)) * time.Hour}
	}
	if r.IntN(3) == 0 {
		in.Window = officeHours{}
	}
	return in
}

// goldenLife decides for one recipient again and again as time passes,
// recording what was released and engagement that arrives late, so that
// any state a profile keeps between decisions is exercised the way the
// engine exercises it: grown, extended, invalidated by a late open, by
// trimming, by a merge, and carried through the stored form.
func goldenLife(r *rand.Rand, g *digest, pl *Planner) {
	in := goldenInput(r)
	if in.Profile == nil {
		in.Profile = &Profile{}
	}
	m := DefaultMemory()
	if in.Policy != nil {
		m = in.Policy.Memory
	}
	var dst []Decision
	for round := 0; round < 12; round++ {
		dst = pl.Decide(dst[:0], &in)
		g.decisions(dst)
		p := in.Profile
		for _, d := range dst {
			if d.Action == ActionRelease {
				p.RecordRelease(Release{At: d.At, MessageID: d.ID + fmt.Sprint(round), Campaign: d.Campaign, Fingerprint: r.Uint64()}, m)
			}
		}
		// Late engagement on some old release.
		if n := len(p.History); n > 0 && r.IntN(2) == 0 {
			h := p.History[r.IntN(n)]
			at := later(h.At, in.Now)
			p.RecordEvent(Event{Kind: []EventKind{EventOpen, EventClick, EventReply}[r.IntN(3)], At: at, MessageID: h.MessageID}, in.Location, m)
		}
		switch r.IntN(10) {
		case 0:
			var o Profile
			goldenLive(r, &o, in.Now.Add(-40*24*time.Hour), in.Now, 5+r.IntN(20), m, nil)
			p.Merge(&o, m)
		case 1, 2:
			raw, err := p.Encode()
			if err != nil {
				panic(err)
			}
			if in.Profile, err = DecodeProfile(raw); err != nil {
				panic(err)
			}
		case 3:
			// Decided again at the same moment (a second sweep).
			continue
		case 4:
			// A decision in the past (a clock set back, a replay).
			in.Now = in.Now.Add(-time.Duration(r.IntN(72)) * time.Hour)
			continue
		case 5:
			// The administrator changed the knobs (a reload).
			in.Policy = goldenPolicy(r)
			if in.Policy != nil {
				in.Policy.Memory = m
			}
		}
		in.Now = in.Now.Add(time.Duration(1+r.IntN(60)) * time.Hour)
		in.Held = goldenHeld(r, in.Now, 1+r.IntN(6))
	}
}

func goldenDigest() (string, int) {
	g := newDigest()
	var pl Planner
	for seed := uint64(0); seed < 3000; seed++ {
		r := rand.New(rand.NewPCG(seed, 16))
		in := goldenInput(r)
		// Both the package function and a reused Planner.
		if seed%2 == 0 {
			g.decisions(Decide(in))
		} else {
			g.decisions(pl.Decide(nil, &in))
		}
	}
	for seed := uint64(0); seed < 400; seed++ {
		goldenLife(rand.New(rand.NewPCG(seed, 17)), g, &pl)
	}
	return g.sum(), g.n
}

func TestDecideGolden(t *testing.T) {
	got, n := goldenDigest()
	path := filepath.Join("testdata", goldenFile)
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %s over %d decisions", path, got, n)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.TrimSpace(string(want)); got != w {
		t.Fatalf("the digest of %d decisions is %s, the golden one %s: a decision changed (see golden_test.go)", n, got, w)
	}
	if n < 5000 {
		t.Fatalf("only %d decisions hashed", n)
	}
}

// The digest must see every output: a change in one bit of any number,
// reason or time changes it.
func TestDigestSeesEveryBit(t *testing.T) {
	in := goldenInput(rand.New(rand.NewPCG(3, 3)))
	base := Decide(in)
	sum := func(ds []Decision) string {
		g := newDigest()
		g.decisions(ds)
		return g.sum()
	}
	want := sum(base)
	mutate := []func(d *Decision){
		func(d *Decision) { d.Numbers.Comfort = math.Nextafter(d.Numbers.Comfort, 10) },
		func(d *Decision) { d.Numbers.Volume = math.Nextafter(d.Numbers.Volume, -10) },
		func(d *Decision) { d.Numbers.Draw = math.Nextafter(d.Numbers.Draw, 10) },
		func(d *Decision) { d.Reasons ^= ReasonBestTime },
		func(d *Decision) { d.At = d.At.Add(time.Nanosecond) },
		func(d *Decision) { d.At = d.At.In(time.FixedZone("X", 0)) },
		func(d *Decision) { d.Numbers.IgnoredStreak++ },
		func(d *Decision) { d.Subject += "x" },
	}
	for i, f := range mutate {
		ds := slices.Clone(base)
		f(&ds[0])
		if sum(ds) == want {
			t.Errorf("mutation %d not seen by the digest", i)
		}
	}
}

// sameCampaign must be strings.EqualFold for strings of the same length.
func checkSameCampaign(t *testing.T, a, b string) {
	t.Helper()
	if len(a) != len(b) {
		return
	}
	if got, want := sameCampaign(a, b), strings.EqualFold(a, b); got != want {
		t.Fatalf("sameCampaign(%q, %q) = %v, EqualFold %v", a, b, got, want)
	}
}

func TestSameCampaignIsEqualFold(t *testing.T) {
	words := []string{"", "a", "A", "spring-25", "SPRING-25", "Spring-26", "c1", "c2", "C1", "@", "`", "[", "{",
		"Größe", "GRÖSSE", "grösse", "GRÖẞE", "straße", "STRASSE", "ǅ", "ǆ", "Ǆ", "\u212a", "k", "K", "kk", "\u212ak",
		"\xff", "\xfe", "ab\xffc", "AB\xffC", "σς", "ΣΣ", "ſ", "s", "S", "ss"}
	for _, a := range words {
		for _, b := range words {
			checkSameCampaign(t, a, b)
			checkSameCampaign(t, a+"x"+b, b+"X"+a)
		}
	}
}

func FuzzSameCampaign(f *testing.F) {
	f.Add("Spring-25", "SPRING-25")
	f.Add("Größe", "GRÖßE")
	f.Add("\u212a", "k\xff\xff")
	f.Fuzz(func(t *testing.T, a, b string) {
		checkSameCampaign(t, a, b)
		if len(a) == len(b) {
			return
		}
		// Same length from the fuzzer's two inputs: a's length of b, padded.
		n := min(len(a), len(b))
		checkSameCampaign(t, a[:n], b[:n])
	})
}
