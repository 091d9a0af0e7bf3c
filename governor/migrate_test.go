package governor

import (
	"strings"
	"testing"

	"kadenz/store"
)

// One recipient, however their address is capitalised: mail held for
// Ann@Example.TEST is stopped by a bounce event naming ann@example.test,
// and both spellings read one profile.
func TestRecipientAddressCaseIsOneRecipient(t *testing.T) {
	c := &clock{t: monday10}
	r := adminRelay(t, c)
	if err := submit(t, dial(t, r), "news@shop.test", []string{"Ann@Example.TEST"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	env := envelopeOf(t, r.DB(), "Ann@Example.TEST", 0)
	if env.State != store.StateHeld {
		t.Fatalf("envelope %s, want held", env.State)
	}
	if code, body := postEvents(t, r, `{"kind": "click", "recipient": "ANN@example.test", "topic": "shoes"}`); code != 200 {
		t.Fatalf("click: %d %s", code, body)
	}
	if code, body := postEvents(t, r, `{"kind": "bounce", "recipient": "ann@example.test"}`); code != 200 {
		t.Fatalf("bounce: %d %s", code, body)
	}
	env = envelopeOf(t, r.DB(), "Ann@Example.TEST", 0)
	recs := decisionsOf(t, r.DB(), env.ID)
	if env.State != store.StateSuppressed || len(recs) == 0 || !strings.Contains(recs[len(recs)-1].Explanation, "hard bounce") {
		t.Errorf("held mail to Ann@Example.TEST after a bounce for ann@example.test: %s, %+v", env.State, recs)
	}
	for _, spelling := range []string{"Ann@Example.TEST", "ann@example.test"} {
		if p := profileOf(t, r.DB(), spelling); p.HardBounced.IsZero() || p.All.Clicks == 0 {
			t.Errorf("profile read as %s: hard bounce %v, clicks %v; want both events on it", spelling, p.HardBounced, p.All.Clicks)
		}
	}
	// The suppression list compares the same way.
	if sup, ok, _ := r.DB().SuppressionOf("ANN@EXAMPLE.TEST"); !ok || sup.Reason != "hard bounce" {
		t.Errorf("suppression list: %+v, %v", sup, ok)
	}
}
