package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// The response model: what a recipient does with a marketing message
// delivered at time T. It was written down (docs/simulation.md) before
// any policy was measured against it, and it knows nothing of Kadenz.
//
//	relevance R   = mean hidden interest over the message's topics
//	activity  A   = 0.25 + 0.75·exp(-d²/2w²), d = hours from T (local) to their peak
//	load      L   = recent marketing volume (mails/day, decayed with a 2-day
//	                half-life) / their tolerance; with Options.Bursts, the
//	                larger of that and the same decayed with the shorter
//	                half-life (a burst felt as the rate it momentarily is)
//	fatigue   F   = 1 / (1 + (L/2)²)
//	repeat    D   = 0.3 if they got this campaign in the last 7 days, else 1
//	P(open)       = openness · (0.3 + 0.7R) · A · F · D
//	P(click|open) = min(1, 0.35 · R · quality), 0 once the offer has expired
//	P(unsub)      = 0.001  · (0.25 + 1.5(1−R)) · (1 + (L/2)²)
//	P(complaint)  = 0.0003 · 1.5(1−R)         · (1 + (L/2)²)
//
// When they look at the mail (and so when an open happens) depends on
// Options.Look: after a delay that is shorter the more present they were
// when it came (LookDelay, the default, lookDelayMean), or when they are
// next about, whatever the hour it came (LookNext, nextLook).
//
// An unsubscribe or complaint stops all further marketing mail to them in
// every policy (the sender honours both). Transactional mail is wanted:
// it neither engages nor tires. Every probability is compared with draws
// that depend only on the seed and the message, so all policies see the
// same luck for the same (recipient, message).

const (
	loadHalfLife    = 48 * time.Hour
	repeatWindow    = 7 * 24 * time.Hour
	repeatFactor    = 0.3
	clickScale      = 0.35
	unsubscribeBase = 0.001
	complaintBase   = 0.0003
)

// Look is how readers come to look at their mail.
type Look string

// Looks.
const (
	// LookDelay: a mail is looked at after an exponential delay whose mean
	// runs from 30 minutes for a reader at their peak to four and a half
	// hours at their quietest (lookDelayMean). The delay law the engine's
	// presence model assumes in form, and the one every yardstick knows.
	LookDelay Look = "delay"
	// LookNext: a mail is looked at when the reader is next about
	// (activity nextLookActivity or more), then after a mean 30 minutes.
	// The delay says little here beyond "they were not about", and the
	// open's time says when they are: a world the presence model's delay
	// law does not describe (docs/simulation.md, round 18).
	LookNext Look = "next"
)

func (l Look) check() error {
	switch l {
	case LookDelay, LookNext, "":
		return nil
	}
	return fmt.Errorf("unknown look %q (want delay or next)", l)
}

const (
	// nextLookActivity is the activity at which a LookNext reader looks.
	nextLookActivity = 0.7
	// lookSoon is the mean delay of a reader who is about: at their peak
	// under LookDelay, once they look under LookNext.
	lookSoon = 30 * time.Minute
)

// reader is a recipient's state as the response model sees it in one
// policy's run.
type reader struct {
	volume   float64 // decayed count of marketing mail received
	volumeAt time.Time
	// burst is the same count decayed with Options.Bursts (when set).
	burst float64
	// campaigns maps a campaign to when they last received it.
	campaigns map[string]time.Time
	// stopped is when they unsubscribed or complained (zero: never).
	stopped time.Time
}

// draws are one (recipient, message) pair's random numbers, the same in
// every policy.
type draws struct {
	open, click, unsubscribe, complaint, delay, clickDelay float64
}

func drawsFor(seed uint64, m *message) draws {
	rng := rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, uint64(m.index)))
	return draws{rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64(), rng.ExpFloat64(), rng.ExpFloat64()}
}

