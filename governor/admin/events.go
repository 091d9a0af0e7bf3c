package admin

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"kadenz/governor/admin/api"
	"kadenz/scoring"
	"kadenz/store"
)

// The feedback routes of the admin API: engagement events from a sender's
// own tracking (POST /v1/events) and the suppression list.

// Limits on one POST /v1/events.
const (
	maxEventBatch = 1000
	// maxEventsBody allows a full batch of generous events (URLs included).
	maxEventsBody   = 4 << 20
	maxEventID      = 200
	maxSuppressBody = 16 << 20
)

// registerFeedbackRoutes adds the events and suppression routes.
func (a *Server) registerFeedbackRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/events", a.handleEvents)
	mux.HandleFunc("GET /v1/suppressions", a.handleListSuppressions)
	mux.HandleFunc("POST /v1/suppressions", a.handleAddSuppressions)
	mux.HandleFunc("DELETE /v1/suppressions/{address}", a.handleDeleteSuppression)
	mux.HandleFunc("POST /v1/suppressions/import", a.handleImportSuppressions)
	mux.HandleFunc("GET /v1/suppressions/export", a.handleExportSuppressions)
}

// CheckedEvent is a posted event whose fields were checked and whose
// recipient was found: what the relay applies (Relay.ApplyEvents).
type CheckedEvent struct {
	// ID is the event's idempotency key; empty if the sender gave none.
	ID string
	// Kind is one of EventKinds, a bounce "soft-bounce" when soft.
	Kind string
	// At is when it happened (the relay's clock if not said).
	At time.Time
	// Topic is the topic the sender named, trimmed; empty if none.
	Topic string
	// Recipient is whom it is about; EnvelopeID which of their mail, if
	// the event named it (through the envelope or the Message-ID).
	Recipient  string
	EnvelopeID string
}

// EventKinds are the kinds POST /v1/events takes.
var EventKinds = []string{"delivered", "open", "click", "reply", "unsubscribe", "complaint", "bounce"}

