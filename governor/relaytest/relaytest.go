// Package relaytest starts in-process relays for the tests of packages
// outside governor (the command line's, the simulator's): one way to build
// a test configuration and one way to run a relay that logs to the test
// and is shut down when the test ends.
//
// The governor package's own tests cannot import it (it imports governor)
// and keep their helpers in governor/relay_test.go; the black-box suite
// (tests/) starts the built binary instead, as an operator would.
package relaytest

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor"
)

// Config is the embedded defaults made fit for a test: SMTP and, with
// admin set, the admin API on free loopback ports; a fresh data
// directory; mail to upstream (host:port, no TLS) or, when it is empty,
// to the outbox; fast retries; token for the admin API (empty: none).
func Config(t testing.TB, upstream string, admin bool, token string) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Hostname = "kadenz.test"
	if upstream != "" {
		cfg.Delivery.Upstream = upstream
		cfg.Delivery.TLS = config.TLSNone
	}
	cfg.Delivery.RetryInitial = 20 * time.Millisecond
	cfg.Delivery.RetryMax = 100 * time.Millisecond
	cfg.Intake.ReadTimeout = 10 * time.Second
	cfg.Intake.WriteTimeout = 10 * time.Second
	if admin {
		cfg.Admin.Listen = "127.0.0.1:0"
		cfg.Admin.Token = token
	}
	return cfg
}

// Start builds and starts a relay from opts, logging to the test unless
// opts has a logger, and shuts it down when the test ends.
func Start(t testing.TB, opts governor.Options) *governor.Relay {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testLog{t}, nil))
	}
	r, err := governor.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		r.Shutdown(context.Background())
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return r
}

// testLog writes the relay's log lines to the test's output.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
