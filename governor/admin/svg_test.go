package admin

import (
	"regexp"
	"strconv"
	"testing"
	"time"
)

// Volume counts mails, cost and value are fractions: each gets its own
// scale, so value and cost use the chart's height instead of lying flat
// under the volume line.
func TestFatigueChartGivesValueAndCostTheirOwnScale(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	html := string(fatigueChart([]fatiguePoint{
		{At: t0, Volume: 2, Cost: 0.02, Value: 0.05},
		{At: t0.Add(24 * time.Hour), Volume: 9, Cost: 0.08, Value: 0.04},
	}))
	lowest := map[string]float64{} // smallest y (highest point) per series
	for _, m := range regexp.MustCompile(`<circle class="dot (\w+)" cx="[\d.]+" cy="([\d.]+)"`).FindAllStringSubmatch(html, -1) {
		y, _ := strconv.ParseFloat(m[2], 64)
		if v, ok := lowest[m[1]]; !ok || y < v {
			lowest[m[1]] = y
		}
	}
	top := float64(padT)
	bottom := float64(chartH - padB)
	for _, series := range []string{"volume", "cost"} {
		y, ok := lowest[series]
		if !ok {
			t.Fatalf("no %s points in %s", series, html)
		}
		// The largest value of each series reaches the upper half of the plot.
		if y > (top+bottom)/2 {
			t.Errorf("%s peaks at y=%.1f, in the lower half (%.0f-%.0f): its scale is not its own", series, y, top, bottom)
		}
	}
	if !regexp.MustCompile(`class="tick score"`).MatchString(html) {
		t.Error("no right-hand scale for cost and value")
	}
}
