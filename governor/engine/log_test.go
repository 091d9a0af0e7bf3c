package engine

import (
	"bytes"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"kadenz/config"
)

// At info level a round writes one line that says what it chose, not a
// line per envelope (issue 16: those were 4% of the decider's CPU); at
// debug level every envelope still gets its own line.
func TestRoundLogsOneLineAtInfoAndEachEnvelopeAtDebug(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			const n = 40 // campaignDB: "a" to all n, "b" to every third
			now := monday10
			cfg := config.Default()
			db := campaignDB(t, n, now)
			var out bytes.Buffer
			log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}))
			e, err := New(Options{Governor: &cfg.Governor, Store: db, Now: func() time.Time { return now }, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.DecideDue(now); err != nil {
				t.Fatal(err)
			}
			rounds := regexp.MustCompile(`msg="decided round" recipients=(\d+) envelopes=(\d+) release=(\d+) defer=(\d+) suppress=(\d+) review=(\d+)`).
				FindAllStringSubmatch(out.String(), -1)
			if len(rounds) != 1 {
				t.Fatalf("%d round lines, want 1:\n%s", len(rounds), out.String())
			}
			num := func(i int) int { v, _ := strconv.Atoi(rounds[0][i]); return v }
			wantEnvs := n + (n+2)/3
			if num(1) != n || num(2) != wantEnvs || num(3)+num(4)+num(5)+num(6) != wantEnvs {
				t.Errorf("round line %q: want %d recipients, %d envelopes, actions adding up", rounds[0][0], n, wantEnvs)
			}
			perEnvelope := strings.Count(out.String(), "msg=decided envelope=")
			want := 0
			if level == slog.LevelDebug {
				want = wantEnvs
			}
			if perEnvelope != want {
				t.Errorf("%d lines per envelope at %s, want %d", perEnvelope, level, want)
			}
		})
	}
}
