package engine

import (
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"kadenz/scoring"
)

// countRelease counts a release toward the counters popScopes names, the
// stop rate's and the campaign's and sender's quality, as it did when it
// built each name.
func TestCountReleaseCountsPopScopes(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 7))
	topics := []string{"boots", " Sale ", "", "boots", "GLOVES"}
	for i := range 2000 {
		rel := scoring.Release{At: time.Unix(rng.Int64N(4e9), 0), Sender: "News@Shop.test",
			Terms: scoring.TermBits{rng.Uint64() & rng.Uint64(), rng.Uint64() & rng.Uint64()}}
		for range rng.IntN(4) {
			rel.Topics = append(rel.Topics, topics[rng.IntN(len(topics))])
		}
		if rng.IntN(2) == 0 {
			rel.Quality = "c:winter"
		}
		want := map[string]int64{stopRateReleased: 1}
		for _, s := range popScopes(rel.Topics, rel.Terms) {
			want[popCounter(s, "released")]++
		}
		if rel.Quality != "" {
			for _, key := range []string{rel.Quality, senderQualityKey(rel.Sender)} {
				want[qualityCounter(key, "released")]++
				want[qualityCounter(key, "released-min")] += rel.At.Unix() / 60
			}
		}
		got := map[string]int64{}
		countRelease(got, &rel)
		if !maps.Equal(got, want) {
			t.Fatalf("case %d: %v\n got  %v\n want %v", i, rel, got, want)
		}
	}
}
