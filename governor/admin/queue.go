package admin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/governor/engine"
	"kadenz/scoring"
	"kadenz/store"
)

// The queue admin API: list envelopes, and the operator's three actions
// on marketing mail.
//
//	GET  /v1/queue?state=&campaign=&recipient=&limit=&after=
//	POST /v1/queue/release  {"ids": [...]} or {"campaign": "..."}
//	POST /v1/queue/drop     the same
//	POST /v1/queue/hold     the same
//
// release moves mail in review to queued, due now; drop makes held or
// review mail suppressed ("dropped by operator"); hold puts held or queued
// marketing mail into review. Each action applies to all the envelopes it
// names in one transaction, or to none: an unknown ID is 404, an envelope
// in a state the action does not apply to is 409, bad input is 400.

func (a *Server) registerQueueRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/queue", a.handleQueueList)
	for _, op := range queueOps {
		mux.HandleFunc("POST /v1/queue/"+op.name, func(w http.ResponseWriter, req *http.Request) {
			a.handleQueueAction(w, req, op)
		})
	}
}

// waitingStates are what the listing shows when no state is asked for.
var waitingStates = []store.State{store.StateReview, store.StateHeld, store.StateQueued, store.StateDeferred, store.StateDelivering}

var allStates = append(waitingStates, store.StateDelivered, store.StateFailed, store.StateSuppressed)

const (
	defaultListLimit = 100
	maxListLimit     = 10000
)

