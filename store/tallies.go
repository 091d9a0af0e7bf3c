package store

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Tallies: what the statistics and the dashboard's overview report, counted
// per hour of arrival, so that answering for a period costs a read of its
// hours' counts instead of a walk of its envelopes and their decisions
// (100,000 envelopes took 3-7 s to walk while a campaign was being decided).
//
// An envelope counts in the hour it was created, under its current state,
// its message's class, its holdout flag and the action of its last decision
// record; the reasons of that record count apart (ReasonTally), and each
// message counts once, in its envelopes' hour, while it has any envelope
// (MessageTally). When an envelope changes state, gets a record, or is
// deleted, its old contribution is taken away and its new one added, in the
// same transaction as the change.
//
// The store reads three fields of a decision record, which is otherwise
// the engine's opaque JSON: "action", "would" (the action an enforcing
// engine would have taken in shadow mode, which counts in its place when
// set) and "reasons" (a list of codes).

// EnvelopeTally counts the envelopes created in one hour that share a
// state, a class, a holdout flag and a last action.
type EnvelopeTally struct {
	Hour    time.Time
	State   State
	Class   string
	Holdout bool
	// Action is the last decision record's "would", else its "action";
	// empty for an envelope without records.
	Action string
	N      int
}

// ReasonTally counts the reason codes of the last decision records of
// envelopes created in one hour and now in one state (a record naming a
// code twice counts it twice).
type ReasonTally struct {
	Hour   time.Time
	State  State
	Reason string
	N      int
}

// MessageTally counts the messages of one class whose envelopes were
// created in one hour, among messages with at least one envelope.
type MessageTally struct {
	Hour  time.Time
	Class string
	N     int
}

// Tallies are the counts of a period, ordered by hour, then by their other
// fields; rows that count zero are left out.
type Tallies struct {
	Envelopes []EnvelopeTally
	Reasons   []ReasonTally
	Messages  []MessageTally
}

// TallyHours are the whole hours covering [since, until): since rounded
// down to its hour, until rounded up to its. Tallies answer for these.
func TallyHours(since, until time.Time) (from, to time.Time) {
	from = hourStart(hourOf(since))
	to = hourStart(hourOf(until))
	if to.Before(until) {
		to = to.Add(time.Hour)
	}
	return from, to
}

// hourOf numbers t's hour since the Unix epoch (floor, so times before
// 1970, such as a zero Created, get an hour of their own too).
func hourOf(t time.Time) int64 {
	s := t.Unix()
	h := s / 3600
	if s%3600 < 0 {
		h--
	}
	return h
}

func hourStart(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }

// lastDecision reads what the tallies need of a list of decision records:
// the last one's action (its would, when set) and reasons. ok is false
// when the list is empty or unreadable, as the reports have always read it.
func lastDecision(records []byte) (action string, reasons []string, ok bool) {
	if len(records) == 0 {
		return "", nil, false
	}
	if last, ok := lastElementScan(records); ok { // summary.go
		return decisionSummary(last)
	}
	return lastDecisionJSON(records)
}

// lastDecisionJSON is lastDecision by encoding/json alone.
func lastDecisionJSON(records []byte) (action string, reasons []string, ok bool) {
	var list []json.RawMessage
	if json.Unmarshal(records, &list) != nil || len(list) == 0 {
		return "", nil, false
	}
	return decisionSummaryJSON(list[len(list)-1])
}

// decisionSummary reads one record's action and reasons.
func decisionSummary(record []byte) (action string, reasons []string, ok bool) {
	if action, would, reasons, ok := summaryScan(record); ok { // summary.go
		return cmp.Or(would, action), reasons, true
	}
	return decisionSummaryJSON(record)
}

// decisionSummaryJSON is decisionSummary by encoding/json alone.
func decisionSummaryJSON(record []byte) (action string, reasons []string, ok bool) {
	var r struct {
		Action  string   `json:"action"`
		Would   string   `json:"would"`
		Reasons []string `json:"reasons"`
	}
	if json.Unmarshal(record, &r) != nil {
		return "", nil, false
	}
	return cmp.Or(r.Would, r.Action), r.Reasons, true
}

// contribution is what one envelope adds to the tallies.
type contribution struct {
	ok      bool // false: the envelope does not exist (nothing counted)
	hour    int64
	state   State
	class   string
	holdout bool
	action  string
	reasons []string
	// campaign (of the message's features) and deferred (any record
	// deferred the envelope) are what the campaign tallies add
	// (campaigntallies.go).
	campaign string
	deferred bool
}

