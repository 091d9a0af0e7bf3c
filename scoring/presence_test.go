package scoring

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// presenceOf is the presence lift a decision at now would use for prof.
func presenceOf(prof *Profile, now time.Time, loc *time.Location, pop *Population) ([24]float64, bool) {
	var pl Planner
	in := Input{Now: now, Profile: prof, Location: loc, Population: pop}
	var d decider
	d.init(&in, &pl)
	d.pl = &pl
	var lift [24]float64
	ok := d.presenceLift(&lift)
	return lift, ok
}

func bestHour(lift [24]float64) int {
	best := 0
	for h, v := range lift {
		if v > lift[best] {
			best = h
		}
	}
	return best
}

func circularHours(a, b float64) float64 {
	d := math.Abs(a - b)
	return math.Min(d, 24-d)
}

// Without a settled release there is no presence evidence, and the
// histogram (with its population prior) times the reader.
func TestPresenceNeedsSettledReleases(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	if _, ok := presenceOf(&Profile{}, now, time.UTC, nil); ok {
		t.Error("an empty profile has presence evidence")
	}
	p := &Profile{}
	p.RecordRelease(Release{At: now.Add(-presenceSettle + time.Minute), MessageID: "young"}, DefaultMemory())
	if _, ok := presenceOf(p, now, time.UTC, nil); ok {
		t.Error("a release younger than presenceSettle counts as evidence")
	}
	p.RecordRelease(Release{At: now.Add(-presenceSettle - time.Minute), MessageID: "settled"}, DefaultMemory())
	if _, ok := presenceOf(p, now, time.UTC, nil); !ok {
		t.Error("a settled release is not evidence")
	}
}

// The direction of each kind of evidence, for a fixed chance rho that a
// present reader opens: on any evidence already gathered, one more
// ignored mail at hour h never raises h's lift, an open a minute after
// delivery never lowers it, and an open six hours after delivery raises
// it less than the quick one (a reader who takes that long was likelier
// away when it came; it may still raise it, as being opened at all says
// the reader was about some of the time).
func TestPresenceEvidenceDirection(t *testing.T) {
	law := newPresenceLaw(DefaultOpenDelayPresent, DefaultOpenDelayAway)
	rng := rand.New(rand.NewPCG(7, 11))
	for seed := range 2000 {
		var ev presenceEvidence
		for range rng.IntN(40) {
			h := rng.IntN(24)
			switch rng.IntN(3) {
			case 0:
				ev.ignored[h]++
			case 1:
				ev.opened[h]++
				ev.delay[h] += 8 * rng.ExpFloat64()
			default:
				ev.undelayed[h]++
			}
		}
		rho := 0.05 + 0.9*rng.Float64()
		var before [24]float64
		law.lift(&ev, rho, 1, &before)
		h := rng.IntN(24)
		after := func(add func(*presenceEvidence)) float64 {
			more := ev
			add(&more)
			var lift [24]float64
			law.lift(&more, rho, 1, &lift)
			return lift[h]
		}
		ignored := after(func(e *presenceEvidence) { e.ignored[h]++ })
		quick := after(func(e *presenceEvidence) { e.opened[h]++; e.delay[h] += 1.0 / 60 })
		slow := after(func(e *presenceEvidence) { e.opened[h]++; e.delay[h] += 6 })
		if ignored > before[h]+1e-12 {
			t.Fatalf("seed %d: an ignored mail at %02d:00 raised its lift %.5f -> %.5f", seed, h, before[h], ignored)
		}
		if quick < before[h]-1e-12 {
			t.Fatalf("seed %d: an open a minute after delivery at %02d:00 lowered its lift %.5f -> %.5f", seed, h, before[h], quick)
		}
		if slow >= quick {
			t.Fatalf("seed %d: at %02d:00 an open after six hours lifts to %.5f, one after a minute to %.5f", seed, h, slow, quick)
		}
	}
}

// presenceReader answers mail as the delay law says: a reader with a peak
// hour, who opens a share of what arrives while they are about, after an
// exponential delay of mean μ(a).
type presenceReader struct {
	peak, rho     float64
	present, away time.Duration
	// nextLook, when set, makes the reader open mail when they next look
	// at their inbox (their activity next at 0.7 or more) instead: the
	// open's time, not its delay, shows their hours.
	nextLook bool
}

