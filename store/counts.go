package store

import (
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Envelope counts by state, kept up to date on every committed change so
// that reading them (the queue-depth metric, scraped every few seconds)
// costs nothing, where walking every envelope costs a read of each.
//
// Each envelope write registers its state change with the transaction's
// OnCommit: a rolled-back transaction (the group committer rolls back a
// whole batch when one write fails, then reruns each write alone) never
// touches the counts, and a committed one applies each change once.
// The counts are built by one walk when the database opens.

type stateCounts struct {
	mu sync.Mutex
	n  map[State]int
}

// openCounts maps each open bbolt file to its counts: putEnvelope only has
// the transaction, and tx.DB() leads back here.
var openCounts sync.Map // *bolt.DB -> *stateCounts

// countStateChange records that an envelope moves from old (empty for a
// new one) to new (empty for a deleted one) when tx commits.
func countStateChange(tx *bolt.Tx, old, new State) {
	if old == new {
		return
	}
	v, ok := openCounts.Load(tx.DB())
	if !ok {
		return
	}
	c := v.(*stateCounts)
	tx.OnCommit(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if old != "" {
			c.n[old]--
		}
		if new != "" {
			c.n[new]++
		}
	})
}

// startCounting builds the counts with one walk and keeps them from now on.
func (db *DB) startCounting() error {
	counts, err := db.walkStateCounts()
	if err != nil {
		return err
	}
	openCounts.Store(db.bolt, &stateCounts{n: counts})
	return nil
}

func (db *DB) stopCounting() { openCounts.Delete(db.bolt) }

// StateCounts returns how many envelopes are in each state, from counts
// kept on every commit (walkStateCounts computes the same by walking).
func (db *DB) StateCounts() map[State]int {
	v, ok := openCounts.Load(db.bolt)
	if !ok {
		return nil
	}
	c := v.(*stateCounts)
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[State]int, len(c.n))
	for s, n := range c.n {
		if n != 0 {
			out[s] = n
		}
	}
	return out
}
