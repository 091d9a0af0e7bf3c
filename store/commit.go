package store

import (
	bolt "go.etcd.io/bbolt"
)

// Group commit.
//
// Every write is a function queued to one committer goroutine (a caller
// with several at hand queues them as one group, updateAll). The committer
// takes the first waiting group, then every other one already waiting, and
// runs them all in one bbolt transaction: one commit, one pair of fsyncs,
// however many sessions are waiting. It adds no delay of its own:
// while one commit is syncing, the next batch gathers by itself. (bbolt's own
// Batch waits up to MaxBatchDelay for company, which costs a lone writer that
// delay on every write; NOTES.md measured the effect.)
//
// If a function fails, the whole transaction is rolled back and each
// function of the batch is run again in a transaction of its own, so one
// bad write cannot fail its neighbours. Functions must therefore be safe to
// run more than once: they must reset any result they collect.

// maxBatch bounds a transaction's size, so one commit never grows without
// end: the committer stops gathering at maxBatch functions (the last group
// it takes may carry it up to maxGroup beyond).
const maxBatch = 512

type commitRequest struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// update runs fn in a write transaction shared with other waiting writers,
// and returns fn's error or the commit's once the commit is durable.
func (db *DB) update(fn func(*bolt.Tx) error) error {
	return db.updateAll([]func(*bolt.Tx) error{fn})[0]
}

// maxGroup bounds how many functions of one caller go to the committer
// together, and so share a commit. A decision round is up to 1,024
// recipients (governor/engine); split at maxBatch it took two commits, each
// with its pair of fsyncs and its rewrite of the pages every decision
// touches (counters, tallies, the branch pages of the indexes).
const maxGroup = 4096

// updateAll runs every fn in one transaction shared as update's are (more
// than one if there are over maxGroup), and returns each one's error as
// update would, in order. The functions reach the committer together, so a
// caller with many writes at hand gets one commit for all of them.
func (db *DB) updateAll(fns []func(*bolt.Tx) error) []error {
	reqs := make([]*commitRequest, len(fns))
	for i, fn := range fns {
		reqs[i] = &commitRequest{fn: fn, done: make(chan error, 1)}
	}
	for rest := reqs; len(rest) > 0; {
		n := min(len(rest), maxGroup)
		db.commits <- rest[:n]
		rest = rest[n:]
	}
	errs := make([]error, len(reqs))
	for i, r := range reqs {
		errs[i] = <-r.done
	}
	return errs
}

func (db *DB) commitLoop() {
	defer close(db.done)
	batch := make([]*commitRequest, 0, maxBatch)
	for first := range db.commits {
		batch = append(batch[:0], first...)
	gather:
		for len(batch) < maxBatch {
			select {
			case group, ok := <-db.commits:
				if !ok {
					break gather
				}
				batch = append(batch, group...)
			default:
				break gather
			}
		}
		db.commitBatch(batch)
	}
}

func (db *DB) commitBatch(batch []*commitRequest) {
	db.commitCount.Add(1)
	db.writeCount.Add(int64(len(batch)))
	if len(batch) == 1 {
		batch[0].done <- db.bolt.Update(db.tallied(batch[0].fn))
		return
	}
	failed := -1
	err := db.bolt.Update(db.tallied(func(tx *bolt.Tx) error {
		for i, r := range batch {
			if err := r.fn(tx); err != nil {
				failed = i
				return err
			}
		}
		return nil
	}))
	if failed < 0 {
		// Committed (err == nil), or the commit itself failed (disk full,
		// I/O error): either way every writer gets the same answer.
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	// One function failed: run each alone so the others still commit.
	for _, r := range batch {
		r.done <- db.bolt.Update(db.tallied(r.fn))
	}
}

// tallied runs fn, then writes what it did to the tallies (tallies_bolt.go)
// in the same transaction; whether it commits or not, the notes of the
// transaction are dropped.
func (db *DB) tallied(fn func(*bolt.Tx) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		if k := keeperOf(tx); k != nil {
			defer k.forget(tx)
		}
		if err := fn(tx); err != nil {
			return err
		}
		return db.flushTallies(tx)
	}
}

// CommitStats reports how many commits ran and how many writes they carried;
// writes/commits is the group commit's average batch size.
func (db *DB) CommitStats() (commits, writes int64) {
	return db.commitCount.Load(), db.writeCount.Load()
}
