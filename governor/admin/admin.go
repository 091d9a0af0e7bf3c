package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/governor/engine"
	"kadenz/store"
)

// Relay is what the admin API asks of the daemon it serves.
type Relay interface {
	// CaughtUp says the relay has done all that was due by its clock.
	CaughtUp() (bool, error)
	// TimeMoved wakes every loop after the virtual clock moved.
	TimeMoved()
	// KickDelivery wakes delivery after mail was released to it.
	KickDelivery()
	// ApplyEvents applies checked events in one transaction, all or none,
	// or makes them durable in the event journal, which applies them
	// shortly after (FlushEvents).
	ApplyEvents(evs []CheckedEvent) (applied, duplicates int, err error)
	// FlushEvents applies every event ApplyEvents answered before it was
	// called; seal also removes them from the journal's files (before an
	// erasure). Without an event journal it does nothing.
	FlushEvents(seal bool) error
	// HardStopped says whether marketing mail to rcpt is stopped.
	HardStopped(rcpt string) bool
	// ReloadStatus is the outcome of the last configuration reload.
	ReloadStatus() api.ReloadStatus
}

// Clock is a virtual clock an operator or a test may move.
type Clock interface {
	Now() time.Time
	Set(t time.Time) error
}

// Options build a Server.
type Options struct {
	Store  store.Store
	Engine *engine.Engine
	// Config returns the configuration in force (it may be reloaded).
	Config func() *config.Config
	Now    func() time.Time
	// Clock, if set, is the virtual clock POST /v1/clock moves; nil for
	// real time (then Now is not Clock.Now's to change).
	Clock  Clock
	Logger *slog.Logger
	Relay  Relay
	// Registry takes the admin listener's own metrics; Metrics serves
	// GET /metrics; Forgotten counts erasures.
	Registry  prometheus.Registerer
	Metrics   http.Handler
	Forgotten prometheus.Counter
}

// Server is the admin listener.
type Server struct {
	db        store.Store
	engine    *engine.Engine
	config    func() *config.Config
	now       func() time.Time
	clock     Clock
	log       *slog.Logger
	relay     Relay
	reg       prometheus.Registerer
	metrics   http.Handler
	forgotten prometheus.Counter

	http *http.Server
	addr net.Addr
}

// Listen checks where the admin listener may listen, binds it and builds
// its routes; Serve answers on it.
func Listen(opts Options) (*Server, error) {
	a := &Server{db: opts.Store, engine: opts.Engine, config: opts.Config, now: opts.Now, clock: opts.Clock,
		log: opts.Logger, relay: opts.Relay, reg: opts.Registry, metrics: opts.Metrics, forgotten: opts.Forgotten}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	addr := a.config().Admin.Listen
	if a.config().Admin.Token == "" && !config.IsLoopback(addr) {
		return nil, fmt.Errorf("admin listener %s is not on loopback: set admin.token", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /v1/queue/summary", func(w http.ResponseWriter, _ *http.Request) {
		counts, err := a.db.CountByState()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, counts)
	})
	mux.HandleFunc("GET /v1/leases", a.handleLeases)
	mux.HandleFunc("GET /v1/explain/{id}", a.handleExplain)
	mux.HandleFunc("GET /v1/clock", a.handleGetClock)
	mux.HandleFunc("POST /v1/clock", a.handleSetClock)
	a.registerQueueRoutes(mux)
	a.registerFeedbackRoutes(mux)
	a.registerOperationRoutes(mux)
	a.registerCampaignRoutes(mux)
	a.registerDashboardRoutes(mux)
	a.registerBackupRoute(mux)
	// Go's profiler, for an operator chasing CPU or memory (go tool pprof
	// http://ADMIN/debug/pprof/profile); behind the token like the rest.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	guard := newAdminGuard(a, l.Addr(), isLoopbackAddr(l.Addr()))
	a.http = &http.Server{Handler: guard.wrap(a, a.requireToken(a.flushingEvents(mux))), ReadHeaderTimeout: 10 * time.Second}
	a.addr = l.Addr()
	go func() {
		if err := a.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin listener stopped", "error", err)
		}
	}()
	a.log.Info("admin listener", "addr", l.Addr().String())
	return a, nil
}

