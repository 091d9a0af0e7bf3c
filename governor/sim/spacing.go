package sim

import (
	"fmt"
	"io"
	"time"
)

// SpacingEdges are the bounds of Spacing's rows: how long after the
// reader's previous marketing mail a release came.
var SpacingEdges = []time.Duration{time.Hour, 4 * time.Hour, 12 * time.Hour, 16 * time.Hour, 24 * time.Hour, 48 * time.Hour}

// SpacingRow counts a policy's marketing releases that came a given time
// after the reader's previous one, and what they earned.
type SpacingRow struct {
	// Under is the row's upper bound; 0 in the last row, which holds each
	// reader's first mail and mail that came the last bound or more after
	// the previous.
	Under                          time.Duration
	Released, Opens, Clicks, Stops int
}

// Spacing tabulates p's marketing releases by the time since the same
// reader's previous marketing release (docs/simulation.md, round 22): one
// row per SpacingEdges bound, then the rest.
func Spacing(p *PolicyResult) []SpacingRow {
	rows := make([]SpacingRow, len(SpacingEdges)+1)
	for i, e := range SpacingEdges {
		rows[i].Under = e
	}
	last := map[string]time.Time{}
	for _, r := range p.Releases { // in order of release
		if !r.Marketing {
			continue
		}
		k := len(SpacingEdges)
		if prev, ok := last[r.Recipient]; ok {
			for i, e := range SpacingEdges {
				if r.Released.Sub(prev) < e {
					k = i
					break
				}
			}
		}
		last[r.Recipient] = r.Released
		row := &rows[k]
		row.Released++
		if r.Opened {
			row.Opens++
		}
		if r.Clicked {
			row.Clicks++
		}
		if r.Unsubscribed || r.Complained {
			row.Stops++
		}
	}
	return rows
}

// PrintSpacing writes Spacing(p) as a markdown table.
func PrintSpacing(w io.Writer, p *PolicyResult) {
	rows := Spacing(p)
	total := 0
	for _, r := range rows {
		total += r.Released
	}
	fmt.Fprintf(w, "\n%s: marketing releases by time since the reader's previous one\n\n", p.Name)
	fmt.Fprintln(w, "| hours after the previous | released | share | opens | clicks | stops | stops per 1,000 |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	lo := "0"
	for _, r := range rows {
		label := lo + " or more, or the first"
		if r.Under > 0 {
			label, lo = lo+"-"+hours(r.Under), hours(r.Under)
		}
		share, per := 0.0, 0.0
		if total > 0 {
			share = 100 * float64(r.Released) / float64(total)
		}
		if r.Released > 0 {
			per = 1000 * float64(r.Stops) / float64(r.Released)
		}
		fmt.Fprintf(w, "| %s | %d | %.1f%% | %d | %d | %d | %.2f |\n", label, r.Released, share, r.Opens, r.Clicks, r.Stops, per)
	}
}

// hours writes d, a whole number of hours, as "4h".
func hours(d time.Duration) string { return fmt.Sprintf("%dh", int(d.Hours())) }
