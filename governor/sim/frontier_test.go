package sim

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// The direct path (no relay) must give exactly what the relay gives for
// the policies that release at once: same counts, same release log, same
// clicks at the same times.
func TestDirectPathMatchesRelay(t *testing.T) {
	only := []string{PolicySendAll, CapPolicy(2 * time.Hour), PolicyCap, PolicyOracle}
	opts := Options{Recipients: 100, Days: 5, Seed: 7, TempDir: t.TempDir(), Only: only}
	direct, err := Run(opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.viaRelay = true
	relay, err := Run(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range direct.Policies {
		r := relay.Policies[i]
		if d.Released == 0 || d.Clicks == 0 {
			t.Errorf("%s: %d released, %d clicks; the comparison is too weak", d.Name, d.Released, d.Clicks)
		}
		if len(d.Releases) != len(r.Releases) {
			t.Fatalf("%s: %d releases direct, %d via the relay", d.Name, len(d.Releases), len(r.Releases))
		}
		for j := range d.Releases {
			a, b := d.Releases[j], r.Releases[j]
			if a.Message != b.Message || !a.Released.Equal(b.Released) || a.Clicked != b.Clicked || !a.ClickAt.Equal(b.ClickAt) {
				t.Fatalf("%s: release %d differs:\ndirect %+v\nrelay  %+v", d.Name, j, a, b)
			}
		}
		dc, rc := *d, *r
		dc.Releases, rc.Releases = nil, nil
		if !reflect.DeepEqual(dc, rc) {
			t.Errorf("%s differs:\ndirect %+v\nrelay  %+v", d.Name, dc, rc)
		}
	}
}

func TestCapPolicyNames(t *testing.T) {
	for _, c := range []struct {
		gap  time.Duration
		name string
	}{{16 * time.Hour, "cap-16h"}, {time.Hour, "cap-1h"}, {90 * time.Minute, "cap-1h30m"}, {30 * time.Minute, "cap-30m"}} {
		if got := CapPolicy(c.gap); got != c.name {
			t.Errorf("CapPolicy(%v) = %q, want %q", c.gap, got, c.name)
		}
		if gap, ok := capGapOf(c.name); !ok || gap != c.gap {
			t.Errorf("capGapOf(%q) = %v, %v", c.name, gap, ok)
		}
	}
	if CapPolicy(16*time.Hour) != PolicyCap || !slices.Contains(CapPolicies(), PolicyCap) {
		t.Errorf("the 16-hour cap must keep its name %q and stay in the frontier", PolicyCap)
	}
	for _, bad := range []string{"cap-", "cap-0h", "cap-x", "capped", PolicyKadenz} {
		if _, ok := capGapOf(bad); ok {
			t.Errorf("capGapOf(%q) accepted", bad)
		}
	}
	if _, err := Run(Options{Recipients: 2, Days: 1, Only: []string{"cap-sometimes"}}); err == nil {
		t.Error("an unknown policy name was accepted")
	}
}

// Every cap in the frontier keeps its gap, and the frontier spans a
// range of volumes, loosest first.
func TestCapFrontierKeepsGaps(t *testing.T) {
	res := smallRun(t)
	caps := res.Caps()
	if len(caps) != len(CapGaps) {
		t.Fatalf("%d caps in the result, want %d", len(caps), len(CapGaps))
	}
	if first, last := caps[0], caps[len(caps)-1]; first.Released <= last.Released {
		t.Errorf("%s released %d, %s %d; want the loosest to send more", first.Name, first.Released, last.Name, last.Released)
	}
	for i, c := range caps {
		gap := CapGaps[i]
		if c.Name != CapPolicy(gap) || c.Dropped == 0 {
			t.Errorf("cap %d: %s dropped %d; want %s dropping some", i, c.Name, c.Dropped, CapPolicy(gap))
		}
		last := map[string]time.Time{}
		for _, r := range c.Releases {
			if !r.Marketing {
				continue
			}
			if l, ok := last[r.Recipient]; ok && r.Released.Sub(l) < gap {
				t.Fatalf("%s: %s got mail at %v and %v", c.Name, r.Recipient, l, r.Released)
			}
			last[r.Recipient] = r.Released
		}
	}
}

// Goals judges "beats cap" against the volume-matched cap: the smallest
// of the caps that released at least as much as Kadenz.
func TestGoalsMatchedCap(t *testing.T) {
	pol := func(name string, released, clicks int) *PolicyResult {
		return &PolicyResult{Name: name, Released: released, Clicks: clicks}
	}
	all := pol(PolicySendAll, 10000, 100)
	for _, c := range []struct {
		name    string
		caps    []*PolicyResult
		k       *PolicyResult
		matched string // "" for none
		met     bool
		detail  string
	}{
		{
			// cap-4h is the smallest at or above Kadenz's 5,000; cap-2h
			// has more clicks than Kadenz but more volume too, and
			// cap-16h fewer clicks at less volume: neither decides.
			name: "matched is the smallest at or above",
			caps: []*PolicyResult{pol("cap-2h", 7000, 120), pol("cap-4h", 5200, 80), pol("cap-8h", 4000, 90), pol(PolicyCap, 3000, 60)},
			k:    pol(PolicyKadenz, 5000, 85), matched: "cap-4h", met: true,
			detail: "clicks 85 vs 80 for cap-4h, the volume-matched cap (5000 vs 5200 released); vs cap-16h: clicks 85 vs 60, 5000 vs 3000 released",
		},
		{
			name: "more clicks than a smaller cap is not enough",
			caps: []*PolicyResult{pol("cap-2h", 7000, 120), pol("cap-4h", 5200, 95), pol("cap-8h", 4000, 80)},
			k:    pol(PolicyKadenz, 5000, 85), matched: "cap-4h", met: false,
		},
		{
			name: "equal volume counts as matched; equal clicks do not beat it",
			caps: []*PolicyResult{pol("cap-2h", 7000, 120), pol("cap-4h", 5000, 85)},
			k:    pol(PolicyKadenz, 5000, 85), matched: "cap-4h", met: false,
		},
		{
			name: "on a volume tie the cap with more clicks is matched",
			caps: []*PolicyResult{pol("cap-3h", 5100, 90), pol("cap-4h", 5100, 70)},
			k:    pol(PolicyKadenz, 5000, 85), matched: "cap-3h", met: false,
		},
		{
			name: "no cap sends as much: fails",
			caps: []*PolicyResult{pol("cap-8h", 4000, 10), pol(PolicyCap, 3000, 5)},
			k:    pol(PolicyKadenz, 5000, 85), matched: "", met: false,
			detail: "no cap released as much as Kadenz (5000; the most was cap-8h with 4000), so none is volume-matched; vs cap-16h: clicks 85 vs 5, 5000 vs 3000 released",
		},
	} {
		res := &Result{Policies: slices.Concat([]*PolicyResult{all}, c.caps, []*PolicyResult{c.k})}
		m := res.MatchedCap()
		if got := ""; m != nil {
			got = m.Name
			if got != c.matched {
				t.Errorf("%s: matched %s, want %s", c.name, got, c.matched)
			}
		} else if c.matched != "" {
			t.Errorf("%s: no matched cap, want %s", c.name, c.matched)
		}
		goals := res.Goals()
		if len(goals) != 8 || goals[3].Name != "beats cap" {
			t.Fatalf("%s: goals %+v", c.name, goals)
		}
		if g := goals[3]; g.Met != c.met || c.detail != "" && g.Detail != c.detail {
			t.Errorf("%s: beats cap met %v (%s), want %v (%s)", c.name, g.Met, g.Detail, c.met, c.detail)
		}
	}
	// Without a cap in the run there is nothing to judge against.
	if g := (&Result{Policies: []*PolicyResult{all, pol(PolicyKadenz, 1, 1)}}).Goals(); g != nil {
		t.Errorf("goals without a cap: %+v", g)
	}
}