func (r presenceReader) activity(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	d := circularHours(h, r.peak)
	return presenceFloor + (1-presenceFloor)*math.Exp(-d*d/(2*presenceWidth*presenceWidth))
}

func (r presenceReader) open(rng *rand.Rand, at time.Time) (time.Duration, bool) {
	a := r.activity(at)
	if rng.Float64() >= r.rho*a {
		return 0, false
	}
	if r.nextLook {
		look := at
		for r.activity(look) < 0.7 {
			look = look.Add(10 * time.Minute)
		}
		return look.Sub(at) + time.Duration(rng.ExpFloat64()*float64(30*time.Minute)), true
	}
	mu := r.present.Hours() + (r.away-r.present).Hours()*(1-a)/(1-presenceFloor)
	return time.Duration(rng.ExpFloat64() * mu * float64(time.Hour)), true
}

// A reader mailed at random hours for two months is found: the best
// hour of their lift is within 2.5 hours of their peak, for every peak,
// and within 1.5 for most.
func TestPresenceFindsTheReadersHours(t *testing.T) {
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	for _, nextLook := range []bool{false, true} {
		misses := 0
		for peak := 0.5; peak < 24; peak += 1.5 {
			rng := rand.New(rand.NewPCG(uint64(peak*10), 3))
			r := presenceReader{peak: peak, rho: 0.5, present: DefaultOpenDelayPresent, away: DefaultOpenDelayAway, nextLook: nextLook}
			p := &Profile{}
			for i := range 60 {
				at := day.Add(time.Duration(i)*24*time.Hour + time.Duration(rng.IntN(24*60))*time.Minute)
				id := fmt.Sprint("m", i)
				p.RecordRelease(Release{At: at, MessageID: id}, DefaultMemory())
				if delay, ok := r.open(rng, at); ok {
					p.RecordEvent(Event{Kind: EventOpen, At: at.Add(delay), MessageID: id}, time.UTC, DefaultMemory())
				}
			}
			lift, ok := presenceOf(p, day.Add(62*24*time.Hour), time.UTC, nil)
			if !ok {
				t.Fatal("no presence evidence after two months")
			}
			best := float64(bestHour(lift)) + 0.5
			d := circularHours(best, peak)
			if d > 2.5 {
				t.Errorf("next look %v: peak %.1f found at %.1f", nextLook, peak, best)
			}
			if d > 1.5 {
				misses++
				t.Logf("next look %v: peak %.1f found at %.1f (lift %.2f there, %.2f at the peak)", nextLook, peak, best, lift[int(best)], lift[int(peak)])
			}
			if lift[int(peak)] <= 1 {
				t.Errorf("next look %v: peak %.1f has lift %.3f, not above the day's mean", nextLook, peak, lift[int(peak)])
			}
		}
		// When readers open at their next look the delay law is wrong;
		// the ignored mail still finds most of them.
		if misses > 3 {
			t.Errorf("next look %v: %d of 16 readers' peaks missed by more than 1.5 hours", nextLook, misses)
		}
	}
}

// Only the first open or click gives the delay, and merging keeps the
// earlier one.
func TestOpenedAfterIsTheFirstEngagement(t *testing.T) {
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	p := &Profile{}
	p.RecordRelease(Release{At: at, MessageID: "m"}, DefaultMemory())
	p.RecordEvent(Event{Kind: EventReply, At: at.Add(time.Minute), MessageID: "m"}, time.UTC, DefaultMemory())
	if got := p.History[0].OpenedAfter; got != 0 {
		t.Fatalf("a reply set the open delay to %v", got)
	}
	p.RecordEvent(Event{Kind: EventClick, At: at.Add(2 * time.Hour), MessageID: "m"}, time.UTC, DefaultMemory())
	p.RecordEvent(Event{Kind: EventOpen, At: at.Add(3 * time.Hour), MessageID: "m"}, time.UTC, DefaultMemory())
	if got := p.History[0].OpenedAfter; got != 2*time.Hour {
		t.Fatalf("open delay %v, want the first click's 2h", got)
	}
	other := &Profile{History: []Release{{At: at, MessageID: "m", Opened: true, OpenedAfter: 20 * time.Minute}}}
	p.Merge(other, DefaultMemory())
	if got := p.History[0].OpenedAfter; got != 20*time.Minute {
		t.Fatalf("merged open delay %v, want the earlier 20m", got)
	}
}