func writeEventError(w http.ResponseWriter, status int, e api.EventError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

// decodeEvents reads one event object or {"events": [...]}.
func decodeEvents(body []byte) ([]api.Event, *api.EventError) {
	if evs, ok := decodeBatchFast(body); ok {
		return evs, nil
	}
	return decodeEventsStrict(body)
}

// decodeEventsStrict is decodeEvents for any body, with encoding/json:
// what a body means and, if it is refused, why.
func decodeEventsStrict(body []byte) ([]api.Event, *api.EventError) {
	if err := checkDuplicateKeys(body); err != nil {
		var dup *duplicateKeyError
		errors.As(err, &dup)
		return nil, &api.EventError{Error: "bad event: " + err.Error(), Index: -1, Field: dup.Key}
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, &api.EventError{Error: "body is not a JSON object: " + err.Error(), Index: -1}
	}
	raw, batch := probe["events"]
	if !batch {
		var ev api.Event
		if err := strictJSON(body, &ev); err != nil {
			return nil, &api.EventError{Error: err.Error(), Index: 0}
		}
		return []api.Event{ev}, nil
	}
	if len(probe) != 1 {
		return nil, &api.EventError{Error: `a batch is {"events": [...]} and nothing else`, Index: -1}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, &api.EventError{Error: "events must be an array: " + err.Error(), Index: -1, Field: "events"}
	}
	if len(items) == 0 || len(items) > maxEventBatch {
		return nil, &api.EventError{Error: fmt.Sprintf("a batch holds 1 to %d events, not %d", maxEventBatch, len(items)), Index: -1, Field: "events"}
	}
	evs := make([]api.Event, len(items))
	for i, it := range items {
		if err := strictJSON(it, &evs[i]); err != nil {
			return nil, &api.EventError{Error: err.Error(), Index: i}
		}
	}
	return evs, nil
}

// decodeBatchFast decodes the common shape of a batch in one pass over the
// body, without encoding/json: {"events": [...]} and nothing else, holding
// 1 to maxEventBatch flat objects whose keys are Event's JSON names, each
// given once, and whose values are strings without escapes. Such a body
// means the same to encoding/json (it has no duplicate key, no unknown
// field, no text to unescape or repair), so the strict path would decode
// it to the same events. Anything else (an escape, a null, a key in other
// case, a duplicate, bad JSON) is left to decodeEventsStrict, which
// decides and says exactly what is wrong: ok is false then.
//
// It exists because the strict path walks the body twice with
// encoding/json's tokenizer (once for duplicate keys, once to decode),
// which was a fifth of the events API's CPU for a batch of 100.
func decodeBatchFast(body []byte) (evs []api.Event, ok bool) {
	p := batchScanner{b: body}
	if !p.next('{') || p.key() != "events" || !p.next(':') || !p.next('[') {
		return nil, false
	}
	evs = make([]api.Event, 0, min(bytes.Count(body, []byte{'{'})-1, maxEventBatch))
	for {
		if len(evs) == maxEventBatch {
			return nil, false
		}
		ev, ok := p.event()
		if !ok {
			return nil, false
		}
		evs = append(evs, ev)
		if p.next(']') {
			break
		}
		if !p.next(',') {
			return nil, false
		}
	}
	if !p.next('}') {
		return nil, false
	}
	p.space()
	return evs, p.i == len(p.b)
}

// batchScanner reads the shape decodeBatchFast takes; every method reports
// failure on anything outside it.
type batchScanner struct {
	b []byte
	i int
}

// space skips JSON whitespace (RFC 8259 section 2).
func (p *batchScanner) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next skips whitespace and then c, if c is there.
func (p *batchScanner) next(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// text reads a string without escapes, control characters or invalid
// UTF-8 (which encoding/json would decode to something else than its
// bytes), and returns its contents.
func (p *batchScanner) text() ([]byte, bool) {
	if !p.next('"') {
		return nil, false
	}
	start := p.i
	ascii := true
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, ascii || utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// key reads an object key (the colon after it is the caller's); "" means
// no plain key was there.
func (p *batchScanner) key() string {
	k, ok := p.text()
	if !ok {
		return ""
	}
	return string(k)
}

// event reads one flat object of Event's fields.
func (p *batchScanner) event() (ev api.Event, ok bool) {
	if !p.next('{') {
		return ev, false
	}
	if p.next('}') {
		return ev, true
	}
	var given uint16 // one bit per field, to refuse a key given twice
	for {
		k, ok := p.text()
		if !ok || !p.next(':') {
			return ev, false
		}
		v, ok := p.text()
		if !ok {
			return ev, false
		}
		var field *string
		var bit uint16
		switch string(k) {
		case "id":
			field, bit = &ev.ID, 1<<0
		case "kind":
			field, bit = &ev.Kind, 1<<1
		case "envelope_id":
			field, bit = &ev.EnvelopeID, 1<<2
		case "message_id":
			field, bit = &ev.MessageID, 1<<3
		case "recipient":
			field, bit = &ev.Recipient, 1<<4
		case "timestamp":
			field, bit = &ev.Timestamp, 1<<5
		case "url":
			field, bit = &ev.URL, 1<<6
		case "topic":
			field, bit = &ev.Topic, 1<<7
		case "bounce":
			field, bit = &ev.Bounce, 1<<8
		default:
			return ev, false
		}
		if given&bit != 0 {
			return ev, false
		}
		given |= bit
		*field = string(v)
		if p.next('}') {
			return ev, true
		}
		if !p.next(',') {
			return ev, false
		}
	}
}

func strictJSON(data []byte, v any) error {
	if err := decodeStrict(data, v); err != nil {
		return fmt.Errorf("bad event: %w", err)
	}
	return nil
}

// parseEvents decodes a POST /v1/events body and checks every event's
// fields, without looking anything up: what can be refused before the
// store is asked.
func parseEvents(body []byte, now time.Time) ([]api.Event, []CheckedEvent, *api.EventError) {
	evs, bad := decodeEvents(body)
	if bad != nil {
		return nil, nil, bad
	}
	sigs := make([]CheckedEvent, len(evs))
	for i := range evs {
		s, bad := checkEvent(&evs[i], now)
		if bad != nil {
			bad.Index = i
			return nil, nil, bad
		}
		sigs[i] = s
	}
	return evs, sigs, nil
}

// checkEvent checks one event's fields and returns what they describe,
// without its recipient resolved; it trims ev's recipient.
func checkEvent(ev *api.Event, now time.Time) (CheckedEvent, *api.EventError) {
	bad := func(field, format string, args ...any) (CheckedEvent, *api.EventError) {
		return CheckedEvent{}, &api.EventError{Error: field + ": " + fmt.Sprintf(format, args...), Field: field}
	}
	fail := func(e *fieldError) (CheckedEvent, *api.EventError) {
		return CheckedEvent{}, &api.EventError{Error: e.Error(), Field: e.Field}
	}
	kind := ev.Kind
	if !slices.Contains(EventKinds, kind) {
		return bad("kind", "%s is not one of delivered, open, click, reply, unsubscribe, complaint, bounce", quoteInput(ev.Kind))
	}
	switch ev.Bounce {
	case "", "hard":
	case "soft":
		if kind == "bounce" {
			kind = "soft-bounce"
		}
	default:
		return bad("bounce", "%s is not hard or soft", quoteInput(ev.Bounce))
	}
	if ev.Bounce != "" && ev.Kind != "bounce" {
		return bad("bounce", "only for kind bounce")
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{{"id", ev.ID, maxEventID}, {"envelope_id", ev.EnvelopeID, maxLookupID}, {"message_id", ev.MessageID, maxHeaderID},
		{"topic", ev.Topic, maxTopic}, {"url", ev.URL, maxURL}} {
		if e := checkText(f.name, f.value, f.max); e != nil {
			return fail(e)
		}
	}
	s := CheckedEvent{ID: ev.ID, Kind: kind, At: now}
	if ev.Timestamp != "" {
		t, e := parseTime("timestamp", ev.Timestamp, now)
		if e != nil {
			return fail(e)
		}
		s.At = t
	}
	if t := strings.TrimSpace(ev.Topic); t != "" {
		s.Topic = t
	}
	if ev.Recipient != "" {
		rcpt, e := checkAddress("recipient", ev.Recipient)
		if e != nil {
			return fail(e)
		}
		ev.Recipient = rcpt
	}
	if ev.EnvelopeID == "" && ev.MessageID == "" && ev.Recipient == "" {
		return bad("envelope_id", "give envelope_id, message_id or recipient")
	}
	return s, nil
}

// resolveEvent finds whom a checked event is about.
func (a *Server) resolveEvent(ev api.Event, s CheckedEvent) (CheckedEvent, *api.EventError) {
	bad := func(field, format string, args ...any) (CheckedEvent, *api.EventError) {
		return CheckedEvent{}, &api.EventError{Error: field + ": " + fmt.Sprintf(format, args...), Field: field}
	}
	rcpt := strings.TrimSpace(ev.Recipient)
	switch {
	case ev.EnvelopeID != "":
		e, err := a.db.Envelope(ev.EnvelopeID)
		if errors.Is(err, store.ErrNotFound) {
			return bad("envelope_id", "no envelope %q", ev.EnvelopeID)
		} else if err != nil {
			return CheckedEvent{}, &api.EventError{Error: err.Error()}
		}
		if rcpt != "" && !strings.EqualFold(rcpt, e.To) {
			return bad("recipient", "envelope %s went to %s, not %s", e.ID, e.To, rcpt)
		}
		s.Recipient, s.EnvelopeID = e.To, e.ID
	case ev.MessageID != "":
		hid := strings.Trim(strings.TrimSpace(ev.MessageID), "<>")
		id, err := a.db.MessageByHeaderID(hid)
		if err != nil {
			return bad("message_id", "no message with Message-ID <%s>", hid)
		}
		envs, err := a.db.EnvelopesOf(id)
		if err != nil {
			return CheckedEvent{}, &api.EventError{Error: err.Error()}
		}
		for _, e := range envs {
			if rcpt == "" && len(envs) == 1 || rcpt != "" && strings.EqualFold(rcpt, e.To) {
				s.Recipient, s.EnvelopeID = e.To, e.ID
			}
		}
		if s.Recipient == "" && rcpt == "" {
			return bad("recipient", "message <%s> went to %d recipients: say which", hid, len(envs))
		}
		if s.Recipient == "" {
			return bad("recipient", "message <%s> did not go to %s", hid, rcpt)
		}
	default:
		s.Recipient = rcpt // checked by checkEvent
	}
	return s, nil
}

func (a *Server) handleEvents(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxEventsBody))
	if err != nil {
		writeEventError(w, http.StatusRequestEntityTooLarge, api.EventError{Error: fmt.Sprintf("body over %d bytes: send smaller batches", maxEventsBody), Index: -1})
		return
	}
	// Check the whole batch before anything is written.
	evs, sigs, bad := parseEvents(body, a.now())
	if bad != nil {
		writeEventError(w, http.StatusBadRequest, *bad)
		return
	}
	for i, ev := range evs {
		s, bad := a.resolveEvent(ev, sigs[i])
		if bad != nil {
			bad.Index = i
			status := http.StatusBadRequest
			if bad.Field == "" {
				status = http.StatusInternalServerError
			}
			writeEventError(w, status, *bad)
			return
		}
		sigs[i] = s
	}
	applied, dups, err := a.relay.ApplyEvents(sigs)
	if err != nil {
		a.log.Error("applying events", "events", len(sigs), "error", err)
		writeEventError(w, http.StatusInternalServerError, api.EventError{Error: "nothing applied: " + err.Error(), Index: -1})
		return
	}
	writeJSON(w, api.EventsResult{Applied: applied, Duplicates: dups})
}

func (a *Server) handleListSuppressions(w http.ResponseWriter, _ *http.Request) {
	list, err := a.db.Suppressions()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, apiSuppressions(list))
}

// checkSuppression validates an entry from the API or an import and
// returns its address trimmed.
func checkSuppression(addr, reason string) (string, *fieldError) {
	a, e := checkAddress("address", addr)
	if e != nil {
		return "", e
	}
	if e := checkText("reason", reason, maxReason); e != nil {
		return "", e
	}
	return a, nil
}

func (a *Server) handleAddSuppressions(w http.ResponseWriter, req *http.Request) {
	var body api.SuppressionRequest
	if err := readStrict(req.Body, 64<<10, &body); err != nil {
		http.Error(w, `body must be {"address": "...", "reason": "..."}: `+err.Error(), http.StatusBadRequest)
		return
	}
	addr, bad := checkSuppression(body.Address, body.Reason)
	if bad != nil {
		http.Error(w, bad.Error(), http.StatusBadRequest)
		return
	}
	if body.Reason == "" {
		body.Reason = "added by an operator"
	}
	s := store.Suppression{Address: addr, Reason: body.Reason, At: a.now(), Source: "admin"}
	if _, err := a.db.Suppress(true, s); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.engine.Kick()
	s.Address = store.NormalizeAddress(s.Address)
	writeJSON(w, apiSuppression(s))
}

// handleDeleteSuppression takes an address off the list and clears the
// profile's hard stops with it: an operator who removes an address wants
// marketing mail to reach it again.
func (a *Server) handleDeleteSuppression(w http.ResponseWriter, req *http.Request) {
	addr, bad := checkAddress("address", req.PathValue("address"))
	if bad != nil {
		http.Error(w, bad.Error(), http.StatusBadRequest)
		return
	}
	found, err := a.db.Unsuppress(addr, clearHardStops)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !found {
		http.Error(w, fmt.Sprintf("%s is not on the suppression list", quoteInput(addr)), http.StatusNotFound)
		return
	}
	writeJSON(w, map[string]string{"removed": store.NormalizeAddress(addr)})
}

// csvError is a bad line of a suppression import.
type csvError struct {
	Line  int
	Field string // empty when the line as a whole is bad
	Err   error
}

func (e *csvError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	var fe *fieldError
	if errors.As(e.Err, &fe) {
		return fmt.Sprintf("line %d: %v", e.Line, fe)
	}
	return fmt.Sprintf("line %d: %s: %v", e.Line, e.Field, e.Err)
}

// parseSuppressionCSV reads CSV lines address,reason (a header line
// "address,reason" is allowed; an export's at,source may follow, and at is
// kept). Every line is checked; the first bad one is the error.
func parseSuppressionCSV(rd io.Reader, now time.Time) ([]store.Suppression, error) {
	cr := csv.NewReader(rd)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	var list []store.Suppression
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return list, nil
		}
		if err != nil {
			return nil, fmt.Errorf("CSV: %w", err)
		}
		if line == 1 && strings.EqualFold(strings.TrimSpace(rec[0]), "address") {
			continue
		}
		if len(rec) > 4 {
			return nil, &csvError{Line: line, Err: fmt.Errorf("want address,reason[,at,source], got %d fields", len(rec))}
		}
		at := now
		if len(rec) >= 3 && strings.TrimSpace(rec[2]) != "" {
			t, bad := parseTime("at", strings.TrimSpace(rec[2]), now)
			if bad != nil {
				return nil, &csvError{Line: line, Field: "at", Err: bad}
			}
			at = t
		}
		reason := "imported"
		if len(rec) >= 2 && strings.TrimSpace(rec[1]) != "" {
			reason = strings.TrimSpace(rec[1])
		}
		addr, bad := checkSuppression(rec[0], reason)
		if bad != nil {
			return nil, &csvError{Line: line, Field: bad.Field, Err: bad}
		}
		list = append(list, store.Suppression{Address: addr, Reason: reason, At: at, Source: "import"})
	}
}

