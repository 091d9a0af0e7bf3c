package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"kadenz/config"
	"kadenz/governor/sim"
)

// runSimulate compares send-all, fixed frequency caps (1 to 48 hours) and
// Kadenz on one synthetic population (see governor/sim and docs/simulation.md). It opens
// no daemon database: each policy runs its own relay in a temporary
// directory, removed afterwards.
func runSimulate(args []string) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.Usage = commandUsage("simulate")
	recipients := fs.Int("recipients", 500, "population `size`")
	days := fs.Int("days", 14, "`days` of campaigns")
	seed := fs.Uint64("seed", 1, "random `seed`; the same seed gives the same result")
	mix := fs.String("mix", string(sim.MixDefault), "population `mix`: default (about one mail a day tolerated), tolerant (about three), sensitive (one every two days) or relaxed (about eight: volume is cheap)")
	world := fs.String("world", string(sim.WorldClassic), "the list and its sender: classic (rounds 1-5), structured (topic popularity, topics in the text, four sending tools, campaigns of differing quality and targeting) or heavy (structured, twice the campaigns)")
	look := fs.String("look", string(sim.LookDelay), "how readers look at mail: delay (sooner the more present they were when it came) or next (when they are next about, whatever the hour it came)")
	bursts := fs.Duration("bursts", 0, "a world variant: readers also feel a burst of mail as the rate it momentarily is, decayed with this `half-life` (e.g. 8h); 0: the response model as written")
	strictness := fs.Float64("strictness", config.Default().Governor.Strictness, "Kadenz's strictness for a what-if run (above 0, at most 10; lower sends more)")
	configFile := fs.String("config", "", "simulate Kadenz with the governor settings of this config `file` (mode is always enforce)")
	shadow := fs.Bool("shadow", false, "also run Kadenz in shadow mode on the same world, and compare its forecast of enforce mode with what enforce mode did")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if *bursts < 0 {
		fmt.Fprintf(os.Stderr, "kadenz simulate: --bursts %v: a half-life cannot be negative\n", *bursts)
		return 2
	}
	configure, err := simulateConfig(fs, *configFile, *strictness)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kadenz simulate:", err)
		return 2
	}
	start := time.Now() // wall clock only for the "took" line; the run is on virtual time
	opts := sim.Options{Recipients: *recipients, Days: *days, Seed: *seed, Mix: sim.Mix(*mix),
		World: sim.World(*world), Look: sim.Look(*look), Bursts: *bursts, Configure: configure}
	if *shadow {
		opts.Only = append(sim.DefaultPolicies(), sim.PolicyShadow)
	}
	res, err := sim.Run(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kadenz simulate:", err)
		return 1
	}
	if *asJSON {
		out := struct {
			*sim.Result
			// MatchedCap names the cap "beats cap" was judged against
			// ("" if none released as much as Kadenz).
			MatchedCap string     `json:"matched_cap"`
			Goals      []sim.Goal `json:"goals"`
		}{res, "", res.Goals()}
		if m := res.MatchedCap(); m != nil {
			out.MatchedCap = m.Name
		}
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		if err := e.Encode(out); err != nil {
			fmt.Fprintln(os.Stderr, "kadenz simulate:", err)
			return 1
		}
		return 0
	}
	printSimulation(os.Stdout, res)
	fmt.Printf("\n(took %s)\n", time.Since(start).Round(100*time.Millisecond))
	return 0
}

