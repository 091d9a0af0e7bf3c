package engine

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/scoring"
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

// The list's open-delay law: each first open's delay is counted by
// QualityFeedbackCounters into its bin, and the refresh fits the law from
// the bins (scoring.FitOpenDelays); without enough opens the defaults stand.
func TestPopulationDelayLawFromCounters(t *testing.T) {
	cfg := config.Default()
	db := &counterStore{vals: map[string]int64{"pop/all/released": 10000, "pop/all/opens": 2000}}
	e, err := New(Options{Governor: &cfg.Governor, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)
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
}
