package main

import (
	"strings"
	"testing"

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
