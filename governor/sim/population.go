package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Topics are what the synthetic shop writes about.
var Topics = []string{"shoes", "outdoor", "electronics", "books", "home", "beauty", "travel", "food"}

// zones are the recipients' time zones: real IANA names, spread over the
// day, so that one send time is morning for some and night for others.
var zones = []string{"Europe/Berlin", "Europe/London", "America/New_York", "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney"}

// Mix names a population mix.
type Mix string

// Population mixes. They differ only in how much mail recipients
// tolerate, so that a result can be checked for depending on one guess
// about the audience.
const (
	// MixDefault: recipients are comfortable with about one marketing
	// mail a day (median; log-normal spread).
	MixDefault Mix = "default"
	// MixTolerant: about three a day, a list of bargain hunters.
	MixTolerant Mix = "tolerant"
	// MixSensitive: about one every two days, a list that tires quickly;
	// as the response model's unsubscribe and complaint hazards grow with
	// the square of over-mailing, it also leaves sooner.
	MixSensitive Mix = "sensitive"
	// MixRelaxed: about eight a day, more than any sender here sends:
	// volume is cheap, and only relevance separates good mail from bad
	// (issue 18). Not in Mixes, so existing sweeps are unchanged.
	MixRelaxed Mix = "relaxed"
)

// Mixes lists the known mixes.
var Mixes = []Mix{MixDefault, MixTolerant, MixSensitive}

// medianTolerance is the mix's median comfortable volume, mails per day.
func (m Mix) medianTolerance() (float64, error) {
	switch m {
	case MixDefault, "":
		return 1, nil
	case MixTolerant:
		return 3, nil
	case MixSensitive:
		return 0.5, nil
	case MixRelaxed:
		return 8, nil
	}
	return 0, fmt.Errorf("unknown population mix %q (want default, tolerant, sensitive or relaxed)", m)
}

// recipient is one synthetic person. Everything here is hidden from the
// engine, which only sees mail and feedback.
type recipient struct {
	addr string
	zone string
	loc  *time.Location
	// interest per topic, 0 to 1: how much a message on it appeals.
	interest []float64
	// peak is the local hour (fractional) when they read mail most;
	// width the spread of their active period in hours.
	peak, width float64
	// tolerance is the marketing volume, mails per day, at which they
	// start to feel over-mailed.
	tolerance float64
	// openness is how likely they are to open a relevant, well-timed mail
	// when not fatigued.
	openness float64
}

// newPopulation draws n recipients.
func newPopulation(rng *rand.Rand, n int, mix Mix, world World) ([]*recipient, error) {
	median, err := mix.medianTolerance()
	if err != nil {
		return nil, err
	}
	locs := map[string]*time.Location{}
	for _, z := range zones {
		loc, err := time.LoadLocation(z)
		if err != nil {
			return nil, err
		}
		locs[z] = loc
	}
	pop := make([]*recipient, n)
	for i := range pop {
		r := &recipient{
			addr:     fmt.Sprintf("r%05d@customers.example", i),
			zone:     zones[rng.IntN(len(zones))],
			interest: make([]float64, len(Topics)),
		}
		r.loc = locs[r.zone]
		// A quarter of topics are liked, the rest barely interest (the
		// structured worlds: by popularity, world.go).
		liked := 0
		for t := range r.interest {
			if world.structured() {
				break
			}
			if rng.Float64() < 0.25 {
				r.interest[t] = 0.5 + 0.5*rng.Float64()
				liked++
			} else {
				r.interest[t] = 0.15 * rng.Float64()
			}
		}
		if world.structured() {
			structuredInterests(rng, r.interest)
		} else if liked == 0 {
			r.interest[rng.IntN(len(Topics))] = 0.5 + 0.5*rng.Float64()
		}
		// Morning, lunch or evening readers.
		switch x := rng.Float64(); {
		case x < 0.4:
			r.peak = 7 + 2*rng.Float64()
		case x < 0.7:
			r.peak = 12 + rng.Float64()
		default:
			r.peak = 19 + 3*rng.Float64()
		}
		r.width = 1.5 + 2*rng.Float64()
		r.tolerance = median * math.Exp(0.5*rng.NormFloat64())
		r.openness = 0.3 + 0.4*rng.Float64()
		pop[i] = r
	}
	return pop, nil
}

// activity is how present the recipient is at local time t: 1 at their
// peak, falling to 0.25 far from it. Mail that arrives while they are
// away is read later, under newer mail, if at all.
func (r *recipient) activity(t time.Time) float64 {
	return activityAt(localHour(t, r.loc), r.peak, r.width)
}

// activityAt is the activity at local hour of day h (fractional) of a
// reader with peak and width.
func activityAt(h, peak, width float64) float64 {
	d := math.Abs(h - peak)
	d = math.Min(d, 24-d)
	return 0.25 + 0.75*math.Exp(-d*d/(2*width*width))
}

// localHour is t's hour of day, fractional, in loc.
func localHour(t time.Time, loc *time.Location) float64 {
	l := t.In(loc)
	return float64(l.Hour()) + float64(l.Minute())/60
}

// relevance is the mean interest over a message's topics.
func (r *recipient) relevance(topics []int) float64 {
	if len(topics) == 0 {
		return 0
	}
	s := 0.0
	for _, t := range topics {
		s += r.interest[t]
	}
	return s / float64(len(topics))
}
