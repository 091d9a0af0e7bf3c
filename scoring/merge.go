package scoring

import (
	"maps"
	"slices"
	"time"
)

// Merge folds other into p: two profiles of one recipient, kept apart
// under two spellings of their address (Ann@example.com, ann@example.com)
// before addresses were compared in lower case.
//
//   - Decayed counters are brought to the later of the two DecayedAt times
//     and added; so are the content counts, to the later of their own.
//   - History is joined in time order; a release in both (same MessageID)
//     is kept once, with the engagement of either. The oldest beyond
//     m.MaxHistory are dropped.
//   - Hard signals (unsubscribed, complained, hard bounce) keep the earlier
//     time: either stops marketing mail. Away and pause keep the later end.
//   - Soft bounces: the later-started count. Timezone and value: p's, else
//     other's. Shadow mode's held copies: both, each once.
func (p *Profile) Merge(other *Profile, m Memory) {
	m = m.withDefaults()
	if at := later(p.DecayedAt, other.DecayedAt); !at.IsZero() {
		o := *other
		o.Topics = maps.Clone(other.Topics) // advance scales them in place
		p.advance(at, m)
		o.advance(at, m)
		p.All.add(o.All)
		for k, c := range o.Topics {
			if p.Topics == nil {
				p.Topics = map[string]Counts{}
			}
			sum := p.Topics[k]
			sum.add(c)
			p.Topics[k] = sum
		}
		for i := range p.Hours {
			p.Hours[i] += o.Hours[i]
		}
		p.mergeContent(other.Content, m) // issue 18: content relevance
	}

	byID := map[string]int{}
	for i, r := range p.History {
		if r.MessageID != "" {
			byID[r.MessageID] = i
		}
	}
	for _, r := range other.History {
		if i, ok := byID[r.MessageID]; ok && r.MessageID != "" {
			h := &p.History[i]
			h.Opened, h.Clicked, h.Replied = h.Opened || r.Opened, h.Clicked || r.Clicked, h.Replied || r.Replied
			if r.OpenedAfter > 0 && (h.OpenedAfter == 0 || r.OpenedAfter < h.OpenedAfter) {
				h.OpenedAfter = r.OpenedAfter // the first open is the earlier
			}
			continue
		}
		p.History = append(p.History, r)
	}
	slices.SortStableFunc(p.History, func(a, b Release) int { return a.At.Compare(b.At) })
	if over := len(p.History) - m.MaxHistory; over > 0 {
		p.History = append(p.History[:0], p.History[over:]...)
	}

	p.Unsubscribed = earlier(p.Unsubscribed, other.Unsubscribed)
	p.Complained = earlier(p.Complained, other.Complained)
	p.HardBounced = earlier(p.HardBounced, other.HardBounced)
	p.AwayUntil = later(p.AwayUntil, other.AwayUntil)
	if other.PausedUntil.After(p.PausedUntil) {
		p.PausedUntil, p.PauseReason = other.PausedUntil, other.PauseReason
	}
	if other.SoftBounceSince.After(p.SoftBounceSince) {
		p.SoftBounces, p.SoftBounceSince = other.SoftBounces, other.SoftBounceSince
	}
	if other.LastBounce != nil && (p.LastBounce == nil || other.LastBounce.At.After(p.LastBounce.At)) {
		p.LastBounce = other.LastBounce
	}
	for _, c := range other.ShadowHeld { // shadow mode's copies: either's, once
		if !slices.ContainsFunc(p.ShadowHeld, func(d ShadowHeld) bool { return d.ID == c.ID }) {
			p.AddShadowHeld(c)
		}
	}
	if p.Timezone == "" {
		p.Timezone = other.Timezone
	}
	if !p.HasValue && other.HasValue {
		p.Value, p.HasValue = other.Value, true
	}
}

func (c *Counts) add(o Counts) {
	c.Sends += o.Sends
	c.Opens += o.Opens
	c.Clicks += o.Clicks
	c.Replies += o.Replies
}

// earlier is the earlier of two times, ignoring zero ones.
func earlier(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// later is the later of two times.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
