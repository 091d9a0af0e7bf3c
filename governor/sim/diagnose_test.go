package sim

import (
	"os"
	"strconv"
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
