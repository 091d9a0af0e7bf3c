package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"kadenz/config"
	"kadenz/governor"
)

// shutdownGrace bounds how long SIGTERM waits for SMTP sessions and
// deliveries in flight.
const shutdownGrace = 30 * time.Second

// serveGCPercent is the garbage collector's target for the daemon unless
// GOGC says otherwise. The relay's live heap is a few MiB, so at Go's
// default of 100 it collects every few hundred messages; a larger target
// trades a little memory (still tens of MiB) for less collector CPU on the
// accept path. docs/benchmarks.md has the measurement.
const serveGCPercent = 400

// serveMemoryLimit is Go's soft memory limit for the daemon unless
// GOMEMLIMIT says otherwise. With serveGCPercent the heap may grow to five
// times what is live before a collection, which is nothing for 5 KB
// messages and gigabytes for large ones: 20 concurrent 24 MB messages
// peaked at 2.7 GB of RSS without a limit and 1.3 GB with this one
// (bench/memory.sh). Below the limit nothing changes; above it the
// collector runs sooner (the runtime caps its CPU share, so a live heap
// larger than the limit slows the relay rather than stopping it).
const serveMemoryLimit = 768 << 20

// exitDamaged is serve's exit status when the database is damaged, or
// missing where one was: distinct from 1 so that a supervisor can tell
// "do not restart, a person must look" from an ordinary failure.
const exitDamaged = 3

func runServe(args []string) int {
	cfg, clock, reload, code := serveConfig(args)
	if cfg == nil {
		return code
	}
	if os.Getenv("GOGC") == "" {
		startHeapTuner(serveHeadroom, serveGCPercent) // headroom.go
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(serveMemoryLimit)
	}
	logger, err := newLogger(os.Stderr, cfg.Log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kadenz serve: %v\n", err)
		return 1
	}
	relay, err := governor.New(governor.Options{Config: cfg, Logger: logger, Clock: clock})
	if damaged := (*governor.DamagedError)(nil); errors.As(err, &damaged) {
		// Several lines for a person, not one escaped log attribute.
		logger.Error("cannot start: the database is damaged or missing", "path", damaged.Path, "reason", damaged.Reason)
		fmt.Fprintf(os.Stderr, "kadenz serve: %v", damaged)
		return exitDamaged
	}
	if err != nil {
		logger.Error("cannot start", "error", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGHUP is caught before Start: once the listeners answer, a client
	// may send one at once, and uncaught it would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := relay.Start(); err != nil {
		logger.Error("cannot start", "error", err)
		relay.Shutdown(context.Background())
		return 1
	}
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-hup:
			if reload == nil {
				logger.Warn("SIGHUP: nothing to reload (serve runs without --config)")
				continue
			}
			relay.ReloadWith(reload) // logs and records the outcome itself
		}
	}
	stop() // a second signal kills at once
	logger.Info("shutting down", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := relay.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Error("shutdown", "error", err)
		return 1
	}
	if commits, writes, ok := relay.CommitStats(); ok {
		logger.Info("stopped", "commits", commits, "writes", writes)
	} else {
		logger.Info("stopped")
	}
	return 0
}

// serveConfig parses serve's flags into the configuration to run: the
// file (or the embedded defaults), then the flags on top, validated; the
// virtual clock, if --clock asks for one; and, with --config, the function
// that loads the file again the same way for SIGHUP. On failure it has
// said why and returns a nil config and the exit code.
func serveConfig(args []string) (*config.Config, *governor.VirtualClock, func() (*config.Config, error), int) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = commandUsage("serve")
	configFile := fs.String("config", "", "configuration `file` (YAML); embedded defaults if unset")
	listen := fs.String("listen", "", "SMTP listen `address`, overrides the config")
	data := fs.String("data", "", "data `directory`, overrides the config")
	upstream := fs.String("upstream", "", "smarthost `host:port` to relay to, instead of the outbox")
	admin := fs.String("admin", "", "admin/metrics HTTP listen `address` (off if unset)")
	clockFlag := fs.String("clock", "", "`virtual:RFC3339` starts a virtual clock at that time, moved only by POST /v1/clock on the admin API (simulation and tests)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kadenz serve: unexpected argument %q\n", fs.Arg(0))
		return nil, nil, nil, 2
	}
	var clock *governor.VirtualClock
	if *clockFlag != "" {
		start, err := time.Parse(time.RFC3339, strings.TrimPrefix(*clockFlag, "virtual:"))
		if err != nil || !strings.HasPrefix(*clockFlag, "virtual:") {
			fmt.Fprintf(os.Stderr, "kadenz serve: --clock %q: want virtual:RFC3339, e.g. virtual:2026-11-23T10:00:00Z\n", *clockFlag)
			return nil, nil, nil, 2
		}
		clock = governor.NewVirtualClock(start)
	}
	load := func() (*config.Config, error) {
		cfg := config.Default()
		if *configFile != "" {
			var err error
			if cfg, err = config.Load(*configFile); err != nil {
				return nil, err
			}
		}
		overrides := []struct {
			flag  string
			field *string
		}{{*listen, &cfg.Listen}, {*data, &cfg.DataDir}, {*upstream, &cfg.Delivery.Upstream}, {*admin, &cfg.Admin.Listen}}
		for _, o := range overrides {
			if o.flag != "" {
				*o.field = o.flag
			}
		}
		if errs := cfg.Validate(); errs != nil {
			return nil, errs
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kadenz serve: %v\n", err)
		return nil, nil, nil, 1
	}
	// The admin listener may come from --admin or from admin.listen in
	// the file; either way it is what moves a virtual clock.
	if clock != nil && cfg.Admin.Listen == "" {
		fmt.Fprintln(os.Stderr, "kadenz serve: --clock virtual needs the admin API (--admin or admin.listen): it is what moves the clock")
		return nil, nil, nil, 2
	}
	if *configFile == "" {
		load = nil
	}
	return cfg, clock, load, 0
}

func newLogger(w io.Writer, c config.Log) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", c.Level, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(c.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

func runCheckConfig(args []string) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.Usage = commandUsage("check-config")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	if _, err := config.Load(fs.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%s: ok\n", fs.Arg(0))
	return 0
}
