package sim

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"kadenz/config"
)

// TestSweep runs Kadenz under several settings on the same populations
// and prints one line per (setting, mix, seed) against send-all and the
// frontier of fixed caps, which run once per population (one FRONTIER
// line each: every cap's volume and clicks as a share of send-all's). It only runs when
// KADENZ_SIM_SWEEP lists settings, separated by ";", each a list of
// s=strictness, d=per_day, w=per_week, g=min_gap (0 = no limit).
// KADENZ_SIM_ORACLE=1 also runs the oracle yardstick; an empty sweep
// (KADENZ_SIM_SWEEP=none) then runs only the baselines:
//
//	KADENZ_SIM_SWEEP="s=1;s=0.25,d=3,w=10,g=3h" KADENZ_SIM_SEEDS="1 2" KADENZ_SIM_MIXES="default tolerant" \
//	  KADENZ_SIM_N=300 go test -run TestSweep -v -timeout 2h ./governor/sim/
func TestSweep(t *testing.T) {
	spec := os.Getenv("KADENZ_SIM_SWEEP")
	if spec == "" {
		t.Skip("set KADENZ_SIM_SWEEP to sweep Kadenz settings")
	}
	n, _ := strconv.Atoi(os.Getenv("KADENZ_SIM_N"))
	seeds := strings.Fields(os.Getenv("KADENZ_SIM_SEEDS"))
	mixes := strings.Fields(os.Getenv("KADENZ_SIM_MIXES"))
	if len(seeds) == 0 {
		seeds = []string{"1"}
	}
	if len(mixes) == 0 {
		mixes = []string{string(MixDefault)}
	}
	var settings []string
	for s := range strings.SplitSeq(spec, ";") {
		if s = strings.TrimSpace(s); s != "" && s != "none" {
			settings = append(settings, s)
		}
	}
	type job struct {
		mix     Mix
		seed    uint64
		setting string // "" runs send-all and the caps
	}
	var base, rest []job
	for _, m := range mixes {
		for _, s := range seeds {
			seed, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			base = append(base, job{Mix(m), seed, ""})
			for _, set := range settings {
				rest = append(rest, job{Mix(m), seed, set})
			}
		}
	}
	var mu sync.Mutex
	baseline := map[string]*Result{}
	key := func(j job) string { return fmt.Sprintf("%s/%d", j.mix, j.seed) }
	run := func(jobs []job, do func(job) error) {
		sem := make(chan struct{}, 2)
		var wg sync.WaitGroup
		for _, j := range jobs {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := do(j); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	only := append([]string{PolicySendAll}, CapPolicies()...)
	if os.Getenv("KADENZ_SIM_ORACLE") != "" {
		only = append(only, PolicyOracle)
	}
	if os.Getenv("KADENZ_SIM_NOBASE") != "" { // Kadenz's own numbers only
		base = nil
	}
	run(base, func(j job) error {
		res, err := Run(Options{Recipients: n, Seed: j.seed, Mix: j.mix, World: World(os.Getenv("KADENZ_SIM_WORLD")), TempDir: t.TempDir(), Only: only})
		if err != nil {
			return err
		}
		line := fmt.Sprintf("FRONTIER\t%s\t%d\tall %d/%d", j.mix, j.seed, res.Policy(PolicySendAll).Clicks, res.Policy(PolicySendAll).Released)
		for _, c := range res.Caps() {
			line += fmt.Sprintf("\t%s %.0f%%/%.0f%%", c.Name, 100*c.ReleasedVsSendAll, 100*c.ClicksVsSendAll)
		}
		fmt.Println(line + "\t(volume/clicks vs send-all)")
		if o := res.Policy(PolicyOracle); o != nil {
			fmt.Printf("ORACLE\t%s\t%d\tvol %.0f%%\tclicks %.0f%%\tstops %.0f%%\t%d clicks / %d released\n",
				j.mix, j.seed, 100*o.ReleasedVsSendAll, 100*o.ClicksVsSendAll, 100*o.StopsVsSendAll, o.Clicks, o.Released)
		}
		mu.Lock()
		baseline[key(j)] = res
		mu.Unlock()
		return nil
	})
	run(rest, func(j job) error {
		configure, err := parseSetting(j.setting)
		if err != nil {
			return err
		}
		start := time.Now()
		res, err := Run(Options{Recipients: n, Seed: j.seed, Mix: j.mix, World: World(os.Getenv("KADENZ_SIM_WORLD")), TempDir: t.TempDir(), Only: []string{PolicyKadenz}, Configure: configure})
		if err != nil {
			return err
		}
		mu.Lock()
		b := baseline[key(j)]
		mu.Unlock()
		if b == nil {
			k := res.Policy(PolicyKadenz)
			fmt.Printf("SWEEP\t%s\t%s\t%d\tk %d clicks / %d released, %d stops\t(%.0fs)\n", j.setting, j.mix, j.seed, k.Clicks, k.Released, k.Stops(), time.Since(start).Seconds())
			return nil
		}
		all, k := b.Policy(PolicySendAll), res.Policy(PolicyKadenz)
		full := &Result{Policies: append(slices.Clone(b.Policies), k)}
		k.ReleasedVsSendAll, k.ClicksVsSendAll, k.StopsVsSendAll = ratio(k.Released, all.Released), ratio(k.Clicks, all.Clicks), ratio(k.Stops(), all.Stops())
		matched := "no cap as big"
		if m := full.MatchedCap(); m != nil {
			matched = fmt.Sprintf("%s %d/%d", m.Name, m.Clicks, m.Released)
		}
		met := ""
		for _, g := range full.Goals() {
			if g.Met {
				met += "+"
			} else {
				met += "-"
			}
		}
		fmt.Printf("SWEEP\t%s\t%s\t%d\tvol %.0f%%\tclicks %.0f%%\tstops %.0f%%\tk %d/%d matched %s all %d/%d\t%s\t(%.0fs)\n",
			j.setting, j.mix, j.seed, 100*k.ReleasedVsSendAll, 100*k.ClicksVsSendAll, 100*k.StopsVsSendAll,
			k.Clicks, k.Released, matched, all.Clicks, all.Released, met, time.Since(start).Seconds())
		return nil
	})
}

// parseSetting reads "s=0.25,d=3,w=10,g=3h" into a Configure function.
func parseSetting(s string) (func(*config.Governor), error) {
	var fns []func(*config.Governor)
	for kv := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("setting %q: want key=value", kv)
		}
		switch k {
		case "s":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, err
			}
			fns = append(fns, func(g *config.Governor) { g.Strictness = f })
		case "d", "w":
			i, err := strconv.Atoi(v)
			if err != nil {
				return nil, err
			}
			if k == "d" {
				fns = append(fns, func(g *config.Governor) { g.Caps.PerDay = i })
			} else {
				fns = append(fns, func(g *config.Governor) { g.Caps.PerWeek = i })
			}
		case "g":
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, err
			}
			fns = append(fns, func(g *config.Governor) { g.Caps.MinGap = d })
		default:
			return nil, fmt.Errorf("setting %q: unknown key %q", s, k)
		}
	}
	return func(g *config.Governor) {
		for _, f := range fns {
			f(g)
		}
	}, nil
}
