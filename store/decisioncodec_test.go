package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A list stored with dictionary 1 can only be read with it: the text must
// never change (a better dictionary is a new first byte).
func TestDecisionDictIsFrozen(t *testing.T) {
	sum := sha256.Sum256([]byte(decisionDict1Text))
	if got := hex.EncodeToString(sum[:]); got != "c46af54498491b6b50c5bae1be658d4c8abbc48eca6f853a418306496716c030" {
		t.Fatalf("decisionDict1Text changed (sha256 %s): lists already stored with it would no longer read", got)
	}
	if decisionDict1 == nil {
		t.Fatal("s2 refused the dictionary")
	}
}

// campaignRecord is a release record as the engine writes it for a
// campaign whose subject, names and numbers the dictionary does not hold.
func campaignRecord(i int) []byte {
	return fmt.Appendf(nil, `{"decided_at":"2026-12-0%dT08:%02d:00Z","mode":"enforce","action":"release",`+
		`"at":"2026-12-0%dT18:00:00+01:00","reasons":["worth-it","best-time"],"numbers":{"Affinity":0.0%d41,`+
		`"PopulationRate":0.0513,"Priority":0.8,"Novelty":0.93,"Freshness":1,"TimeLift":1.2%d,"Delay":1,"Value":0.0%d7,`+
		`"Volume":1.5,"Sensitivity":1,"Comfort":2.75,"CustomerValue":1,"Cost":0.0061,"NearestBits":-1,"IgnoredStreak":%d,`+
		`"SinceLastRelease":86400000000000,"Draw":0,"Campaign":0.97,"CampaignNote":{"Read":412,"Opens":61,"Clicks":9,`+
		`"Stops":1,"Rate":0.021,"SenderRate":0.025,"Exploring":false}},"explanation":"“Gartenmöbel %d: Lounge-Sets `+
		`im Abverkauf” is released at Wed %d Dec 18:00 CET (recipient's time) because its expected engagement (%d.1%%) `+
		`outweighs the cost of one more mail (0.6%%) for someone who got 1.5 recent mails, and this recipient engages more `+
		`at that time (1.2%dx the average hour).\nvalue 0.0%d70 = affinity 0.0%d41 (population 0.0513) × priority 0.80 × `+
		`novelty 0.93 × freshness 1.00 × time 1.2%d × delay 1.00; cost 0.0061 at volume 1.50 (comfortable 2.75) × `+
		`sensitivity 1.00 × customer value 1.00; ignored streak %d\ncampaign garden-%d: 9 clicks, 61 opens, 1 stops of `+
		`412 releases read (clicks per release 2.2%% against the sender's 2.5%%): ×0.97\nreasons: worth-it,best-time"}`,
		i%9+1, i%60, i%9+1, i%10, i%10, i%10, i%4, i, i%28+1, i%10, i%10, i%10, i%10, i%10, i%4, i)
}

// What encodeDecisions stores reads back as the same JSON, whatever the
// list; a realistic record shrinks by more than half, and what would not
// shrink is stored as it is.
func TestDecisionsRoundTrip(t *testing.T) {
	one := append(append([]byte{'['}, campaignRecord(3)...), ']')
	two := append(append(append(append([]byte{'['}, campaignRecord(3)...), ','), campaignRecord(4)...), ']')
	for name, list := range map[string][]byte{
		"one record":  one,
		"two records": two,
		"empty list":  []byte("[]"),
		"other words": []byte(`[{"x":"` + strings.Repeat("zq", 300) + `"}]`),
	} {
		stored := encodeDecisions(list)
		back, err := decisionsJSON(stored)
		if err != nil || !bytes.Equal(back, list) {
			t.Errorf("%s: read back %q, %v", name, back, err)
		}
		t.Logf("%s: %d bytes stored as %d", name, len(list), len(stored))
	}
	if s := encodeDecisions(one); s[0] != decisionsDict1 || 2*len(s) > len(one) {
		t.Errorf("a %d-byte record is stored in %d bytes (form %#x): the dictionary no longer helps", len(one), len(s), s[0])
	}
	if s := encodeDecisions([]byte("[]")); !bytes.Equal(s, []byte("[]")) {
		t.Errorf("a list that cannot shrink is stored as %q", s)
	}
}

