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
// 100-entry history, under caps, quiet hours and a send window. The
// profile is the one the engine would load: it carries the summary its
// previous decision, a day earlier, left in it (comfortMemo), and every
// iteration starts from that summary again, so each one resumes over the
// releases of the last day as the engine's next decision would.
func BenchmarkDecide(b *testing.B) {
	in := benchDecideInput()
	var pl Planner
	dst := make([]Decision, 0, len(in.Held))
	// The previous decision, a day earlier.
	prev := in
	prev.Now = in.Now.Add(-24 * time.Hour)
	dst = pl.Decide(dst[:0], &prev)
	memo := in.Profile.comfort
	if memo.n == 0 {
		b.Fatal("no summary left by the previous decision")
	}
	b.ReportAllocs()
	for b.Loop() {
		in.Profile.comfort = memo
		dst = pl.Decide(dst[:0], &in)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkDecideCold is BenchmarkDecide with a profile that carries no
// summary (one stored as JSON by an earlier release): the whole history is
// walked, as every decision did before.
func BenchmarkDecideCold(b *testing.B) {
	in := benchDecideInput()
	var pl Planner
	dst := make([]Decision, 0, len(in.Held))
	b.ReportAllocs()
	for b.Loop() {
		in.Profile.comfort = comfortMemo{}
		dst = pl.Decide(dst[:0], &in)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

func benchDecideInput() Input {
	r := rand.New(rand.NewPCG(1, 1))
	now := t0
	p := randomProfile(r, now, 100)
	for len(p.History) < 100 {
		p.RecordRelease(Release{At: now.Add(-time.Duration(len(p.History)) * 7 * time.Hour), Topics: []string{"wine"}, Fingerprint: r.Uint64()}, DefaultMemory())
	}
	p.History = p.History[len(p.History)-100:]
	held := randomHeld(r, now, 5)
	pop, pol := DefaultPopulation(), DefaultPolicy()
	return Input{
		Now: now, Recipient: "ana@example.org", Profile: p, Location: time.FixedZone("CET", 3600), Held: held,
		Caps:  Caps{PerDay: 2, PerWeek: 5, PerMonth: 15, MinGap: 4 * time.Hour},
		Quiet: night, Window: officeHours{}, Population: &pop, Policy: &pol,
	}
}