func (c contribution) envelopeKey() envelopeTallyKey {
	return envelopeTallyKey{c.hour, c.state, c.class, c.holdout, c.action}
}

type envelopeTallyKey struct {
	hour    int64
	state   State
	class   string
	holdout bool
	action  string
}

type reasonTallyKey struct {
	hour   int64
	state  State
	reason string
}

type messageTallyKey struct {
	hour  int64
	class string
}

// tallyDelta is a change to the tallies, keyed as they are kept.
type tallyDelta struct {
	envelopes map[envelopeTallyKey]int
	reasons   map[reasonTallyKey]int
	messages  map[messageTallyKey]int
	campaigns *campaignDelta
}

func newTallyDelta() *tallyDelta {
	return &tallyDelta{envelopes: map[envelopeTallyKey]int{}, reasons: map[reasonTallyKey]int{}, messages: map[messageTallyKey]int{},
		campaigns: newCampaignDelta()}
}

// add counts c sign times (1 to add, -1 to take away).
func (d *tallyDelta) add(c contribution, sign int) {
	if !c.ok {
		return
	}
	d.envelopes[c.envelopeKey()] += sign
	for _, r := range c.reasons {
		d.reasons[reasonTallyKey{c.hour, c.state, r}] += sign
	}
	d.campaigns.add(c, sign)
}

// addMessage counts a message of class whose envelopes are in hour.
func (d *tallyDelta) addMessage(hour int64, class string, sign int) {
	d.messages[messageTallyKey{hour, class}] += sign
}

// tallies turns a delta into sorted rows, leaving out zeros.
func (d *tallyDelta) tallies() Tallies {
	var t Tallies
	for k, n := range d.envelopes {
		if n != 0 {
			t.Envelopes = append(t.Envelopes, EnvelopeTally{hourStart(k.hour), k.state, k.class, k.holdout, k.action, n})
		}
	}
	for k, n := range d.reasons {
		if n != 0 {
			t.Reasons = append(t.Reasons, ReasonTally{hourStart(k.hour), k.state, k.reason, n})
		}
	}
	for k, n := range d.messages {
		if n != 0 {
			t.Messages = append(t.Messages, MessageTally{hourStart(k.hour), k.class, n})
		}
	}
	t.Sort()
	return t
}

// Sort puts the rows in the order Tallies promises: by hour, then by their
// other fields (for a backend that reads them in another order).
func (t *Tallies) Sort() {
	slices.SortFunc(t.Envelopes, func(a, b EnvelopeTally) int {
		return cmp.Or(a.Hour.Compare(b.Hour), strings.Compare(string(a.State), string(b.State)), strings.Compare(a.Class, b.Class),
			boolCompare(a.Holdout, b.Holdout), strings.Compare(a.Action, b.Action))
	})
	slices.SortFunc(t.Reasons, func(a, b ReasonTally) int {
		return cmp.Or(a.Hour.Compare(b.Hour), strings.Compare(string(a.State), string(b.State)), strings.Compare(a.Reason, b.Reason))
	})
	slices.SortFunc(t.Messages, func(a, b MessageTally) int {
		return cmp.Or(a.Hour.Compare(b.Hour), strings.Compare(a.Class, b.Class))
	})
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// WalkTallies computes the tallies of the hours covering [since, until) by
// reading every envelope with its message and decisions: what a backend's
// kept tallies must equal (the conformance suite compares them), and how a
// backend without kept tallies answers.
func WalkTallies(r Reads, since, until time.Time) (Tallies, error) {
	from, to := TallyHours(since, until)
	lo, hi := hourOf(from), hourOf(to)
	d := newTallyDelta()
	lastMsg := ""
	err := r.Records(func(rec EnvelopeRecord) bool {
		e := rec.Envelope
		h := hourOf(e.Created)
		if h < lo || h >= hi {
			return true
		}
		c := contribution{ok: true, hour: h, state: e.State, class: rec.Message.Class, holdout: e.Holdout}
		if action, reasons, ok := lastDecision(rec.Decisions); ok {
			c.action, c.reasons = action, reasons
		}
		d.add(c, 1)
		if e.MessageID != lastMsg { // a message's envelopes are walked together
			d.addMessage(h, rec.Message.Class, 1)
			lastMsg = e.MessageID
		}
		return true
	})
	return d.tallies(), err
}
