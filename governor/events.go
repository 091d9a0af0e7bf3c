package governor

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"kadenz/store"
)

// The feedback routes of the admin API: engagement events from a sender's
// own tracking (POST /v1/events) and the suppression list.

// Limits on one POST /v1/events.
const (
	maxEventBatch = 1000
	// maxEventsBody allows a full batch of generous events (URLs included).
	maxEventsBody = 4 << 20
	maxEventID    = 200
	// eventFutureSkew is how far ahead of the relay clock a timestamp may
	// be: clocks differ a little; an event from tomorrow is a mistake.
	eventFutureSkew = time.Hour
	maxSuppressBody = 16 << 20
)

// registerFeedbackRoutes adds the events and suppression routes.
func (r *Relay) registerFeedbackRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/events", r.handleEvents)
	mux.HandleFunc("GET /v1/suppressions", r.handleListSuppressions)
	mux.HandleFunc("POST /v1/suppressions", r.handleAddSuppressions)
	mux.HandleFunc("DELETE /v1/suppressions/{address}", r.handleDeleteSuppression)
	mux.HandleFunc("POST /v1/suppressions/import", r.handleImportSuppressions)
	mux.HandleFunc("GET /v1/suppressions/export", r.handleExportSuppressions)
}

// Event is one engagement or delivery event posted to /v1/events.
type Event struct {
	// ID makes the event idempotent: a repeat is acknowledged, not applied.
	ID   string `json:"id,omitempty"`
	Kind string `json:"kind"`
	// One of these names the recipient: the envelope (most precise), the
	// Message-ID header (with Recipient when the message had several), or
	// the recipient alone.
	EnvelopeID string `json:"envelope_id,omitempty"`
	MessageID  string `json:"message_id,omitempty"`
	Recipient  string `json:"recipient,omitempty"`
	// Timestamp is RFC 3339; the relay's clock when empty.
	Timestamp string `json:"timestamp,omitempty"`
	URL       string `json:"url,omitempty"`
	Topic     string `json:"topic,omitempty"`
	// Bounce is hard (default) or soft, for kind bounce.
	Bounce string `json:"bounce,omitempty"`
}

// EventsResult is the answer to a POST /v1/events that was applied.
type EventsResult struct {
	Applied    int `json:"applied"`
	Duplicates int `json:"duplicates"`
}

// EventError is the answer to a POST /v1/events that was refused: nothing
// of the request was applied.
type EventError struct {
	Error string `json:"error"`
	// Index is the position of the bad event in the batch (0 for a single
	// event), or -1 when the request as a whole is bad.
	Index int    `json:"index"`
	Field string `json:"field,omitempty"`
}

var eventKinds = map[string]signalKind{
	"delivered": sigDelivered, "open": sigOpen, "click": sigClick, "reply": sigReply,
	"unsubscribe": sigUnsubscribe, "complaint": sigComplaint, "bounce": sigHardBounce,
}

func writeEventError(w http.ResponseWriter, status int, e EventError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

// decodeEvents reads one event object or {"events": [...]}.
func decodeEvents(body []byte) ([]Event, *EventError) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, &EventError{Error: "body is not a JSON object: " + err.Error(), Index: -1}
	}
	raw, batch := probe["events"]
	if !batch {
		var ev Event
		if err := strictJSON(body, &ev); err != nil {
			return nil, &EventError{Error: err.Error(), Index: 0}
		}
		return []Event{ev}, nil
	}
	if len(probe) != 1 {
		return nil, &EventError{Error: `a batch is {"events": [...]} and nothing else`, Index: -1}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, &EventError{Error: "events must be an array: " + err.Error(), Index: -1, Field: "events"}
	}
	if len(items) == 0 || len(items) > maxEventBatch {
		return nil, &EventError{Error: fmt.Sprintf("a batch holds 1 to %d events, not %d", maxEventBatch, len(items)), Index: -1, Field: "events"}
	}
	evs := make([]Event, len(items))
	for i, it := range items {
		if err := strictJSON(it, &evs[i]); err != nil {
			return nil, &EventError{Error: err.Error(), Index: i}
		}
	}
	return evs, nil
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad event: %w", err)
	}
	if dec.More() {
		return errors.New("bad event: more than one JSON value")
	}
	return nil
}

