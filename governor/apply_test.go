package governor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor/engine"
	"kadenz/governor/feedback/report"
	"kadenz/governor/intake"
	"kadenz/scoring"
	"kadenz/store"
)

// drivenRelay is a relay without network loops, driven step by step.
func drivenRelay(t *testing.T, cfg *config.Config, c *clock) *Relay {
	t.Helper()
	return newRelay(t, Options{Config: cfg, Now: c.Now})
}

func submitDriven(t *testing.T, r *Relay, c *clock, to []string, msg string) string {
	t.Helper()
	id, err := r.Submit(&intake.Submission{From: "news@shop.test", To: to, Data: []byte(msg), Received: c.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func profileOf(t *testing.T, db store.Store, rcpt string) scoring.Profile {
	t.Helper()
	raw, err := db.Profile(rcpt)
	if err != nil {
		t.Fatal(err)
	}
	p, err := scoring.DecodeProfile(raw)
	if err != nil {
		t.Fatal(err)
	}
	return *p
}

func lastDecision(t *testing.T, db store.Store, envelopeID string) engine.Record {
	t.Helper()
	recs := decisionsOf(t, db, envelopeID)
	if len(recs) == 0 {
		t.Fatalf("no decision for %s", envelopeID)
	}
	return recs[len(recs)-1]
}

func hardBounce(envelopeID, addr string) report.Report {
	return report.Report{Kind: report.KindBounce, EnvelopeID: envelopeID, Recipient: addr,
		Recipients: []report.Recipient{{Address: addr, Action: "failed", Status: "5.1.1", Bounce: report.HardBounce}}}
}

// A hard bounce suppresses the mail the recipient has waiting, with the
// reason in the decision record, puts the address on the suppression list,
// and the next marketing mail is suppressed too; transactional mail passes.
func TestHardBounceSuppressesHeldAndNextMail(t *testing.T) {
	c := &clock{t: monday10}
	r := drivenRelay(t, governedConfig(t, ""), c)
	submitDriven(t, r, c, []string{"ann@example.test", "bob@example.test"}, marketing("Winter boots", ""))
	held := envelopeOf(t, r.DB(), "ann@example.test", 0)
	if held.State != store.StateHeld {
		t.Fatalf("envelope %s, want held", held.State)
	}
	if err := r.feedback.Apply(hardBounce("", "ann@example.test")); err != nil {
		t.Fatal(err)
	}
	held = envelopeOf(t, r.DB(), "ann@example.test", 0)
	rec := lastDecision(t, r.DB(), held.ID)
	if held.State != store.StateSuppressed || !slices.Contains(rec.Reasons, "hard-bounced") || !strings.Contains(rec.Explanation, "hard bounce") {
		t.Errorf("held mail after a hard bounce: %s %+v; want suppressed for hard bounce", held.State, rec)
	}
	if bob := envelopeOf(t, r.DB(), "bob@example.test", 0); bob.State != store.StateHeld {
		t.Errorf("bob's mail %s after ann bounced", bob.State)
	}
	s, listed, err := r.DB().SuppressionOf("ANN@example.test")
	if err != nil || !listed || s.Reason != "hard bounce" || s.Source != "imap" {
		t.Errorf("suppression list: %+v %v %v", s, listed, err)
	}
	if p := profileOf(t, r.DB(), "ann@example.test"); p.HardBounced.IsZero() {
		t.Errorf("profile not marked hard-bounced")
	}

	c.advance(time.Hour)
	submitDriven(t, r, c, []string{"ann@example.test"}, marketing("Summer sandals", ""))
	c.advance(time.Second) // envelope IDs sort by arrival
	submitDriven(t, r, c, []string{"ann@example.test"}, "From: shop@shop.test\r\nSubject: Your receipt\r\n\r\nThanks.\r\n")
	c.advance(5 * time.Minute)
	if _, err := r.DecideDue(c.Now()); err != nil {
		t.Fatal(err)
	}
	next := envelopeOf(t, r.DB(), "ann@example.test", 1)
	rec = lastDecision(t, r.DB(), next.ID)
	if next.State != store.StateSuppressed || !strings.Contains(rec.Explanation, "hard bounce") {
		t.Errorf("next marketing mail: %s %+v; want suppressed with reason hard bounce", next.State, rec)
	}
	if receipt := envelopeOf(t, r.DB(), "ann@example.test", 2); receipt.State != store.StateQueued {
		t.Errorf("transactional mail to a suppressed address: %s, want queued", receipt.State)
	}
}

// Mail released for later but not yet sent stops too.
func TestUnsubscribeStopsPlannedRelease(t *testing.T) {
	// The hold ends at 07:25, in quiet hours: the release is planned for 08:00.
	c := &clock{t: time.Date(2026, 11, 24, 7, 20, 0, 0, time.UTC)}
	r := drivenRelay(t, governedConfig(t, ""), c)
	submitDriven(t, r, c, []string{"ann@example.test"}, marketing("Winter boots", ""))
	c.advance(5 * time.Minute)
	for i := 0; i < 20; i++ {
		r.DecideDue(c.Now())
		if env := envelopeOf(t, r.DB(), "ann@example.test", 0); env.State != store.StateHeld {
			break
		}
		c.advance(30 * time.Minute)
	}
	env := envelopeOf(t, r.DB(), "ann@example.test", 0)
	if env.State != store.StateQueued || !env.Due.After(c.Now()) {
		t.Fatalf("the engine did not plan a later release (%s due %v); the test needs one", env.State, env.Due)
	}
	if err := r.feedback.Apply(report.Report{Kind: report.KindUnsubscribe, EnvelopeID: env.ID}); err != nil {
		t.Fatal(err)
	}
	env = envelopeOf(t, r.DB(), "ann@example.test", 0)
	if rec := lastDecision(t, r.DB(), env.ID); env.State != store.StateSuppressed || !slices.Contains(rec.Reasons, "unsubscribed") {
		t.Errorf("planned release after unsubscribe: %s %+v", env.State, rec)
	}
}

func TestSoftBouncesEscalateAtTheLimit(t *testing.T) {
	c := &clock{t: monday10}
	cfg := governedConfig(t, "")
	cfg.Feedback.SoftBounceLimit = 3
	cfg.Feedback.SoftBounceWindow = 10 * 24 * time.Hour
	r := drivenRelay(t, cfg, c)
	soft := report.Report{Kind: report.KindBounce, Recipients: []report.Recipient{{Address: "ann@example.test", Status: "4.2.2", Bounce: report.SoftBounce}}}
	for i := 0; i < 2; i++ {
		if err := r.feedback.Apply(soft); err != nil {
			t.Fatal(err)
		}
		c.advance(24 * time.Hour)
	}
	if _, listed, _ := r.DB().SuppressionOf("ann@example.test"); listed || profileOf(t, r.DB(), "ann@example.test").SoftBounces != 2 {
		t.Fatalf("after 2 soft bounces: listed %v, profile %+v", listed, profileOf(t, r.DB(), "ann@example.test"))
	}
	// Outside the window the count starts again.
	c.advance(20 * 24 * time.Hour)
	r.feedback.Apply(soft)
	r.feedback.Apply(soft)
	if _, listed, _ := r.DB().SuppressionOf("ann@example.test"); listed {
		t.Fatal("old soft bounces counted beyond the window")
	}
	r.feedback.Apply(soft)
	s, listed, _ := r.DB().SuppressionOf("ann@example.test")
	if !listed || s.Reason != "repeated soft bounces" {
		t.Errorf("after 3 soft bounces in the window: %+v %v", s, listed)
	}
	// A delivery report resets the count.
	r.feedback.Apply(report.Report{Kind: report.KindDelivered, Recipients: []report.Recipient{{Address: "bob@example.test", Action: "delivered"}}})
	r.feedback.Apply(soft)
	if n := profileOf(t, r.DB(), "bob@example.test").SoftBounces; n != 0 {
		t.Errorf("bob's soft bounces %d", n)
	}
}

func TestComplaintWithoutRecipientUsesEnvelope(t *testing.T) {
	c := &clock{t: monday10}
	r := drivenRelay(t, governedConfig(t, ""), c)
	submitDriven(t, r, c, []string{"ann@example.test"}, marketing("Winter boots", ""))
	env := envelopeOf(t, r.DB(), "ann@example.test", 0)
	// Yahoo redacts the complaining address; the envelope ID names it.
	if err := r.feedback.Apply(report.Report{Kind: report.KindComplaint, EnvelopeID: env.ID, Complaint: &report.Complaint{FeedbackType: "abuse"}}); err != nil {
		t.Fatal(err)
	}
	if s, listed, _ := r.DB().SuppressionOf("ann@example.test"); !listed || s.Reason != "complaint" {
		t.Errorf("suppression after complaint: %+v %v", s, listed)
	}
	if rec := lastDecision(t, r.DB(), env.ID); !slices.Contains(rec.Reasons, "complained") {
		t.Errorf("held mail after complaint: %+v", rec)
	}
	if err := r.feedback.Apply(report.Report{Kind: report.KindComplaint}); err == nil {
		t.Error("a complaint naming nobody was accepted silently")
	}
}

// Shadow mode records; it does not stop mail at feedback time.
func TestShadowModeHardBounceListsButDoesNotStop(t *testing.T) {
	c := &clock{t: monday10}
	cfg := governedConfig(t, "")
	cfg.Governor.Mode = config.ModeShadow
	r := drivenRelay(t, cfg, c)
	submitDriven(t, r, c, []string{"ann@example.test"}, marketing("Winter boots", ""))
	r.feedback.Apply(hardBounce("", "ann@example.test"))
	if env := envelopeOf(t, r.DB(), "ann@example.test", 0); env.State != store.StateHeld {
		t.Errorf("shadow mode: held mail %s after a bounce", env.State)
	}
	if _, listed, _ := r.DB().SuppressionOf("ann@example.test"); !listed {
		t.Error("shadow mode: bounce not on the suppression list")
	}
}
