package governor

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"kadenz/config"
	"kadenz/scoring"
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
	if err := r.feedback.Apply(hardBounce("", "ann@example.test")); err != nil {
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

// Decisions of the gate (suppression list, reply pause) are written with
// the round and counted like the model's: the decision metrics and
// /v1/stats agree. The gate used to commit on its own, and its suppressions
// never reached kadenz_decided_envelopes_total.
func TestGateDecisionsAreCounted(t *testing.T) {
	c := &clock{t: monday10}
	r := drivenRelay(t, governedConfig(t, ""), c)
	if _, err := r.DB().Suppress(false, store.Suppression{Address: "ann@example.test", Reason: "unsubscribed", At: c.Now(), Source: "api"}); err != nil {
		t.Fatal(err)
	}
	submitDriven(t, r, c, []string{"ann@example.test"}, marketing("Winter boots", ""))
	c.advance(5 * time.Minute)
	if _, err := r.DecideDue(c.Now()); err != nil {
		t.Fatal(err)
	}
	env := envelopeOf(t, r.DB(), "ann@example.test", 0)
	if rec := lastDecision(t, r.DB(), env.ID); env.State != store.StateSuppressed || !slices.Contains(rec.Reasons, "suppression-list") {
		t.Fatalf("envelope %s, decision %+v; want suppressed by the suppression list", env.State, rec)
	}
	if got := counterValue(t, r.metrics.decided.WithLabelValues(config.ModeEnforce, "suppress")); got != 1 {
		t.Errorf("kadenz_decided_envelopes_total{action=suppress} = %v, want 1", got)
	}
	if got := counterValue(t, r.metrics.decisions.WithLabelValues("suppress", "suppression-list")); got != 1 {
		t.Errorf("kadenz_decisions_total{reason=suppression-list} = %v, want 1", got)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// The simulator's way in (RecordEvent) applies feedback as production does:
// a complaint lists the address and stops the mail already waiting. It used
// to update the profile only, so simulations measured a kinder relay than
// the one that runs.
func TestRecordEventAppliesHardStopsLikeProduction(t *testing.T) {
	c := &clock{t: monday10}
	r := drivenRelay(t, governedConfig(t, ""), c)
	submitDriven(t, r, c, []string{"ann@example.test"}, marketing("Winter boots", ""))
	if err := r.RecordEvent("ann@example.test", scoring.Event{Kind: scoring.EventComplaint, At: c.Now()}); err != nil {
		t.Fatal(err)
	}
	env := envelopeOf(t, r.DB(), "ann@example.test", 0)
	if rec := lastDecision(t, r.DB(), env.ID); env.State != store.StateSuppressed || !slices.Contains(rec.Reasons, "complained") {
		t.Errorf("waiting mail after a complaint: %s %+v; want suppressed, complained", env.State, rec)
	}
	if s, listed, err := r.DB().SuppressionOf("ann@example.test"); err != nil || !listed || s.Reason != "complaint" {
		t.Errorf("suppression list after a complaint: %+v %v %v", s, listed, err)
	}
}
