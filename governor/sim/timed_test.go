package sim

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// The hours prior is what the population draws: its mean activity at each
// hour of the day matches a large drawn population's.
func TestHoursPriorMatchesPopulation(t *testing.T) {
	for _, grid := range [][]hourHypothesis{hourHypotheses, flatHourHypotheses} {
		var total float64
		for _, h := range grid {
			total += h.prior
		}
		if math.Abs(total-1) > 1e-9 {
			t.Fatalf("an hours prior sums to %v", total)
		}
	}
	const n = 40000
	pop, err := newPopulation(rand.New(rand.NewPCG(9, 4)), n, MixDefault, WorldStructured)
	if err != nil {
		t.Fatal(err)
	}
	prior := newHoursReader(hourHypotheses)
	for h := 0.0; h < 24; h += 0.5 {
		var sum, sq float64
		for _, r := range pop {
			a := activityAt(h, r.peak, r.width)
			sum += a
			sq += a * a
		}
		mean := sum / n
		se := math.Sqrt((sq/n - mean*mean) / n)
		// The grid stands for each bin by its centre: allow that on top of
		// four standard errors.
		if got := prior.activity(h); math.Abs(got-mean) > 4*se+0.005 {
			t.Errorf("hour %.1f: the prior's mean activity %.4f, the population's %.4f", h, got, mean)
		}
	}
}

// An ignored mail never raises the belief that the reader is about at
// its hour, a quick open never lowers it, and a reader's peak is found
// from the outcomes of mail delivered at random hours.
func TestHoursReaderLearns(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 300 {
		r := newHoursReader([][]hourHypothesis{hourHypotheses, flatHourHypotheses}[i%2])
		for range 15 {
			h := 24 * rng.Float64()
			base := 0.1 + 0.5*rng.Float64()
			before := r.activity(h)
			opened := rng.IntN(3) == 0
			delay := 5 * time.Minute
			r.observe(h, base, opened, delay, bayesReadTime)
			after := r.activity(h)
			if !opened && after > before+1e-12 {
				t.Fatalf("an ignored mail at %.2fh raised the activity there %.4f -> %.4f", h, before, after)
			}
			if opened && after < before-1e-12 {
				t.Fatalf("an open 5 minutes after delivery at %.2fh lowered the activity there %.4f -> %.4f", h, before, after)
			}
		}
	}
	// How soon they opened says how present they were: an open five
	// minutes after delivery says more for the hour than one four hours
	// after.
	for h := 0.0; h < 24; h++ {
		quick, slow := newHoursReader(hourHypotheses), newHoursReader(hourHypotheses)
		quick.observe(h, 0.4, true, 5*time.Minute, bayesReadTime)
		slow.observe(h, 0.4, true, 4*time.Hour, bayesReadTime)
		if q, s := quick.activity(h), slow.activity(h); q <= s {
			t.Errorf("hour %.0f: activity after an open 5 minutes after delivery %.4f, 4 hours after %.4f", h, q, s)
		}
	}
	// Being opened at all says they were about, and being ignored that
	// they were not.
	for h := 0.0; h < 24; h++ {
		prior, opened, ignored := newHoursReader(hourHypotheses), newHoursReader(hourHypotheses), newHoursReader(hourHypotheses)
		opened.observe(h, 0.4, true, 90*time.Minute, bayesReadTime)
		for range 3 {
			ignored.observe(h, 0.4, false, 0, bayesReadTime)
		}
		if p, o, i := prior.activity(h), opened.activity(h), ignored.activity(h); !(i < p && p < o) {
			t.Errorf("hour %.0f: activity after three ignored mails %.4f, none %.4f, an open 90 minutes after delivery %.4f; want rising", h, i, p, o)
		}
	}
	// An evening reader, mailed at random hours, as the response model
	// would have them respond: their best slot ends up near their peak,
	// even from a flat prior.
	p := &recipient{peak: 20.5, width: 2, openness: 0.6, loc: time.UTC}
	r := newHoursReader(flatHourHypotheses)
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	for i := range 60 {
		at := day.Add(time.Duration(i)*24*time.Hour + time.Duration(rng.IntN(24*60))*time.Minute)
		a := p.activity(at)
		base := p.openness * 0.65
		opened := rng.Float64() < base*a
		delay := time.Duration(rng.ExpFloat64() * float64(30*time.Minute+time.Duration((1-a)*float64(4*time.Hour))))
		if delay > bayesReadTime {
			opened = false
		}
		r.observe(localHour(at, time.UTC), base, opened, delay, bayesReadTime)
	}
	slot := r.bestSlot(day.Add(100*24*time.Hour+6*time.Hour), time.Time{}, time.UTC)
	if h := localHour(slot, time.UTC); math.Abs(h-p.peak) > 1.5 {
		t.Errorf("after 60 mails the best slot is %.1fh, the reader's peak %.1fh", h, p.peak)
	}
	// The prior alone sends in the morning: 40% of readers peak then.
	if h := localHour(newHoursReader(hourHypotheses).bestSlot(day.Add(2*time.Hour), time.Time{}, time.UTC), time.UTC); h < 7 || h > 9 {
		t.Errorf("with no evidence the best slot is %.1fh, want the morning", h)
	}
	// An offer that expires first is sent before it does.
	exp := day.Add(3 * time.Hour)
	if s := newHoursReader(hourHypotheses).bestSlot(day.Add(2*time.Hour), exp, time.UTC); !s.Before(exp) {
		t.Errorf("an offer expiring at %v is planned for %v", exp, s)
	}
}

