package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kadenz/store"
	"kadenz/store/postgres"
	"kadenz/store/postgres/pgtest"
)

// BenchmarkFootprint measures what one marketing message to one recipient
// costs on disk through its life (held, decided, delivered), on both
// backends, for docs/scale.md:
//
//	go test -run '^$' -bench Footprint -benchtime 5000x ./store/postgres/
//
// b.N is the number of recipients, each sent one message: words is 5,000
// bytes of words (see mailLikeBody), newsletter bench/campaign's realistic
// newsletter (store/testdata/newsletter.eml, 5,360 bytes: HTML and text in
// quoted-printable, with per-recipient links). PostgreSQL's sizes are
// after VACUUM, per table with its indexes and TOAST; bbolt's is the file.
func BenchmarkFootprint(b *testing.B) {
	news, err := os.ReadFile(filepath.Join("..", "testdata", "newsletter.eml"))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("body=words", func(b *testing.B) { footprint(b, mailLikeBody(5000)) })
	b.Run("body=newsletter", func(b *testing.B) { footprint(b, news) })
}

func footprint(b *testing.B, body []byte) {
	url := pgtest.URL(b)
	pg, err := postgres.Open(context.Background(), url, postgres.Options{Node: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer pg.Close()
	path := filepath.Join(b.TempDir(), "kadenz.db")
	bb, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer bb.Close()
	profile := []byte(`{"v":1,"tz":"Europe/Berlin","sent":[1764000000],"topics":{"shoes":0.6,"sale":0.3},"engagement":0.42,"last_open":1763900000}`)
	record := []byte(`{"at":"2026-11-23T10:05:00Z","action":"release","reasons":["relevant","budget"],"scores":{"relevance":0.61,"fatigue":0.2,"value":0.48},"slot":"2026-11-23T18:00:00Z","text":"Released for the evening slot: relevant to shoes, within the weekly budget."}`)
	features := []byte(`{"topics":["shoes","sale"],"priority":50,"campaign":"winter-sale"}`)
	for _, s := range []store.Store{pg, bb} {
		for start := 0; start < b.N; start += 256 {
			var ds []store.Decided
			for i := start; i < min(start+256, b.N); i++ {
				id := fmt.Sprintf("20261123T100000-%08d", i)
				rcpt := fmt.Sprintf("recipient%d@example.com", i)
				msg := store.Message{ID: id, From: "news@shop.example", Received: t0, Size: len(body), HeaderID: id + "@shop.example",
					Class: "marketing", ClassReason: "header", Features: features}
				envs, err := s.AcceptWith(msg, body, []string{rcpt}, t0, func(_ int, e *store.Envelope) { e.State, e.Due = store.StateHeld, t0.Add(5*time.Minute) })
				if err != nil {
					b.Fatal(err)
				}
				e := envs[0]
				e.State, e.Due, e.Updated = store.StateQueued, t0.Add(10*time.Minute), t0.Add(5*time.Minute)
				ds = append(ds, store.Decided{Recipient: rcpt, Envelopes: []store.Envelope{e}, Profile: profile,
					Records: map[string][]byte{e.ID: record}, Counters: map[string]int64{"campaign:winter-sale:released": 1}})
			}
			for _, err := range s.ApplyDecisionsAll(ds) {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		for {
			claimed, err := s.Claim(t0.Add(10*time.Minute), 256)
			if err != nil {
				b.Fatal(err)
			}
			if len(claimed) == 0 {
				break
			}
			for i := range claimed {
				claimed[i].State, claimed[i].Attempts, claimed[i].Updated = store.StateDelivered, 1, t0.Add(10*time.Minute)
			}
			if err := s.Update(claimed...); err != nil {
				b.Fatal(err)
			}
		}
	}
	n := float64(b.N)
	sizes := func() map[string]int64 {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "VACUUM ANALYZE"); err != nil {
			b.Fatal(err)
		}
		out := map[string]int64{}
		for _, t := range postgres.Tables {
			var size int64
			if err := conn.QueryRow(ctx, `SELECT pg_total_relation_size($1)`, t).Scan(&size); err != nil {
				b.Fatal(err)
			}
			out[t] = size
		}
		return out
	}
	before := sizes()
	var total int64
	for _, t := range postgres.Tables {
		total += before[t]
		if before[t] > 16384 {
			b.ReportMetric(float64(before[t])/n, t+"-B/rcpt")
		}
	}
	b.ReportMetric(float64(total)/n, "pg-total-B/rcpt")
	if fi, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(fi.Size())/n, "bbolt-file-B/rcpt")
	}
	if _, err := pg.PurgeBodies(t0.Add(24 * time.Hour)); err != nil {
		b.Fatal(err)
	}
	after := sizes()
	total = 0
	for _, t := range postgres.Tables {
		total += after[t]
	}
	b.ReportMetric(float64(total)/n, "pg-total-after-purge-B/rcpt")
}

// mailLikeBody is text that compresses about as well as a real message
// (words from a vocabulary of a few thousand, in lines): PostgreSQL
// compresses large values, so a repeated phrase would flatter it.
func mailLikeBody(size int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	vocab := make([]string, 3000)
	for i := range vocab {
		w := make([]byte, 2+r.IntN(8))
		for j := range w {
			w[j] = byte('a' + r.IntN(26))
		}
		vocab[i] = string(w)
	}
	var sb strings.Builder
	line := 0
	for sb.Len() < size {
		w := vocab[r.IntN(len(vocab))]
		sb.WriteString(w)
		line += len(w) + 1
		if line > 70 {
			sb.WriteString("\r\n")
			line = 0
		} else {
			sb.WriteByte(' ')
		}
	}
	return []byte(sb.String()[:size])
}
