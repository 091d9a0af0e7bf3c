package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"kadenz/store"
	"kadenz/store/postgres"
	"kadenz/store/postgres/pgtest"
)

// The backends side by side, both durable: bbolt with fsync, PostgreSQL in
// a cluster of its own with fsync on (the test cluster runs without).
//
//	go test -run '^$' -bench Backends -benchtime 2000x ./store/postgres/
//
// Each op is one message accepted (16 sessions at once), one recipient's
// load-decide-apply (sequential, and 16 deciders at once), one round in
// an ApplyDecisionsAll batch of 256 (each recipient loaded alone, or 256
// at once with LoadRecipients), or one envelope claimed and settled (64
// per Settle, as the delivery dispatcher does).
// newsletter is the features of the benchmark's messages: one campaign's
// newsletter, as the engine records them, so that the campaign tallies
// (campaigns.go) count every write.
var newsletter = []byte(`{"campaign":"bench-sale","subject":"Bench sale"}`)

func BenchmarkBackends(b *testing.B) {
	cluster, err := pgtest.StartWith(pgtest.Options{Fsync: true})
	if err != nil {
		if errors.Is(err, pgtest.ErrNoPostgres) {
			b.Skip(err)
		}
		b.Fatal(err)
	}
	defer cluster.Stop()
	benchCluster = cluster
	backends := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"bbolt", func(b *testing.B) store.Store {
			db, err := store.Open(filepath.Join(b.TempDir(), "kadenz.db"), store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return db
		}},
		{"postgres", func(b *testing.B) store.Store {
			url, err := cluster.CreateDatabase()
			if err != nil {
				b.Fatal(err)
			}
			s, err := postgres.Open(context.Background(), url, postgres.Options{Node: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	body := make([]byte, 5000)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	held := func(_ int, e *store.Envelope) { e.State, e.Due = store.StateHeld, t0 }
	fill := func(b *testing.B, s store.Store, n int, prepare func(int, *store.Envelope)) {
		b.Helper()
		ds := make([]int, 16)
		errs := make(chan error, len(ds))
		for w := range ds {
			go func() {
				for i := w; i < n; i += len(ds) {
					id := fmt.Sprintf("f%07d", i)
					if _, err := s.AcceptWith(store.Message{ID: id, Features: newsletter}, body, []string{fmt.Sprintf("r%d@example.test", i)}, t0, prepare); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range ds {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
	}
	decide := func(s store.Store, i int) error {
		rcpt := fmt.Sprintf("r%d@example.test", i)
		r, err := s.LoadRecipient(rcpt)
		if err != nil {
			return err
		}
		if len(r.Held) != 1 {
			return fmt.Errorf("%s has %d held", rcpt, len(r.Held))
		}
		e := r.Held[0]
		e.State, e.Due = store.StateQueued, t0.Add(time.Hour)
		return s.ApplyDecisions(store.Decided{Recipient: rcpt, Envelopes: []store.Envelope{e}, Profile: []byte(`{"sent":1}`),
			Records: map[string][]byte{e.ID: []byte(`{"action":"release","score":0.5}`)}, Counters: map[string]int64{"campaign:x:released": 1}})
	}
	for _, be := range backends {
		b.Run(be.name+"/accept-16", func(b *testing.B) {
			s := be.open(b)
			defer s.Close()
			var next atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			cpu0 := serverCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					if _, err := s.Accept(store.Message{ID: fmt.Sprintf("m%07d", i), Features: newsletter}, body, []string{fmt.Sprintf("r%d@example.test", i)}, t0); err != nil {
						b.Error(err)
						return
					}
				}
			})
			report(b, s, cpu0)
		})
		b.Run(be.name+"/decide-1", func(b *testing.B) {
			s := be.open(b)
			defer s.Close()
			fill(b, s, b.N, held)
			b.ResetTimer()
			cpu0 := serverCPU()
			for i := range b.N {
				if err := decide(s, i); err != nil {
					b.Fatal(err)
				}
			}
			report(b, s, cpu0)
		})
		b.Run(be.name+"/decide-16", func(b *testing.B) {
			s := be.open(b)
			defer s.Close()
			fill(b, s, b.N, held)
			var next atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			cpu0 := serverCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := decide(s, int(next.Add(1)-1)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			report(b, s, cpu0)
		})
		b.Run(be.name+"/decide-all-256", func(b *testing.B) {
			s := be.open(b)
			defer s.Close()
			fill(b, s, b.N, held)
			b.ResetTimer()
			cpu0 := serverCPU()
			for start := 0; start < b.N; start += 256 {
				var ds []store.Decided
				for i := start; i < min(start+256, b.N); i++ {
					rcpt := fmt.Sprintf("r%d@example.test", i)
					r, err := s.LoadRecipient(rcpt)
					if err != nil || len(r.Held) != 1 {
						b.Fatalf("%s: %v %v", rcpt, r.Held, err)
					}
					e := r.Held[0]
					e.State, e.Due = store.StateQueued, t0.Add(time.Hour)
					ds = append(ds, store.Decided{Recipient: rcpt, Envelopes: []store.Envelope{e}, Profile: []byte(`{"sent":1}`),
						Records: map[string][]byte{e.ID: []byte(`{"action":"release"}`)}, Counters: map[string]int64{"campaign:x:released": 1}})
				}
				for _, err := range s.ApplyDecisionsAll(ds) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			report(b, s, cpu0)
		})
		b.Run(be.name+"/decide-all-256-loadmany", func(b *testing.B) {
			s := be.open(b)
			defer s.Close()
			fill(b, s, b.N, held)
			loader := s.(store.RecipientsLoader)
			b.ResetTimer()
			cpu0 := serverCPU()
			for start := 0; start < b.N; start += 256 {
				var rcpts []string
				for i := start; i < min(start+256, b.N); i++ {
					rcpts = append(rcpts, fmt.Sprintf("r%d@example.test", i))
				}
				rs, err := loader.LoadRecipients(rcpts)
				if err != nil {
					b.Fatal(err)
				}
				var ds []store.Decided
				for _, r := range rs {
					if len(r.Held) != 1 {
						b.Fatalf("%s: %v", r.Address, r.Held)
					}
					e := r.Held[0]
					e.State, e.Due = store.StateQueued, t0.Add(time.Hour)
					ds = append(ds, store.Decided{Recipient: r.Address, Envelopes: []store.Envelope{e}, Profile: []byte(`{"sent":1}`),
						Records: map[string][]byte{e.ID: []byte(`{"action":"release"}`)}, Counters: map[string]int64{"campaign:x:released": 1}})
				}
				for _, err := range s.ApplyDecisionsAll(ds) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			report(b, s, cpu0)
		})
		b.Run(be.name+"/claim-settle-64", func(b *testing.B) {
			s := be.open(b)
			defer s.Close()
			fill(b, s, b.N, func(int, *store.Envelope) {})
			b.ResetTimer()
			cpu0 := serverCPU()
			var outcomes []store.Envelope
			done := 0
			for done < b.N {
				claimed, err := s.Settle(outcomes, t0, 64)
				if err != nil {
					b.Fatal(err)
				}
				if len(claimed) == 0 && len(outcomes) == 0 {
					b.Fatalf("nothing to claim after %d of %d", done, b.N)
				}
				done += len(claimed)
				outcomes = outcomes[:0]
				for _, e := range claimed {
					e.State, e.Attempts = store.StateDelivered, 1
					outcomes = append(outcomes, e)
				}
			}
			if _, err := s.Settle(outcomes, t0, 0); err != nil {
				b.Fatal(err)
			}
			report(b, s, cpu0)
		})
	}
}

func report(b *testing.B, s store.Store, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	if pg, ok := s.(*postgres.Store); ok {
		// The database's own CPU time per op: on a machine shared with
		// other work, wall-clock rates move with that work, this far less.
		b.ReportMetric(float64((serverCPU()-cpu0).Microseconds())/float64(b.N), "server-µs/op")
		_, retries := pg.Retries()
		b.ReportMetric(float64(retries), "retries")
	}
}

// benchCluster is the cluster BenchmarkBackends runs.
var benchCluster *pgtest.Cluster

// serverCPU is the CPU time (user and system) the benchmark cluster's
// postmaster and its live children have used, read from /proc (Linux; 0
// elsewhere). Backends live as long as the pool's connections, so a
// difference over a benchmark counts its statements.
func serverCPU() time.Duration {
	if benchCluster == nil {
		return 0
	}
	pidFile, err := os.ReadFile(filepath.Join(benchCluster.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0
	}
	master, _, _ := bytes.Cut(pidFile, []byte("\n"))
	entries, _ := os.ReadDir("/proc")
	var ticks int64
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:]) // state ppid ... utime(12) stime(13)
		if len(f) < 13 || (string(f[1]) != string(master) && e.Name() != string(master)) {
			continue
		}
		u, _ := strconv.ParseInt(string(f[11]), 10, 64)
		s, _ := strconv.ParseInt(string(f[12]), 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ
}