// eventSignal validates one event and resolves whom it is about.
func (r *Relay) eventSignal(ev Event, now time.Time) (signal, *EventError) {
	bad := func(field, format string, args ...any) (signal, *EventError) {
		return signal{}, &EventError{Error: field + ": " + fmt.Sprintf(format, args...), Field: field}
	}
	kind, ok := eventKinds[ev.Kind]
	if !ok {
		return bad("kind", "%q is not one of delivered, open, click, reply, unsubscribe, complaint, bounce", ev.Kind)
	}
	switch ev.Bounce {
	case "", "hard":
	case "soft":
		if kind == sigHardBounce {
			kind = sigSoftBounce
		}
	default:
		return bad("bounce", "%q is not hard or soft", ev.Bounce)
	}
	if ev.Bounce != "" && ev.Kind != "bounce" {
		return bad("bounce", "only for kind bounce")
	}
	if len(ev.ID) > maxEventID {
		return bad("id", "longer than %d bytes", maxEventID)
	}
	s := signal{kind: kind, at: now, source: "events", eventID: ev.ID}
	if ev.Timestamp != "" {
		t, err := time.Parse(time.RFC3339, ev.Timestamp)
		if err != nil {
			return bad("timestamp", "%q is not RFC 3339, e.g. 2026-11-23T10:00:00Z", ev.Timestamp)
		}
		if t.After(now.Add(eventFutureSkew)) {
			return bad("timestamp", "%s is in the future (the relay's clock says %s)", ev.Timestamp, now.Format(time.RFC3339))
		}
		s.at = t
	}
	if t := strings.TrimSpace(ev.Topic); t != "" {
		s.topics = []string{t}
	}
	rcpt := strings.TrimSpace(ev.Recipient)
	switch {
	case ev.EnvelopeID != "":
		e, err := r.db.Envelope(ev.EnvelopeID)
		if errors.Is(err, store.ErrNotFound) {
			return bad("envelope_id", "no envelope %q", ev.EnvelopeID)
		} else if err != nil {
			return signal{}, &EventError{Error: err.Error()}
		}
		if rcpt != "" && !strings.EqualFold(rcpt, e.To) {
			return bad("recipient", "envelope %s went to %s, not %s", e.ID, e.To, rcpt)
		}
		s.rcpt, s.envelopeID = e.To, e.ID
	case ev.MessageID != "":
		hid := strings.Trim(strings.TrimSpace(ev.MessageID), "<>")
		id, err := r.db.MessageByHeaderID(hid)
		if err != nil {
			return bad("message_id", "no message with Message-ID <%s>", hid)
		}
		envs, err := r.db.EnvelopesOf(id)
		if err != nil {
			return signal{}, &EventError{Error: err.Error()}
		}
		for _, e := range envs {
			if rcpt == "" && len(envs) == 1 || rcpt != "" && strings.EqualFold(rcpt, e.To) {
				s.rcpt, s.envelopeID = e.To, e.ID
			}
		}
		if s.rcpt == "" && rcpt == "" {
			return bad("recipient", "message <%s> went to %d recipients: say which", hid, len(envs))
		}
		if s.rcpt == "" {
			return bad("recipient", "message <%s> did not go to %s", hid, rcpt)
		}
	case rcpt != "":
		if !strings.Contains(rcpt, "@") || strings.ContainsAny(rcpt, " \t\r\n<>") {
			return bad("recipient", "%q is not an address", rcpt)
		}
		s.rcpt = rcpt
	default:
		return bad("envelope_id", "give envelope_id, message_id or recipient")
	}
	return s, nil
}

func (r *Relay) handleEvents(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxEventsBody))
	if err != nil {
		writeEventError(w, http.StatusRequestEntityTooLarge, EventError{Error: fmt.Sprintf("body over %d bytes: send smaller batches", maxEventsBody), Index: -1})
		return
	}
	evs, bad := decodeEvents(body)
	if bad != nil {
		writeEventError(w, http.StatusBadRequest, *bad)
		return
	}
	// Validate the whole batch before anything is written.
	now := r.now()
	sigs := make([]signal, len(evs))
	for i, ev := range evs {
		s, bad := r.eventSignal(ev, now)
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
	applied, dups, err := r.applySignals(sigs)
	if err != nil {
		r.log.Error("applying events", "events", len(sigs), "error", err)
		writeEventError(w, http.StatusInternalServerError, EventError{Error: "nothing applied: " + err.Error(), Index: -1})
		return
	}
	writeJSON(w, EventsResult{Applied: applied, Duplicates: dups})
}

