package scoring

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func BenchmarkExtractFeatures(b *testing.B) {
	small := readMail(b, "multipart-alternative.eml")
	// A typical CRM newsletter: ~15 KB of HTML with a plain alternative.
	var para strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&para, "<tr><td class=\"c%d\"><p>Product %d is back in stock in new colours, order today for free delivery.</p></td></tr>\r\n", i, i)
	}
	newsletter := []byte("Subject: Our March newsletter\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=zz\r\n\r\n" +
		"--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + htmlText(para.String()) + "\r\n" +
		"--zz\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><table>" + para.String() + "</table></body></html>\r\n--zz--\r\n")
	for _, bb := range []struct {
		name string
		raw  []byte
	}{{"small", small}, {"newsletter", newsletter}} {
		b.Run(bb.name, func(b *testing.B) {
			opts := ExtractOptions{Rules: []TopicRule{{Topic: "running", Keywords: []string{"running shoes"}}, {Topic: "delivery", Keywords: []string{"free delivery"}}}}
			b.SetBytes(int64(len(bb.raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ExtractFeatures(bb.raw, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecide decides for one recipient with 5 held messages and a
// 100-entry history, under caps, quiet hours and a send window.
func BenchmarkDecide(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	now := t0
	p := randomProfile(r, now, 100)
	for len(p.History) < 100 {
		p.RecordRelease(Release{At: now.Add(-time.Duration(len(p.History)) * 7 * time.Hour), Topics: []string{"wine"}, Fingerprint: r.Uint64()}, DefaultMemory())
	}
	p.History = p.History[len(p.History)-100:]
	held := randomHeld(r, now, 5)
	pop, pol := DefaultPopulation(), DefaultPolicy()
	in := Input{
		Now: now, Recipient: "ana@example.org", Profile: p, Location: time.FixedZone("CET", 3600), Held: held,
		Caps:  Caps{PerDay: 2, PerWeek: 5, PerMonth: 15, MinGap: 4 * time.Hour},
		Quiet: night, Window: officeHours{}, Population: &pop, Policy: &pol,
	}
	var pl Planner
	dst := make([]Decision, 0, len(held))
	b.ReportAllocs()
	for b.Loop() {
		dst = pl.Decide(dst[:0], &in)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
