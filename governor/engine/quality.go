package engine

import (
	"fmt"
	"math/bits"
	"strings"
	"time"

	"kadenz/scoring"
	"kadenz/store"
)

// Campaign quality counts (scoring/campaign.go): per campaign (its quality
// key, scoring.QualityKey) and per envelope sender, named store counters
// that the engine adds to when it records a release (in the round's
// transaction) and feedback adds to when a release earns its first open or
// click or its recipient stops (in the feedback's transaction). They are
// durable and survive restarts; the planner gets them with each held
// message (scoring.Held.Campaign).
//
//	quality/<key>/released     releases
//	quality/<key>/released-min the sum of their release times, Unix minutes
//	quality/<key>/opens        releases opened
//	quality/<key>/clicks       releases clicked
//	quality/<key>/stops        unsubscribes and complaints
//
// <key> is "c:<campaign>" or "s:<subject hash>" for a campaign and
// "f:<sender>" for a sender.

const qualityPrefix = "quality/"

func qualityCounter(key, what string) string { return qualityPrefix + key + "/" + what }

func senderQualityKey(from string) string { return "f:" + strings.ToLower(from) }

var qualityFields = []string{"released", "released-min", "opens", "clicks", "stops"}

// releasedAllCounter and releasedTermCounters are the names of the
// population's release counters: popCounter("all", "released") and, by
// term bucket, popCounter(termScope(b), "released").
var (
	releasedAllCounter   = popCounter("all", "released")
	releasedTermCounters = func() []string {
		names := make([]string, 64*len(scoring.TermBits{}))
		for b := range names {
			names[b] = popCounter(termScope(b), "released")
		}
		return names
	}()
)

// countRelease adds one release to the quality and population counters.
//
// The population counters are popScopes' scopes, walked here without
// building the scopes' names: the names of the term buckets' counters are
// made once (releasedTermCounters), since every release of a campaign
// counts toward a dozen or more of them (issue 16).
func countRelease(counters map[string]int64, rel *scoring.Release) {
	counters[releasedAllCounter]++
	counters[stopRateReleased]++
	for _, t := range rel.Topics {
		if t = strings.ToLower(strings.TrimSpace(t)); t != "" {
			counters[popCounter("topic/"+t, "released")]++
		}
	}
	for j, w := range rel.Terms {
		for ; w != 0; w &= w - 1 {
			b := 64*j + bits.TrailingZeros64(w)
			if b < len(releasedTermCounters) {
				counters[releasedTermCounters[b]]++
			} else {
				counters[popCounter(termScope(b), "released")]++
			}
		}
	}
	if rel.Quality == "" {
		return
	}
	for _, key := range []string{rel.Quality, senderQualityKey(rel.Sender)} {
		counters[qualityCounter(key, "released")]++
		counters[qualityCounter(key, "released-min")] += rel.At.Unix() / 60
	}
}

// QualityFeedbackCounters are the counter changes for what one piece of
// feedback newly counted (scoring.Profile.RecordEventCounted); nil for
// nothing.
func QualityFeedbackCounters(e scoring.Engagement) map[string]int64 {
	if !e.Counted() {
		return nil
	}
	out := map[string]int64{}
	for _, s := range popScopes(e.Topics, e.Terms) {
		if e.Open {
			out[popCounter(s, "opens")]++
		}
		if e.Click {
			out[popCounter(s, "clicks")]++
		}
	}
	if e.Stop {
		out[stopRateStops]++
	}
	if e.OpenedAfter > 0 {
		out[delayCounters[scoring.OpenDelayBin(e.OpenedAfter)]]++
	}
	if e.Quality == "" {
		return out
	}
	for _, key := range []string{e.Quality, senderQualityKey(e.Sender)} {
		if e.Open {
			out[qualityCounter(key, "opens")]++
		}
		if e.Click {
			out[qualityCounter(key, "clicks")]++
		}
		if e.Stop {
			out[qualityCounter(key, "stops")]++
		}
	}
	return out
}

// campaignEvidence reads the quality counters of the held messages'
// campaigns and senders, plus what the round's earlier recipients added
// (counted), and hands each held message its evidence.
func (e *Engine) campaignEvidence(held []scoring.Held, envs []store.Envelope, counted map[string]int64) error {
	var names []string
	seen := map[string]bool{}
	keys := make([][2]string, len(held))
	for i := range held {
		q := scoring.QualityKey(held[i].Features)
		if q == "" {
			continue
		}
		keys[i] = [2]string{q, senderQualityKey(envs[i].From)}
		for _, k := range keys[i] {
			if seen[k] {
				continue
			}
			seen[k] = true
			for _, f := range qualityFields {
				names = append(names, qualityCounter(k, f))
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	vals, err := e.counters(names...)
	if err != nil {
		return fmt.Errorf("campaign quality counters: %w", err)
	}
	counts := func(key string) scoring.CampaignCounts {
		v := func(f string) int64 {
			n := qualityCounter(key, f)
			return vals[n] + counted[n]
		}
		c := scoring.CampaignCounts{Released: float64(v("released")), Opens: float64(v("opens")),
			Clicks: float64(v("clicks")), Stops: float64(v("stops"))}
		if n := v("released"); n > 0 {
			c.ReleasedAt = time.Unix(v("released-min")/n*60, 0).UTC()
		}
		return c
	}
	for i := range held {
		if keys[i][0] == "" {
			continue
		}
		held[i].Campaign = &scoring.CampaignEvidence{Key: keys[i][0], Campaign: counts(keys[i][0]), Sender: counts(keys[i][1])}
	}
	return nil
}
