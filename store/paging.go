package store

import "time"

// EnvelopeCursor is a place in a walk of one state's envelopes
// (EnvelopesInStateAfter). Mail waiting for delivery, held or in review is
// walked by due time, then ID; mail in delivery, final mail and the walk
// of every envelope (state "") by ID alone, and Due is then ignored. The
// zero cursor is the start of the walk.
type EnvelopeCursor struct {
	Due time.Time
	ID  string
}

// CursorOf is e's place in the walk of its state: a walk after it goes on
// with the envelope that came after e.
func CursorOf(e Envelope) EnvelopeCursor { return EnvelopeCursor{Due: e.Due, ID: e.ID} }

// RecipientPage is one page of a recipient's envelopes (Reads.RecipientEnvelopes).
type RecipientPage struct {
	// Records are the envelopes with their messages and decisions, the
	// highest envelope ID first (the order of arrival, reversed).
	Records []EnvelopeRecord
	// Total counts all of the recipient's envelopes.
	Total int
	// Next is the before of the page after, "" when this one is the last.
	Next string
}
