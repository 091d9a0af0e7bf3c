package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor/sim"
)

func TestPrintSimulation(t *testing.T) {
	res, err := sim.Run(sim.Options{Recipients: 5, Days: 1, Seed: 2, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printSimulation(&b, res)
	for _, want := range []string{"send-all", "cap-16h", "kadenz", "clicks/msg", "goals (issue 3)", "transactional delay 0"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

func TestSimulateConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kadenz.yaml")
	yaml := "governor:\n  mode: shadow\n  strictness: 0.3\n  caps:\n    per_day: 3\n    per_week: 9\n    min_gap: 2h\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	apply := func(args ...string) config.Governor {
		t.Helper()
		fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
		s := fs.Float64("strictness", 1, "")
		c := fs.String("config", "", "")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		configure, err := simulateConfig(fs, *c, *s)
		if err != nil {
			t.Fatal(err)
		}
		g := config.Default().Governor
		configure(&g)
		return g
	}
	def := config.Default().Governor
	if g := apply(); g.Strictness != def.Strictness || g.Caps != def.Caps || g.Mode != config.ModeEnforce {
		t.Errorf("no flags: got strictness %v caps %+v mode %s, want the defaults in enforce", g.Strictness, g.Caps, g.Mode)
	}
	g := apply("--config", file)
	if want := (config.Caps{PerDay: 3, PerWeek: 9, MinGap: 2 * time.Hour}); g.Strictness != 0.3 || g.Caps != want || g.Mode != config.ModeEnforce {
		t.Errorf("--config: got strictness %v caps %+v mode %s, want 0.3, %+v, enforce", g.Strictness, g.Caps, g.Mode, want)
	}
	if g := apply("--config", file, "--strictness", "2"); g.Strictness != 2 || g.Caps.PerDay != 3 {
		t.Errorf("--strictness after --config: got %v (per_day %d), want 2 (3)", g.Strictness, g.Caps.PerDay)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("governor:\n  strictnes: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	if _, err := simulateConfig(fs, bad, 1); err == nil || !strings.Contains(err.Error(), "bad.yaml:2") {
		t.Errorf("bad config: got %v, want an error at bad.yaml:2", err)
	}
}
