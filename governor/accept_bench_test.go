package governor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor/intake"
	"kadenz/store"
)

// BenchmarkAccept measures intake's accept path in the process, without
// SMTP, as bench/relay.sh's messages take it (5 KB, one recipient, no
// Message-ID or Date): the ID, classification, features for marketing
// mail, the stored body, the message record's encoding and the log line.
// The store's write is left out (acceptOnly: the commit is the store's
// cost, measured by store's BenchmarkAcceptParallel), and the log goes to
// a text handler writing nowhere, so its formatting counts but not its
// system call. Compare builds with benchstat, interleaved:
//
//	go test -run '^$' -bench 'Accept/' -benchmem -count 10 ./governor/
func BenchmarkAccept(b *testing.B) {
	for _, kind := range []string{"transactional", "marketing"} {
		b.Run(kind, func(b *testing.B) {
			cfg := config.Default()
			cfg.Listen = "127.0.0.1:0"
			cfg.DataDir = b.TempDir()
			cfg.Hostname = "kadenz.test"
			cfg.Delivery.Upstream = "127.0.0.1:1" // never reached: nothing is started
			cfg.Delivery.TLS = config.TLSNone
			db, err := store.Open(DatabasePath(cfg.DataDir), store.Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			r, err := New(Options{Config: cfg, Backend: acceptOnly{db},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				r.Shutdown(ctx)
			})
			var msg strings.Builder
			msg.WriteString("From: <a@x.test>\r\nTo: <b@y.test>\r\nSubject: Winter sale\r\n")
			if kind == "marketing" {
				msg.WriteString("List-Unsubscribe: <mailto:unsubscribe@x.test>\r\nX-Kadenz-Campaign: bench\r\n")
			}
			msg.WriteString("\r\n")
			for i := 0; msg.Len() < 5000; i++ {
				fmt.Fprintf(&msg, "Lorem ipsum dolor sit amet, line %04d of the benchmark newsletter.\r\n", i)
			}
			data := []byte(msg.String())
			sub := &intake.Submission{From: "a@x.test", To: []string{"b@y.test"}, Data: data, Size: int64(len(data)),
				ClientAddr: netip.MustParseAddr("127.0.0.1"), Helo: "client.test", Received: time.Now()}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := r.accept(context.Background(), sub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// acceptOnly is a store whose AcceptWith does everything but write: it
// encodes the message record as the store would and makes the envelopes.
type acceptOnly struct{ store.Store }

func (s acceptOnly) AcceptWith(msg store.Message, body []byte, rcpts []string, now time.Time, prepare func(int, *store.Envelope)) ([]store.Envelope, error) {
	if _, err := json.Marshal(msg); err != nil {
		return nil, err
	}
	envs := make([]store.Envelope, len(rcpts))
	for i, to := range rcpts {
		envs[i] = store.Envelope{ID: fmt.Sprintf("%s-%d", msg.ID, i+1), MessageID: msg.ID, From: msg.From, To: to,
			State: store.StateQueued, Created: now, Updated: now, Due: now}
		prepare(i, &envs[i])
	}
	return envs, nil
}
