package store

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
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
// Every write of a decision reads them for each envelope it changes, so
// the features json.Marshal writes (subject and campaign among the first
// keys, plain strings) are read by campaignPrefix without decoding the
// rest; anything else, and anything the short reader cannot vouch for,
// goes to encoding/json as before (FuzzCampaignOf holds them equal on valid
// JSON). Features are written by json.Marshal and kept under a checksum, so
// they are valid JSON; on bytes that are not, the short reader answers from
// a well-formed start where encoding/json would answer nothing.
func CampaignOf(features []byte) (campaign, subject string) {
	if len(features) == 0 {
		return "", ""
	}
	if c, s, ok := campaignPrefix(features); ok {
		return c, s
	}
	return campaignOfJSON(features)
}

func campaignOfJSON(features []byte) (campaign, subject string) {
	var f struct {
		Campaign string `json:"campaign"`
		Subject  string `json:"subject"`
	}
	if json.Unmarshal(features, &f) != nil {
		return "", ""
	}
	return f.Campaign, f.Subject
}

// campaignPrefix reads features laid out as json.Marshal lays out
// scoring.Features: an object whose first keys are, each optional and in
// this order, "message_id", "subject" and "campaign", with string values
// free of escapes. It vouches for its answer (ok) only if the rest of the
// object names neither key again in any spelling encoding/json would match
// (a key is matched case-insensitively, and the only letters of these two
// names that fold outside ASCII are none: s folds to U+017F, but "ubject"
// is still there to find). It does not check that the rest is valid JSON:
// that check alone cost more than the read it saves.
func campaignPrefix(b []byte) (campaign, subject string, ok bool) {
	if len(b) < 2 || b[0] != '{' {
		return "", "", false
	}
	i := 1
	for _, key := range [...]string{`"message_id":"`, `"subject":"`, `"campaign":"`} {
		if !bytes.HasPrefix(b[i:], []byte(key)) {
			continue
		}
		start := i + len(key)
		end := stringEnd(b[start:])
		if end < 0 {
			return "", "", false
		}
		v := b[start : start+end]
		if i = start + end + 1; i < len(b) && b[i] == ',' {
			i++
		}
		if key == `"message_id":"` {
			continue // not read: json.Marshal escapes its < and >
		}
		if bytes.IndexByte(v, '\\') >= 0 || !utf8.Valid(v) {
			return "", "", false // encoding/json unescapes, and mends bad UTF-8
		}
		if key == `"subject":"` {
			subject = string(v)
		} else {
			campaign = string(v)
		}
	}
	rest := b[i:]
	if namesCampaignKey(rest) {
		return "", "", false
	}
	return campaign, subject, true
}

// stringEnd is the index of the quote that ends the JSON string whose
// body starts b, stepping over escapes; -1 if there is none.
func stringEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// namesCampaignKey says whether any string in b ends in "subject" or
// "campaign" in any mix of ASCII cases (as a key would, or a value that
// merely looks like one, which costs only the slower read).
func namesCampaignKey(b []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return false
		}
		q := i + j
		switch b[max(q-1, 0)] | 0x20 {
		case 't':
			if q >= 6 && bytes.EqualFold(b[q-6:q], []byte("ubject")) {
				return true
			}
		case 'n':
			if q >= 7 && bytes.EqualFold(b[q-7:q], []byte("ampaign")) {
				return true
			}
		}
		i = q + 1
	}
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
