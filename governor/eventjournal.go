package governor

import (
	"fmt"

	"kadenz/governor/feedback"
	"kadenz/governor/feedback/journal"
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

// checkEventJournal refuses an offline copy of the database file at dbPath
// while the event journal beside it holds records: events answered before
// an unclean stop, which only a start of kadenz applies (a clean stop
// leaves none). A copy without them would silently lack events the sender
// was told are durable.
func checkEventJournal(dbPath string) error {
	dir := EventJournalDir(dbPath)
	has, err := journal.HasRecords(dir)
	if err != nil {
		return fmt.Errorf("reading the event journal %s: %w", dir, err)
	}
	if has {
		return fmt.Errorf("the event journal %s holds events that may not be in the database file yet "+
			"(kadenz is running, or it stopped uncleanly); stop kadenz cleanly (a start applies them), then copy", dir)
	}
	return nil
}
