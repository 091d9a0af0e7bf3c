package retry

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		attempt int
		jitter  float64
		want    time.Duration
	}{
		{1, 0, 30 * time.Second},                         // half of initial, fixed part only
		{1, 0.999999, 60*time.Second - time.Microsecond}, // just under initial
		{2, 0, time.Minute},                              // doubled
		{3, 0.5, 3 * time.Minute},                        // 4m: 2m fixed + 1m of jitter
		{10, 0, 5 * time.Minute},                         // capped at 10m
		{1000, 1, 10 * time.Minute},                      // no overflow however many attempts
	} {
		got := Backoff(c.attempt, time.Minute, 10*time.Minute, c.jitter)
		if d := got - c.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("Backoff(%d, jitter %v) = %v, want %v", c.attempt, c.jitter, got, c.want)
		}
	}
}
