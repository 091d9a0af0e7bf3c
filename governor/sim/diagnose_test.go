package sim

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDiagnose prints where send-all's clicks went under Kadenz. It only
// runs when KADENZ_SIM_DIAG names a mix, e.g.
//
//	KADENZ_SIM_DIAG=default KADENZ_SIM_SEED=1 go test -run TestDiagnose -v ./governor/sim/
//
// KADENZ_SIM_N and KADENZ_SIM_DAYS set the list's size and the run's length.
func TestDiagnose(t *testing.T) {
	mix := os.Getenv("KADENZ_SIM_DIAG")
	if mix == "" {
		t.Skip("set KADENZ_SIM_DIAG=<mix> to print the click breakdown")
	}
	seed, _ := strconv.ParseUint(os.Getenv("KADENZ_SIM_SEED"), 10, 64)
	n, _ := strconv.Atoi(os.Getenv("KADENZ_SIM_N"))
	days, _ := strconv.Atoi(os.Getenv("KADENZ_SIM_DAYS")) // 0: the default
	res, err := Run(Options{Recipients: n, Days: days, Seed: seed, Mix: Mix(mix), World: World(os.Getenv("KADENZ_SIM_WORLD")), Diagnose: true, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Policies {
		t.Logf("%-9s released %6d clicks %4d opens %5d stops %4d", p.Name, p.Released, p.Clicks, p.Opens, p.Stops())
	}
	res.Diagnose(os.Stdout)
	res.Structure(os.Stdout)
}

// The diagnostic's report on a small structured run: every section is
// there, the split by declared topics counts every marketing release, and
// the yardstick is a correlation.
func TestDiagnoseReport(t *testing.T) {
	res, err := Run(Options{Recipients: 30, Days: 3, Seed: 3, World: WorldStructured, Diagnose: true, TempDir: t.TempDir(),
		Only: []string{PolicySendAll, PolicyKadenz}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.Diagnose(&b)
	out := b.String()
	for _, want := range []string{"send-all clicks", "declared topics:", "words only:", "yardstick: within-reader corr",
		"within-reader corr(affinity, hidden relevance)", "kadenz outcomes of all marketing mail"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	all := res.Policy(PolicySendAll)
	var declared, words float64
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "send-all") && strings.Contains(line, "declared topics:") {
			if _, err := fmt.Sscanf(line[strings.Index(line, "declared topics:"):], "declared topics: %f released", &declared); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if _, err := fmt.Sscanf(line[strings.Index(line, "words only:"):], "words only: %f", &words); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
		}
	}
	marketing := 0
	for _, r := range all.Releases {
		if r.Marketing {
			marketing++
		}
	}
	if int(declared+words) != marketing || declared == 0 || words == 0 {
		t.Errorf("split %v + %v, want both above 0 and %d marketing releases in all", declared, words, marketing)
	}
	// The stop tables: every class split counts every marketing release,
	// stop and click of its policy once, and tables add up.
	tabs := res.StopTables()
	if len(tabs) != 2 || !strings.Contains(out, "where the") {
		t.Fatalf("%d stop tables", len(tabs))
	}
	for _, tab := range tabs {
		for c, counts := range tab.Counts {
			var n, stops, clicks int
			for _, x := range counts {
				n, stops, clicks = n+x.Released, stops+x.Stops, clicks+x.Clicks
			}
			if n != tab.Released || stops != tab.Stops || clicks != tab.Clicks {
				t.Errorf("%s by %s: %d releases, %d stops, %d clicks; want %d, %d, %d",
					tab.Policy, stopClasses[c].name, n, stops, clicks, tab.Released, tab.Stops, tab.Clicks)
			}
		}
		var twice StopTable
		twice.Add(tab)
		twice.Add(tab)
		if twice.Runs != 2 || twice.Released != 2*tab.Released || twice.Counts[0][0].Released != 2*tab.Counts[0][0].Released {
			t.Errorf("%s: two runs added up to %+v", tab.Policy, twice)
		}
	}
	if tabs[0].Stops == 0 && tabs[1].Stops == 0 {
		t.Log("no stops in this small run; the tables are checked on releases and clicks only")
	}
}

// diagnosisRuns reads what a diagnostic test runs: the mixes listed in
// mixesVar (skipping the test, with why it would run, when there are none),
// the seeds of KADENZ_SIM_SEEDS (1 by default) and the recipients of
// KADENZ_SIM_N (the simulator's default when unset).
func diagnosisRuns(t *testing.T, mixesVar, purpose string) (mixes []string, seeds []uint64, n int) {
	t.Helper()
	mixes = strings.Fields(os.Getenv(mixesVar))
	if len(mixes) == 0 {
		t.Skipf("set %s=<mixes> %s", mixesVar, purpose)
	}
	for _, s := range strings.Fields(cmp.Or(os.Getenv("KADENZ_SIM_SEEDS"), "1")) {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, seed)
	}
	n, _ = strconv.Atoi(os.Getenv("KADENZ_SIM_N"))
	return mixes, seeds, n
}

// TestDiagnoseStops adds up the stop tables (where unsubscribes and
// complaints came from) over several seeds and mixes, since one run has
// only 10-50 stops. It only runs when KADENZ_SIM_STOPS lists the mixes:
//
//	KADENZ_SIM_STOPS="default tolerant" KADENZ_SIM_SEEDS="1 2 3" KADENZ_SIM_N=300 \
//	  KADENZ_SIM_WORLD=structured go test -run TestDiagnoseStops -v -timeout 1h ./governor/sim/
func TestDiagnoseStops(t *testing.T) {
	mixes, seeds, n := diagnosisRuns(t, "KADENZ_SIM_STOPS", "to print the pooled stop tables")
	var sum [2]StopTable
	for _, mix := range mixes {
		for _, seed := range seeds {
			res, err := Run(Options{Recipients: n, Seed: seed, Mix: Mix(mix), World: World(os.Getenv("KADENZ_SIM_WORLD")),
				Diagnose: true, TempDir: t.TempDir(), Only: []string{PolicySendAll, PolicyKadenz}})
			if err != nil {
				t.Fatal(err)
			}
			for i, tab := range res.StopTables() {
				sum[i].Add(tab)
			}
			t.Logf("%s seed %d done", mix, seed)
		}
	}
	for _, tab := range sum {
		tab.Print(os.Stdout)
	}
}

// TestDiagnoseInterest screens learners of per-reader interest (interest.go)
// over seeds and mixes. It only runs when KADENZ_SIM_INTEREST lists the
// mixes; KADENZ_SIM_DAYS sets the run's length:
//
//	KADENZ_SIM_INTEREST="default tolerant" KADENZ_SIM_SEEDS="1 2" KADENZ_SIM_N=1500 KADENZ_SIM_DAYS=28 \
//	  KADENZ_SIM_WORLD=structured go test -run TestDiagnoseInterest -v -timeout 2h ./governor/sim/
func TestDiagnoseInterest(t *testing.T) {
	mixes, seeds, n := diagnosisRuns(t, "KADENZ_SIM_INTEREST", "to screen the interest learners")
	days, _ := strconv.Atoi(os.Getenv("KADENZ_SIM_DAYS"))
	var sum InterestScreen
	for _, mix := range mixes {
		for _, seed := range seeds {
			res, err := Run(Options{Recipients: n, Days: days, Seed: seed, Mix: Mix(mix), World: World(os.Getenv("KADENZ_SIM_WORLD")),
				Diagnose: true, TempDir: t.TempDir(), Only: []string{PolicyKadenz}})
			if err != nil {
				t.Fatal(err)
			}
			sc, err := res.Interest()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Printf("%s seed %d:\n", mix, seed)
			sc.Print(os.Stdout)
			sum.Add(sc)
		}
	}
	fmt.Println("pooled:")
	sum.Print(os.Stdout)
}

// TestInterestScreen checks the screen's bookkeeping on a small run: every
// release is scored, withholding more never keeps more, and the hidden
// relevance, scored as itself, correlates perfectly.
func TestInterestScreen(t *testing.T) {
	res, err := Run(Options{Recipients: 40, Days: 4, Seed: 5, World: WorldStructured, Diagnose: true, TempDir: t.TempDir(),
		Only: []string{PolicyKadenz}})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := res.Interest()
	if err != nil {
		t.Fatal(err)
	}
	k := res.Policy(PolicyKadenz)
	var rel, clicks, stops int
	for _, x := range k.Releases {
		if x.Marketing {
			rel++
			if x.Clicked {
				clicks++
			}
			if x.Unsubscribed || x.Complained {
				stops++
			}
		}
	}
	if sc.Released != rel || sc.Clicks != clicks || sc.Stops != stops || rel == 0 {
		t.Fatalf("screen counts %d releases, %d clicks, %d stops; the log has %d, %d, %d", sc.Released, sc.Clicks, sc.Stops, rel, clicks, stops)
	}
	if len(sc.Scores) != len(interestScores) {
		t.Fatalf("%d scores, want %d", len(sc.Scores), len(interestScores))
	}
	for _, s := range sc.Scores {
		for q := range WithholdShares {
			if s.KeptClicks[q] > clicks || s.KeptStops[q] > stops {
				t.Errorf("%s: keeps %d clicks, %d stops of %d, %d", s.Name, s.KeptClicks[q], s.KeptStops[q], clicks, stops)
			}
			if q > 0 && (s.KeptClicks[q] > s.KeptClicks[q-1] || s.KeptStops[q] > s.KeptStops[q-1]) {
				t.Errorf("%s: withholding more kept more (%v, %v)", s.Name, s.KeptClicks, s.KeptStops)
			}
		}
	}
	if c := sc.Scores[len(sc.Scores)-1].Corr; math.Abs(c-1) > 1e-9 {
		t.Errorf("the oracle's within-reader correlation with itself is %v, want 1", c)
	}
	var pooled InterestScreen
	pooled.Add(sc)
	pooled.Add(sc)
	if pooled.Runs != 2 || pooled.Released != 2*rel || pooled.Scores[0].KeptClicks[0] != 2*sc.Scores[0].KeptClicks[0] {
		t.Errorf("pooling two copies: %d runs, %d releases", pooled.Runs, pooled.Released)
	}
}

// TestDiagnoseSpacing prints how soon after the reader's previous
// marketing mail send-all, the 16-hour cap and Kadenz release
// (docs/simulation.md, round 22). It only runs when KADENZ_SIM_SPACING
// lists the mixes; KADENZ_SIM_BURSTS (a duration) runs the bursts variant:
//
//	KADENZ_SIM_SPACING=default KADENZ_SIM_N=500 KADENZ_SIM_DAYS=28 KADENZ_SIM_WORLD=structured \
//	  go test -run TestDiagnoseSpacing -v -timeout 1h ./governor/sim/
func TestDiagnoseSpacing(t *testing.T) {
	mixes, seeds, n := diagnosisRuns(t, "KADENZ_SIM_SPACING", "to print the spacing tables")
	days, _ := strconv.Atoi(os.Getenv("KADENZ_SIM_DAYS"))
	var bursts time.Duration
	if s := os.Getenv("KADENZ_SIM_BURSTS"); s != "" {
		var err error
		if bursts, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	for _, mix := range mixes {
		for _, seed := range seeds {
			res, err := Run(Options{Recipients: n, Days: days, Seed: seed, Mix: Mix(mix), World: World(os.Getenv("KADENZ_SIM_WORLD")),
				Bursts: bursts, TempDir: t.TempDir(), Only: []string{PolicySendAll, CapPolicy(16 * time.Hour), PolicyKadenz}})
			if err != nil {
				t.Fatal(err)
			}
			fmt.Printf("\n%s mix, seed %d\n", mix, seed)
			for _, p := range res.Policies {
				PrintSpacing(os.Stdout, p)
			}
		}
	}
}