// printSimulation writes the result as an aligned table for people.
func printSimulation(w io.Writer, res *sim.Result) {
	look := string(res.Look)
	if res.BurstsS > 0 {
		look += fmt.Sprintf(", and feel bursts (half-life %v)", time.Duration(res.BurstsS*float64(time.Second)))
	}
	fmt.Fprintf(w, "%d recipients (%s mix, %s world, readers look: %s), %d days, seed %d: %d marketing and %d transactional messages from the CRM\n\n",
		res.Recipients, res.Mix, res.World, look, res.Days, res.Seed, res.Marketing, res.Transactional)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "policy\treleased\tvs all\topens\tclicks\tvs all\tclicks/msg\tunsubs\tcomplaints\tvs all\ttrans. delay max/mean\t")
	for _, p := range res.Policies {
		fmt.Fprintf(tw, "%s\t%d\t%.0f%%\t%d\t%d\t%.0f%%\t%.4f\t%d\t%d\t%.0f%%\t%.0fs / %.0fs\t\n",
			p.Name, p.Released, 100*p.ReleasedVsSendAll, p.Opens, p.Clicks, 100*p.ClicksVsSendAll, p.ClicksPerMessage,
			p.Unsubscribes, p.Complaints, 100*p.StopsVsSendAll, p.TransactionalMaxDelay, p.TransactionalMeanDelay)
	}
	tw.Flush()
	if k := res.Policy(sim.PolicyKadenz); k != nil {
		fmt.Fprintf(w, "\nkadenz: %d suppressed, %d still held or scheduled at the end\n", k.Suppressed, k.HeldAtEnd)
		if m := res.MatchedCap(); m != nil {
			fmt.Fprintf(w, "kadenz vs %s (volume-matched cap): clicks %d vs %d, %d vs %d released\n", m.Name, k.Clicks, m.Clicks, k.Released, m.Released)
		} else {
			fmt.Fprintf(w, "kadenz vs the caps: none released as much as kadenz's %d\n", k.Released)
		}
		if c := res.Policy(sim.PolicyCap); c != nil {
			fmt.Fprintf(w, "kadenz vs %s (the issue's example cap): clicks %d vs %d, %d vs %d released\n", c.Name, k.Clicks, c.Clicks, k.Released, c.Released)
		}
	}
	printForecast(w, res)
	fmt.Fprintln(w, "\ngoals (issues 3 and 18):")
	for _, g := range res.Goals() {
		mark := "met   "
		if !g.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "  %s  %-22s %s\n", mark, g.Name, g.Detail)
	}
}

// simulateConfig is how the Kadenz policy is configured: the defaults, or
// the governor section of the administrator's config file, so that they
// can see what their own caps, quiet hours and strictness would do. Mode
// is always enforce (shadow or off would simulate send-all). An explicit
// --strictness wins over the file's.
func simulateConfig(fs *flag.FlagSet, file string, strictness float64) (func(*config.Governor), error) {
	gov := config.Default().Governor
	if file != "" {
		c, err := config.Load(file)
		if err != nil {
			return nil, err
		}
		gov = c.Governor
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "strictness" {
			gov.Strictness = strictness
		}
	})
	gov.Mode = config.ModeEnforce
	return func(g *config.Governor) { *g = gov }, nil
}

// printForecast compares shadow mode's forecast with what enforce mode did,
// when the run had both (--shadow).
func printForecast(w io.Writer, res *sim.Result) {
	k, s := res.Policy(sim.PolicyKadenz), res.Policy(sim.PolicyShadow)
	if k == nil || s == nil || k.Forecast == nil || s.Forecast == nil {
		return
	}
	fmt.Fprintln(w, "\nshadow mode's forecast of enforce mode (governed marketing mail):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tdecided\tfirst: release\tdefer\tsuppress\tfinal: released\tsuppressed\treview\tpending\tsuppressed share\t")
	for _, row := range []struct {
		name string
		f    *sim.Forecast
	}{{"enforce did", k.Forecast}, {"shadow forecast", s.Forecast}} {
		f := row.f
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f%%\t\n", row.name, f.Decided, f.FirstRelease, f.FirstDefer,
			f.FirstSuppress, f.Released, f.Suppressed, f.Review, f.Pending, 100*f.SuppressedShare())
	}
	tw.Flush()
	fmt.Fprintf(w, "shadow's records say \"would suppress\" for %.1f%% at first decision; enforce suppressed %.1f%%\n",
		100*s.Forecast.FirstSuppressShare(), 100*k.Forecast.SuppressedShare())
}