// The timed yardsticks deliver no earlier than submitted and within a day,
// hold nothing into quiet hours, never repeat a campaign within a week, honour the load ceiling, are
// deterministic, and knowing the hours buys clicks over the untimed oracle.
func TestTimedYardsticks(t *testing.T) {
	names := []string{TimedOraclePolicy(0.4, 100), TimedOraclePolicy(0.4, 0.3), "learned-timed-0.35-100", "hours-timed-0.40-100", "learned-hours-0.35-100", "hours-flat-0.40-100", "learned-flat-0.35-100"}
	only := append([]string{PolicySendAll, PolicyOracle}, names...)
	run := func() *Result {
		res, err := Run(Options{Recipients: 60, Days: 10, Seed: 4, World: WorldStructured, TempDir: t.TempDir(), Only: only, Diagnose: true})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := run(), run()
	all := a.Policy(PolicySendAll)
	for _, name := range names {
		y := a.Policy(name)
		if y == nil || y.Released == 0 || y.Released >= all.Released {
			t.Fatalf("%s released %+v of send-all's %d", name, y, all.Released)
		}
		if y2 := b.Policy(name); y2.Released != y.Released || y2.Clicks != y.Clicks {
			t.Errorf("%s: two runs differ: %d/%d and %d/%d released/clicks", name, y.Released, y.Clicks, y2.Released, y2.Clicks)
		}
		last := map[string]Release{}
		for _, x := range y.Releases {
			if !x.Marketing {
				if x.Released != x.Submitted {
					t.Errorf("%s delayed transactional mail %v", name, x.Released.Sub(x.Submitted))
				}
				continue
			}
			if d := x.Released.Sub(x.Submitted); d < 0 || d >= 24*time.Hour {
				t.Errorf("%s released message %d %v after submission", name, x.Message, d)
			}
			// Quiet hours are kept, unless an offer expires before they end.
			rc := a.pop[a.stream[x.Message].rcpt]
			if h := x.Released.In(rc.loc).Hour(); (h < 8 || h >= 21) && x.Released != x.Submitted {
				t.Errorf("%s held message %d to %v, in %s's quiet hours", name, x.Message, x.Released.In(rc.loc), x.Recipient)
			}
			k := x.Recipient + "/" + x.Campaign
			if p, ok := last[k]; ok && x.Released.Sub(p.Released) < repeatWindow {
				t.Errorf("%s: %s got campaign %s twice within a week", name, x.Recipient, x.Campaign)
			}
			last[k] = x
		}
	}
	if o, y := a.Policy(PolicyOracle), a.Policy(TimedOraclePolicy(0.4, 100)); y.Clicks <= o.Clicks {
		t.Errorf("the timed oracle clicked %d, the untimed oracle %d: timing bought nothing", y.Clicks, o.Clicks)
	}
	if loose, tight := a.Policy(TimedOraclePolicy(0.4, 100)), a.Policy(TimedOraclePolicy(0.4, 0.3)); tight.Released >= loose.Released {
		t.Errorf("a load ceiling of 0.3 released %d, no ceiling %d", tight.Released, loose.Released)
	}
	for _, bad := range []string{"oracle-timed-x", "oracle-timed-0.4", "hours-timed-2-1", "learned-hours-0.3-0"} {
		if _, err := Run(Options{Recipients: 5, Days: 1, Only: []string{bad}, TempDir: t.TempDir()}); err == nil {
			t.Errorf("%s was accepted as a policy", bad)
		}
	}
}
