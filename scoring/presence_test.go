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
	lift, _, ok := presenceAndEvidenceOf(prof, now, loc, pop)
	return lift, ok
}

// presenceAndEvidenceOf is presenceOf with the evidence for looking the
// decision would count (Decision.LookEvidence).
func presenceAndEvidenceOf(prof *Profile, now time.Time, loc *time.Location, pop *Population) ([24]float64, float64, bool) {
	var pl Planner
	in := Input{Now: now, Profile: prof, Location: loc, Population: pop}
	var d decider
	d.init(&in, &pl)
	d.pl = &pl
	var lift [24]float64
	ok := d.presenceLift(&lift)
	return lift, d.lookEvidence, ok
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

// The direction of each kind of evidence, for either kind of reader and
// a fixed chance rho that a present reader opens: on any evidence already
// gathered, one more ignored mail at hour h never raises h's lift and an
// open a minute after delivery never lowers it (of a reader who looks, an
// ignored mail may raise it by a millionth where every likely peak is far
// from h: the hours it went unseen through move the mass among them).
//
// Of a reader who waits, an open six hours after delivery raises h's lift
// less than the quick open (a reader who takes that long was likelier away
// when it came; it may still raise it, as being opened at all says the
// reader was about some of the time). Of a reader who looks, the slow open
// says they did not look for six hours and then did, which rules out rival
// peaks as well as h and orders nothing at h: in 6 of these 2000 cases it
// lifts h more than the quick open, so that is not asserted.
func TestPresenceEvidenceDirection(t *testing.T) {
	law := newPresenceLaw(DefaultOpenDelayPresent, DefaultOpenDelayAway)
	rng := rand.New(rand.NewPCG(7, 11))
	for seed := range 2000 {
		var ev presenceEvidence
		for range rng.IntN(40) {
			at := rng.Int64N(secondsPerDay)
			switch rng.IntN(3) {
			case 0:
				ev.add(at, false, 0, 0)
			case 1:
				delay := time.Duration(8 * rng.ExpFloat64() * float64(time.Hour)).Round(time.Second)
				ev.add(at, true, delay, mod(at+int64(delay/time.Second), secondsPerDay))
			default:
				ev.add(at, true, 0, 0)
			}
		}
		rho := 0.05 + 0.9*rng.Float64()
		h := rng.IntN(24)
		at := int64(h)*3600 + rng.Int64N(3600)
		openedAfter := func(d time.Duration) func(*presenceEvidence) {
			return func(e *presenceEvidence) { e.add(at, true, d, mod(at+int64(d/time.Second), secondsPerDay)) }
		}
		for _, kind := range []struct {
			name  string
			log   func(*presenceEvidence, float64) [24]float64
			slack float64
		}{{"waits", law.waiterLog, 1e-12}, {"looks", law.lookerLog, 1e-6}} {
			lift := func(add func(*presenceEvidence)) [24]float64 {
				more := ev
				add(&more)
				logw := kind.log(&more, rho)
				var lift [24]float64
				law.liftOf(&logw, 1, &lift)
				return lift
			}
			before := lift(func(*presenceEvidence) {})
			ignored := lift(func(e *presenceEvidence) { e.add(at, false, 0, 0) })
			quick := lift(openedAfter(time.Minute))
			if ignored[h] > before[h]+kind.slack {
				t.Fatalf("seed %d, reader who %s: an ignored mail at %02d:00 raised its lift %.7f -> %.7f", seed, kind.name, h, before[h], ignored[h])
			}
			if quick[h] < before[h]-1e-12 {
				t.Fatalf("seed %d, reader who %s: an open a minute after delivery at %02d:00 lowered its lift %.5f -> %.5f", seed, kind.name, h, before[h], quick[h])
			}
			if slow := lift(openedAfter(6 * time.Hour)); kind.name == "waits" && slow[h] >= quick[h] {
				t.Fatalf("seed %d, reader who waits: at %02d:00 an open after six hours lifts to %.5f, one after a minute to %.5f", seed, h, slow[h], quick[h])
			}
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

// Readers mailed at random hours for two months are found, whichever of
// the two kinds they are, though the model is not told: the lift at each
// reader's peak is above the day's mean, their best hour is within 3 hours
// of the peak, and within 1.5 hours for all but three of the 16 of each
// kind. Readers who look (here: when next about) are found closer than by
// the model of a reader who waits alone, the model before round 19, which
// fails the test; it placed three of them 2-2.5 hours off. What that costs
// readers who wait: one is placed 3 hours off and one 2 at this much
// evidence (12 hours missed in all, 11 by the model of a reader who waits
// alone), where the model of a reader who waits placed all within 2.5
// hours. Round 19's model, which left a night's looks out of a looker's
// likelihood, placed three 2-3 hours off (18 hours in all).
func TestPresenceFindsTheReadersHours(t *testing.T) {
	for _, nextLook := range []bool{false, true} {
		misses := 0
		var missedBy, missedByWaiting float64
		profiles, peaks, now := mailedReaders(60, nextLook)
		for i, p := range profiles {
			peak := peaks[i]
			lift, ok := presenceOf(p, now, time.UTC, nil)
			if !ok {
				t.Fatal("no presence evidence after two months")
			}
			best := float64(bestHour(lift)) + 0.5
			d := circularHours(best, peak)
			missedBy += d
			if d > 3 {
				t.Errorf("next look %v: peak %.1f found at %.1f", nextLook, peak, best)
			}
			if d > 1.5 {
				misses++
				t.Logf("next look %v: peak %.1f found at %.1f (lift %.2f there, %.2f at the peak)", nextLook, peak, best, lift[int(best)], lift[int(peak)])
			}
			if lift[int(peak)] <= 1 {
				t.Errorf("next look %v: peak %.1f has lift %.3f, not above the day's mean", nextLook, peak, lift[int(peak)])
			}
			waiting := waiterLift(p, now)
			missedByWaiting += circularHours(float64(bestHour(waiting))+0.5, peak)
		}
		if misses > 3 {
			t.Errorf("next look %v: %d of 16 readers' peaks missed by more than 1.5 hours", nextLook, misses)
		}
		t.Logf("next look %v: peaks missed by %.1f hours in all, %.1f by the model of a reader who waits", nextLook, missedBy, missedByWaiting)
		if nextLook && missedBy >= missedByWaiting {
			t.Errorf("readers who look: peaks missed by %.1f hours in all, by the model of a reader who waits %.1f", missedBy, missedByWaiting)
		}
	}
}

// waiterLift is the presence lift of prof at now in UTC under the model
// of a reader who waits alone, with the default delay law.
func waiterLift(prof *Profile, now time.Time) [24]float64 {
	var ev presenceEvidence
	ev.gather(prof.History, now.Add(-presenceSettle), time.UTC)
	law := newPresenceLaw(DefaultOpenDelayPresent, DefaultOpenDelayAway)
	logw := law.waiterLog(&ev, clamp(float64(ev.opens)/float64(ev.releases)/law.kappa, 0.05, 0.95))
	var lift [24]float64
	law.liftOf(&logw, DefaultPolicy().TimeWeight, &lift)
	return lift
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

// End to end through Decide: a reader who opens nine in ten of their
// evening mails at once and a third of their midday ones gets a morning
// message at the evening, though most of their opens came at midday, as
// most of their mail did (the open-time histogram sends it there: the test
// fails with the presence model off). Both kinds of reader say evening: an
// open within minutes says the reader was about when the mail came and
// looked then, and so does an ignored mail the opposite.
func TestPresenceTimesTheDecision(t *testing.T) {
	now := t0 // 10:17, an hour after msg's mail came
	p := &Profile{}
	// Forty days up to a week ago: a mail at 13:00 every day, opened on
	// every third, and one at 19:00 every fourth day, opened all but once;
	// every open two minutes after the mail came.
	type sent struct {
		at     time.Time
		opened bool
	}
	var mail []sent
	for i := range 40 {
		day := now.Truncate(24 * time.Hour).Add(-time.Duration(47-i) * 24 * time.Hour)
		mail = append(mail, sent{day.Add(13 * time.Hour), i%3 == 0})
		if i%4 == 0 {
			mail = append(mail, sent{day.Add(19 * time.Hour), i != 20})
		}
	}
	for i, m := range mail {
		id := fmt.Sprint("m", i)
		p.RecordRelease(Release{At: m.at, MessageID: id}, DefaultMemory())
		if m.opened {
			p.RecordEvent(Event{Kind: EventOpen, At: m.at.Add(2 * time.Minute), MessageID: id}, time.UTC, DefaultMemory())
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

// mailedReaders are the 16 readers of one kind of
// TestPresenceFindsTheReadersHours, with their peaks, mailed at random
// hours for days days and decided for at now.
func mailedReaders(days int, nextLook bool) (profiles []*Profile, peaks []float64, now time.Time) {
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	now = day.Add(time.Duration(days+2) * 24 * time.Hour)
	for peak := 0.5; peak < 24; peak += 1.5 {
		rng := rand.New(rand.NewPCG(uint64(peak*10), 3))
		r := presenceReader{peak: peak, rho: 0.5, present: DefaultOpenDelayPresent, away: DefaultOpenDelayAway, nextLook: nextLook}
		p := &Profile{}
		for i := range days {
			at := day.Add(time.Duration(i)*24*time.Hour + time.Duration(rng.IntN(24*60))*time.Minute)
			id := fmt.Sprint("m", i)
			p.RecordRelease(Release{At: at, MessageID: id}, DefaultMemory())
			if delay, ok := r.open(rng, at); ok {
				p.RecordEvent(Event{Kind: EventOpen, At: at.Add(delay), MessageID: id}, time.UTC, DefaultMemory())
			}
		}
		profiles, peaks = append(profiles, p), append(peaks, peak)
	}
	return profiles, peaks, now
}

// readersEvidence is the evidence for looking of mailedReaders' readers.
func readersEvidence(days int, nextLook bool) []float64 {
	profiles, _, now := mailedReaders(days, nextLook)
	ev := make([]float64, len(profiles))
	for i, p := range profiles {
		_, ev[i], _ = presenceAndEvidenceOf(p, now, time.UTC, nil)
	}
	return ev
}

// A reader's history tells the two kinds apart, more clearly the longer
// it is: after two months every reader who looks has evidence for looking
// (the 16 here 0.6-9), and the readers who wait have evidence against it
// on the whole (-7 to +0.2, a mean of -1.3). The looks of the nights
// between a mail and its open count against looking: without them
// (rounds 18-19) a reader who opens the next morning read as one who
// looks, and the waiters' mean here was above 0.
func TestLookEvidenceTellsTheKinds(t *testing.T) {
	mean := func(v []float64) float64 {
		var s float64
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	var prevWait, prevLook float64
	for _, days := range []int{14, 28, 60} {
		waits, looks := readersEvidence(days, false), readersEvidence(days, true)
		mw, ml := mean(waits), mean(looks)
		t.Logf("%d days: evidence for looking, readers who wait %.2f, who look %.2f", days, mw, ml)
		if ml <= mw {
			t.Errorf("%d days: readers who look have less evidence for it (%.2f) than readers who wait (%.2f)", days, ml, mw)
		}
		if days > 14 && (mw >= prevWait || ml <= prevLook) {
			t.Errorf("%d days: the evidence did not grow apart: waiters %.2f (was %.2f), lookers %.2f (was %.2f)", days, mw, prevWait, ml, prevLook)
		}
		prevWait, prevLook = mw, ml
		if days == 60 {
			if mw >= -0.5 {
				t.Errorf("two months: readers who wait have mean evidence %.2f for looking", mw)
			}
			for i, x := range looks {
				if x <= 0 {
					t.Errorf("two months: reader who looks %d has evidence %.2f against it", i, x)
				}
			}
		}
	}
}

// FitLookOdds: even odds without evidence or with too little, the share
// the releases of decisive evidence give, monotone in the evidence, and
// the kinds of TestLookEvidenceTellsTheKinds' readers found.
func TestFitLookOdds(t *testing.T) {
	counts := func(at map[float64]int64) []int64 {
		c := make([]int64, LookEvidenceBins)
		for x, n := range at {
			c[LookEvidenceBin(x)] += n
		}
		return c
	}
	for x, want := range map[float64]int{math.NaN(): 40, math.Inf(1): 80, math.Inf(-1): 0, -30: 0, 0.2: 40, 0.3: 41, -1: 38} {
		if got := LookEvidenceBin(x); got != want {
			t.Errorf("LookEvidenceBin(%v) = %d, want %d", x, got, want)
		}
	}
	if _, ok := FitLookOdds(counts(map[float64]int64{3: 999})); ok {
		t.Error("fitted from 999 releases")
	}
	if _, ok := FitLookOdds(make([]int64, LookEvidenceBins-1)); ok {
		t.Error("fitted from the wrong number of bins")
	}
	if o, ok := FitLookOdds(counts(map[float64]int64{0: 5000})); !ok || o != 0 {
		t.Errorf("evidence for neither kind: odds %v (ok %v), want 0", o, ok)
	}
	if o, _ := FitLookOdds(counts(map[float64]int64{20: 300, -20: 700, 0: 4000})); math.Abs(o-math.Log(0.3/0.7)) > 1e-3 {
		t.Errorf("3 decisive lookers in 10: odds %.4f, want %.4f", o, math.Log(0.3/0.7))
	}
	if o, _ := FitLookOdds(counts(map[float64]int64{-25: 5000})); math.Abs(o-math.Log(minLookShare/(1-minLookShare))) > 1e-9 {
		t.Errorf("every reader waits: odds %.4f, want the bound %.4f", o, math.Log(minLookShare/(1-minLookShare)))
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 300 {
		c := make([]int64, LookEvidenceBins)
		for i := range c {
			if rng.IntN(3) == 0 {
				c[i] = int64(rng.IntN(200))
			}
		}
		c[rng.IntN(len(c))] += 1000
		before, _ := FitLookOdds(c)
		from := rng.IntN(len(c) - 1)
		to := from + 1 + rng.IntN(len(c)-1-from)
		moved := min(c[from], int64(1+rng.IntN(100)))
		c[from] -= moved
		c[to] += moved
		if after, _ := FitLookOdds(c); after < before-1e-6 {
			t.Fatalf("%d releases moved from evidence bin %d to %d lowered the odds %.6f -> %.6f", moved, from, to, before, after)
		}
	}
	share := func(o float64) float64 { return 1 / (1 + math.Exp(-o)) }
	waits, looks := readersEvidence(60, false), readersEvidence(60, true)
	of := func(readers ...[]float64) float64 {
		c := make([]int64, LookEvidenceBins)
		for _, rs := range readers {
			for _, x := range rs {
				c[LookEvidenceBin(x)] += 100 // as if each counted at 100 releases
			}
		}
		o, _ := FitLookOdds(c)
		return share(o)
	}
	sw, sl, sb := of(waits), of(looks), of(waits, looks)
	t.Logf("share who look, fitted: list of waiters %.2f, of lookers %.2f, half and half %.2f", sw, sl, sb)
	if sw > 0.2 || sl < 0.8 || sb <= sw || sb >= sl {
		t.Errorf("share who look: waiters %.2f (want <= 0.2), lookers %.2f (>= 0.8), both %.2f (between)", sw, sl, sb)
	}
}

// The list's odds weigh the two kinds: a list's readers who look are
// placed closer to their peaks at the odds a list of them fits (95% who
// look) than at the odds a list of readers who wait fits (5%), and
// readers who wait the other way round (16 readers of each kind, two
// months of mail: readers who look 6 hours missed in all against 7,
// readers who wait 11 against 20). Without the odds both would tie.
func TestLookOddsWeighTheKinds(t *testing.T) {
	odds := math.Log(maxLookShare / (1 - maxLookShare))
	missed := func(nextLook bool, odds float64) float64 {
		profiles, peaks, now := mailedReaders(60, nextLook)
		pop := DefaultPopulation()
		pop.LookOdds = odds
		var sum float64
		for i, p := range profiles {
			lift, _ := presenceOf(p, now, time.UTC, &pop)
			sum += circularHours(float64(bestHour(lift))+0.5, peaks[i])
		}
		return sum
	}
	for _, nextLook := range []bool{false, true} {
		asLooking, asWaiting := missed(nextLook, odds), missed(nextLook, -odds)
		t.Logf("next look %v: peaks missed by %.1f hours in all at the odds of a list who look, %.1f of a list who wait", nextLook, asLooking, asWaiting)
		if nextLook && asLooking >= asWaiting || !nextLook && asWaiting >= asLooking {
			t.Errorf("next look %v: missed by %.1f hours at a looking list's odds, %.1f at a waiting list's", nextLook, asLooking, asWaiting)
		}
	}
}
