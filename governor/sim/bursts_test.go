package sim

import (
	"math"
	"strings"
	"testing"
	"time"
)

// pressures delivers one marketing message at each of times to a reader
// who tolerates a mail a day and returns the pressure each arrived at.
func pressures(bursts time.Duration, times []time.Time) []float64 {
	p := &recipient{interest: []float64{0.8}, peak: 12, width: 2, tolerance: 1, openness: 0.5, loc: time.UTC}
	s := &reader{campaigns: map[string]time.Time{}}
	var out []float64
	for i, t := range times {
		m := &message{index: i, at: t, campaign: &campaign{id: "c" + string(rune('a'+i%26)), topics: []int{0}, quality: 1}, marketing: true}
		out = append(out, respond(p, s, m, t, draws{open: 1, click: 1, unsubscribe: 1, complaint: 1}, LookDelay, bursts).pressure)
	}
	return out
}

// With Bursts, mail that comes together weighs as the rate it momentarily
// is; mail spread wider than the burst half-life weighs as in the model
// as written.
func TestBursts(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	together := []time.Time{t0, t0, t0.Add(5 * time.Minute)}
	plain, felt := pressures(0, together), pressures(8*time.Hour, together)
	// The third mail of three within minutes: two before it, about 0.69
	// mails a day on the 2-day scale, about 4.2 on the 8-hour scale.
	if math.Abs(plain[2]-(1+math.Pow(loadRate(2*math.Exp2(-5.0/60/48), loadHalfLife)/2, 2))) > 1e-9 {
		t.Errorf("without bursts the third mail's pressure is %.4f, not the model's", plain[2])
	}
	if plain[2] > 1.2 || felt[2] < 4 {
		t.Errorf("three mails at once: pressure %.2f as written, %.2f with bursts; want under 1.2 and over 4", plain[2], felt[2])
	}
	if plain[0] != 1 || felt[0] != 1 {
		t.Errorf("a first mail arrived at pressure %.2f / %.2f, want 1", plain[0], felt[0])
	}
	// A mail a day at noon for three weeks: the 8-hour count decays to an
	// eighth between mails, so from the third mail on the 2-day load is
	// the larger and nothing changes (at the second, one mail a day ago
	// weighs 0.26 a day on the short scale against 0.25 on the long).
	var daily []time.Time
	for d := range 21 {
		daily = append(daily, t0.AddDate(0, 0, d))
	}
	a, b := pressures(0, daily), pressures(8*time.Hour, daily)
	for i := 2; i < len(a); i++ {
		if a[i] != b[i] {
			t.Fatalf("daily mail %d: pressure %.4f with bursts, %.4f without", i, b[i], a[i])
		}
	}
	if a[20] < 1.1 {
		t.Errorf("after three weeks of daily mail the pressure is %.3f; the check would not see a difference", a[20])
	}

	res, err := Run(Options{Recipients: 20, Days: 2, Seed: 5, World: WorldStructured, Bursts: 8 * time.Hour,
		TempDir: t.TempDir(), Only: []string{PolicySendAll}})
	if err != nil {
		t.Fatal(err)
	}
	if res.BurstsS != 8*3600 {
		t.Errorf("result's bursts_half_life_s %v, want 28800", res.BurstsS)
	}
	if _, err := Run(Options{Recipients: 1, Days: 1, Bursts: -time.Hour}); err == nil {
		t.Error("a negative burst half-life was accepted")
	}
}

// Spacing counts every marketing release once, and a policy that keeps a
// minimum gap has none closer than it.
func TestSpacing(t *testing.T) {
	res := smallRun(t)
	for _, name := range []string{PolicySendAll, PolicyKadenz} {
		p := res.Policy(name)
		rows := Spacing(p)
		released, opens, clicks := 0, 0, 0
		for _, r := range rows {
			released += r.Released
			opens += r.Opens
			clicks += r.Clicks
		}
		marketing := 0
		for _, r := range p.Releases {
			if r.Marketing {
				marketing++
			}
		}
		if released != marketing || opens != p.Opens || clicks != p.Clicks || marketing == 0 {
			t.Errorf("%s: the rows hold %d releases, %d opens and %d clicks; the run %d, %d and %d", name, released, opens, clicks, marketing, p.Opens, p.Clicks)
		}
		var b strings.Builder
		PrintSpacing(&b, p)
		for _, want := range []string{"| 0-1h | ", "| 1h-4h | ", "| 24h-48h | ", "| 48h or more, or the first | "} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("%s: the table has no row %q:\n%s", name, want, b.String())
			}
		}
		switch under1h := rows[0].Released; {
		case name == PolicyKadenz && under1h != 0:
			t.Errorf("kadenz, minimum gap %v: %d releases within an hour of the previous", smallCaps.MinGap, under1h)
		case name == PolicySendAll && under1h == 0:
			t.Errorf("send-all: no release within an hour of the previous; the check above could not fail")
		}
	}
}