func (a *Server) handleQueueList(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	for key := range q {
		if key != "state" && key != "campaign" && key != "recipient" && key != "limit" && key != "after" {
			http.Error(w, fmt.Sprintf("unknown parameter %q (state, campaign, recipient, limit, after)", key), http.StatusBadRequest)
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
	limit, err := listLimit(q.Get("limit"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	after, err := parseQueueCursor(q.Get("after"), states)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	entries, next, err := a.queuePage(states, q.Get("campaign"), q.Get("recipient"), limit, after)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	setNextLink(w, req, next)
	writeJSON(w, entries)
}

// listLimit reads a list's limit parameter: defaultListLimit when absent,
// as before lists had pages.
func listLimit(s string) (int, error) {
	if s == "" {
		return defaultListLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxListLimit {
		return 0, fmt.Errorf("limit %q is not a number from 1 to %d", s, maxListLimit)
	}
	return n, nil
}

// queueEntries lists up to limit envelopes in the given states, in that
// order of states, optionally only of a campaign or to a recipient: the
// first page of queuePage.
func (a *Server) queueEntries(states []store.State, campaign, rcpt string, limit int) ([]api.QueueEntry, error) {
	entries, _, err := a.queuePage(states, campaign, rcpt, limit, queueCursor{})
	return entries, err
}

// queuePage lists up to limit envelopes after the cursor, in the order of
// states and within a state in the order of its walk (due time, or ID),
// optionally only of a campaign or to a recipient. next is the cursor of
// the page after, "" when this one is the last. Each page is a seek in the
// state's index and a walk of one page (plus the envelopes the filters
// skip), however deep into the list it is.
func (a *Server) queuePage(states []store.State, campaign, rcpt string, limit int, after queueCursor) ([]api.QueueEntry, string, error) {
	entries := []api.QueueEntry{}
	var last queueCursor
	more := false
	msgs := messageCache{a: a}
	first := 0
	if after.State != "" {
		first = slices.Index(states, after.State)
	}
	for i, st := range states[first:] {
		from := store.EnvelopeCursor{}
		if i == 0 {
			from = after.EnvelopeCursor
		}
		var failed error
		err := a.db.EnvelopesInStateAfter(st, from, func(e store.Envelope) bool {
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
			if len(entries) == limit { // one more exists: there is a next page
				more = true
				return false
			}
			entries = append(entries, api.QueueEntry{Envelope: apiEnvelope(e),
				Class: m.class, Subject: m.subject, Campaign: m.campaign, LastAction: a.lastAction(e.ID)})
			last = queueCursor{State: st, EnvelopeCursor: store.CursorOf(e)}
			return true
		})
		if err == nil {
			err = failed
		}
		if err != nil {
			return nil, "", err
		}
		if more {
			return entries, last.String(), nil
		}
	}
	return entries, "", nil
}

// queueCursor is where a queue listing stands: after an envelope of one
// of the listed states. On the wire it is an opaque token (the after
// parameter; the Link header's next page carries it).
type queueCursor struct {
	State store.State
	store.EnvelopeCursor
}

func (c queueCursor) String() string {
	ns := int64(0) // final mail has no due time; its walk is by ID
	if !c.Due.IsZero() {
		ns = c.Due.UnixNano()
	}
	raw := string(c.State) + "\x00" + strconv.FormatInt(ns, 10) + "\x00" + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// parseQueueCursor reads an after token of a listing of states ("" is the
// start).
func parseQueueCursor(s string, states []store.State) (queueCursor, error) {
	if s == "" {
		return queueCursor{}, nil
	}
	bad := fmt.Errorf("after %q is not a page token of this listing (take it from the Link header of the page before)", s)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return queueCursor{}, bad
	}
	f := strings.Split(string(raw), "\x00")
	if len(f) != 3 || f[2] == "" || !containsState(states, store.State(f[0])) {
		return queueCursor{}, bad
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return queueCursor{}, bad
	}
	c := queueCursor{State: store.State(f[0]), EnvelopeCursor: store.EnvelopeCursor{ID: f[2]}}
	if ns != 0 {
		c.Due = time.Unix(0, ns).UTC()
	}
	return c, nil
}

// setNextLink points to the next page of a list (RFC 8288 Link, as the
// GitHub API pages): the request's own URL with after set to next. A last
// page has none.
func setNextLink(w http.ResponseWriter, req *http.Request, next string) {
	if next == "" {
		return
	}
	q := req.URL.Query()
	q.Set("after", next)
	u := url.URL{Path: req.URL.Path, RawQuery: q.Encode()}
	w.Header().Set("Link", "<"+u.String()+">; rel=\"next\"")
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
	a *Server
	m map[string]*messageInfo
}

func (c *messageCache) get(id string) (*messageInfo, error) {
	if info, ok := c.m[id]; ok {
		return info, nil
	}
	if c.m == nil {
		c.m = map[string]*messageInfo{}
	}
	msg, err := c.a.db.Message(id)
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
	} else if rc, err := store.OpenBody(c.a.db, id); err == nil {
		// The header is within the first part (intake.spool_threshold):
		// a large message is not read whole for its Subject.
		head, _ := io.ReadAll(io.LimitReader(rc, store.BodyPartSize))
		rc.Close()
		if m, err := mail.ReadMessage(bytes.NewReader(head)); err == nil { // the header only
			info.subject = m.Header.Get("Subject")
		}
	}
	c.m[id] = info
	return info, nil
}

// lastAction is the action of an envelope's latest decision record.
func (a *Server) lastAction(envelopeID string) string {
	raw, err := a.db.Decisions(envelopeID)
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
	apply         func(a *Server, e *store.Envelope, info *messageInfo, profile []byte, now time.Time) (newProfile []byte, rec engine.Record, err error)
}

var queueOps = []queueOp{
	{name: "release", from: []store.State{store.StateReview}, apply: operatorRelease},
	{name: "drop", from: []store.State{store.StateReview, store.StateHeld}, apply: operatorDrop},
	{name: "hold", from: []store.State{store.StateHeld, store.StateQueued}, marketingOnly: true, apply: operatorHold},
}

// operatorRelease makes mail in review due now and records the release in
// the recipient's history, as the engine does for its own releases.
func operatorRelease(a *Server, e *store.Envelope, info *messageInfo, profile []byte, now time.Time) ([]byte, engine.Record, error) {
	e.State, e.Due = store.StateQueued, now
	p, err := updateHistory(profile, func(p *scoring.Profile) {
		rel := scoring.Release{At: now, MessageID: e.ID, Sender: e.From}
		if f := info.features; f != nil {
			rel.Campaign, rel.Topics, rel.Fingerprint = f.Campaign, f.Topics, f.Fingerprint
		}
		p.RecordRelease(rel, a.engine.Memory())
	})
	return p, engine.Record{Action: "release", At: now, Reasons: []string{engine.ReasonOperator},
		Explanation: "Released by an operator from review."}, err
}

func operatorDrop(_ *Server, e *store.Envelope, _ *messageInfo, _ []byte, _ time.Time) ([]byte, engine.Record, error) {
	e.State = store.StateSuppressed
	return nil, engine.Record{Action: "suppress", Reasons: []string{engine.ReasonOperator}, Explanation: "Dropped by operator."}, nil
}

// operatorHold puts held or queued marketing mail into review. A queued
// envelope was counted in the recipient's history when the engine
// released it; that entry goes, since the release is off.
func operatorHold(_ *Server, e *store.Envelope, _ *messageInfo, profile []byte, now time.Time) ([]byte, engine.Record, error) {
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

func (a *Server) handleQueueAction(w http.ResponseWriter, req *http.Request, op queueOp) {
	changed, err := a.queueAction(req.Body, op)
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
		writeJSON(w, api.QueueActionResult{Changed: changed})
	}
}

// maxActionBody bounds a request: 10,000 IDs fit comfortably.
const maxActionBody = 1 << 20

func (a *Server) queueAction(body io.Reader, op queueOp) ([]string, error) {
	var in api.QueueActionRequest
	if err := readStrict(body, maxActionBody, &in); err != nil {
		return nil, fmt.Errorf("%w: body must be {\"ids\": [...]} or {\"campaign\": \"...\"}: %v", errBadRequest, err)
	}
	return a.applyQueueAction(in, op)
}

// applyQueueAction applies op to the envelopes in names, all or none.
func (a *Server) applyQueueAction(in api.QueueActionRequest, op queueOp) ([]string, error) {
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
	msgs := messageCache{a: a}
	ids := in.IDs
	if in.Campaign != "" {
		var err error
		if ids, err = a.campaignEnvelopes(in.Campaign, op, &msgs); err != nil {
			return nil, err
		}
	}
	// Read every message before the transaction, so that the change
	// itself does no reads of its own; an unknown ID fails here already.
	for _, id := range ids {
		e, err := a.db.Envelope(id)
		if err != nil {
			return nil, err
		}
		if _, err := msgs.get(e.MessageID); err != nil {
			return nil, err
		}
	}
	now := a.now()
	envs, err := a.db.Transition(ids, func(e *store.Envelope, profile []byte) ([]byte, []byte, error) {
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
		newProfile, rec, err := op.apply(a, e, info, profile, now)
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
		a.relay.KickDelivery()
	}
	a.log.Info("operator "+op.name, "envelopes", len(changed), "campaign", in.Campaign)
	return changed, nil
}

// campaignEnvelopes lists the envelopes of a campaign (compared without
// regard to case) in the states op applies to; marketing mail only where
// op is for marketing mail only.
func (a *Server) campaignEnvelopes(campaign string, op queueOp, msgs *messageCache) ([]string, error) {
	var ids []string
	for _, st := range op.from {
		var failed error
		err := a.db.EnvelopesInState(st, func(e store.Envelope) bool {
			m, err := msgs.get(e.MessageID)
			if err != nil {
				failed = err
				return false
			}
			if m.campaign != "" && strings.EqualFold(m.campaign, campaign) && (!op.marketingOnly || m.class == config.ClassMarketing) {
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
		return nil, fmt.Errorf("no mail of campaign %q in state %s: %w", campaign, statesList(op.from), store.ErrNotFound)
	}
	return ids, nil
}
