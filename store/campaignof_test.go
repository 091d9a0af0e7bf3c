package store

import (
	"encoding/json"
	"testing"
	"time"
)

// featuresLike is laid out as scoring.Features is (store does not import
// scoring): the keys CampaignOf reads first, then the rest.
type featuresLike struct {
	MessageID string    `json:"message_id,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	Campaign  string    `json:"campaign,omitempty"`
	FromList  bool      `json:"campaign_from_list,omitempty"`
	Topics    []string  `json:"topics,omitempty"`
	Priority  int       `json:"priority"`
	Expires   time.Time `json:"expires,omitzero"`
	Terms     []string  `json:"terms,omitempty"`
}

func marshalFeatures(t testing.TB, f featuresLike) []byte {
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCampaignOfReadsMarshalsLayoutWithoutDecoding(t *testing.T) {
	for _, f := range []featuresLike{
		{MessageID: "<a@b>", Subject: "Winter boots", Campaign: "winter", Terms: []string{"boots", "sale"}},
		{Subject: "only a subject", Priority: 2},
		{Campaign: "only-a-campaign"},
		{},
	} {
		b := marshalFeatures(t, f)
		c, s, ok := campaignPrefix(b)
		if !ok {
			t.Fatalf("%s: the short reader did not vouch for json.Marshal's own layout", b)
		}
		if c != f.Campaign || s != f.Subject {
			t.Errorf("%s: got campaign %q subject %q", b, c, s)
		}
	}
	// What the short reader must leave to encoding/json.
	for _, b := range []string{
		`{"subject":"a \"quoted\" word","campaign":"c"}`,    // an escape
		`{"campaign":"c","subject":"s"}`,                    // another order
		`{"subject":"s","Campaign":"c"}`,                    // a key in other case
		`{"subject":"s","campaign":"c","subject":"t"}`,      // a key again
		"{\"subject\":\"bad \xff byte\"}",                   // invalid UTF-8, mended by encoding/json
		`{"subject":"s","campaign":"c","ſubject":"long s"}`, // a fold outside ASCII
	} {
		if _, _, ok := campaignPrefix([]byte(b)); ok {
			t.Errorf("%s: the short reader vouched for what it cannot read", b)
		}
	}
}

func FuzzCampaignOf(f *testing.F) {
	f.Add(marshalFeatures(f, featuresLike{MessageID: "<m@x>", Subject: "Hi", Campaign: "c1", Terms: []string{"a"}}))
	f.Add([]byte(`{"subject":"s","campaign":"c","SUBJECT":"t"}`))
	f.Add([]byte(`{"campaign":"c","subject":"s"}`))
	f.Add([]byte("{\"subject\":\"\xff\"}"))
	f.Add([]byte(`{"message_id":"m","subject":"s\u00e9","campaign":"c"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return // the short reader reads a well-formed prefix; encoding/json nothing
		}
		c, s := CampaignOf(b)
		wc, ws := "", ""
		if len(b) > 0 {
			wc, ws = campaignOfJSON(b)
		}
		if c != wc || s != ws {
			t.Fatalf("%q: short reader %q/%q, encoding/json %q/%q", b, c, s, wc, ws)
		}
	})
}

func BenchmarkCampaignOf(b *testing.B) {
	terms := make([]string, 80)
	for i := range terms {
		terms[i] = "word" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	feat := marshalFeatures(b, featuresLike{MessageID: "<20261206.abc@shop.example>", Subject: "Our winter collection is here",
		Campaign: "winter-2026", Topics: []string{"boots"}, Priority: 3, Terms: terms})
	b.Run("short", func(b *testing.B) {
		for b.Loop() {
			CampaignOf(feat)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			campaignOfJSON(feat)
		}
	})
}
