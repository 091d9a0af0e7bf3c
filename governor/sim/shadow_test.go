package sim

import (
	"math"
	"testing"
)

// Shadow mode on the same world forecasts enforce mode's suppressions
// within a few points; its first decisions alone (what the records' "would"
// says) do not, since a deferral is not an outcome. Small, so that it
// runs in the package's tests; docs/simulation.md has the full runs.
func TestShadowForecastsEnforce(t *testing.T) {
	if testing.Short() {
		t.Skip("two relays for a week of mail")
	}
	res, err := Run(Options{Recipients: 60, Days: 7, Seed: 3, TempDir: t.TempDir(),
		Only: []string{PolicySendAll, PolicyKadenz, PolicyShadow}})
	if err != nil {
		t.Fatal(err)
	}
	k, s := res.Policy(PolicyKadenz), res.Policy(PolicyShadow)
	if k.Forecast == nil || s.Forecast == nil {
		t.Fatal("no forecast in a run with the shadow policy")
	}
	if s.Suppressed != 0 || s.Released != s.Submitted {
		t.Errorf("shadow mode released %d of %d and suppressed %d: it sends everything", s.Released, s.Submitted, s.Suppressed)
	}
	f := s.Forecast
	if f.Released+f.Suppressed+f.Review+f.Pending != f.Decided || f.FirstDefer == 0 {
		t.Errorf("forecast does not add up, or has no deferral to follow: %+v", f)
	}
	enforce, forecast := k.Forecast.SuppressedShare(), f.SuppressedShare()
	t.Logf("suppressed share: enforce %.3f, shadow forecast %.3f (first decisions %.3f); enforce %+v, shadow %+v",
		enforce, forecast, f.FirstSuppressShare(), k.Forecast, f)
	if math.Abs(forecast-enforce) > 0.05 {
		t.Errorf("shadow forecast %.1f%% suppressed, enforce suppressed %.1f%%: more than 5 points apart", 100*forecast, 100*enforce)
	}
}
