package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// World names the shape of the synthetic list and its sender, apart from
// the mix (which sets only how much mail recipients tolerate).
//
// The classic world is the one every round up to 5 measured: eight topics
// equally popular and uncorrelated, one CRM that declares every message's
// topics, campaigns that differ only in a uniform quality, all sent to a
// random half of the list. Nothing in it is shared between recipients, so
// learning across them cannot help by construction (docs/simulation.md,
// round 3). The structured world adds what real lists have (issue 18):
//
//   - topic popularity that differs (Zipf-like: the most popular topic is
//     liked by about half the list, the least by under a tenth), with
//     pairs of topics liked together;
//   - topics expressed in the words of the subject and body (each topic
//     has its own words; a campaign's text mixes them with shared filler),
//     while only some sending tools declare them in X-Kadenz-Topics;
//   - four sending tools with different headers: a CRM that declares
//     everything, a shop plugin (topics, no priority), an ESP (campaign and
//     priority, no topics) and a list manager (List-Id, nothing of
//     Kadenz's);
//   - campaigns that differ in quality (log-normal: a few are much better
//     than the rest) and in targeting (some go to the readers the CRM
//     thinks are interested, the rest are blasted to a random half).
//
// The response model (response.go) is the same in every world.
type World string

// Worlds.
const (
	// WorldClassic is rounds 1-5's world (the default; unchanged).
	WorldClassic World = "classic"
	// WorldStructured is the world described above, with about 2 marketing
	// mails per recipient a day.
	WorldStructured World = "structured"
	// WorldHeavy is the structured world with a sender that starts twice
	// as many campaigns (about 4 mails per recipient a day): a population
	// variant no default was tuned on.
	WorldHeavy World = "heavy"
)

// Worlds lists the known worlds.
var Worlds = []World{WorldClassic, WorldStructured, WorldHeavy}

func (w World) check() error {
	switch w {
	case WorldClassic, WorldStructured, WorldHeavy, "":
		return nil
	}
	return fmt.Errorf("unknown world %q (want classic, structured or heavy)", w)
}

func (w World) structured() bool { return w == WorldStructured || w == WorldHeavy }

// topicWords are the words each topic is written in, in Topics' order.
var topicWords = [][]string{
	{"sneaker", "boots", "heel", "sandal", "loafer", "insole", "laces", "trainer", "slipper", "suede"},
	{"tent", "hiking", "trail", "camping", "backpack", "kayak", "fleece", "lantern", "summit", "compass"},
	{"laptop", "headphones", "charger", "tablet", "speaker", "camera", "monitor", "keyboard", "drone", "console"},
	{"novel", "author", "paperback", "thriller", "poetry", "memoir", "bestseller", "chapter", "fiction", "audiobook"},
	{"sofa", "lamp", "rug", "cushion", "kitchen", "curtain", "mattress", "shelf", "candle", "blanket"},
	{"serum", "lipstick", "mascara", "skincare", "perfume", "moisturiser", "shampoo", "nail", "fragrance", "cleanser"},
	{"flight", "hotel", "beach", "cruise", "luggage", "passport", "resort", "getaway", "island", "itinerary"},
	{"recipe", "coffee", "chocolate", "pasta", "cheese", "wine", "bakery", "spice", "snack", "organic"},
}

// topicPopularity is the chance that a recipient likes each topic, in
// Topics' order: 0.55/(rank+1)^0.9, from 55% down to 8.5%.
var topicPopularity = func() []float64 {
	p := make([]float64, len(Topics))
	for k := range p {
		p[k] = 0.55 / math.Pow(float64(k+1), 0.9)
	}
	return p
}()

// topicPartner pairs topics liked together: liking one doubles the chance
// of liking the other (shoes and outdoor, electronics and books, home and
// food, beauty and travel).
var topicPartner = []int{1, 0, 3, 2, 7, 6, 5, 4}

// structuredInterests draws one recipient's interests in the structured
// world: liked with the topic's popularity (doubled when its partner is
// liked), interest as in the classic world.
func structuredInterests(rng *rand.Rand, interest []float64) {
	liked := make([]bool, len(Topics))
	any := false
	for t := range interest {
		p := topicPopularity[t]
		if q := topicPartner[t]; q < t && liked[q] {
			p = min(1, 2*p)
		}
		liked[t] = rng.Float64() < p
		any = any || liked[t]
	}
	if !any {
		liked[pickWeighted(rng, topicPopularity)] = true
	}
	for t := range interest {
		if liked[t] {
			interest[t] = 0.5 + 0.5*rng.Float64()
		} else {
			interest[t] = 0.15 * rng.Float64()
		}
	}
}

