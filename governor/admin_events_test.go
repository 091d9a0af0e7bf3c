package governor

import (
	"testing"

	"kadenz/governor/admin"
)

// Every kind the events API takes stands for a signal: an unmapped kind
// would be applied as the zero signal.
func TestEveryEventKindIsApplied(t *testing.T) {
	for _, kind := range append(admin.EventKinds, "soft-bounce") {
		if _, ok := eventKinds[kind]; !ok {
			t.Errorf("event kind %q stands for no signal", kind)
		}
	}
}
