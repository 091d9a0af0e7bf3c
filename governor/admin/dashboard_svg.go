package admin

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"
)

// Charts for the dashboard, drawn on the server as inline SVG: no
// JavaScript, no images to fetch, readable in any browser. Every label is
// HTML-escaped; the numbers are also on the page as text, so a chart is
// never the only place a number can be read.

const (
	chartW = 720
	chartH = 240
	padL   = 44
	padR   = 12
	padT   = 16
	padB   = 40
)

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten, so the
// axis has round numbers.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// axis draws horizontal grid lines with their values.
func axis(b *strings.Builder, max float64, integer bool) {
	plotH := float64(chartH - padT - padB)
	for i := 0; i <= 4; i++ {
		v := max * float64(i) / 4
		y := float64(chartH-padB) - plotH*float64(i)/4
		label := fmt.Sprintf("%.2g", v)
		if integer {
			label = fmt.Sprintf("%.0f", v)
		}
		fmt.Fprintf(b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padL, chartW-padR, y, y)
		fmt.Fprintf(b, `<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>`, padL-6, y+4, label)
	}
}

// dayChart draws submitted, released and suppressed envelopes per day as
// grouped bars.
func dayChart(days []dayCount) template.HTML {
	top := 0
	for _, d := range days {
		top = max(top, d.Submitted, d.Released, d.Failed, d.Suppressed)
	}
	// Four grid steps of a round whole number each.
	m := 4 * math.Ceil(niceMax(float64(top)/4))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="Envelopes per day: submitted, released, failed, suppressed">`, chartW, chartH)
	axis(&b, m, true)
	plotW := float64(chartW - padL - padR)
	plotH := float64(chartH - padT - padB)
	slot := plotW / float64(len(days))
	bar := slot / 5
	for i, d := range days {
		x0 := float64(padL) + slot*float64(i) + bar/2
		for j, s := range []struct {
			cls string
			n   int
		}{{"submitted", d.Submitted}, {"released", d.Released}, {"failed", d.Failed}, {"suppressed", d.Suppressed}} {
			h := plotH * float64(s.n) / m
			fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d %s</title></rect>`,
				s.cls, x0+bar*float64(j), float64(chartH-padB)-h, bar-1, h, esc(d.Day.Format("2 Jan")), s.n, s.cls)
		}
		if (len(days)-1-i)%2 == 0 || len(days) <= 7 { // always today's

			fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>`,
				x0+bar*2, chartH-padB+16, esc(d.Day.Format("2 Jan")))
		}
	}
	legend(&b, chartH-8, []string{"submitted", "released", "failed", "suppressed"})
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// legend draws a key for each name; a name's first word is its series'
// class (its colour), the rest a note ("cost (right)").
func legend(b *strings.Builder, y int, names []string) {
	x := padL
	for _, n := range names {
		cls, _, _ := strings.Cut(n, " ")
		fmt.Fprintf(b, `<rect class="%s" x="%d" y="%d" width="10" height="10"/><text class="tick" x="%d" y="%d">%s</text>`,
			cls, x, y-9, x+14, y, esc(n))
		x += 24 + 8*len(n)
	}
}

// barChart draws labelled horizontal bars, one per count.
func barChart(counts []countKV, what string) template.HTML {
	if len(counts) == 0 {
		return template.HTML(`<p class="empty">None.</p>`)
	}
	const rowH, labelW, w = 24, 130, 420
	top := 0
	for _, c := range counts {
		top = max(top, c.Count)
	}
	var b strings.Builder
	h := rowH*len(counts) + 4
	fmt.Fprintf(&b, `<svg class="chart bars" viewBox="0 0 %d %d" role="img" aria-label="Envelopes by %s">`, w, h, esc(what))
	for i, c := range counts {
		y := i*rowH + 2
		bw := 0.0
		if top > 0 {
			bw = float64(w-labelW-40) * float64(c.Count) / float64(top)
		}
		fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" text-anchor="end">%s</text>`, labelW-8, y+15, esc(c.Key))
		fmt.Fprintf(&b, `<rect class="bar" x="%d" y="%d" width="%.1f" height="%d"><title>%s: %d</title></rect>`,
			labelW, y+2, bw, rowH-6, esc(c.Key), c.Count)
		fmt.Fprintf(&b, `<text class="count" x="%.1f" y="%d">%d</text>`, float64(labelW)+bw+6, y+15, c.Count)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// fatiguePoint is the numbers of one decision.
