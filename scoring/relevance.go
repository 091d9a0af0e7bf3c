package scoring

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Relevance is the value of one message to one recipient before timing:
// the engagement the model predicts, weighed by the sender's priority and
// by how new the message is to the recipient.
type Relevance struct {
	// Affinity is the predicted engagement score of a release, in [0, 1]:
	// the Beta-posterior mean for the message's topics, shrunk toward the
	// recipient's overall rate and that toward the population's.
	Affinity float64
	// Overall is the recipient's shrunk engagement rate over all topics;
	// PopulationRate is the population's.
	Overall        float64
	PopulationRate float64
	// TopicSends is the decayed number of releases on the message's topics
	// the estimate rests on (0: the population speaks for the recipient).
	TopicSends float64
	// Priority is the factor from the sender's priority.
	Priority float64
	// Novelty is the factor for near-duplicates and repeated campaigns:
	// 1 for something new, down to Policy.DuplicateValue.
	Novelty float64
	// NearestBits is the SimHash distance to the most similar recent
	// release, -1 if there is none to compare with.
	NearestBits int
	// RepeatCampaign is true when the campaign was released lately.
	RepeatCampaign bool
	// Value is Affinity × Priority × Novelty × Campaign.
	Value float64
	// Content names the term that moved a topic-less message's affinity
	// most (content.go); empty Term when none did.
	Content *ContentNote
	// Campaign is the factor from the campaign's engagement so far
	// (campaign.go); 1 without evidence.
	Campaign     float64
	CampaignNote *CampaignNote
}

// engagement turns counts into an engagement score with the policy's weights.
func (pol *Policy) engagement(c Counts) float64 {
	return pol.OpenWeight*c.Opens + pol.ClickWeight*c.Clicks + pol.ReplyWeight*c.Replies
}

// populationRate is the population's engagement score per release.
func (pop *Population) rate(pol *Policy) float64 {
	return pol.OpenWeight*pop.OpenRate + pol.ClickWeight*pop.ClickRate + pol.ReplyWeight*pop.ReplyRate
}

// betaMean is the posterior mean of a Beta-binomial rate with prior mean
// mu and prior strength k after s successes in n trials (Beta prior with
// a = k·mu, b = k·(1-mu)). s may be fractional: engagement is a weighted
// score, not a count of successes, which the conjugate update tolerates.
func betaMean(s, n, mu, k float64) float64 {
	if n+k <= 0 {
		return mu
	}
	return clamp((s+k*mu)/(n+k), 0, 1)
}

func clamp(x, lo, hi float64) float64 { return min(max(x, lo), hi) }

// ScoreRelevance rates message f for the recipient with profile p at now.
// pol should come from DefaultPolicy (with changes).
func ScoreRelevance(f *Features, p *Profile, pop *Population, pol Policy, now time.Time) Relevance {
	pol = pol.withDefaults()
	return scoreRelevance(f, p, pop, &pol, now, p.History[noveltyStart(p.History, now.Add(-pol.NoveltyWindow)):])
}

// scoreRelevance is ScoreRelevance with the releases novelty compares
// with (noveltyStart), which are the same for every message of a decision.
func scoreRelevance(f *Features, p *Profile, pop *Population, pol *Policy, now time.Time, recent []Release) Relevance {
	r := Relevance{NearestBits: -1, Campaign: 1}
	d := 1.0
	if now.After(p.DecayedAt) && !p.DecayedAt.IsZero() {
		d = decay(now.Sub(p.DecayedAt), pol.Memory.HalfLife)
	}
	// Two levels of shrinkage (a hierarchical Beta-binomial): the
	// recipient's overall rate toward the population's, then each topic's
	// rate toward the population's topic rate scaled by how much more or
	// less than average this recipient engages.
	r.PopulationRate = pop.rate(pol)
	r.Overall = betaMean(pol.engagement(p.All)*d, p.All.Sends*d, r.PopulationRate, pop.PriorSends)
	lift := 1.0
	if r.PopulationRate > 0 {
		lift = r.Overall / r.PopulationRate
	}
	if len(f.Topics) == 0 {
		// No declared topics: what the words say (content.go, issue 18).
		var note ContentNote
		r.Affinity, note, _ = contentAffinity(f, p, pop, pol, r.Overall, now)
		if note.Term != "" {
			r.Content = &note
		}
	} else {
		var sum float64
		for _, t := range f.Topics {
			c := p.Topics[t]
			tl, ok := pop.TopicLift[t]
			if !ok {
				tl = 1
			}
			mu := clamp(r.PopulationRate*tl*lift, 0, 0.95)
			sum += betaMean(pol.engagement(c)*d, c.Sends*d, mu, pop.TopicPrior)
			r.TopicSends += c.Sends * d
		}
		r.Affinity = sum / float64(len(f.Topics))
	}
	r.Priority = 1 + pol.PriorityWeight*float64(f.Priority-DefaultPriority)/DefaultPriority
	r.Novelty = 1
	r.novelty(f, recent, pol)
	r.Value = r.Affinity * r.Priority * r.Novelty
	return r
}