// outcome is what one delivered marketing message led to.
type outcome struct {
	opened, clicked          bool
	unsubscribed, complained bool
	openAt, clickAt, stopAt  time.Time
	// pressure is the over-mailing the reader felt (1 + (L/2)²): hidden,
	// for the diagnostics only.
	pressure float64
}

// respond applies the model to a marketing message delivered at t and
// updates the reader's state.
func respond(p *recipient, s *reader, m *message, t time.Time, d draws, how Look, bursts time.Duration) outcome {
	var o outcome
	if !s.stopped.IsZero() && !s.stopped.After(t) {
		return o // gone: the mail lands unread
	}
	// Volume before this message, decayed to t.
	if !s.volumeAt.IsZero() && t.After(s.volumeAt) {
		s.volume *= math.Exp2(-float64(t.Sub(s.volumeAt)) / float64(loadHalfLife))
		if bursts > 0 {
			s.burst *= math.Exp2(-float64(t.Sub(s.volumeAt)) / float64(bursts))
		}
	}
	s.volumeAt = maxTime(s.volumeAt, t)
	load := loadRate(s.volume, loadHalfLife) / p.tolerance
	if bursts > 0 {
		load = max(load, loadRate(s.burst, bursts)/p.tolerance)
	}
	pressure := 1 + (load/2)*(load/2)
	fatigue := 1 / pressure
	o.pressure = pressure
	c := m.campaign
	repeat := 1.0
	if last, ok := s.campaigns[c.id]; ok && t.Sub(last) < repeatWindow {
		repeat = repeatFactor
	}
	s.volume++
	s.burst++
	s.campaigns[c.id] = t

	rel := p.relevance(c.topics)
	act := p.activity(t)
	var look time.Time
	switch how {
	case LookNext:
		look = nextLook(p, t).Add(time.Duration(d.delay * float64(lookSoon)))
	default:
		// They look at mail sooner when it arrives while they are about.
		look = t.Add(time.Duration(d.delay * float64(lookDelayMean(act))))
	}
	pOpen := p.openness * (0.3 + 0.7*rel) * act * fatigue * repeat
	pClick := math.Min(1, clickScale*rel*c.quality)
	if !c.expires.IsZero() && !t.Before(c.expires) {
		pClick = 0
	}
	if d.open < pOpen {
		o.opened, o.openAt = true, look
		if d.click < pClick {
			o.clicked = true
			o.clickAt = look.Add(time.Duration(d.clickDelay * float64(5*time.Minute)))
		}
	}
	switch {
	case !s.stopped.IsZero():
		// Already on their way out (the stop takes effect when they look).
	case d.unsubscribe < unsubscribeBase*(0.25+1.5*(1-rel))*pressure:
		o.unsubscribed, o.stopAt = true, look
	case d.complaint < complaintBase*1.5*(1-rel)*pressure:
		o.complained, o.stopAt = true, look
	}
	if !o.stopAt.IsZero() {
		s.stopped = o.stopAt
	}
	return o
}

// loadRate is the steady mails a day that a marketing volume decayed with
// halfLife stands for: a steady r mails/day gives volume r·halfLife/ln2
// (in days).
func loadRate(volume float64, halfLife time.Duration) float64 {
	return volume * math.Ln2 / (float64(halfLife) / float64(24*time.Hour))
}

// lookDelayMean is how long a reader takes on average to look at a mail
// that arrives when their activity is act: 30 minutes when they are about,
// up to four hours more when they are away.
func lookDelayMean(act float64) time.Duration {
	return lookSoon + time.Duration((1-act)*float64(4*time.Hour))
}

// nextLook is the first time from t, in steps of ten minutes, at which
// the reader's activity is nextLookActivity or more (every reader's is, at
// their peak).
func nextLook(p *recipient, t time.Time) time.Time {
	for i := 0; i < 6*24; i++ {
		if p.activity(t) >= nextLookActivity {
			return t
		}
		t = t.Add(10 * time.Minute)
	}
	return t
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
