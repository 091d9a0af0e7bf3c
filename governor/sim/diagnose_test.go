package sim

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestDiagnose prints where send-all's clicks went under Kadenz. It only
// runs when KADENZ_SIM_DIAG names a mix, e.g.
//
//	KADENZ_SIM_DIAG=default KADENZ_SIM_SEED=1 go test -run TestDiagnose -v ./governor/sim/
func TestDiagnose(t *testing.T) {
	mix := os.Getenv("KADENZ_SIM_DIAG")
	if mix == "" {
		t.Skip("set KADENZ_SIM_DIAG=<mix> to print the click breakdown")
	}
	seed, _ := strconv.ParseUint(os.Getenv("KADENZ_SIM_SEED"), 10, 64)
	n, _ := strconv.Atoi(os.Getenv("KADENZ_SIM_N"))
	res, err := Run(Options{Recipients: n, Seed: seed, Mix: Mix(mix), World: World(os.Getenv("KADENZ_SIM_WORLD")), Diagnose: true, TempDir: t.TempDir()})
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

// TestDiagnoseStops adds up the stop tables (where unsubscribes and
// complaints came from) over several seeds and mixes, since one run has
// only 10-50 stops. It only runs when KADENZ_SIM_STOPS lists the mixes:
//
//	KADENZ_SIM_STOPS="default tolerant" KADENZ_SIM_SEEDS="1 2 3" KADENZ_SIM_N=300 \
//	  KADENZ_SIM_WORLD=structured go test -run TestDiagnoseStops -v -timeout 1h ./governor/sim/
func TestDiagnoseStops(t *testing.T) {
	mixes := strings.Fields(os.Getenv("KADENZ_SIM_STOPS"))
	if len(mixes) == 0 {
		t.Skip("set KADENZ_SIM_STOPS=<mixes> to print the pooled stop tables")
	}
	seeds := strings.Fields(os.Getenv("KADENZ_SIM_SEEDS"))
	if len(seeds) == 0 {
		seeds = []string{"1"}
	}
	n, _ := strconv.Atoi(os.Getenv("KADENZ_SIM_N"))
	var sum [2]StopTable
	for _, mix := range mixes {
		for _, s := range seeds {
			seed, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
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
