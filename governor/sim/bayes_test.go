package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The prior enumerates what the population draws: its marginal chance
// that each topic is liked matches the share of liked topics in a large
// drawn population, in both kinds of world.
func TestLikedPriorMatchesPopulation(t *testing.T) {
	for _, w := range []World{WorldClassic, WorldStructured} {
		prior := likedPrior(w)
		var total float64
		want := make([]float64, len(Topics))
		for s, l := range prior {
			p := math.Exp(l)
			total += p
			for tp := range Topics {
				if s&(1<<tp) != 0 {
					want[tp] += p
				}
			}
		}
		if math.Abs(total-1) > 1e-9 {
			t.Fatalf("%s: prior sums to %v", w, total)
		}
		if !math.IsInf(prior[0], -1) {
			t.Errorf("%s: the empty set has prior %v, want none", w, math.Exp(prior[0]))
		}
		const n = 40000
		pop, err := newPopulation(rand.New(rand.NewPCG(7, 1)), n, MixDefault, w)
		if err != nil {
			t.Fatal(err)
		}
		for tp := range Topics {
			liked := 0
			for _, r := range pop {
				if r.interest[tp] >= 0.5 {
					liked++
				}
			}
			got := float64(liked) / n
			// Four standard errors.
			if se := math.Sqrt(want[tp] * (1 - want[tp]) / n); math.Abs(got-want[tp]) > 4*se {
				t.Errorf("%s topic %d: %.4f of the population like it, the prior says %.4f", w, tp, got, want[tp])
			}
		}
	}
}

// A click on a topic's mail never lowers the posterior relevance of that
// topic, and ignored mail never raises it; a reader who keeps clicking one
// topic ends up believed to like it.
func TestBayesReaderLearns(t *testing.T) {
	prior := likedPrior(WorldStructured)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b := newBayesReader(prior)
		topic := []int{rng.IntN(len(Topics))}
		for range 20 {
			other := []int{rng.IntN(len(Topics))}
			openF, clickF := 0.2+0.5*rng.Float64(), 0.35*(0.5+rng.Float64())
			before := b.relevance(topic)
			opened := rng.IntN(2) == 0
			clicked := opened && rng.IntN(2) == 0
			b.observe(other, openF, clickF, opened, clicked)
			if other[0] != topic[0] {
				continue
			}
			after := b.relevance(topic)
			if clicked && after < before-1e-12 {
				t.Fatalf("a click on topic %d lowered its relevance %.4f -> %.4f", topic[0], before, after)
			}
			if !opened && after > before+1e-12 {
				t.Fatalf("an ignored mail on topic %d raised its relevance %.4f -> %.4f", topic[0], before, after)
			}
		}
	}
	// A click says more than an open alone, which says more than nothing.
	for tp := range Topics {
		var after [3]float64
		for i, o := range [3][2]bool{{false, false}, {true, false}, {true, true}} {
			b := newBayesReader(prior)
			b.observe([]int{tp}, 0.5, 0.35, o[0], o[1])
			after[i] = b.relevance([]int{tp})
		}
		if !(after[0] < after[1] && after[1] < after[2]) {
			t.Errorf("topic %d: relevance after ignored, opened, clicked: %.4f, %.4f, %.4f; want rising", tp, after[0], after[1], after[2])
		}
	}
	b := newBayesReader(prior)
	rare := len(Topics) - 1 // the least popular topic
	start := b.relevance([]int{rare})
	for range 6 {
		b.observe([]int{rare}, 0.5, 0.35, true, true)
	}
	if got := b.relevance([]int{rare}); got < 0.6 || start > 0.2 {
		t.Errorf("six clicks on topic %d: relevance %.3f (prior %.3f), want above 0.6 from under 0.2", rare, got, start)
	}
}