// handleImportSuppressions adds the lines of a CSV body (see
// parseSuppressionCSV): all of them or, if one is bad, none; existing
// entries keep their first reason.
func (a *Server) handleImportSuppressions(w http.ResponseWriter, req *http.Request) {
	list, err := parseSuppressionCSV(http.MaxBytesReader(w, req.Body, maxSuppressBody), a.now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n, err := a.db.Suppress(false, list...)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.engine.Kick()
	writeJSON(w, map[string]int{"read": len(list), "added": n})
}

func (a *Server) handleExportSuppressions(w http.ResponseWriter, _ *http.Request) {
	list, err := a.db.Suppressions()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	cw := csv.NewWriter(w)
	cw.Write([]string{"address", "reason", "at", "source"})
	for _, s := range list {
		if s.Address == "" {
			continue // an erased recipient's entry: only its hash is known
		}
		cw.Write([]string{s.Address, s.Reason, s.At.UTC().Format(time.RFC3339), s.Source})
	}
	cw.Flush()
}

// clearHardStops lifts a profile's unsubscribe, complaint and bounce marks.
func clearHardStops(old []byte) ([]byte, error) {
	return scoring.UpdateStored(old, func(p *scoring.Profile) {
		p.Unsubscribed, p.Complained, p.HardBounced = time.Time{}, time.Time{}, time.Time{}
		p.SoftBounces, p.SoftBounceSince = 0, time.Time{}
	})
}
