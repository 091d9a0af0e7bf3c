package sim

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The classic world is what rounds 1-5 measured: adding worlds must not
// change its population or stream (these are the counts of seed 1 before
// the structured world existed).
func TestClassicWorldUnchanged(t *testing.T) {
	pop, err := newPopulation(rand.New(rand.NewPCG(1, 1)), 300, MixDefault, WorldClassic)
	if err != nil {
		t.Fatal(err)
	}
	stream := newStream(rand.New(rand.NewPCG(1, 2)), pop, Start, 14)
	marketing, liked := 0, 0
	for i := range stream {
		if stream[i].marketing {
			marketing++
		}
	}
	for _, p := range pop {
		for _, x := range p.interest {
			if x >= 0.5 {
				liked++
			}
		}
	}
	if len(stream) != classicSeed1Messages || marketing != classicSeed1Marketing || liked != classicSeed1Liked {
		t.Errorf("classic seed 1: %d messages, %d marketing, %d liked topics; want %d, %d, %d",
			len(stream), marketing, liked, classicSeed1Messages, classicSeed1Marketing, classicSeed1Liked)
	}
}

// The structured world has the structure it promises.
func TestStructuredWorld(t *testing.T) {
	const n = 2000
	pop, err := newPopulation(rand.New(rand.NewPCG(3, 1)), n, MixDefault, WorldStructured)
	if err != nil {
		t.Fatal(err)
	}
	likes := make([]int, len(Topics))
	for _, p := range pop {
		for t, x := range p.interest {
			if x >= 0.5 {
				likes[t]++
			}
		}
	}
	// Popularity differs: the most popular topic is liked several times as
	// often as the least.
	if likes[0] < 4*likes[len(likes)-1] || likes[0] < n/3 {
		t.Errorf("likes per topic %v: want a steep popularity", likes)
	}
	stream := newStructuredStream(rand.New(rand.NewPCG(3, 2)), pop[:300], Start, 14, WorldStructured)
	var withTopics, marketing, targetedRel, blastedRel, targeted, blasted float64
	tools := map[int]bool{}
	for i := range stream {
		m := &stream[i]
		if !m.marketing {
			continue
		}
		marketing++
		c := m.campaign
		tools[c.tool] = true
		raw := string(m.bytes(pop[m.rcpt]))
		has := strings.Contains(raw, "X-Kadenz-Topics:")
		if has {
			withTopics++
		}
		if has != (c.tool == toolCRM || c.tool == toolShop) {
			t.Fatalf("tool %s: topics header %v", toolNames[c.tool], has)
		}
		if c.tool == toolList && (!strings.Contains(raw, "List-Id:") || strings.Contains(raw, "X-Kadenz-")) {
			t.Fatalf("list tool mail:\n%s", raw)
		}
		// The topic is in the words.
		found := false
		for _, w := range topicWords[c.topics[0]] {
			found = found || slices.Contains(c.body, w) || strings.Contains(c.subject, w)
		}
		if !found {
			t.Fatalf("campaign %s on %s has none of its words", c.id, Topics[c.topics[0]])
		}
		r := pop[m.rcpt].relevance(c.topics)
		if c.targeted {
			targeted++
			targetedRel += r
		} else {
			blasted++
			blastedRel += r
		}
	}
	if len(tools) != 4 {
		t.Errorf("tools used: %v", tools)
	}
	if share := withTopics / marketing; share < 0.35 || share > 0.65 {
		t.Errorf("%.0f%% of marketing mail declares topics, want about half", 100*share)
	}
	if targetedRel/targeted < 1.3*blastedRel/blasted {
		t.Errorf("targeted mail relevance %.3f vs blasted %.3f: targeting does not target", targetedRel/targeted, blastedRel/blasted)
	}
	if perDay := marketing / 300 / 14; perDay < 1.5 || perDay > 2.8 {
		t.Errorf("%.2f marketing mails per recipient a day, want about 2", perDay)
	}
	if err := World("nonsense").check(); err == nil {
		t.Error("an unknown world was accepted")
	}
}

// Counted at commit f9bfe76, before worlds existed.
const (
	classicSeed1Messages  = 18428
	classicSeed1Marketing = 17213
	classicSeed1Liked     = 648
)