// The yardstick sends less than send-all, never a repeat of a campaign
// within a week, and is deterministic.
func TestBayesPolicy(t *testing.T) {
	only := []string{PolicySendAll, BayesPolicy(0.4)}
	run := func() *Result {
		res, err := Run(Options{Recipients: 40, Days: 6, Seed: 3, World: WorldStructured, Diagnose: true, TempDir: t.TempDir(), Only: only})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := run(), run()
	all, y := a.Policy(PolicySendAll), a.Policy(BayesPolicy(0.4))
	if y == nil || y.Released == 0 || y.Released >= all.Released {
		t.Fatalf("yardstick released %+v of send-all's %d", y, all.Released)
	}
	if y2 := b.Policy(BayesPolicy(0.4)); y2.Released != y.Released || y2.Clicks != y.Clicks {
		t.Errorf("two runs differ: %d/%d and %d/%d released/clicks", y.Released, y.Clicks, y2.Released, y2.Clicks)
	}
	last := map[string]Release{}
	for _, x := range y.Releases {
		if !x.Marketing {
			continue
		}
		k := x.Recipient + "/" + x.Campaign
		if p, ok := last[k]; ok && x.Released.Sub(p.Released) < repeatWindow {
			t.Errorf("%s got campaign %s twice within a week", x.Recipient, x.Campaign)
		}
		last[k] = x
	}
	if _, err := Run(Options{Recipients: 5, Days: 1, Only: []string{"bayes-x"}, TempDir: t.TempDir()}); err == nil {
		t.Error("bayes-x was accepted as a policy")
	}
}

// TestBayesYardstick runs the yardsticks (rounds 15 and 16 of
// docs/simulation.md): send-all, the oracle, the Bayes yardstick at each
// threshold of KADENZ_SIM_BAYES and the yardsticks KADENZ_SIM_POLICIES
// names (timed.go), with the mean hidden relevance and reader activity of
// what each released, e.g.
//
//	KADENZ_SIM_BAYES="0.3 0.4 0.5" KADENZ_SIM_MIXES="default tolerant sensitive" KADENZ_SIM_SEEDS="1 2 3" \
//	  KADENZ_SIM_N=1500 KADENZ_SIM_DAYS=28 KADENZ_SIM_WORLD=structured go test -run TestBayesYardstick -v ./governor/sim/
//	KADENZ_SIM_POLICIES="oracle-timed-0.50-1 learned-hours-0.35-100" KADENZ_SIM_MIXES=default KADENZ_SIM_SEEDS=1 \
//	  KADENZ_SIM_N=1500 KADENZ_SIM_DAYS=28 KADENZ_SIM_WORLD=structured go test -run TestBayesYardstick -v ./governor/sim/
func TestBayesYardstick(t *testing.T) {
	ths := strings.Fields(os.Getenv("KADENZ_SIM_BAYES"))
	more := strings.Fields(os.Getenv("KADENZ_SIM_POLICIES"))
	if len(ths)+len(more) == 0 {
		t.Skip("set KADENZ_SIM_BAYES to the thresholds, or KADENZ_SIM_POLICIES to yardsticks' names (timed.go), to run")
	}
	only := []string{PolicySendAll, PolicyOracle}
	for _, s := range ths {
		th, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		only = append(only, BayesPolicy(th))
	}
	only = append(only, more...)
	days, _ := strconv.Atoi(os.Getenv("KADENZ_SIM_DAYS"))
	mixes, seeds, n := diagnosisRuns(t, "KADENZ_SIM_MIXES", "to run the yardsticks")
	fmt.Println("| mix | seed | policy | volume | clicks | unsub + compl. | mean relevance | mean activity |")
	fmt.Println("|---|---:|---|---:|---:|---:|---:|---:|")
	for _, mix := range mixes {
		for _, seed := range seeds {
			res, err := Run(Options{Recipients: n, Days: days, Seed: seed, Mix: Mix(mix), World: World(os.Getenv("KADENZ_SIM_WORLD")), TempDir: t.TempDir(), Only: only, Diagnose: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range only {
				p := res.Policy(name)
				_, rel, _, act := res.picks(p)
				fmt.Printf("| %s | %d | %s | %.1f%% | %.1f%% | %.1f%% | %.3f | %.3f |\n", mix, seed, name,
					100*p.ReleasedVsSendAll, 100*p.ClicksVsSendAll, 100*p.StopsVsSendAll, rel, act)
			}
		}
	}
}
