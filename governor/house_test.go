package governor

import (
	"slices"
	"testing"

	"kadenz/config"
	"kadenz/store"
)

// The governor's mode is reloadable, so everything that depends on it must
// read the live configuration: after a reload from shadow to enforce, a
// hard bounce stops the mail the recipient has waiting, and the decision
// record says enforce. (It used to read the start-up copy and kept shadow.)
func TestReloadedModeGovernsFeedback(t *testing.T) {
	c := &clock{t: monday10}
	cfg := governedConfig(t, "")
	cfg.Governor.Mode = config.ModeShadow
	r := drivenRelay(t, cfg, c)
	submitDriven(t, r, c, []string{"ann@example.test"}, marketing("Winter boots", ""))

	next := *cfg
	next.Governor.Mode = config.ModeEnforce
	if err := r.Reload(&next); err != nil {
		t.Fatal(err)
	}
	if err := r.applyReport(hardBounce("", "ann@example.test")); err != nil {
		t.Fatal(err)
	}
	env := envelopeOf(t, r.DB(), "ann@example.test", 0)
	if env.State != store.StateSuppressed {
		t.Fatalf("held mail after a hard bounce in (reloaded) enforce mode: %s, want suppressed", env.State)
	}
	rec := lastDecision(t, r.DB(), env.ID)
	if rec.Mode != config.ModeEnforce || !slices.Contains(rec.Reasons, "hard-bounced") {
		t.Errorf("decision record %+v, want mode enforce with reason hard-bounced", rec)
	}
}
