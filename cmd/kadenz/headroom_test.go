package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestHeadroomPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 400},         // nothing measured yet
		{20 * mib, 400},  // the accept path: as before
		{32 * mib, 400},  // 128 MiB is exactly four times this
		{64 * mib, 200},  // a million held: live + 128 MiB, not five times live
		{256 * mib, 50},  // large messages in flight
		{2048 * mib, 25}, // never below minGCPercent
	} {
		if got := headroomPercent(c.live, 128*mib, 400); got != c.want {
			t.Errorf("headroomPercent(%d MiB) = %d, want %d", c.live/mib, got, c.want)
		}
	}
}

var tunerTestLive [][]byte

// The tuner follows the live heap from one collection to the next.
func TestHeapTunerFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	// A headroom of 4 MiB against 64 MiB kept live: the percentage must
	// come down to the floor after a collection.
	tn := startHeapTuner(4<<20, 400)
	defer tn.stop()
	tunerTestLive = make([][]byte, 64) // a global: the compiler cannot find it dead
	for i := range tunerTestLive {
		tunerTestLive[i] = make([]byte, 1<<20)
	}
	for i := 0; i < 100 && tn.percent.Load() != minGCPercent; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	if got := tn.percent.Load(); got != minGCPercent {
		t.Fatalf("percent %d after %d collections with 64 MiB live, want %d", got, tn.runs.Load(), minGCPercent)
	}
	if got := debug.SetGCPercent(minGCPercent); got != minGCPercent {
		t.Errorf("the runtime's percent is %d, want %d", got, minGCPercent)
	}
	// Let go of it: back to the maximum (a test binary keeps well under
	// 1 MiB live).
	tunerTestLive = nil
	for i := 0; i < 100 && tn.percent.Load() != 400; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	if got := tn.percent.Load(); got != 400 {
		t.Fatalf("percent %d once the live heap was released, want 400", got)
	}
}
