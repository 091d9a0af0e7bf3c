package governor

import (
	"testing"

	"kadenz/governor/admin"
	"kadenz/governor/feedback"
)

// Every kind the events API takes is one the feedback room applies: the
// admin room checks kinds, the feedback room gives them meaning.
func TestEveryEventKindIsApplied(t *testing.T) {
	for _, kind := range append(admin.EventKinds, "soft-bounce") {
		if !feedback.EventKind(kind) {
			t.Errorf("event kind %q stands for no signal", kind)
		}
	}
}
