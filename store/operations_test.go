package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCountByState measures what one /metrics scrape costs when the
// queue-depth cache is cold: a walk over every envelope.
func BenchmarkCountByState(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "k.db"), Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
			body := make([]byte, 2000)
			rcpts := make([]string, 10)
			for i := range n / 10 {
				for j := range rcpts {
					rcpts[j] = fmt.Sprintf("r%d-%d@example.test", i, j)
				}
				if _, err := db.Accept(Message{ID: fmt.Sprintf("m%08d", i), From: "a@x.test"}, body, rcpts, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := db.CountByState(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
