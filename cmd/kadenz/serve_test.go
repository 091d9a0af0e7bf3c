package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestServeFlagsOverrideConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kadenz.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:2600\ndata_dir: /var/lib/kadenz\ndelivery:\n  upstream: smtp.example.com:587\n"), 0o600)

	// Flags with equal values must each land in their own field.
	cfg, code := serveConfig([]string{"--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data", "/tmp/k"})
	if cfg == nil {
		t.Fatalf("exit code %d", code)
	}
	if cfg.Listen != "127.0.0.1:0" || cfg.Admin.Listen != "127.0.0.1:0" || cfg.DataDir != "/tmp/k" {
		t.Errorf("flags not applied: listen %q admin %q data %q", cfg.Listen, cfg.Admin.Listen, cfg.DataDir)
	}
	if cfg.Delivery.Upstream != "smtp.example.com:587" {
		t.Errorf("unset --upstream replaced the file's value: %q", cfg.Delivery.Upstream)
	}

	cfg, _ = serveConfig(nil)
	if cfg == nil || cfg.Listen != "127.0.0.1:2525" || cfg.DataDir != "./kadenz-data" || cfg.Delivery.Upstream != "" {
		t.Errorf("embedded defaults: %+v", cfg)
	}

	if cfg, code := serveConfig([]string{"--admin", "0.0.0.0:8025"}); cfg != nil || code != 1 {
		t.Errorf("non-loopback admin without token: accepted (code %d)", code)
	}
}
