package store

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strings"
)

// Campaign tallies: what a campaign report and the dashboard's campaign
// pages count, kept per campaign so that a report costs a read of its
// campaign's counts instead of a walk of every stored envelope (8-16 s at
// 100,000 recipients).
//
// A campaign is the "campaign" string of a message's features, a subject
// their "subject" string (both empty when the features do not decode). An
// envelope of a message with a campaign counts under its state, its holdout
// flag and whether any of its decision records deferred it (the record's
// "would", else its "action", is "defer"); a suppressed one also counts the
// reason codes of its last decision record. A message counts once while it
// has an envelope; the campaign's subject is that of its counted message
// with the highest ID (the latest) that has one. The tallies move in the
// transaction of the write that moves them, as the hourly tallies do
// (tallies.go).

// CampaignTally is what the store counts of one campaign's mail.
type CampaignTally struct {
	Campaign string
	Subject  string
	Messages int
	// Envelopes are ordered by state, then holdout, then deferred; Reasons
	// by reason. Rows that count zero are left out.
	Envelopes []CampaignEnvelopeTally
	Reasons   []CampaignReasonTally
}

// CampaignEnvelopeTally counts a campaign's envelopes in one state, holdout
// or not, deferred at least once or never.
type CampaignEnvelopeTally struct {
	State    State
	Holdout  bool
	Deferred bool
	N        int
}

// CampaignReasonTally counts a reason code of the last decision records
// of a campaign's suppressed envelopes.
type CampaignReasonTally struct {
	Reason string
	N      int
}

// CampaignPage is one page of a campaign's envelopes (Reads.CampaignEnvelopes).
type CampaignPage struct {
	// Records are the highest message ID first, and within a message the
	// highest envelope ID first.
	Records []EnvelopeRecord
	// Next is the before of the page after, "" when this one is the last.
	Next string
}

// Sort puts the rows in the order CampaignTally promises.
func (c *CampaignTally) Sort() {
	slices.SortFunc(c.Envelopes, func(a, b CampaignEnvelopeTally) int {
		return cmp.Or(strings.Compare(string(a.State), string(b.State)), boolCompare(a.Holdout, b.Holdout), boolCompare(a.Deferred, b.Deferred))
	})
	slices.SortFunc(c.Reasons, func(a, b CampaignReasonTally) int { return strings.Compare(a.Reason, b.Reason) })
}

// CampaignOf reads the campaign and subject of a message's features.
func CampaignOf(features []byte) (campaign, subject string) {
	if len(features) == 0 {
		return "", ""
	}
	var f struct {
		Campaign string `json:"campaign"`
		Subject  string `json:"subject"`
	}
	if json.Unmarshal(features, &f) != nil {
		return "", ""
	}
	return f.Campaign, f.Subject
}

// deferredIn says whether any record of a list deferred the envelope.
func deferredIn(records []byte) bool {
	if !bytes.Contains(records, []byte(`"defer"`)) { // most lists: no need to decode
		return false
	}
	var list []json.RawMessage
	if json.Unmarshal(records, &list) != nil {
		return false
	}
	for _, r := range list {
		if recordDefers(r) {
			return true
		}
	}
	return false
}

// recordDefers says whether one decision record deferred its envelope.
func recordDefers(record []byte) bool {
	action, _, ok := decisionSummary(record)
	return ok && action == "defer"
}

// EnvelopeMessageID is the message ID of an envelope ID (the message ID,
// "-" and the recipient's position).
func EnvelopeMessageID(envelopeID string) string {
	if i := strings.LastIndexByte(envelopeID, '-'); i >= 0 {
		return envelopeID[:i]
	}
	return envelopeID
}

type campaignEnvelopeKey struct {
	campaign string
	state    State
	holdout  bool
	deferred bool
}

type campaignReasonKey struct {
	campaign string
	reason   string
}

// campaignDelta is a change to the campaign tallies.
type campaignDelta struct {
	envelopes map[campaignEnvelopeKey]int
	reasons   map[campaignReasonKey]int
	messages  map[string]int // campaign -> messages
	// index moves messages in and out of a campaign's list: campaign +
	// 0x00 + message ID -> +1 with its subject, or -1.
	index    map[string]int
	subjects map[string]string
}

func newCampaignDelta() *campaignDelta {
	return &campaignDelta{envelopes: map[campaignEnvelopeKey]int{}, reasons: map[campaignReasonKey]int{},
		messages: map[string]int{}, index: map[string]int{}, subjects: map[string]string{}}
}

// add counts an envelope's contribution sign times.
func (d *campaignDelta) add(c contribution, sign int) {
	if !c.ok || c.campaign == "" {
		return
	}
	d.envelopes[campaignEnvelopeKey{c.campaign, c.state, c.holdout, c.deferred}] += sign
	if c.state == StateSuppressed {
		for _, r := range c.reasons {
			d.reasons[campaignReasonKey{c.campaign, r}] += sign
		}
	}
}

// addMessage counts a message of a campaign sign times.
func (d *campaignDelta) addMessage(campaign, messageID, subject string, sign int) {
	if campaign == "" {
		return
	}
	d.messages[campaign] += sign
	k := campaign + "\x00" + messageID
	d.index[k] += sign
	if sign > 0 {
		d.subjects[k] = subject
	}
}

// tallies turns a delta of everything into the tallies of each campaign.
func (d *campaignDelta) tallies() map[string]*CampaignTally {
	out := map[string]*CampaignTally{}
	get := func(name string) *CampaignTally {
		t := out[name]
		if t == nil {
			t = &CampaignTally{Campaign: name}
			out[name] = t
		}
		return t
	}
	for k, n := range d.envelopes {
		if n != 0 {
			t := get(k.campaign)
			t.Envelopes = append(t.Envelopes, CampaignEnvelopeTally{k.state, k.holdout, k.deferred, n})
		}
	}
	for k, n := range d.reasons {
		if n != 0 {
			t := get(k.campaign)
			t.Reasons = append(t.Reasons, CampaignReasonTally{k.reason, n})
		}
	}
	for name, n := range d.messages {
		if n != 0 {
			get(name).Messages = n
		}
	}
	latest := map[string]string{}
	for k, n := range d.index {
		campaign, id, _ := strings.Cut(k, "\x00")
		if n > 0 && d.subjects[k] != "" && id > latest[campaign] {
			latest[campaign] = id
			get(campaign).Subject = d.subjects[k]
		}
	}
	for _, t := range out {
		t.Sort()
	}
	return out
}

// WalkCampaignTallies computes every campaign's tallies by reading every
// envelope with its message and decisions: what a backend's kept campaign
// tallies must equal (the conformance suite compares them).
func WalkCampaignTallies(r Reads) (map[string]*CampaignTally, error) {
	d := newCampaignDelta()
	lastMsg := ""
	err := r.Records(func(rec EnvelopeRecord) bool {
		if rec.Message == nil {
			return true
		}
		e := rec.Envelope
		campaign, subject := CampaignOf(rec.Message.Features)
		c := contribution{ok: true, state: e.State, holdout: e.Holdout, campaign: campaign, deferred: deferredIn(rec.Decisions)}
		if _, reasons, ok := lastDecision(rec.Decisions); ok {
			c.reasons = reasons
		}
		d.add(c, 1)
		if e.MessageID != lastMsg {
			d.addMessage(campaign, e.MessageID, subject, 1)
			lastMsg = e.MessageID
		}
		return true
	})
	return d.tallies(), err
}
