package engine

import (
	"time"

	"kadenz/store"
)

// Pipelined decision rounds (issue 16).
//
// DecideDue computes a round and then waits for its commit, so the decider
// idles while bbolt writes and syncs, and the disk idles while the decider
// computes: at 100,000 recipients the relay used a third of the machine's
// two cores while it decided. The loop instead writes round k from a
// goroutine of its own while it computes round k+1, and waits for round k
// only before it hands round k+1 over: one round in flight at a time, in
// order. While there is a backlog its rounds also grow, from
// RecipientsPerRound up to maxRecipientsPerRound, so that one commit (and
// its fsyncs) carries more outcomes; they shrink again when computing one
// takes longer than roundBudget, so a stop is still noticed soon.
//
// Round k+1 decides as if round k were already written:
//   - round k's recipients are left out of it: until the commit lands they
//     are still in the held index, and must not be decided twice;
//   - the counters decisions read (campaign quality, the review rule's
//     shares, population lifts) are the stored value plus round k's changes,
//     and are never read from the database while round k is being written,
//     since such a read could not tell whether it saw round k or not. Values
//     read while nothing was in flight are kept and reused; a name not kept
//     yet waits for the commit. When a commit lands the kept values are
//     dropped, so that the next reads see what feedback added meanwhile.
//
// Where round k fails for a recipient (the store refused its outcome), that
// recipient's counter changes were still counted for round k+1; it is
// decided again on a later round, as DecideDue's failures are.

const (
	// maxRecipientsPerRound bounds a round of the loop.
	maxRecipientsPerRound = 1024
	// roundBudget is how long computing a round may take before the loop
	// stops growing its rounds (twice this, and they shrink). It paces
	// work, it decides nothing, so it is measured on the machine's clock.
	// On a busy machine a round takes longer on that clock for the same
	// work: at 250 ms the rounds of a loaded machine stayed small, and
	// each decision paid more of its commit (30,000 recipients at a load
	// average of 40: 266 µs of CPU per decision with 512 and 250 ms, 180-228
	// with 1024 and a second; docs/benchmarks.md).
	roundBudget = time.Second
)

// pipeline is the loop's state between rounds; only the loop's goroutine
// touches it.
type pipeline struct {
	// limit is the size of the next round.
	limit int
	// inflight is the round being written, done delivers its errors, busy
	// holds its recipients (normalised); all nil when nothing is in flight.
	inflight *round
	done     chan []error
	busy     map[string]bool
	// kept are counter values read while nothing was in flight; used are
	// the names the round being computed read.
	kept map[string]int64
	used map[string]bool
}

func newPipeline() *pipeline {
	return &pipeline{limit: RecipientsPerRound, kept: map[string]int64{}, used: map[string]bool{}}
}

// pipelinedRound computes one round while the previous one is written,
// then starts writing it, and reports whether the round was full (more is
// probably due). A round that is not full is written before it returns:
// the loop then looks at the schedule, and should see it.
func (e *Engine) pipelinedRound(p *pipeline, now time.Time) (full bool, failed error) {
	start := time.Now()
	clear(p.used)
	if p.done != nil {
		e.overlapped.Add(1)
	}
	e.pipe = p
	r, n, failed := e.computeRound(now, p.limit, p.busy)
	e.pipe = nil
	took := time.Since(start)
	if err := e.settle(p); err != nil {
		failed = err
	}
	full = n == p.limit
	switch {
	case !full:
		p.limit = RecipientsPerRound
	case took < roundBudget:
		p.limit = min(2*p.limit, maxRecipientsPerRound)
	case took > 2*roundBudget:
		p.limit = max(p.limit/2, RecipientsPerRound)
	}
	if r == nil {
		return full, failed
	}
	// Nothing is in flight now: read what this round read and the cache
	// dropped, so that the next round finds it kept and need not wait.
	var names []string
	for name := range p.used {
		if _, ok := p.kept[name]; !ok {
			names = append(names, name)
		}
	}
	if len(names) > 0 {
		if vals, err := e.db.Counters(names...); err == nil {
			for k, v := range vals {
				p.kept[k] = v
			}
		}
	}
	p.inflight = r
	p.busy = make(map[string]bool, len(r.outs))
	for _, o := range r.outs {
		p.busy[store.NormalizeAddress(o.Recipient)] = true
	}
	done := make(chan []error, 1)
	p.done = done
	outs := r.outs
	go func() { done <- e.db.ApplyDecisionsAll(outs) }()
	if !full {
		if err := e.settle(p); err != nil {
			failed = err
		}
	}
	return full, failed
}

// settle waits for the round in flight, if any, and reports it
// (finishRound).
func (e *Engine) settle(p *pipeline) error {
	if p.done == nil {
		return nil
	}
	return e.landed(p, <-p.done)
}

// landed forgets the round in flight, whose commit returned errs.
func (e *Engine) landed(p *pipeline, errs []error) error {
	r := p.inflight
	p.inflight, p.done, p.busy = nil, nil, nil
	clear(p.kept)
	return e.finishRound(r, errs)
}

// counters reads named counters for a decision: from the store, or while
// the loop pipelines, as the stored value plus the changes of the round in
// flight (see above). Every name is in the result, zero if never counted.
func (e *Engine) counters(names ...string) (map[string]int64, error) {
	p := e.pipe
	if p == nil {
		return e.db.Counters(names...)
	}
	if p.done != nil { // landed already? then read fresh values
		select {
		case errs := <-p.done:
			e.landed(p, errs) // its failures are logged there
		default:
		}
	}
	missing := func() []string {
		var m []string
		for _, n := range names {
			if _, ok := p.kept[n]; !ok {
				m = append(m, n)
			}
		}
		return m
	}
	m := missing()
	if len(m) > 0 && p.done != nil {
		e.settle(p) // a read must not race our own write; its failures are logged
		m = missing()
	}
	if len(m) > 0 {
		vals, err := e.db.Counters(m...)
		if err != nil {
			return nil, err
		}
		for k, v := range vals {
			p.kept[k] = v
		}
	}
	out := make(map[string]int64, len(names))
	for _, n := range names {
		p.used[n] = true
		out[n] = p.kept[n]
		if p.inflight != nil {
			out[n] += p.inflight.counters[n]
		}
	}
	return out, nil
}
