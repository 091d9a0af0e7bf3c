package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// A file written before the tallies (schema version 4: no bucketTallies)
// gets them built once when it is opened, and they then equal the walk.
func TestTalliesBuiltForAnOlderFile(t *testing.T) {
	path := t.TempDir() + "/kadenz.db"
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	for i, class := range []string{"marketing", "transactional", "marketing"} {
		msg := Message{ID: "m" + string(rune('a'+i)), From: "shop@example.test", Received: at, Class: class}
		if _, err := db.AcceptWith(msg, []byte("Subject: x\r\n\r\nx\r\n"), []string{"ann@example.test", "bob@example.test"}, at.Add(time.Duration(i)*time.Hour),
			func(_ int, e *Envelope) { e.State, e.Due = StateHeld, at }); err != nil {
			t.Fatal(err)
		}
	}
	e, _ := db.Envelope("ma-1")
	e.State = StateSuppressed
	if err := db.ApplyDecisions(Decided{Recipient: e.To, Envelopes: []Envelope{e},
		Records: map[string][]byte{e.ID: []byte(`{"action":"suppress","reasons":["fatigue"]}`)}}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = reopenAsVersion(t, path, "4", bucketTallies)
	defer db.Close()
	since, until := at.Add(-time.Hour), at.Add(5*time.Hour)
	kept, err := db.Tallies(since, until)
	if err != nil {
		t.Fatal(err)
	}
	walked, err := WalkTallies(db, since, until)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(kept, walked) {
		t.Fatalf("built tallies differ from the walk:\nkept   %+v\nwalked %+v", kept, walked)
	}
	n := 0
	for _, e := range kept.Envelopes {
		n += e.N
	}
	if n != 6 || len(kept.Messages) != 3 || len(kept.Reasons) != 1 || kept.Reasons[0].Reason != "fatigue" {
		t.Errorf("built tallies: %d envelopes, %+v %+v; want 6 envelopes, 3 messages, one reason", n, kept.Messages, kept.Reasons)
	}
}

func TestTallyHours(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	for _, c := range []struct{ since, until, from, to time.Time }{
		{at, at.Add(time.Hour), at.Add(-30 * time.Minute), at.Add(90 * time.Minute)},
		{at.Add(-30 * time.Minute), at.Add(30 * time.Minute), at.Add(-30 * time.Minute), at.Add(30 * time.Minute)},
		{time.Time{}, at, time.Time{}, at.Add(30 * time.Minute)},
	} {
		from, to := TallyHours(c.since, c.until)
		if !from.Equal(c.from) || !to.Equal(c.to) {
			t.Errorf("TallyHours(%s, %s) = %s, %s; want %s, %s", c.since, c.until, from, to, c.from, c.to)
		}
	}
}

// BenchmarkDecideRoundTallies measures what keeping the tallies adds to
// the engine's write of decision rounds (ApplyDecisionsAll, 256 rounds
// of one held envelope and one record each), against the same writes with
// the tallies switched off, in the same run:
//
//	go test ./store -run - -bench DecideRoundTallies -count 5
func BenchmarkDecideRoundTallies(b *testing.B) {
	for _, keep := range []bool{true, false} {
		name := "tallies"
		if !keep {
			name = "without"
		}
		b.Run(name, func(b *testing.B) {
			db, err := Open(b.TempDir()+"/kadenz.db", Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if !keep {
				db.stopTallies()
			}
			at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
			const round = 256
			n := b.N * round
			msg := Message{ID: "news", From: "shop@example.test", Received: at, Class: "marketing"}
			rcpts := make([]string, n)
			for i := range rcpts {
				rcpts[i] = fmt.Sprintf("r%d@example.test", i)
			}
			envs, err := db.AcceptWith(msg, []byte("Subject: x\r\n\r\nx\r\n"), rcpts, at, func(_ int, e *Envelope) { e.State, e.Due = StateHeld, at })
			if err != nil {
				b.Fatal(err)
			}
			record := []byte(`{"decided_at":"2026-11-23T09:10:00Z","mode":"enforce","action":"release","reasons":["fits_budget","good_time"],"numbers":{"value":0.4,"cost":0.2},"explanation":"Released: it fits the recipient's budget."}`)
			b.ResetTimer()
			for i := range b.N {
				ds := make([]Decided, round)
				for j := range ds {
					e := envs[i*round+j]
					e.State, e.Due = StateQueued, at.Add(time.Hour)
					ds[j] = Decided{Recipient: e.To, Envelopes: []Envelope{e}, Records: map[string][]byte{e.ID: record}}
				}
				for _, err := range db.ApplyDecisionsAll(ds) {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/envelope")
		})
	}
}
