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
	want := []string{"send-all", "kadenz", "clicks/msg", "goals (issues 3 and 18)", "transactional delay 0",
		"(the issue's example cap)", "beats cap"}
	for _, name := range sim.CapPolicies() {
		want = append(want, " "+name+" ")
	}
	if m := res.MatchedCap(); m != nil {
		want = append(want, "kadenz vs "+m.Name+" (volume-matched cap)", "for "+m.Name+", the volume-matched cap")
	} else {
		want = append(want, "none released as much as kadenz")
	}
	for _, w := range want {
		if !strings.Contains(b.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, b.String())
		}
	}
}

// The volume-matched cap is named in the text, hand-built so both
// branches are certain.
func TestPrintSimulationMatchedCap(t *testing.T) {
	pol := func(name string, released, clicks int) *sim.PolicyResult {
		return &sim.PolicyResult{Name: name, Released: released, Clicks: clicks}
	}
	res := &sim.Result{Policies: []*sim.PolicyResult{pol(sim.PolicySendAll, 1000, 50), pol("cap-2h", 700, 45),
		pol("cap-4h", 520, 40), pol(sim.PolicyCap, 300, 30), pol(sim.PolicyKadenz, 500, 52)}}
	var b strings.Builder
	printSimulation(&b, res)
	for _, w := range []string{"kadenz vs cap-4h (volume-matched cap): clicks 52 vs 40, 500 vs 520 released",
		"kadenz vs cap-16h (the issue's example cap): clicks 52 vs 30, 500 vs 300 released",
		"met     beats cap              clicks 52 vs 40 for cap-4h"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, b.String())
		}
	}
	if strings.Contains(b.String(), "bursts") {
		t.Errorf("a run without bursts says it has them:\n%s", b.String())
	}
	res.Policies[len(res.Policies)-1].Released = 800
	res.BurstsS = 8 * 3600
	b.Reset()
	printSimulation(&b, res)
	for _, w := range []string{"feel bursts (half-life 8h0m0s)", "none released as much as kadenz's 800", "MISSED  beats cap              no cap released as much"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, b.String())
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
