package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Bounding the heap's growth between collections (issue 16).
//
// serve runs the collector at serveGCPercent (400): the heap may grow to
// five times what is live before the next collection. On the accept path
// the live heap is 20-30 MiB and that costs little memory for much less
// collector CPU. But what is live grows with what the relay holds: with a
// million held newsletters it was 65 MiB (41 of them bbolt's freelist of a
// 7.7 GB file), the heap's target 325 MiB, and the daemon's anonymous
// memory peaked at 341 MB. A lower fixed soft limit bounds that too, but
// also makes the collector run without pause whenever more than the limit
// is really live (large messages in flight), which serveMemoryLimit is set
// high to avoid.
//
// So the growth allowed between collections is capped instead: after each
// collection the percentage is set so that the next target is what is live
// plus at most serveHeadroom, and never above serveGCPercent. With a small
// live heap nothing changes; with a large one the collector runs after
// every serveHeadroom of allocation, which costs CPU in proportion to the
// allocation, not in proportion to how far the heap is over a limit.

// serveHeadroom is the most the heap may grow past what is live before a
// collection.
const serveHeadroom = 128 << 20

// minGCPercent is the least the tuner sets: below it, each collection
// would follow too little allocation to be worth its marking.
const minGCPercent = 25

// headroomPercent is the collector's percentage that lets a heap with live
// bytes grow by at most headroom, within [minGCPercent, max].
func headroomPercent(live, headroom uint64, max int) int {
	if live == 0 {
		return max
	}
	p := headroom * 100 / live
	switch {
	case p >= uint64(max):
		return max
	case p < minGCPercent:
		return minGCPercent
	}
	return int(p)
}

// heapTuner resets the collector's percentage after every collection.
type heapTuner struct {
	headroom uint64
	max      int
	// percent is what was set last; runs counts the collections seen
	// (tests read both).
	percent atomic.Int64
	runs    atomic.Int64
	sample  []metrics.Sample
	stopped atomic.Bool
}

// startHeapTuner starts the tuner at max percent. The runtime has no hook
// for "a collection ended"; an unreachable sentinel's cleanup runs after
// the collection that found it unreachable, and each cleanup arms a new
// sentinel, so the tuner runs once per collection (on the runtime's
// cleanup goroutine, briefly).
func startHeapTuner(headroom uint64, max int) *heapTuner {
	t := &heapTuner{headroom: headroom, max: max,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.percent.Store(int64(max))
	debug.SetGCPercent(max)
	t.arm()
	return t
}

type sentinel struct{ _ [16]byte } // not a tiny, zero-size or combined allocation

func (t *heapTuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *heapTuner) { t.tune() }, t)
}

// stop ends the tuning after the next collection (tests).
func (t *heapTuner) stop() { t.stopped.Store(true) }

func (t *heapTuner) tune() {
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		p := headroomPercent(t.sample[0].Value.Uint64(), t.headroom, t.max)
		if worthSetting(int(t.percent.Load()), p, t.max) {
			debug.SetGCPercent(p)
			t.percent.Store(int64(p))
		}
	}
	t.runs.Add(1)
	t.arm()
}

// worthSetting says whether moving the collector's percentage from old to p
// is a real change: the call takes the heap's lock, so steps under a tenth
// are skipped. The bounds are always set exactly, or a step from just above
// the floor (27 to 25) would be too small ever to take.
func worthSetting(old, p, max int) bool {
	return p != old && (p*10 < old*9 || p*10 > old*11 || p == max || p == minGCPercent)
}