// SuppressionRequest is the body of POST /v1/suppressions.
type SuppressionRequest struct {
	Address string `json:"address"`
	Reason  string `json:"reason"`
}

func (r *Relay) handleListSuppressions(w http.ResponseWriter, _ *http.Request) {
	list, err := r.db.Suppressions()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if list == nil {
		list = []store.Suppression{}
	}
	writeJSON(w, list)
}

// checkSuppression validates an entry from the API or an import.
func checkSuppression(addr, reason string) error {
	addr = strings.TrimSpace(addr)
	if at := strings.LastIndexByte(addr, '@'); at <= 0 || at == len(addr)-1 || strings.ContainsAny(addr, " \t\r\n<>,;\"") {
		return fmt.Errorf("%q is not a bare email address", addr)
	}
	if len(reason) > 500 {
		return errors.New("reason is longer than 500 characters")
	}
	return nil
}

func (r *Relay) handleAddSuppressions(w http.ResponseWriter, req *http.Request) {
	var body SuppressionRequest
	if err := strictJSONReader(http.MaxBytesReader(w, req.Body, 64<<10), &body); err != nil {
		http.Error(w, `body must be {"address": "...", "reason": "..."}: `+err.Error(), http.StatusBadRequest)
		return
	}
	if err := checkSuppression(body.Address, body.Reason); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if body.Reason == "" {
		body.Reason = "added by an operator"
	}
	s := store.Suppression{Address: body.Address, Reason: body.Reason, At: r.now(), Source: "admin"}
	if _, err := r.db.Suppress(true, s); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	r.engine.Kick()
	s.Address = store.NormalizeAddress(s.Address)
	writeJSON(w, s)
}

func strictJSONReader(rd io.Reader, v any) error {
	data, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	return strictJSON(data, v)
}

// handleDeleteSuppression takes an address off the list and clears the
// profile's hard stops with it: an operator who removes an address wants
// marketing mail to reach it again.
func (r *Relay) handleDeleteSuppression(w http.ResponseWriter, req *http.Request) {
	addr := req.PathValue("address")
	found, err := r.db.Unsuppress(addr, clearHardStops)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !found {
		http.Error(w, fmt.Sprintf("%s is not on the suppression list", addr), http.StatusNotFound)
		return
	}
	writeJSON(w, map[string]string{"removed": store.NormalizeAddress(addr)})
}

// handleImportSuppressions reads CSV lines address,reason (a header line
// "address,reason" is allowed). Every line is checked before any is
// written; existing entries keep their first reason.
func (r *Relay) handleImportSuppressions(w http.ResponseWriter, req *http.Request) {
	cr := csv.NewReader(http.MaxBytesReader(w, req.Body, maxSuppressBody))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	now := r.now()
	var list []store.Suppression
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			http.Error(w, fmt.Sprintf("CSV: %v", err), http.StatusBadRequest)
			return
		}
		if line == 1 && strings.EqualFold(strings.TrimSpace(rec[0]), "address") {
			continue
		}
		if len(rec) > 4 {
			// address,reason; an export's at,source may follow.
			http.Error(w, fmt.Sprintf("line %d: want address,reason, got %d fields", line, len(rec)), http.StatusBadRequest)
			return
		}
		at := now
		if len(rec) >= 3 {
			if t, err := time.Parse(time.RFC3339, strings.TrimSpace(rec[2])); err == nil {
				at = t
			}
		}
		reason := "imported"
		if len(rec) == 2 && strings.TrimSpace(rec[1]) != "" {
			reason = strings.TrimSpace(rec[1])
		}
		if err := checkSuppression(rec[0], reason); err != nil {
			http.Error(w, fmt.Sprintf("line %d: %v", line, err), http.StatusBadRequest)
			return
		}
		list = append(list, store.Suppression{Address: rec[0], Reason: reason, At: at, Source: "import"})
	}
	n, err := r.db.Suppress(false, list...)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	r.engine.Kick()
	writeJSON(w, map[string]int{"read": len(list), "added": n})
}

func (r *Relay) handleExportSuppressions(w http.ResponseWriter, _ *http.Request) {
	list, err := r.db.Suppressions()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	cw := csv.NewWriter(w)
	cw.Write([]string{"address", "reason", "at", "source"})
	for _, s := range list {
		cw.Write([]string{s.Address, s.Reason, s.At.UTC().Format(time.RFC3339), s.Source})
	}
	cw.Flush()
}
