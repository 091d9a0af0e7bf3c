package sim

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestCorr(t *testing.T) {
	x := []float64{1, 2, 3, 4}
	for _, c := range []struct {
		y    []float64
		want float64
	}{
		{[]float64{2, 4, 6, 8}, 1},
		{[]float64{8, 6, 4, 2}, -1},
		{[]float64{1, -1, -1, 1}, 0},
	} {
		if got := corr(x, c.y); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("corr(%v, %v) = %v, want %v", x, c.y, got, c.want)
		}
	}
	if !math.IsNaN(corr([]float64{1}, []float64{1})) {
		t.Error("corr of one point should be NaN")
	}
}

// The structure report reads the hidden population and each policy's
// releases, with click times that follow the release.
func TestStructureReport(t *testing.T) {
	res, err := Run(Options{Recipients: 40, Days: 3, Seed: 7, Diagnose: true, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	clicked := 0
	for _, p := range res.Policies {
		for _, r := range p.Releases {
			if r.Clicked != !r.ClickAt.IsZero() {
				t.Fatalf("%s: release of message %d: clicked %v, click time %v", p.Name, r.Message, r.Clicked, r.ClickAt)
			}
			if r.Clicked {
				clicked++
				if !r.ClickAt.After(r.Released) {
					t.Fatalf("%s: click at %v, not after release at %v", p.Name, r.ClickAt, r.Released)
				}
			}
		}
	}
	if clicked == 0 {
		t.Fatal("no clicks in the run; the check above tested nothing")
	}
	var b bytes.Buffer
	res.Structure(&b)
	out := b.String()
	for _, want := range append(Topics, "correlation of hidden quality with X-Kadenz-Priority", "kadenz ", "send-all ") {
		if !strings.Contains(out, want) {
			t.Errorf("structure report lacks %q:\n%s", want, out)
		}
	}
}
