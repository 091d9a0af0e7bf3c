package scoring

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// What json.Marshal writes of any Features is read directly (never handed
// to encoding/json) and reads back as encoding/json reads it.
func TestDecodeFeaturesReadsWhatMarshalWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 4))
	words := []string{"", "boots", "Winter sale", "é ü 日本", "zone/Berlin", "x@y.test", "", "boots", // plain, and
		"tab\tand \"quote\"", "back\\slash", "a<b>&c", "line\u2028sep"} // what Marshal escapes
	pick := func() string { return words[rng.IntN(len(words))] }
	list := func() []string {
		var out []string
		for range rng.IntN(4) {
			out = append(out, pick())
		}
		return out
	}
	direct := 0
	for i := range 5000 {
		f := Features{
			MessageID: pick(), Subject: pick(), Campaign: pick(), CampaignFromList: rng.IntN(2) == 0,
			Topics: list(), TopicsFromRules: rng.IntN(2) == 0, Priority: rng.IntN(201) - 100,
			Timezone: pick(), Value: rng.IntN(101), HasValue: rng.IntN(2) == 0,
			Fingerprint: rng.Uint64() >> rng.IntN(64), Words: rng.IntN(3000), Terms: list(), Problems: list(),
		}
		if rng.IntN(2) == 0 {
			f.Expires = time.Date(2026, 12, 6, 10, rng.IntN(60), 0, rng.IntN(1e9), time.FixedZone("", 3600*(rng.IntN(5)-2)))
		}
		if rng.IntN(2) == 0 {
			f.NotBefore = time.Unix(rng.Int64N(4e9), 0).UTC()
		}
		raw, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		var want, got, fast Features
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if err := DecodeFeatures(raw, &got); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d, %s:\n got  %+v\n want %+v", i, raw, got, want)
		}
		switch read := featuresReader(raw).read(&fast); {
		case read:
			direct++
		case !hasEscape(raw):
			t.Fatalf("case %d: %s went to encoding/json without an escape in it", i, raw)
		}
	}
	if direct < 20 {
		t.Errorf("only %d of 5000 read directly", direct)
	}
	t.Logf("%d of 5000 read directly (the others have an escape)", direct)
}

// hasEscape reports whether a JSON text has a backslash (an escape the
// direct reading leaves to encoding/json).
func hasEscape(raw []byte) bool {
	for _, c := range raw {
		if c == '\\' {
			return true
		}
	}
	return false
}

// The features stored by earlier releases, and odd but valid forms, read
// as encoding/json reads them.
func TestDecodeFeaturesOddForms(t *testing.T) {
	for _, raw := range []string{
		`{}`, `{"priority":50}`, `{"subject":"a","subject":"b","priority":1}`, `{"Subject":"x","priority":1}`,
		`{"priority":1,"subject":"x"}`, `{ "priority": 1 }`, `{"topics":[],"priority":0}`, `{"topics":null,"priority":0}`,
		`{"unknown":1,"priority":2}`, `{"priority":-0}`, `{"fingerprint":18446744073709551615,"priority":0}`,
		`{"expires":"2026-12-06T10:00:00+01:00","priority":0}`, `{"terms":["a","b"],"problems":["x"]}`,
	} {
		var want, got Features
		werr := json.Unmarshal([]byte(raw), &want)
		gerr := DecodeFeatures([]byte(raw), &got)
		if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v (%v), want %+v (%v)", raw, got, gerr, want, werr)
		}
	}
}

// FuzzDecodeFeatures: on any bytes, whatever the direct reading accepts,
// encoding/json accepts and decodes to the same; DecodeFeatures never
// disagrees with encoding/json.
func FuzzDecodeFeatures(f *testing.F) {
	f.Add([]byte(`{"subject":"Winter sale","campaign":"a","topics":["boots"],"priority":60,"expires":"2026-12-06T10:00:00Z","fingerprint":12,"words":40,"terms":["winter","boots"]}`))
	f.Add([]byte(`{"message_id":"x@y","priority":0,"value":3,"has_value":true}`))
	f.Add([]byte(`{"priority":01}`))
	f.Add([]byte(`{"topics":["a",],"priority":1}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var want, got, fast Features
		werr := json.Unmarshal(raw, &want)
		if featuresReader(raw).read(&fast) {
			if werr != nil {
				t.Fatalf("%q read directly, but encoding/json says %v", raw, werr)
			}
			if !reflect.DeepEqual(fast, want) {
				t.Fatalf("%q:\n direct %+v\n json   %+v", raw, fast, want)
			}
		}
		gerr := DecodeFeatures(raw, &got)
		if (gerr == nil) != (werr == nil) || werr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %+v (%v), want %+v (%v)", raw, got, gerr, want, werr)
		}
	})
}

// A newsletter's features, read per recipient when a campaign is decided:
// directly, and by encoding/json as before.
func BenchmarkDecodeFeatures(b *testing.B) {
	f := Features{MessageID: "20261206.abc@news.shop.test", Subject: "Winter boots: 20% off this weekend",
		Campaign: "winter-2026", Topics: []string{"boots", "sale"}, Priority: 60,
		Expires: time.Date(2026, 12, 13, 0, 0, 0, 0, time.UTC), Fingerprint: 0x1234_5678_9abc_def0, Words: 420}
	for i := range MaxContentTerms {
		f.Terms = append(f.Terms, "term"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	raw, err := json.Marshal(f)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var g Features
			if err := DecodeFeatures(raw, &g); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var g Features
			if err := json.Unmarshal(raw, &g); err != nil {
				b.Fatal(err)
			}
		}
	})
}
