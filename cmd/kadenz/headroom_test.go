package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
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
func TestWorthSetting(t *testing.T) {
	for _, c := range []struct {
		old, p int
		want   bool
	}{
		{400, 400, false},
		{400, 380, false}, // a step under a tenth
		{400, 300, true},
		{300, 400, true},  // the maximum is always reached
		{27, 25, true},    // and so is the floor (CI once saw the tuner stuck at 27)
		{100, 105, false}, // under a tenth up
		{100, 120, true},
	} {
		if got := worthSetting(c.old, c.p, 400); got != c.want {
			t.Errorf("worthSetting(%d, %d) = %v, want %v", c.old, c.p, got, c.want)
		}
	}
}

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

// BenchmarkHeapGrowth keeps 64 MiB live (a million held: 65 MiB, mostly
// bbolt's free-page list) and makes garbage in 32 KiB pieces, as decision
// rounds do, with serve's collector settings before (400% whatever is
// live) and now (the tuner). It reports the largest heap goal the runtime
// set and the heap's largest footprint in MiB (/memory/classes/heap).
//
//	go test -run '^$' -bench HeapGrowth -benchtime 1x ./cmd/kadenz
func BenchmarkHeapGrowth(b *testing.B) {
	for _, tuned := range []bool{false, true} {
		name := map[bool]string{false: "gogc400", true: "tuner"}[tuned]
		b.Run(name, func(b *testing.B) {
			defer debug.SetGCPercent(debug.SetGCPercent(serveGCPercent))
			var tn *heapTuner
			if tuned {
				tn = startHeapTuner(serveHeadroom, serveGCPercent)
				defer tn.stop()
			}
			tunerTestLive = make([][]byte, 64)
			for i := range tunerTestLive {
				tunerTestLive[i] = make([]byte, 1<<20)
			}
			defer func() { tunerTestLive = nil }()
			runtime.GC()
			runtime.GC()
			samples := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/memory/classes/heap/objects:bytes"},
				{Name: "/memory/classes/heap/unused:bytes"}, {Name: "/memory/classes/heap/free:bytes"}}
			var peakGoal, peakHeap uint64
			var sink []byte
			for range b.N {
				for i := range 64 << 10 { // 2 GiB of garbage
					sink = make([]byte, 32<<10)
					sink[0] = byte(i)
					if i%256 == 0 {
						metrics.Read(samples)
						peakGoal = max(peakGoal, samples[0].Value.Uint64())
						peakHeap = max(peakHeap, samples[1].Value.Uint64()+samples[2].Value.Uint64()+samples[3].Value.Uint64())
					}
				}
			}
			runtime.KeepAlive(sink)
			b.ReportMetric(float64(peakGoal)/(1<<20), "goal-MiB")
			b.ReportMetric(float64(peakHeap)/(1<<20), "heap-MiB")
		})
	}
}