// Addr is where the listener is bound (useful with port 0).
func (a *Server) Addr() net.Addr { return a.addr }

// Handler is what the listener serves: the guard, the token check and
// every route (benchmarks call it without a network in between).
func (a *Server) Handler() http.Handler { return a.http.Handler }

// Shutdown stops the listener, letting requests in flight finish until
// ctx ends.
func (a *Server) Shutdown(ctx context.Context) error { return a.http.Shutdown(ctx) }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func isLoopbackAddr(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

func (a *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		token := a.config().Admin.Token // a reload may change it
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

// explain finds what id names — an envelope ID, a Kadenz message ID or a
// Message-ID header — and gathers its explanation.
func (a *Server) explain(id string) (*api.Explanation, error) {
	id = strings.Trim(strings.TrimSpace(id), "<>")
	var only string // an envelope ID narrows the answer to that envelope
	msgID := id
	if e, err := a.db.Envelope(id); err == nil {
		only, msgID = e.ID, e.MessageID
	} else if _, err := a.db.Message(id); err != nil {
		ids, err := a.db.MessagesByHeaderID(id)
		if err != nil {
			return nil, fmt.Errorf("%s is no envelope ID, message ID or Message-ID known here: %w", quoteInput(id), store.ErrNotFound)
		}
		x, err := a.explainMessage(ids[len(ids)-1], "")
		if err != nil {
			return nil, err
		}
		for _, other := range ids[:len(ids)-1] {
			o, err := a.explainMessage(other, "")
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
	return a.explainMessage(msgID, only)
}

// explainMessage gathers one message's explanation, narrowed to one
// envelope if only is set.
func (a *Server) explainMessage(msgID, only string) (*api.Explanation, error) {
	msg, err := a.db.Message(msgID)
	if err != nil {
		return nil, err
	}
	msg.Features = nil // numbers for the engine, noise for a reader
	envs, err := a.db.EnvelopesOf(msgID)
	if err != nil {
		return nil, err
	}
	x := &api.Explanation{Message: apiMessage(msg)}
	if has, err := a.db.HasBody(msgID); err == nil && !has {
		x.BodyPurged = true
	}
	for _, e := range envs {
		if only != "" && e.ID != only {
			continue
		}
		d, err := a.db.Decisions(e.ID)
		if err != nil {
			return nil, err
		}
		x.Envelopes = append(x.Envelopes, api.EnvelopeExplanation{Envelope: apiEnvelope(e), Decisions: d})
	}
	return x, nil
}

func (a *Server) handleExplain(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("id")
	if bad := checkText("id", id, maxHeaderID); bad != nil {
		http.Error(w, bad.Error(), http.StatusBadRequest)
		return
	}
	x, err := a.explain(id)
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

// flushingEvents applies the event journal before every request but those
// that neither read nor change what events write (posting events, the
// health check, metrics, profiling), so that what an administrator reads,
// erases, backs up or decides on includes every event already answered.
// With nothing journalled a flush costs a lock.
func (a *Server) flushingEvents(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := req.URL.Path
		skip := p == "/v1/events" && req.Method == http.MethodPost || p == "/healthz" || p == "/metrics" ||
			strings.HasPrefix(p, "/debug/pprof/")
		if !skip && a.relay != nil {
			seal := p == "/v1/forget"
			if err := a.relay.FlushEvents(seal); err != nil {
				a.log.Error("applying journalled events before an admin request", "path", p, "error", err)
				http.Error(w, "journalled events could not be applied: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		next.ServeHTTP(w, req)
	})
}