func pickWeighted(rng *rand.Rand, w []float64) int {
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	r := rng.Float64() * sum
	for i, x := range w {
		if r < x {
			return i
		}
		r -= x
	}
	return len(w) - 1
}

// Sending tools of the structured world: which headers their mail has.
const (
	toolCRM  = iota // X-Kadenz-Campaign, -Topics, -Priority, -Timezone, -Expires
	toolShop        // X-Kadenz-Campaign, -Topics, -Timezone (no priority)
	toolESP         // X-Kadenz-Campaign, -Priority, -Timezone (no topics)
	toolList        // List-Id and Precedence: bulk; nothing of Kadenz's
)

var (
	toolShare = []float64{0.35, 0.15, 0.30, 0.20}
	toolNames = []string{"crm", "shop", "esp", "list"}
)

const (
	structuredCampaignsPerDay = 4
	targetedShare             = 0.4
	topicWordsPerBody         = 12
)

// newStructuredStream is newStream for the structured worlds.
func newStructuredStream(rng *rand.Rand, pop []*recipient, start time.Time, days int, w World) []message {
	perDay := structuredCampaignsPerDay
	if w == WorldHeavy {
		perDay *= 2
	}
	var camps []*campaign
	for day := range days {
		dayStart := start.AddDate(0, 0, day)
		n := 0
		for range 2 * perDay {
			if rng.Float64() < 0.5 {
				n++
			}
		}
		for range max(n, 1) {
			c := &campaign{
				id:       fmt.Sprintf("c%04d", len(camps)+1),
				quality:  min(max(math.Exp(0.5*rng.NormFloat64()), 0.2), 4),
				at:       dayStart.Add(7*time.Hour + time.Duration(rng.Int64N(int64(12*time.Hour)))),
				tool:     pickWeighted(rng, toolShare),
				targeted: rng.Float64() < targetedShare,
			}
			c.topics = []int{pickWeighted(rng, topicPopularity)}
			if rng.Float64() < 0.3 {
				if t := pickWeighted(rng, topicPopularity); t != c.topics[0] {
					c.topics = append(c.topics, t)
				}
			}
			// The sender's opinion: correlated with quality, noisy.
			c.priority = min(max(int(50+40*math.Log(c.quality)+20*rng.NormFloat64()), 0), 100)
			if c.tool == toolCRM && rng.Float64() < urgentShare {
				c.expires = c.at.Add(6*time.Hour + time.Duration(rng.Int64N(int64(24*time.Hour))))
				c.priority = min(c.priority+20, 100)
			}
			// 60 words: 12 of the campaign's topics' words among filler.
			c.body = make([]string, 60)
			for i := range c.body {
				c.body[i] = vocabulary[rng.IntN(len(vocabulary))]
			}
			for _, i := range rng.Perm(len(c.body))[:topicWordsPerBody] {
				tw := topicWords[c.topics[rng.IntN(len(c.topics))]]
				c.body[i] = tw[rng.IntN(len(tw))]
			}
			tw := topicWords[c.topics[0]]
			c.subject = tw[rng.IntN(len(tw))] + " " + strings.Join(c.body[:3], " ")
			camps = append(camps, c)
			if rng.Float64() < resendShare {
				r := *c
				r.resend = true
				r.at = c.at.Add(24*time.Hour + time.Duration(rng.Int64N(int64(24*time.Hour))))
				if !r.expires.IsZero() {
					r.expires = r.expires.Add(r.at.Sub(c.at))
				}
				r.subject = "Reminder: " + c.subject
				r.body = slices.Clone(c.body)
				r.body[rng.IntN(len(r.body))] = "again"
				camps = append(camps, &r)
			}
		}
	}
	end := start.AddDate(0, 0, days)
	var msgs []message
	audiences := map[string][]int{}
	for _, c := range camps {
		if c.at.After(end) {
			continue
		}
		aud, ok := audiences[c.id]
		if !ok {
			for i, p := range pop {
				share := audienceShare
				if c.targeted {
					// The CRM's idea of who is interested: right more
					// often than not, never sure.
					share = min(0.9, 0.1+0.8*p.relevance(c.topics))
				}
				if rng.Float64() < share {
					aud = append(aud, i)
				}
			}
			audiences[c.id] = aud
		}
		for k, i := range aud {
			at := c.at.Add(sendSpread * time.Duration(k) / time.Duration(max(len(aud), 1)))
			msgs = append(msgs, message{at: at, rcpt: i, campaign: c, marketing: true})
		}
	}
	return transactionalAndSort(rng, pop, start, end, msgs)
}
