package report

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkClassifyCorpus reads and classifies every message of the corpus
// once per iteration (Parse, then Outcomes) and reports messages per
// second on one goroutine, i.e. per core.
func BenchmarkClassifyCorpus(b *testing.B) {
	rows := readManifest(b)
	seen := map[string]bool{}
	var msgs [][]byte
	var bytes int64
	for _, r := range rows {
		if seen[r.file] {
			continue
		}
		seen[r.file] = true
		raw, err := os.ReadFile(filepath.Join("testdata", "corpus", filepath.FromSlash(r.file)))
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, raw)
		bytes += int64(len(raw))
	}
	b.SetBytes(bytes)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		for _, raw := range msgs {
			rep, err := Parse(raw)
			if err != nil {
				b.Fatal(err)
			}
			if len(rep.Outcomes()) == 0 {
				b.Fatal("no outcome")
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}
