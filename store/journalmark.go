package store

import (
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FeedbackJournal is what an event journal in front of ApplyFeedback needs
// of a backend (governor/feedback's EventJournal): a batch applied together
// with how far into the journal it reaches, in one transaction, so that a
// replay after a crash starts exactly after what the database already
// holds; and the seen event IDs, to answer a sender before its events are
// applied. Only a backend keeping its own file offers it: the journal lives
// beside that file.
type FeedbackJournal interface {
	// ApplyJournalled is ApplyFeedback, and records seq as applied in the
	// same transaction (never lowering what is recorded).
	ApplyJournalled(now time.Time, changes []FeedbackChange, seq uint64) (applied, duplicates int, err error)
	// JournalApplied is the highest seq recorded by ApplyJournalled, 0 if
	// none.
	JournalApplied() (uint64, error)
	// SeenEventIDs reports for each ID whether ApplyFeedback would count it
	// a duplicate now (seen before, also as an erased recipient's).
	SeenEventIDs(ids []string) ([]bool, error)
}

var _ FeedbackJournal = (*DB)(nil)

// journalAppliedKey, in the meta bucket, holds the event journal's
// position as 8 bytes big-endian. A file without it (every file before the
// journal) has applied nothing of one; older releases ignore the key.
var journalAppliedKey = []byte("events_journal_applied")

// ApplyJournalled implements FeedbackJournal.
func (db *DB) ApplyJournalled(now time.Time, changes []FeedbackChange, seq uint64) (applied, duplicates int, err error) {
	return db.applyFeedback(now, changes, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(journalAppliedKey); len(v) == 8 && binary.BigEndian.Uint64(v) >= seq {
			return nil
		}
		return meta.Put(journalAppliedKey, binary.BigEndian.AppendUint64(nil, seq))
	})
}

// JournalApplied implements FeedbackJournal.
func (db *DB) JournalApplied() (uint64, error) {
	var seq uint64
	err := db.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(journalAppliedKey); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return seq, err
}

// SeenEventIDs implements FeedbackJournal, with the lookups
// ApplyFeedback's transaction makes.
func (db *DB) SeenEventIDs(ids []string) ([]bool, error) {
	seen := make([]bool, len(ids))
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEventIDs)
		first, _ := b.Cursor().First()
		erasedIDs := len(first) > 0 && first[0] == 0
		var secret []byte
		if erasedIDs {
			var err error
			if secret, err = pseudonymSecret(tx, false); err != nil {
				return err
			}
		}
		for i, id := range ids {
			seen[i] = b.Get([]byte(id)) != nil || secret != nil && b.Get(erasedEventKey(secret, id)) != nil
		}
		return nil
	})
	return seen, err
}

// Path is the database file's path: what lives beside it (the event
// journal) is named after it.
func (db *DB) Path() string { return db.bolt.Path() }