// A stored value in neither form, or damaged, is an error, never a panic
// or another list.
func TestDecisionsDamage(t *testing.T) {
	good := encodeDecisions(append(append([]byte{'['}, campaignRecord(1)...), ']'))
	for name, v := range map[string][]byte{
		"unknown form": append([]byte{0x02}, good[1:]...),
		"truncated":    good[:len(good)/2],
		"huge length":  {decisionsDict1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"form only":    {decisionsDict1},
	} {
		if js, err := decisionsJSON(v); err == nil {
			t.Errorf("%s: read as %q", name, js)
		}
	}
}

// FuzzDecisionsCodec: any stored bytes decode without a panic, and any
// list is stored so that it reads back the same.
func FuzzDecisionsCodec(f *testing.F) {
	f.Add(append(append([]byte{'['}, campaignRecord(2)...), ']'))
	f.Add(encodeDecisions(append(append([]byte{'['}, campaignRecord(2)...), ']')))
	f.Add([]byte("[]"))
	f.Add([]byte{decisionsDict1, 3, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		_, _ = decisionsJSON(v)
		list := append([]byte{'['}, v...)
		back, err := decisionsJSON(encodeDecisions(list))
		if err != nil || !bytes.Equal(back, list) {
			t.Fatalf("%q read back as %q (%v)", list, back, err)
		}
	})
}

// A database written before the records were compressed (schema 7) keeps
// its JSON lists: it opens as schema 8, they read as before, and a record
// appended to one is stored compressed, the old records with it.
func TestDecisionsWrittenAsJSONStillRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kadenz.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	envs, err := db.Accept(Message{ID: "m1", From: "news@shop.test"}, []byte("body"), []string{"ann@example.test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	id := envs[0].ID
	old := append(append([]byte{'['}, campaignRecord(1)...), ']')
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put([]byte("schema"), []byte("7")); err != nil {
			return err
		}
		return tx.Bucket(bucketDecisions).Put([]byte(id), old)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path, Options{}); err != nil {
		t.Fatalf("a schema-7 file: %v", err)
	}
	var schema string
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		schema = string(tx.Bucket(bucketMeta).Get([]byte("schema")))
		return nil
	})
	if schema != "8" {
		t.Errorf("a schema-7 file opens as schema %s", schema)
	}
	got, err := db.Decisions(id)
	if err != nil || !bytes.Equal(got, old) {
		t.Fatalf("old list read as %q, %v", got, err)
	}
	rec := campaignRecord(2)
	if err := db.ApplyDecisions(Decided{Recipient: "ann@example.test", Records: map[string][]byte{id: rec}}); err != nil {
		t.Fatal(err)
	}
	want := append(append(append(old[:len(old)-1:len(old)-1], ','), rec...), ']')
	if got, err = db.Decisions(id); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after an append: %q, %v\nwant %q", got, err, want)
	}
	var stored []byte
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		stored = bytes.Clone(tx.Bucket(bucketDecisions).Get([]byte(id)))
		return nil
	})
	if stored[0] != decisionsDict1 || len(stored) >= len(want)/2 {
		t.Errorf("the two records are stored in %d bytes (form %#x) for %d of JSON", len(stored), stored[0], len(want))
	}
}

// A damaged list is an error to whoever reads the records, but never fails
// a write that only changes its envelope: the tallies count it as no
// decision, as they count unreadable JSON.
func TestDamagedDecisionsDoNotBlockTheEnvelope(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "kadenz.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	envs, err := db.Accept(Message{ID: "m1", From: "news@shop.test"}, []byte("body"), []string{"ann@example.test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	id := envs[0].ID
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDecisions).Put([]byte(id), []byte{decisionsDict1, 0xff})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Decisions(id); err == nil {
		t.Error("a damaged list was read without an error")
	}
	e := envs[0]
	e.Due, e.Updated = now.Add(time.Hour), now
	if err := db.ApplyDecisions(Decided{Recipient: "ann@example.test", Envelopes: []Envelope{e}}); err != nil {
		t.Fatalf("changing the envelope of a damaged list: %v", err)
	}
}

// BenchmarkDecisionsCodec: storing and reading one record's list (a
// record whose subject, numbers and campaign the dictionary never saw),
// with the stored size as a metric.
func BenchmarkDecisionsCodec(b *testing.B) {
	list := append(append([]byte{'['}, campaignRecord(5)...), ']')
	stored := encodeDecisions(list)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			encodeDecisions(list)
		}
		b.ReportMetric(float64(len(stored)), "stored-bytes")
		b.ReportMetric(float64(len(list)), "json-bytes")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decisionsJSON(stored); err != nil {
				b.Fatal(err)
			}
		}
	})
}
