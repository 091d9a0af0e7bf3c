package governor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"kadenz/config"
	"kadenz/governor/engine"
	"kadenz/scoring"
	"kadenz/store"
)

// The queue admin API: list envelopes, and the operator's three actions
// on marketing mail.
//
//	GET  /v1/queue?state=&campaign=&recipient=&limit=
//	POST /v1/queue/release  {"ids": [...]} or {"campaign": "..."}
//	POST /v1/queue/drop     the same
//	POST /v1/queue/hold     the same
//
// release moves mail in review to queued, due now; drop makes held or
// review mail suppressed ("dropped by operator"); hold puts held or queued
// marketing mail into review. Each action applies to all the envelopes it
// names in one transaction, or to none: an unknown ID is 404, an envelope
// in a state the action does not apply to is 409, bad input is 400.

func (r *Relay) registerQueueRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/queue", r.handleQueueList)
	for _, op := range queueOps {
		mux.HandleFunc("POST /v1/queue/"+op.name, func(w http.ResponseWriter, req *http.Request) {
			r.handleQueueAction(w, req, op)
		})
	}
}

// QueueEntry is one envelope as the queue listing shows it: the stored
// envelope's fields, and what its message and decisions say.
type QueueEntry struct {
	store.Envelope
	Class    string `json:"class,omitempty"`
	Subject  string `json:"subject,omitempty"`
	Campaign string `json:"campaign,omitempty"`
	// LastAction is the action of the envelope's latest decision record.
	LastAction string `json:"last_action,omitempty"`
}

// QueueActionRequest names the envelopes an action applies to: a list of
// envelope IDs or a campaign, not both.
type QueueActionRequest struct {
	IDs      []string `json:"ids,omitempty"`
	Campaign string   `json:"campaign,omitempty"`
}

// QueueActionResult lists the envelopes an action changed.
type QueueActionResult struct {
	Changed []string `json:"changed"`
}

// waitingStates are what the listing shows when no state is asked for.
var waitingStates = []store.State{store.StateReview, store.StateHeld, store.StateQueued, store.StateDeferred, store.StateDelivering}

var allStates = append(waitingStates, store.StateDelivered, store.StateFailed, store.StateSuppressed)

const (
	defaultListLimit = 100
	maxListLimit     = 10000
)

func (r *Relay) handleQueueList(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	for key := range q {
		if key != "state" && key != "campaign" && key != "recipient" && key != "limit" {
			http.Error(w, fmt.Sprintf("unknown parameter %q (state, campaign, recipient, limit)", key), http.StatusBadRequest)
			return
		}
	}
	states := waitingStates
	if s := q.Get("state"); s != "" {
		st := store.State(s)
		if !containsState(allStates, st) {
			http.Error(w, fmt.Sprintf("unknown state %q (one of %s)", s, statesList(allStates)), http.StatusBadRequest)
			return
		}
		states = []store.State{st}
	}
	limit := defaultListLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			http.Error(w, fmt.Sprintf("limit %q is not a number from 1 to %d", s, maxListLimit), http.StatusBadRequest)
			return
		}
		limit = n
	}
	entries, err := r.queueEntries(states, q.Get("campaign"), q.Get("recipient"), limit)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, entries)
}

// queueEntries lists up to limit envelopes in the given states, in that
// order of states, optionally only of a campaign or to a recipient.
func (r *Relay) queueEntries(states []store.State, campaign, rcpt string, limit int) ([]QueueEntry, error) {
	entries := []QueueEntry{}
	msgs := messageCache{r: r}
	for _, st := range states {
		var failed error
		err := r.db.EnvelopesInState(st, func(e store.Envelope) bool {
			if rcpt != "" && !strings.EqualFold(e.To, rcpt) {
				return true
			}
			m, err := msgs.get(e.MessageID)
			if err != nil {
				failed = err
				return false
			}
			if campaign != "" && !strings.EqualFold(m.campaign, campaign) {
				return true
			}
			entries = append(entries, QueueEntry{Envelope: e,
				Class: m.class, Subject: m.subject, Campaign: m.campaign, LastAction: r.lastAction(e.ID)})
			return len(entries) < limit
		})
		if err == nil {
			err = failed
		}
		if err != nil {
			return nil, err
		}
		if len(entries) >= limit {
			break
		}
	}
	return entries, nil
}

