package scoring

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// The numbers line reads exactly as the fmt.Fprintf it replaced wrote it.
func TestNumbersLineIsFprintf(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 6))
	specials := []float64{0, math.Copysign(0, -1), 0.00005, 0.000049999, 0.125, 0.0125, 2.675, 1e21, -1e-7,
		math.MaxFloat64, math.NaN(), math.Inf(1), math.Inf(-1)}
	f := func() float64 {
		if rng.IntN(3) == 0 {
			return specials[rng.IntN(len(specials))]
		}
		return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-6))
	}
	for i := range 20000 {
		n := Numbers{Value: f(), Affinity: f(), PopulationRate: f(), Priority: f(), Novelty: f(), Freshness: f(),
			TimeLift: f(), Delay: f(), Cost: f(), Volume: f(), Comfort: f(), Sensitivity: f(), CustomerValue: f(),
			IgnoredStreak: rng.IntN(2000) - 1000}
		var want, got strings.Builder
		fmt.Fprintf(&want, "\nvalue %.4f = affinity %.4f (population %.4f) × priority %.2f × novelty %.2f × freshness %.2f × time %.2f × delay %.2f;"+
			" cost %.4f at volume %.2f (comfortable %.2f) × sensitivity %.2f × customer value %.2f; ignored streak %d",
			n.Value, n.Affinity, n.PopulationRate, n.Priority, n.Novelty, n.Freshness, n.TimeLift, n.Delay,
			n.Cost, n.Volume, n.Comfort, n.Sensitivity, n.CustomerValue, n.IgnoredStreak)
		writeNumbers(&got, &n)
		if got.String() != want.String() {
			t.Fatalf("case %d:\n got  %q\n want %q", i, got.String(), want.String())
		}
	}
}
