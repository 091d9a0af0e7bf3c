package sim

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"kadenz/config"
	"kadenz/governor"
	"kadenz/governor/intake"
	"kadenz/scoring"
	"kadenz/store"
)

// Through a real relay: a release counts toward its campaign's and its
// sender's quality counters and the population's, in the decision's
// transaction; a click on it counts once (with the open it implies), in
// the feedback's; a repeat counts nothing; and the counts survive closing
// and reopening the store.
func TestQualityCountersThroughTheRelay(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Governor.Mode = config.ModeEnforce
	cfg.Governor.QuietHours = config.QuietHours{Start: "00:00", End: "00:00"}
	clock := time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)
	relay, err := governor.New(governor.Options{Config: cfg, Now: func() time.Time { return clock },
		Store: store.Options{NoSync: true}, Random: pcgReader{rand.NewPCG(1, 3)}})
	if err != nil {
		t.Fatal(err)
	}
	db := relay.DB()
	defer func() { db.Close() }()
	msg := func(rcpt string) []byte {
		return fmt.Appendf(nil, "From: news@shop.example\r\nTo: %s\r\nSubject: New hiking boots\r\nMessage-ID: <m-%s>\r\n"+
			"List-Unsubscribe: <mailto:u@shop.example>\r\nX-Kadenz-Campaign: Spring\r\nX-Kadenz-Priority: 100\r\n\r\n"+
			"Boots for every trail, hiking boots and trail shoes.\r\n", rcpt, rcpt)
	}
	var envs []store.Envelope
	for _, rcpt := range []string{"ann@example.test", "bob@example.test"} {
		if _, err := relay.Submit(&intake.Submission{From: "bounces@shop.example", To: []string{rcpt}, Data: msg(rcpt),
			ClientAddr: netip.AddrFrom4([4]byte{127, 0, 0, 1}), Helo: "crm", Received: clock}); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(10 * time.Minute)
	if _, err := relay.DecideDue(clock); err != nil {
		t.Fatal(err)
	}
	if envs, err = db.Claim(clock, 10); err != nil || len(envs) != 2 {
		t.Fatalf("claimed %d (%v), want both released", len(envs), err)
	}
	for _, e := range envs {
		if e.To == "ann@example.test" {
			for range 2 { // a repeated click counts once
				if err := relay.RecordEvent(e.To, scoring.Event{Kind: scoring.EventClick, At: clock.Add(time.Hour), MessageID: e.ID}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	names := []string{"quality/c:spring/released", "quality/c:spring/opens", "quality/c:spring/clicks",
		"quality/f:bounces@shop.example/released", "quality/f:bounces@shop.example/clicks", "pop/all/released", "pop/all/clicks"}
	want := map[string]int64{"quality/c:spring/released": 2, "quality/c:spring/opens": 1, "quality/c:spring/clicks": 1,
		"quality/f:bounces@shop.example/released": 2, "quality/f:bounces@shop.example/clicks": 1, "pop/all/released": 2, "pop/all/clicks": 1}
	check := func(db store.Decisions) {
		t.Helper()
		got, err := db.Counters(names...)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if got[n] != want[n] {
				t.Errorf("%s = %d, want %d", n, got[n], want[n])
			}
		}
	}
	check(db)
	db.Close()
	reopened, err := store.Open(filepath.Join(dir, "kadenz.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	db = reopened
	check(db)
}
