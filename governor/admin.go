package governor

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"kadenz/config"
)

// The admin listener. For now it serves health and queue counts; the
// operator API (issue 6) grows here. It listens on loopback unless a token
// is set: state must never be readable or changeable from the network
// without a credential.

func (r *Relay) startAdmin() error {
	addr := r.cfg.Admin.Listen
	if r.cfg.Admin.Token == "" && !config.IsLoopback(addr) {
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
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(counts)
	})
	r.admin = &http.Server{Handler: r.requireToken(mux), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := r.admin.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("admin listener stopped", "error", err)
		}
	}()
	r.log.Info("admin listener", "addr", l.Addr().String())
	return nil
}

func (r *Relay) requireToken(next http.Handler) http.Handler {
	token := r.cfg.Admin.Token
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if subtle.ConstantTimeCompare([]byte(req.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kadenz"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, req)
	})
}