// The delay law is fitted from the list's first opens: two exponentials
// are found again from binned counts, and too few opens keep the
// defaults.
func TestFitOpenDelays(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	for _, c := range []struct {
		present, away time.Duration
		share         float64
	}{
		{30 * time.Minute, 3 * time.Hour, 0.6},
		{10 * time.Minute, 8 * time.Hour, 0.3},
		{2 * time.Hour, 20 * time.Hour, 0.5},
	} {
		counts := make([]int64, len(OpenDelayEdges))
		for range 20000 {
			mu := c.away
			if rng.Float64() < c.share {
				mu = c.present
			}
			counts[OpenDelayBin(time.Duration(rng.ExpFloat64()*float64(mu)))]++
		}
		present, away, ok := FitOpenDelays(OpenDelayEdges, counts)
		if !ok {
			t.Fatal("20,000 opens were not enough")
		}
		for _, x := range []struct {
			name      string
			got, want time.Duration
		}{{"present", present, c.present}, {"away", away, c.away}} {
			if r := x.got.Hours() / x.want.Hours(); r < 0.85 || r > 1.15 {
				t.Errorf("%v/%v at %.0f%%: fitted %s %v, want %v", c.present, c.away, 100*c.share, x.name, x.got, x.want)
			}
		}
	}
	few := make([]int64, len(OpenDelayEdges))
	few[3] = minOpenDelays - 1
	if _, _, ok := FitOpenDelays(OpenDelayEdges, few); ok {
		t.Errorf("%d opens gave a fit", minOpenDelays-1)
	}
}

func TestOpenDelayBin(t *testing.T) {
	for i, e := range OpenDelayEdges {
		if got := OpenDelayBin(e); got != i {
			t.Errorf("edge %v in bin %d, want %d", e, got, i)
		}
		if i > 0 {
			if got := OpenDelayBin(e - 1); got != i-1 {
				t.Errorf("just below %v in bin %d, want %d", e, got, i-1)
			}
		}
	}
	if got := OpenDelayBin(1000 * time.Hour); got != len(OpenDelayEdges)-1 {
		t.Errorf("1000h in bin %d", got)
	}
}

// End to end through Decide: a reader who opens evening mail at once and
// leaves morning mail for hours gets a morning message at the evening,
// though most of their opens came at 13:00 (where the open-time histogram
// would send it: the test fails with the presence model off).
func TestPresenceTimesTheDecision(t *testing.T) {
	now := t0 // 10:17, an hour after msg's mail came
	p := &Profile{}
	// Forty days up to a week ago, one mail a day, at 08:00 and 19:00 in
	// turn; morning mail opened two times in three, five hours late,
	// evening mail one time in four, at once.
	for i := range 40 {
		day := now.Truncate(24 * time.Hour).Add(-time.Duration(47-i) * 24 * time.Hour)
		hour, delay := 8, 5*time.Hour
		if i%2 == 1 {
			hour, delay = 19, 3*time.Minute
		}
		at := day.Add(time.Duration(hour) * time.Hour)
		id := fmt.Sprint("m", i)
		p.RecordRelease(Release{At: at, MessageID: id}, DefaultMemory())
		if opened := i%3 != 0; hour == 19 && i%4 == 1 || hour == 8 && opened {
			p.RecordEvent(Event{Kind: EventOpen, At: at.Add(delay), MessageID: id}, time.UTC, DefaultMemory())
		}
	}
	d := Decide(Input{Now: now, Recipient: "r@example.org", Profile: p, Held: []Held{msg("a", Features{Priority: 80})}})[0]
	if d.Action != ActionDefer || !d.Reasons.Has(ReasonBestTime) {
		t.Fatalf("%v %v, want a deferral to the best time:\n%s", d.Action, d.Reasons, d.Explain())
	}
	if h := d.At.In(time.UTC).Hour(); h < 17 || h > 21 {
		t.Errorf("planned for %v, want the evening:\n%s", d.At, d.Explain())
	}
}