func containsState(list []store.State, s store.State) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func statesList(list []store.State) string {
	names := make([]string, len(list))
	for i, s := range list {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// messageInfo is what the listing and the actions need of a message.
type messageInfo struct {
	class, subject, campaign string
	features                 *scoring.Features // nil for ungoverned mail
}

// messageCache reads each message once per request.
type messageCache struct {
	r *Relay
	m map[string]*messageInfo
}

func (c *messageCache) get(id string) (*messageInfo, error) {
	if info, ok := c.m[id]; ok {
		return info, nil
	}
	if c.m == nil {
		c.m = map[string]*messageInfo{}
	}
	msg, err := c.r.db.Message(id)
	if err != nil {
		return nil, err
	}
	info := &messageInfo{class: msg.Class}
	if len(msg.Features) > 0 {
		f := &scoring.Features{}
		if err := json.Unmarshal(msg.Features, f); err != nil {
			return nil, fmt.Errorf("features of %s: %w", id, err)
		}
		info.features, info.subject, info.campaign = f, f.Subject, f.Campaign
	} else if rc, err := c.r.db.OpenBody(id); err == nil {
		// The header is within the first part (intake.spool_threshold):
		// a large message is not read whole for its Subject.
		head, _ := io.ReadAll(io.LimitReader(rc, store.BodyPartSize))
		rc.Close()
		if h := readHeader(head); h != nil {
			info.subject = h.Get("Subject")
		}
	}
	c.m[id] = info
	return info, nil
}

// lastAction is the action of an envelope's latest decision record.
func (r *Relay) lastAction(envelopeID string) string {
	raw, err := r.db.Decisions(envelopeID)
	if err != nil || raw == nil {
		return ""
	}
	var recs []struct {
		Action string `json:"action"`
	}
	if json.Unmarshal(raw, &recs) != nil || len(recs) == 0 {
		return ""
	}
	return recs[len(recs)-1].Action
}

// queueOp is one operator action.
type queueOp struct {
	name string
	// from are the states the action applies to; a campaign selects the
	// envelopes of that campaign in these states.
	from []store.State
	// marketingOnly refuses transactional mail.
	marketingOnly bool
	apply         func(r *Relay, e *store.Envelope, info *messageInfo, profile []byte, now time.Time) (newProfile []byte, rec engine.Record, err error)
}

var queueOps = []queueOp{
	{name: "release", from: []store.State{store.StateReview}, apply: operatorRelease},
	{name: "drop", from: []store.State{store.StateReview, store.StateHeld}, apply: operatorDrop},
	{name: "hold", from: []store.State{store.StateHeld, store.StateQueued}, marketingOnly: true, apply: operatorHold},
}

// operatorRelease makes mail in review due now and records the release in
// the recipient's history, as the engine does for its own releases.
func operatorRelease(r *Relay, e *store.Envelope, info *messageInfo, profile []byte, now time.Time) ([]byte, engine.Record, error) {
	e.State, e.Due = store.StateQueued, now
	p, err := updateHistory(profile, func(p *scoring.Profile) {
		rel := scoring.Release{At: now, MessageID: e.ID, Sender: e.From}
		if f := info.features; f != nil {
			rel.Campaign, rel.Topics, rel.Fingerprint = f.Campaign, f.Topics, f.Fingerprint
		}
		p.RecordRelease(rel, r.engine.Memory())
	})
	return p, engine.Record{Action: "release", At: now, Reasons: []string{engine.ReasonOperator},
		Explanation: "Released by an operator from review."}, err
}

func operatorDrop(_ *Relay, e *store.Envelope, _ *messageInfo, _ []byte, _ time.Time) ([]byte, engine.Record, error) {
	e.State = store.StateSuppressed
	return nil, engine.Record{Action: "suppress", Reasons: []string{engine.ReasonOperator}, Explanation: "Dropped by operator."}, nil
}

// operatorHold puts held or queued marketing mail into review. A queued
// envelope was counted in the recipient's history when the engine
// released it; that entry goes, since the release is off.
func operatorHold(_ *Relay, e *store.Envelope, _ *messageInfo, profile []byte, now time.Time) ([]byte, engine.Record, error) {
	var p []byte
	var err error
	if e.State == store.StateQueued && profile != nil {
		p, err = updateHistory(profile, func(p *scoring.Profile) {
			for i, h := range p.History {
				if h.MessageID == e.ID {
					p.History = append(p.History[:i], p.History[i+1:]...)
					break
				}
			}
		})
	}
	e.State, e.Due = store.StateReview, now
	return p, engine.Record{Action: engine.ActionReview, Reasons: []string{engine.ReasonOperator}, Explanation: "Put on hold for review by an operator."}, err
}

func updateHistory(raw []byte, change func(*scoring.Profile)) ([]byte, error) {
	return scoring.UpdateStored(raw, change)
}

// errBadRequest marks input problems (400).
var errBadRequest = errors.New("bad request")

func (r *Relay) handleQueueAction(w http.ResponseWriter, req *http.Request, op queueOp) {
	changed, err := r.queueAction(req.Body, op)
	switch {
	case errors.Is(err, errBadRequest):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, store.ErrState):
		http.Error(w, err.Error(), http.StatusConflict)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		writeJSON(w, QueueActionResult{Changed: changed})
	}
}

// maxActionBody bounds a request: 10,000 IDs fit comfortably.
const maxActionBody = 1 << 20

func (r *Relay) queueAction(body io.Reader, op queueOp) ([]string, error) {
	var in QueueActionRequest
	if err := readStrict(body, maxActionBody, &in); err != nil {
		return nil, fmt.Errorf("%w: body must be {\"ids\": [...]} or {\"campaign\": \"...\"}: %v", errBadRequest, err)
	}
	return r.applyQueueAction(in, op)
}

// applyQueueAction applies op to the envelopes in names, all or none.
func (r *Relay) applyQueueAction(in QueueActionRequest, op queueOp) ([]string, error) {
	if (len(in.IDs) == 0) == (in.Campaign == "") {
		return nil, fmt.Errorf("%w: give either ids or campaign, not both or neither", errBadRequest)
	}
	for _, id := range in.IDs {
		if strings.TrimSpace(id) == "" {
			return nil, fmt.Errorf("%w: empty envelope ID", errBadRequest)
		}
		if bad := checkText("ids", id, maxLookupID); bad != nil {
			return nil, fmt.Errorf("%w: %v", errBadRequest, bad)
		}
	}
	msgs := messageCache{r: r}
	ids := in.IDs
	if in.Campaign != "" {
		for _, st := range op.from {
			var failed error
			err := r.db.EnvelopesInState(st, func(e store.Envelope) bool {
				m, err := msgs.get(e.MessageID)
				if err != nil {
					failed = err
					return false
				}
				if m.campaign != "" && strings.EqualFold(m.campaign, in.Campaign) && (!op.marketingOnly || m.class == config.ClassMarketing) {
					ids = append(ids, e.ID)
				}
				return true
			})
			if err == nil {
				err = failed
			}
			if err != nil {
				return nil, err
			}
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("no mail of campaign %q in state %s: %w", in.Campaign, statesList(op.from), store.ErrNotFound)
		}
	}
	// Read every message before the transaction, so that the change
	// itself does no reads of its own; an unknown ID fails here already.
	for _, id := range ids {
		e, err := r.db.Envelope(id)
		if err != nil {
			return nil, err
		}
		if _, err := msgs.get(e.MessageID); err != nil {
			return nil, err
		}
	}
	now := r.now()
	envs, err := r.db.Transition(ids, func(e *store.Envelope, profile []byte) ([]byte, []byte, error) {
		if !containsState(op.from, e.State) {
			return nil, nil, fmt.Errorf("is %s; %s applies to %s: %w", e.State, op.name, statesList(op.from), store.ErrState)
		}
		info, err := msgs.get(e.MessageID)
		if err != nil {
			return nil, nil, err
		}
		if op.marketingOnly && info.class != config.ClassMarketing {
			return nil, nil, fmt.Errorf("is %s mail; only marketing mail can be held: %w", info.class, store.ErrState)
		}
		newProfile, rec, err := op.apply(r, e, info, profile, now)
		if err != nil {
			return nil, nil, err
		}
		e.Updated = now
		rec.DecidedAt, rec.Mode = now, "operator"
		raw, err := json.Marshal(rec)
		return newProfile, raw, err
	})
	if err != nil {
		return nil, err
	}
	changed := make([]string, len(envs))
	released := false
	for i, e := range envs {
		changed[i] = e.ID
		released = released || e.State == store.StateQueued
	}
	if released {
		r.queue.Kick()
	}
	r.log.Info("operator "+op.name, "envelopes", len(changed), "campaign", in.Campaign)
	return changed, nil
}