type fatiguePoint struct {
	At                  time.Time
	Volume, Cost, Value float64
}

// fatigueChart draws, over the time of the decisions, the recent volume a
// release would add to (left scale, mails), and its fatigue cost and
// expected value (right scale): a release happens when value exceeds cost.
// The two scales are apart because volume counts mails while value and
// cost are small fractions: on one scale they would be flat lines at the
// bottom.
func fatigueChart(points []fatiguePoint) template.HTML {
	if len(points) == 0 {
		return template.HTML(`<p class="empty">No decision with scoring numbers is stored for this recipient.</p>`)
	}
	topVolume, topScore := 0.0, 0.0
	for _, p := range points {
		topVolume = max(topVolume, p.Volume)
		topScore = max(topScore, p.Cost, p.Value)
	}
	mVolume, mScore := niceMax(topVolume), niceMax(topScore)
	t0, t1 := points[0].At, points[len(points)-1].At
	span := t1.Sub(t0)
	plotW := float64(chartW - padL - fatiguePadR)
	plotH := float64(chartH - padT - padB)
	x := func(t time.Time) float64 {
		if span <= 0 {
			return float64(padL) + plotW/2
		}
		return float64(padL) + plotW*float64(t.Sub(t0))/float64(span)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="Fatigue over time: volume on the left scale, cost and value on the right">`, chartW, chartH)
	for i := 0; i <= 4; i++ {
		y := float64(chartH-padB) - plotH*float64(i)/4
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padL, chartW-fatiguePadR, y, y)
		fmt.Fprintf(&b, `<text class="tick volume" x="%d" y="%.1f" text-anchor="end">%.2g</text>`, padL-6, y+4, mVolume*float64(i)/4)
		fmt.Fprintf(&b, `<text class="tick score" x="%d" y="%.1f">%.2g</text>`, chartW-fatiguePadR+6, y+4, mScore*float64(i)/4)
	}
	for _, s := range []struct {
		cls   string
		scale float64
		get   func(fatiguePoint) float64
	}{
		{"volume", mVolume, func(p fatiguePoint) float64 { return p.Volume }},
		{"cost", mScore, func(p fatiguePoint) float64 { return p.Cost }},
		{"value", mScore, func(p fatiguePoint) float64 { return p.Value }},
	} {
		y := func(v float64) float64 { return float64(chartH-padB) - plotH*v/s.scale }
		var pts []string
		for _, p := range points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.At), y(s.get(p))))
		}
		fmt.Fprintf(&b, `<polyline class="line %s" points="%s"/>`, s.cls, strings.Join(pts, " "))
		for _, p := range points {
			fmt.Fprintf(&b, `<circle class="dot %s" cx="%.1f" cy="%.1f" r="3"><title>%s %s %.3f</title></circle>`,
				s.cls, x(p.At), y(s.get(p)), esc(p.At.UTC().Format("2006-01-02 15:04")), s.cls, s.get(p))
		}
	}
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d">%s</text>`, padL, chartH-padB+16, esc(t0.UTC().Format("2 Jan 15:04")))
	if span > 0 {
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" text-anchor="end">%s</text>`, chartW-fatiguePadR, chartH-padB+16, esc(t1.UTC().Format("2 Jan 15:04")))
	}
	legend(&b, chartH-8, []string{"volume (left)", "cost (right)", "value (right)"})
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// fatiguePadR leaves room for the fatigue chart's right-hand scale.
const fatiguePadR = 44
