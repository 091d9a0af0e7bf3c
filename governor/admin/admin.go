package governor

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"kadenz/config"
	"kadenz/store"
)

// The admin listener. For now it serves health, queue counts and
// explanations; the operator API (issue 6) grows here. It listens on loopback unless a token
// is set: state must never be readable or changeable from the network
// without a credential.

func (r *Relay) startAdmin() error {
	addr := r.config().Admin.Listen
	if r.config().Admin.Token == "" && !config.IsLoopback(addr) {
		return fmt.Errorf("admin listener %s is not on loopback: set admin.token", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /v1/queue/summary", func(w http.ResponseWriter, _ *http.Request) {
		counts, err := r.db.CountByState()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, counts)
	})
	mux.HandleFunc("GET /v1/explain/{id}", r.handleExplain)
	mux.HandleFunc("GET /v1/clock", r.handleGetClock)
	mux.HandleFunc("POST /v1/clock", r.handleSetClock)
	r.registerQueueRoutes(mux)
	r.registerFeedbackRoutes(mux)
	r.registerOperationRoutes(mux)
	r.registerCampaignRoutes(mux)
	r.registerDashboardRoutes(mux)
	r.registerBackupRoute(mux)
	// Go's profiler, for an operator chasing CPU or memory (go tool pprof
	// http://ADMIN/debug/pprof/profile); behind the token like the rest.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	guard := newAdminGuard(r, l.Addr(), isLoopbackAddr(l.Addr()))
	r.admin = &http.Server{Handler: guard.wrap(r, r.requireToken(mux)), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := r.admin.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("admin listener stopped", "error", err)
		}
	}()
	r.adminAddr = l.Addr()
	r.log.Info("admin listener", "addr", l.Addr().String())
	return nil
}

func isLoopbackAddr(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

func (r *Relay) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		token := r.config().Admin.Token // a reload may change it
		// The dashboard checks its own sessions (dashboard.go).
		if token == "" || isDashboardPath(req.URL.Path) {
			next.ServeHTTP(w, req)
			return
		}
		want := []byte("Bearer " + token)
		if subtle.ConstantTimeCompare([]byte(req.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kadenz"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// Explanation is the answer to "why": a message, how it was classified,
// and for each of its envelopes the state and every decision taken.
type Explanation struct {
	Message   store.Message         `json:"message"`
	Envelopes []EnvelopeExplanation `json:"envelopes"`
	// BodyPurged: the retention period for bodies has passed.
	BodyPurged bool `json:"body_purged,omitempty"`
	// Also are the other messages (transactions) that carry the same
	// Message-ID, when that is what was asked for: a resend, a second
	// submission to other recipients. Oldest first; Message is the latest.
	Also []Explanation `json:"also,omitempty"`
}

// EnvelopeExplanation is one recipient's part of an Explanation.
type EnvelopeExplanation struct {
	store.Envelope
	Decisions json.RawMessage `json:"decisions,omitempty"`
}

// explain finds what id names — an envelope ID, a Kadenz message ID or a
// Message-ID header — and gathers its explanation.
func (r *Relay) explain(id string) (*Explanation, error) {
	id = strings.Trim(strings.TrimSpace(id), "<>")
	var only string // an envelope ID narrows the answer to that envelope
	msgID := id
	if e, err := r.db.Envelope(id); err == nil {
		only, msgID = e.ID, e.MessageID
	} else if _, err := r.db.Message(id); err != nil {
		ids, err := r.db.MessagesByHeaderID(id)
		if err != nil {
			return nil, fmt.Errorf("%s is no envelope ID, message ID or Message-ID known here: %w", quoteInput(id), store.ErrNotFound)
		}
		x, err := r.explainMessage(ids[len(ids)-1], "")
		if err != nil {
			return nil, err
		}
		for _, other := range ids[:len(ids)-1] {
			o, err := r.explainMessage(other, "")
			if errors.Is(err, store.ErrNotFound) {
				continue // purged since
			}
			if err != nil {
				return nil, err
			}
			x.Also = append(x.Also, *o)
		}
		return x, nil
	}
	return r.explainMessage(msgID, only)
}

// explainMessage gathers one message's explanation, narrowed to one
// envelope if only is set.
func (r *Relay) explainMessage(msgID, only string) (*Explanation, error) {
	msg, err := r.db.Message(msgID)
	if err != nil {
		return nil, err
	}
	msg.Features = nil // numbers for the engine, noise for a reader
	envs, err := r.db.EnvelopesOf(msgID)
	if err != nil {
		return nil, err
	}
	x := &Explanation{Message: msg}
	if has, err := r.db.HasBody(msgID); err == nil && !has {
		x.BodyPurged = true
	}
	for _, e := range envs {
		if only != "" && e.ID != only {
			continue
		}
		d, err := r.db.Decisions(e.ID)
		if err != nil {
			return nil, err
		}
		x.Envelopes = append(x.Envelopes, EnvelopeExplanation{Envelope: e, Decisions: d})
	}
	return x, nil
}

func (r *Relay) handleExplain(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	if bad := checkText("id", id, maxHeaderID); bad != nil {
		http.Error(w, bad.Error(), http.StatusBadRequest)
		return
	}
	x, err := r.explain(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, x)
}