// sameCampaign is strings.EqualFold for two strings of the same length,
// with ASCII compared here: campaign names are short and mostly ASCII, and
// this runs for every held message against every recent release.
//
// Names of one sender's campaigns tend to differ at the end (spring-25,
// spring-26), so the last bytes are compared first, where the compiler
// inlines it: two ASCII bytes that differ other than in the bit that
// separates a letter's cases cannot fold to each other, and an ASCII byte
// is a whole rune, so the strings are not equal under folding.
func sameCampaign(a, b string) bool {
	if n := len(a); n > 0 {
		if x, y := a[n-1], b[n-1]; x|y < utf8.RuneSelf && x|0x20 != y|0x20 {
			return false
		}
	}
	return sameCampaignFold(a, b)
}

func sameCampaignFold(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x|y >= utf8.RuneSelf {
			// Both prefixes were ASCII, so i starts a rune in both.
			return strings.EqualFold(a[i:], b[i:])
		}
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// noveltyStart returns where in hist the releases within the novelty
// window (since and after) begin: after the latest release older than
// since, for a history kept in time order just its first recent one.
func noveltyStart(hist []Release, since time.Time) int {
	for i := len(hist) - 1; i >= 0; i-- {
		if hist[i].At.Before(since) {
			return i + 1
		}
	}
	return 0
}

// novelty compares the message with what the recipient got within the
// novelty window (recent, from noveltyStart). Near-duplicates (SimHash,
// Charikar 2002) lose most of their value: a second copy of the same offer
// tells the reader nothing.
func (r *Relevance) novelty(f *Features, recent []Release, pol *Policy) {
	// The nearest distance and whether the campaign repeats, in separate
	// loops with the message's side of each test taken out of them: this
	// runs for every held message over every recent release.
	switch {
	case f.MessageID != "":
		for i := range recent {
			h := &recent[i]
			dist := -1
			switch {
			case h.MessageID == f.MessageID:
				dist = 0
			case f.Fingerprint != 0 && h.Fingerprint != 0:
				dist = Hamming(f.Fingerprint, h.Fingerprint)
			}
			if dist >= 0 && (r.NearestBits < 0 || dist < r.NearestBits) {
				r.NearestBits = dist
			}
		}
	case f.Fingerprint != 0:
		for i := range recent {
			if fp := recent[i].Fingerprint; fp != 0 {
				if dist := Hamming(f.Fingerprint, fp); r.NearestBits < 0 || dist < r.NearestBits {
					r.NearestBits = dist
				}
			}
		}
	}
	// A list's posts share its List-Id but are distinct messages of one
	// stream, not repeats of one campaign (issue 18).
	if f.Campaign != "" && !f.CampaignFromList {
		for i := range recent {
			if c := recent[i].Campaign; len(c) == len(f.Campaign) && sameCampaign(c, f.Campaign) {
				r.RepeatCampaign = true
				break
			}
		}
	}
	if r.NearestBits >= 0 {
		switch {
		case r.NearestBits <= pol.DuplicateBits:
			r.Novelty = pol.DuplicateValue
		case r.NearestBits < pol.DistinctBits:
			span := float64(pol.DistinctBits - pol.DuplicateBits)
			x := float64(r.NearestBits-pol.DuplicateBits) / span
			r.Novelty = pol.DuplicateValue + (1-pol.DuplicateValue)*x
		}
	}
	if r.RepeatCampaign {
		r.Novelty = min(r.Novelty, pol.RepeatCampaignValue)
	}
}
