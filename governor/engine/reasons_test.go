package engine

import (
	"slices"
	"testing"

	"kadenz/scoring"
)

// Reason codes are unique, non-empty and include the model's and the
// relay's own; the feedback hard stops use the model's names.
func TestReasonCodes(t *testing.T) {
	all := ReasonCodes()
	seen := map[string]bool{}
	for _, c := range all {
		if c == "" || seen[c] {
			t.Errorf("reason code %q empty or repeated", c)
		}
		seen[c] = true
	}
	for _, c := range relayReasons {
		if !seen[c] {
			t.Errorf("relay reason %q missing from ReasonCodes", c)
		}
	}
	stops := (scoring.ReasonUnsubscribed | scoring.ReasonComplained | scoring.ReasonHardBounced).Codes()
	if !slices.Equal(stops, []string{ReasonUnsubscribed, ReasonComplained, ReasonHardBounced}) {
		t.Errorf("feedback hard stops %v do not match the model's %v", []string{ReasonUnsubscribed, ReasonComplained, ReasonHardBounced}, stops)
	}
}
