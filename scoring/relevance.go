package scoring

import (
	"strings"
	"time"
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
	return scoreRelevance(f, p, pop, &pol, now)
}

func scoreRelevance(f *Features, p *Profile, pop *Population, pol *Policy, now time.Time) Relevance {
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
	r.novelty(f, p, pol, now)
	r.Value = r.Affinity * r.Priority * r.Novelty
	return r
}

// novelty compares the message with what the recipient got within the
// novelty window. Near-duplicates (SimHash, Charikar 2002) lose most of
// their value: a second copy of the same offer tells the reader nothing.
func (r *Relevance) novelty(f *Features, p *Profile, pol *Policy, now time.Time) {
	since := now.Add(-pol.NoveltyWindow)
	for i := len(p.History) - 1; i >= 0; i-- {
		h := &p.History[i]
		if h.At.Before(since) {
			break
		}
		dist := -1
		switch {
		case f.MessageID != "" && h.MessageID == f.MessageID:
			dist = 0
		case f.Fingerprint != 0 && h.Fingerprint != 0:
			dist = Hamming(f.Fingerprint, h.Fingerprint)
		}
		if dist >= 0 && (r.NearestBits < 0 || dist < r.NearestBits) {
			r.NearestBits = dist
		}
		// A list's posts share its List-Id but are distinct messages of one
		// stream, not repeats of one campaign (issue 18).
		if f.Campaign != "" && !f.CampaignFromList && len(h.Campaign) == len(f.Campaign) && strings.EqualFold(h.Campaign, f.Campaign) {
			r.RepeatCampaign = true
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
