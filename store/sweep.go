package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// RecoverStale makes envelopes that have been in delivery since before
// cutoff due again at now, and returns how many. It is Recover for a
// running process: a delivery that has taken that long is taken to be
// lost (a worker that hung or died), and delivery is at-least-once.
func (db *DB) RecoverStale(now, cutoff time.Time) (int, error) {
	n := 0
	err := db.update(func(tx *bolt.Tx) error {
		n = 0
		var stale []Envelope
		err := tx.Bucket(bucketInflight).ForEach(func(k, _ []byte) error {
			e, err := getEnvelope(tx, string(k))
			if err != nil {
				return err
			}
			if e.Updated.Before(cutoff) {
				stale = append(stale, e)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range stale {
			old := e
			e.State, e.Due, e.Updated = StateQueued, now, now
			if err := putEnvelope(tx, &old, &e); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
