package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/scoring"
	"kadenz/store"
)

// counterStore is the part of the store the population refresh reads.
type counterStore struct {
	Store
	vals  map[string]int64
	reads int
}

func (s *counterStore) Counters(names ...string) (map[string]int64, error) {
	s.reads++
	out := map[string]int64{}
	for _, n := range names {
		if v, ok := s.vals[n]; ok {
			out[n] = v
		}
	}
	return out, nil
}

func TestPopulationLiftsFromCounters(t *testing.T) {
	cfg := config.Default()
	db := &counterStore{vals: map[string]int64{
		"pop/all/released": 10000, "pop/all/opens": 2000, "pop/all/clicks": 200,
		"pop/topic/shoes/released": 3000, "pop/topic/shoes/opens": 900, "pop/topic/shoes/clicks": 120,
		"pop/topic/books/released": 3000, "pop/topic/books/opens": 300, "pop/topic/books/clicks": 10,
		"pop/topic/rare/released": 5, "pop/topic/rare/opens": 5, "pop/topic/rare/clicks": 5,
	}}
	e, err := New(Options{Governor: &cfg.Governor, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	boots := scoring.TermBitsOf([]string{"boots"})
	k := 0
	for ; boots[k/64]&(1<<uint(k%64)) == 0; k++ {
	}
	db.vals[popCounter(termScope(k), "released")] = 2000
	db.vals[popCounter(termScope(k), "opens")] = 700
	db.vals[popCounter(termScope(k), "clicks")] = 90
	e.notePopulationTopics([]scoring.Held{{Features: &scoring.Features{Topics: []string{"Shoes", "books", "rare"}}}})
	now := time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)
	if err := e.refreshPopulation(now); err != nil {
		t.Fatal(err)
	}
	pop := e.population
	if pop.TopicLift["shoes"] <= 1.2 || pop.TopicLift["books"] >= 0.8 {
		t.Errorf("lifts shoes %.3f, books %.3f: want the popular topic above 1 and the other below", pop.TopicLift["shoes"], pop.TopicLift["books"])
	}
	// Five releases say little: shrunk toward 1.
	if l := pop.TopicLift["rare"]; l < 1 || l > 1.5 {
		t.Errorf("a topic with 5 releases: lift %.3f, want shrunk toward 1", l)
	}
	if len(pop.TermLift) != scoring.ContentBuckets || pop.TermLift[k] <= 1.2 {
		t.Errorf("term lift of boots' bucket %.3f", pop.TermLift[k])
	}
	for _, l := range pop.TermLift {
		if l < 1.0/maxPopulationLift || l > maxPopulationLift {
			t.Fatalf("a lift out of bounds: %.3f", l)
		}
	}
	// At most hourly.
	reads := db.reads
	if err := e.refreshPopulation(now.Add(30 * time.Minute)); err != nil || db.reads != reads {
		t.Errorf("refreshed again after 30 minutes (%d reads)", db.reads-reads)
	}
	if err := e.refreshPopulation(now.Add(61 * time.Minute)); err != nil || db.reads <= reads {
		t.Errorf("not refreshed after an hour")
	}
}

// With enough clicks on the list, lifts follow clicks, not opens: a topic
// opened as often as the average but clicked a third as often is below
// average, and one opened less but clicked more is above.
func TestPopulationLiftsFollowClicks(t *testing.T) {
	cfg := config.Default()
	db := &counterStore{vals: map[string]int64{
		"pop/all/released": 10000, "pop/all/opens": 2000, "pop/all/clicks": 200,
		"pop/topic/sale/released": 3000, "pop/topic/sale/opens": 600, "pop/topic/sale/clicks": 20,
		"pop/topic/boots/released": 3000, "pop/topic/boots/opens": 450, "pop/topic/boots/clicks": 110,
	}}
	e, err := New(Options{Governor: &cfg.Governor, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	e.notePopulationTopics([]scoring.Held{{Features: &scoring.Features{Topics: []string{"sale", "boots"}}}})
	if err := e.refreshPopulation(time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if l := e.population.TopicLift["sale"]; l >= 0.8 {
		t.Errorf("opened as usual, clicked a third as often: lift %.3f", l)
	}
	if l := e.population.TopicLift["boots"]; l <= 1.2 {
		t.Errorf("opened less, clicked more: lift %.3f", l)
	}
}

// openedListEngine is an engine on counters of 10,000 releases and 2,000
// opens, and a time to refresh its population at.
func openedListEngine(t *testing.T) (*Engine, *counterStore, time.Time) {
	t.Helper()
	cfg := config.Default()
	db := &counterStore{vals: map[string]int64{"pop/all/released": 10000, "pop/all/opens": 2000}}
	e, err := New(Options{Governor: &cfg.Governor, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	return e, db, time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)
}

// The list's open-delay law: each first open's delay is counted by
// QualityFeedbackCounters into its bin, and the refresh fits the law from
// the bins (scoring.FitOpenDelays); without enough opens the defaults stand.
func TestPopulationDelayLawFromCounters(t *testing.T) {
	e, db, now := openedListEngine(t)
	if err := e.refreshPopulation(now); err != nil {
		t.Fatal(err)
	}
	if p := e.population; p.OpenDelayPresent != 0 || p.OpenDelayAway != 0 {
		t.Fatalf("no delays counted, law %v / %v", p.OpenDelayPresent, p.OpenDelayAway)
	}
	rng := rand.New(rand.NewPCG(2, 9))
	for i := range 5000 {
		mu := 6 * time.Hour
		if i%2 == 0 {
			mu = 10 * time.Minute
		}
		ev := scoring.Engagement{Open: true, OpenedAfter: time.Duration(rng.ExpFloat64() * float64(mu))}
		for k, v := range QualityFeedbackCounters(ev) {
			db.vals[k] += v
		}
	}
	// A repeat open counts no delay.
	if c := QualityFeedbackCounters(scoring.Engagement{Click: true}); len(c) == 0 {
		t.Fatal("a click counted nothing")
	} else {
		for k := range c {
			if strings.HasPrefix(k, "pop/delay/") {
				t.Errorf("an engagement without a delay counted %s", k)
			}
		}
	}
	if err := e.refreshPopulation(now.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	p := e.population
	if r := p.OpenDelayPresent.Minutes() / 10; r < 0.85 || r > 1.15 {
		t.Errorf("present %v, want about 10m", p.OpenDelayPresent)
	}
	if r := p.OpenDelayAway.Hours() / 6; r < 0.85 || r > 1.15 {
		t.Errorf("away %v, want about 6h", p.OpenDelayAway)
	}
	if l, _ := e.Learned(); l.OpenDelayPresent != p.OpenDelayPresent || l.OpenDelayAway != p.OpenDelayAway || l.LookShare != 0.5 {
		t.Errorf("learned %+v, want the fitted law and even odds", l)
	}
}

// A release counts its reader's evidence for looking (scoring.Decision.
// LookEvidence) in the bins the refresh fits the list's odds from, in
// enforce mode and in shadow mode's forecast alike; a release to a reader
// with no settled history says nothing and counts nothing.
func TestLookEvidenceCountedAtRelease(t *testing.T) {
	for _, mode := range []string{config.ModeEnforce, config.ModeShadow} {
		t.Run(mode, func(t *testing.T) {
			db, err := store.Open(filepath.Join(t.TempDir(), "kadenz.db"), store.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			now := monday10
			// Three weeks of mail, every other one opened an hour later.
			p := &scoring.Profile{}
			for i := range 21 {
				at := now.Add(time.Duration(i-22)*24*time.Hour + time.Duration(i%5)*3*time.Hour)
				id := fmt.Sprint("old", i)
				p.RecordRelease(scoring.Release{At: at, MessageID: id}, scoring.DefaultMemory())
				if i%2 == 0 {
					p.RecordEvent(scoring.Event{Kind: scoring.EventOpen, At: at.Add(time.Hour), MessageID: id}, time.UTC, scoring.DefaultMemory())
				}
			}
			raw, err := p.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if err := db.PutProfile("known@example.test", raw); err != nil {
				t.Fatal(err)
			}
			msg := store.Message{ID: "m1", From: "news@shop.test", Received: now, Class: "marketing", Features: []byte(`{"subject":"Boots"}`)}
			held := func(_ int, e *store.Envelope) { e.State, e.Due = store.StateHeld, now }
			if _, err := db.AcceptWith(msg, []byte("Subject: Boots\r\n\r\nbody\r\n"), []string{"known@example.test", "new@example.test"}, now, held); err != nil {
				t.Fatal(err)
			}
			cfg := config.Default()
			cfg.Governor.Mode = mode
			// Quiet until noon: enforce defers the message, so shadow mode
			// sends it at once and its forecast releases a copy later.
			cfg.Governor.QuietHours = config.QuietHours{Start: "21:00", End: "12:00"}
			e, err := New(Options{Governor: &cfg.Governor, Store: db, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			// Decide hour by hour until enforce has released both (in
			// shadow mode, until its forecast has).
			for h := 0; h < 8*24; h++ {
				if _, err := e.DecideDue(now.Add(time.Duration(h) * time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
			vals, err := db.Counters(append([]string{releasedAllCounter}, lookCounters...)...)
			if err != nil {
				t.Fatal(err)
			}
			if vals[releasedAllCounter] != 2 {
				t.Fatalf("%d releases counted, want 2 (the message to both readers)", vals[releasedAllCounter])
			}
			var counted int64
			for _, n := range lookCounters {
				counted += vals[n]
			}
			if counted != 1 {
				t.Errorf("%d releases counted evidence, want 1 (the known reader's)", counted)
			}
		})
	}
}

// The list's odds of the two kinds of reader are fitted from the look
// counters at the refresh (scoring.FitLookOdds): even until there are
// enough, then leaning the way the evidence does.
func TestPopulationLookOddsFromCounters(t *testing.T) {
	e, db, now := openedListEngine(t)
	db.vals[lookCounters[scoring.LookEvidenceBin(3)]] = 500 // too few to fit
	if err := e.refreshPopulation(now); err != nil {
		t.Fatal(err)
	}
	if o := e.population.LookOdds; o != 0 {
		t.Fatalf("500 releases: odds %v, want even (0)", o)
	}
	db.vals[lookCounters[scoring.LookEvidenceBin(-1)]] = 1500
	if err := e.refreshPopulation(now.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	want, _ := scoring.FitLookOdds(countsOf(db.vals))
	if o := e.population.LookOdds; o != want || o == 0 {
		t.Errorf("odds %v, want FitLookOdds' %v", o, want)
	}
	// Operators see it as a share (engine.Learned, a metric).
	l, ok := e.Learned()
	if !ok || math.Abs(l.LookShare-1/(1+math.Exp(-want))) > 1e-12 || !l.At.Equal(now.Add(2*time.Hour)) {
		t.Errorf("learned %+v (%v), want the share of odds %v at the last refresh", l, ok, want)
	}
	if l.OpenDelayPresent != scoring.DefaultOpenDelayPresent || l.OpenDelayAway != scoring.DefaultOpenDelayAway {
		t.Errorf("learned delay law %v / %v, want the defaults (no delays counted)", l.OpenDelayPresent, l.OpenDelayAway)
	}
}

func countsOf(vals map[string]int64) []int64 {
	c := make([]int64, len(lookCounters))
	for i, n := range lookCounters {
		c[i] = vals[n]
	}
	return c
}

// The list's stop rate: each release counts toward it (countRelease) and
// each stop a piece of feedback newly counted (QualityFeedbackCounters),
// and the refresh sets the fatigue cost's base from the two
// (scoring.StopRate). Releases counted before stops were are not in it.
func TestPopulationStopRateFromCounters(t *testing.T) {
	e, db, now := openedListEngine(t)
	if err := e.refreshPopulation(now); err != nil {
		t.Fatal(err)
	}
	prior := scoring.DefaultPopulation().UnsubscribeRate
	if r := e.population.UnsubscribeRate; r != prior {
		t.Fatalf("no stop-rate releases counted (10,000 releases before): rate %v, want the prior %v", r, prior)
	}
	counters := map[string]int64{}
	for range 40_000 {
		countRelease(counters, &scoring.Release{})
	}
	for range 200 {
		for k, v := range QualityFeedbackCounters(scoring.Engagement{Stop: true}) {
			counters[k] += v
		}
	}
	// Opens and clicks are not stops.
	for k, v := range QualityFeedbackCounters(scoring.Engagement{Open: true, Click: true}) {
		counters[k] += v
	}
	for k, v := range counters {
		db.vals[k] += v
	}
	if err := e.refreshPopulation(now.Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	want := scoring.StopRate(200, 40_000, prior) // 0.5% measured, shrunk: (200+10)/(40,000+5,000)
	if r := e.population.UnsubscribeRate; r != want || r <= 2*prior {
		t.Errorf("200 stops in 40,000 releases: rate %v, want %v (above twice the prior)", r, want)
	}
	if l, _ := e.Learned(); l.StopRate != want {
		t.Errorf("learned stop rate %v, want %v", l.StopRate, want)
	}
}
