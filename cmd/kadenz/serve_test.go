package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestServeFlagsOverrideConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kadenz.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:2600\ndata_dir: /var/lib/kadenz\ndelivery:\n  upstream: smtp.example.com:587\n"), 0o600)

	// Flags with equal values must each land in their own field.
	cfg, _, _, code := serveConfig([]string{"--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data", "/tmp/k"})
	if cfg == nil {
		t.Fatalf("exit code %d", code)
	}
	if cfg.Listen != "127.0.0.1:0" || cfg.Admin.Listen != "127.0.0.1:0" || cfg.DataDir != "/tmp/k" {
		t.Errorf("flags not applied: listen %q admin %q data %q", cfg.Listen, cfg.Admin.Listen, cfg.DataDir)
	}
	if cfg.Delivery.Upstream != "smtp.example.com:587" {
		t.Errorf("unset --upstream replaced the file's value: %q", cfg.Delivery.Upstream)
	}

	cfg, _, _, _ = serveConfig(nil)
	if cfg == nil || cfg.Listen != "127.0.0.1:2525" || cfg.DataDir != "./kadenz-data" || cfg.Delivery.Upstream != "" {
		t.Errorf("embedded defaults: %+v", cfg)
	}

	if cfg, _, _, code := serveConfig([]string{"--admin", "0.0.0.0:8025"}); cfg != nil || code != 1 {
		t.Errorf("non-loopback admin without token: accepted (code %d)", code)
	}
}

func TestServeVirtualClockFlag(t *testing.T) {
	_, clock, _, _ := serveConfig([]string{"--admin", "127.0.0.1:0", "--clock", "virtual:2026-11-23T10:00:00Z"})
	if clock == nil || clock.Now().Format(time.RFC3339) != "2026-11-23T10:00:00Z" {
		t.Fatalf("virtual clock: %v", clock)
	}
	for _, args := range [][]string{
		{"--clock", "virtual:2026-11-23T10:00:00Z"},                   // nothing could move it
		{"--admin", "127.0.0.1:0", "--clock", "2026-11-23T10:00:00Z"}, // not virtual:
		{"--admin", "127.0.0.1:0", "--clock", "virtual:tomorrow"},     // not RFC 3339
	} {
		if cfg, _, _, code := serveConfig(args); cfg != nil || code != 2 {
			t.Errorf("%q: accepted (code %d)", args, code)
		}
	}
	// admin.listen in the file is as good as --admin.
	file := filepath.Join(t.TempDir(), "kadenz.yaml")
	if err := os.WriteFile(file, []byte("admin:\n  listen: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, clock, _, code := serveConfig([]string{"--config", file, "--clock", "virtual:2026-11-23T10:00:00Z"}); clock == nil || code != 0 {
		t.Errorf("--clock virtual with admin.listen in the config: refused (code %d)", code)
	}
}
