package governor

import (
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/governor/engine"
)

// Configuration reload (SIGHUP).
//
// A reload parses and validates the whole new file first; if anything is
// wrong, nothing changes: the old configuration stays in force, every
// problem is logged with its file and line, counted in
// kadenz_config_reload_total{result="error"} and shown by
// GET /v1/config/status. If the file is good, the parts that can change
// while running are swapped in at once: the governor section (mode, caps,
// quiet hours, strictness, holdout, sender rules, hold window, time zone),
// the admin token and the retention periods. Everything bound at start —
// listen addresses, the data directory, the hostname, intake limits and
// TLS, delivery (upstream, credentials, workers, retry), logging — keeps
// its running value; the reload logs which of those keys changed and need
// a restart.
//
// Readers never lock: the live configuration is an atomic pointer to an
// immutable *config.Config, and the engine's resolved rules another, so a
// decision round or an SMTP session sees one whole configuration, old or
// new, never a mixture.

// reloadState is the configuration in force and how the last reload went.
type reloadState struct {
	live atomic.Pointer[config.Config]

	mu     sync.Mutex // guards status
	status api.ReloadStatus
}

func (r *Relay) initOperations() error {
	if r.config().Log.Pseudonymise {
		key, err := r.db.PseudonymKey("log")
		if err != nil {
			return err
		}
		r.log = slog.New(newPseudonymHandler(r.log.Handler(), key))
	}
	r.metrics = newMetrics(r.db, sharedNode(r.db))
	now := r.now()
	r.reload.status = api.ReloadStatus{LoadedAt: now, OK: true}
	r.metrics.lastReloadOK.Set(float64(now.UnixNano()) / 1e9)
	return nil
}

// config returns the configuration in force: the only way the relay
// reads its configuration. Parts bound at start keep their start-up
// values; the rest may have been reloaded.
func (r *Relay) config() *config.Config { return r.reload.live.Load() }

// Reload validates cfg and, if it is good, makes its live parts take
// effect at once; otherwise it changes nothing and returns every problem.
func (r *Relay) Reload(cfg *config.Config) error {
	return r.ReloadWith(func() (*config.Config, error) { return cfg, nil })
}

// ReloadWith is Reload with the loading (reading and parsing the file)
// included, so that a file that does not even parse is recorded as a
// failed reload too.
func (r *Relay) ReloadWith(load func() (*config.Config, error)) error {
	now := r.now()
	cfg, err := load()
	if err == nil {
		if errs := cfg.Validate(); errs != nil {
			err = errs
		}
	}
	old := r.config()
	if err == nil && cfg.Admin.Token == "" && old.Admin.Listen != "" && !config.IsLoopback(old.Admin.Listen) {
		err = config.Errors{{Msg: "admin.token: must stay set: the admin listener " + old.Admin.Listen + " is not on loopback"}}
	}
	var ru *engine.Rules
	if err == nil {
		ru, err = engine.NewRules(&cfg.Governor)
	}
	if err != nil {
		msgs := errorLines(err)
		for _, m := range msgs {
			r.log.Error("config reload refused; the running configuration stays", "error", m)
		}
		r.metrics.configLoaded(false, now)
		r.reload.mu.Lock()
		r.reload.status.LastAttempt, r.reload.status.OK, r.reload.status.Errors, r.reload.status.RestartNeeded = now, false, msgs, nil
		r.reload.mu.Unlock()
		return err
	}

	restart := restartKeys(old, cfg)
	// The live config keeps what runs: start-bound parts from before,
	// live parts from the new file.
	next := *old
	next.Governor = cfg.Governor
	next.Admin.Token = cfg.Admin.Token
	next.Retention = cfg.Retention
	r.reload.live.Store(&next)
	r.engine.SetRules(ru) // held mail is decided under the new rules now

	r.metrics.configLoaded(true, now)
	r.reload.mu.Lock()
	r.reload.status = api.ReloadStatus{LoadedAt: now, LastAttempt: now, OK: true, RestartNeeded: restart}
	r.reload.mu.Unlock()
	r.log.Info("config reloaded", "mode", cfg.Governor.Mode, "strictness", cfg.Governor.Strictness)
	for _, k := range restart {
		r.log.Warn("config key changed but takes effect only after a restart", "key", k)
	}
	return nil
}

// errorLines splits a config error into its problems, each "FILE:LINE: MSG".
func errorLines(err error) []string {
	var errs config.Errors
	if errors.As(err, &errs) {
		out := make([]string, len(errs))
		for i, e := range errs {
			out[i] = e.Error()
		}
		return out
	}
	return []string{err.Error()}
}

// restartKeys names the start-bound keys that differ between old and new.
func restartKeys(old, cfg *config.Config) []string {
	var keys []string
	for _, k := range []struct {
		key      string
		old, new any
	}{
		{"listen", old.Listen, cfg.Listen},
		{"data_dir", old.DataDir, cfg.DataDir},
		{"hostname", old.Hostname, cfg.Hostname},
		{"admin.listen", old.Admin.Listen, cfg.Admin.Listen},
		{"intake", old.Intake, cfg.Intake},
		{"delivery", old.Delivery, cfg.Delivery},
		{"log", old.Log, cfg.Log},
	} {
		if !reflect.DeepEqual(k.old, k.new) {
			keys = append(keys, k.key)
		}
	}
	return keys
}

// ReloadStatus returns the outcome of the last reload.
func (r *Relay) ReloadStatus() api.ReloadStatus {
	r.reload.mu.Lock()
	defer r.reload.mu.Unlock()
	return r.reload.status
}
