package governor

import (
	"kadenz/governor/feedback"
	"kadenz/store"
)

// journalledStore is a backend that keeps its own file and can record the
// event journal's position (bbolt): the event journal lives beside it.
type journalledStore interface {
	store.FeedbackJournal
	Path() string
}

// EventJournalDir is where the event journal of the database file at
// dbPath lives: the directory beside it, <file>.events
// (data_dir/kadenz.db.events for the daemon's own file).
func EventJournalDir(dbPath string) string { return dbPath + ".events" }

// openEventJournal opens the events API's journal beside the database file
// and applies what it holds from before the last stop. A backend without a
// file of its own (PostgreSQL) has none: there POST /v1/events commits
// directly, as before, and several nodes share one database without a
// journal on any one node's disk.
func (r *Relay) openEventJournal() error {
	js, ok := r.db.(journalledStore)
	if !ok {
		return nil
	}
	ev, err := r.feedback.OpenJournal(feedback.JournalOptions{Dir: EventJournalDir(js.Path())})
	if err != nil {
		return err
	}
	r.events = ev
	return nil
}

// flushEvents applies what the event journal holds (nothing without one);
// seal also removes the applied events from its files (before an erasure).
func (r *Relay) flushEvents(seal bool) error {
	switch {
	case r.events == nil:
		return nil
	case seal:
		return r.events.Seal()
	}
	return r.events.Flush()
}
