package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"kadenz/config"
	"kadenz/scoring"
	"kadenz/store"
)

// The administrator's rules beyond global caps and quiet hours: send
// windows, per-campaign and per-sender rules (caps, exemption, review).
//
// Send windows are given to scoring as a constraint, like quiet hours: the
// planner only picks open times. Rule caps and the review hold are applied
// by the engine to the planner's decisions, since they depend on counts
// the store keeps (see decide in engine.go).

// sendWindows is scoring.SendWindow over cron expressions: a time is
// allowed when one of them matches its minute, read in the time's own
// zone (the planner passes recipient-local times).
type sendWindows struct {
	schedules []cron.Schedule
}

func newSendWindows(specs []string) (*sendWindows, error) {
	w := &sendWindows{}
	for _, s := range specs {
		sched, err := config.ParseSendWindow(s)
		if err != nil {
			return nil, fmt.Errorf("governor.send_windows: %w", err)
		}
		w.schedules = append(w.schedules, sched)
	}
	return w, nil
}

// Allows reports whether t's minute is in a window.
func (w *sendWindows) Allows(t time.Time) bool {
	m := t.Truncate(time.Minute)
	for _, s := range w.schedules {
		// Next returns the first matching minute after its argument.
		if s.Next(m.Add(-time.Second)).Equal(m) {
			return true
		}
	}
	return false
}

// next returns the earliest window start after t (t itself if allowed),
// or the zero time if no window ever opens.
func (w *sendWindows) next(t time.Time) time.Time {
	if w.Allows(t) {
		return t
	}
	var best time.Time
	for _, s := range w.schedules {
		if n := s.Next(t); !n.IsZero() && (best.IsZero() || n.Before(best)) {
			best = n
		}
	}
	return best
}

// ruleFor returns the first campaign rule matching a message, and its
// position, or nil.
func ruleFor(g *config.Governor, campaign, sender string) (*config.CampaignRule, int) {
	for i := range g.CampaignRules {
		if g.CampaignRules[i].Matches(campaign, sender) {
			return &g.CampaignRules[i], i
		}
	}
	return nil, -1
}

// ruleCapFree returns the earliest time at or after at when one more
// release matching rule fits the rule's caps, given the recipient's
// history (planned releases included). The check is conservative: a
// release at u counts against a limit of n per w when n matching
// releases lie less than w before or after it.
func ruleCapFree(rule *config.CampaignRule, hist []scoring.Release, at time.Time) time.Time {
	caps := rule.Caps
	if caps == (config.Caps{}) {
		return at
	}
	var times []time.Time
	for _, h := range hist {
		if rule.Matches(h.Campaign, h.Sender) {
			times = append(times, h.At)
		}
	}
	limits := []struct {
		n int
		w time.Duration
	}{{caps.PerDay, 24 * time.Hour}, {caps.PerWeek, 7 * 24 * time.Hour}, {caps.PerMonth, 30 * 24 * time.Hour}}
	fits := func(u time.Time) bool {
		for _, t := range times {
			if caps.MinGap > 0 && absDuration(u.Sub(t)) < caps.MinGap {
				return false
			}
		}
		for _, l := range limits {
			if l.n <= 0 {
				continue
			}
			k := 0
			for _, t := range times {
				if absDuration(u.Sub(t)) < l.w {
					k++
				}
			}
			if k >= l.n {
				return false
			}
		}
		return true
	}
	// The earliest fitting time is at, or the moment some release stops
	// counting against a limit.
	cands := []time.Time{at}
	for _, t := range times {
		for _, d := range []time.Duration{caps.MinGap, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour} {
			if c := t.Add(d); d > 0 && c.After(at) {
				cands = append(cands, c)
			}
		}
	}
	slices.SortFunc(cands, func(a, b time.Time) int { return a.Compare(b) })
	for _, c := range cands {
		if fits(c) {
			return c
		}
	}
	return cands[len(cands)-1]
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Counter names for the review hold: decisions that reached an outcome
// (release or suppress) per campaign, and how many were suppressions.
func decidedCounter(campaign string) string {
	return "campaign-decided/" + strings.ToLower(campaign)
}

func suppressedCounter(campaign string) string {
	return "campaign-suppressed/" + strings.ToLower(campaign)
}

// reviewStats are a campaign's counted outcomes so far.
type reviewStats struct{ decided, suppressed int64 }

// campaignStats loads the review counters of the campaigns among held
// mail that a review rule covers.
func (e *Engine) campaignStats(ru *Rules, held []store.Envelope, features map[string]*scoring.Features, counted map[string]int64) (map[string]*reviewStats, error) {
	var names []string
	for _, env := range held {
		f := features[env.MessageID]
		if f.Campaign == "" {
			continue
		}
		if rule, _ := ruleFor(&ru.cfg, f.Campaign, env.From); rule == nil || rule.Review.SuppressionShare <= 0 {
			continue
		}
		names = append(names, decidedCounter(f.Campaign), suppressedCounter(f.Campaign))
	}
	stats := map[string]*reviewStats{}
	if len(names) == 0 {
		return stats, nil
	}
	vals, err := e.counters(names...)
	if err != nil {
		return nil, fmt.Errorf("review counters: %w", err)
	}
	for _, name := range names {
		if v, ok := counted[name]; ok {
			vals[name] += v // decided earlier in this round, not yet written
		}
	}
	for _, env := range held {
		c := strings.ToLower(features[env.MessageID].Campaign)
		if _, ok := vals[decidedCounter(c)]; ok && stats[c] == nil {
			stats[c] = &reviewStats{decided: vals[decidedCounter(c)], suppressed: vals[suppressedCounter(c)]}
		}
	}
	return stats, nil
}

// applyRules applies send windows, the campaign rule's caps and the review
// hold to one of the planner's decisions, in enforce terms (shadow mode
// turns the result into "would"). It updates the record, the action and
// time, counts the outcome for the review hold, and reports whether the
// release goes to review instead.
func (e *Engine) applyRules(ru *Rules, rec *Record, action *scoring.Action, at *time.Time, now time.Time, env store.Envelope,
	f *scoring.Features, profile *scoring.Profile, stats map[string]*reviewStats, counters map[string]int64) bool {
	rule, n := ruleFor(&ru.cfg, f.Campaign, env.From)
	if *action == scoring.ActionRelease && ru.window != nil {
		t := maxTime(*at, now)
		if next := ru.window.next(t.In(e.Location(profile.Timezone))); next.IsZero() {
			*action, *at = scoring.ActionDefer, now.Add(ru.policy.Horizon)
			rec.Reasons = append(rec.Reasons, ReasonSendWindow)
			rec.addNote("No send window opens; deciding again later.")
		} else if !next.Equal(t) {
			*at = next
			rec.Reasons = append(rec.Reasons, ReasonSendWindow)
			rec.addNote(fmt.Sprintf("Moved to the next send window, %s.", next.Format(time.RFC3339)))
		}
	}
	if *action == scoring.ActionRelease && rule != nil {
		t := maxTime(*at, now)
		if free := ruleCapFree(rule, profile.History, t); free.After(t) {
			*action, *at = scoring.ActionDefer, free
			rec.Reasons = append(rec.Reasons, ReasonCampaignCap)
			rec.Explanation = fmt.Sprintf("Campaign rule %d (campaign “%s”, sender “%s”) caps this mail for the recipient until %s; deciding again then.",
				n+1, rule.Campaign, rule.Sender, free.Format(time.RFC3339))
		}
	}
	rec.Action = action.String()
	if *action == scoring.ActionRelease && e.IsSuspended(f.Campaign) {
		rec.Reasons = append(rec.Reasons, ReasonCampaignSuspended)
		rec.addNote(fmt.Sprintf("Held for review instead: campaign “%s” is suspended by an operator "+
			"(kadenz campaign resume, or drop it with kadenz queue).", f.Campaign))
		return true
	}
	st := stats[strings.ToLower(f.Campaign)]
	if st == nil || rule == nil || rule.Review.SuppressionShare <= 0 || *action == scoring.ActionDefer {
		return false
	}
	c := f.Campaign
	if *action == scoring.ActionSuppress {
		st.suppressed++
		st.decided++
		counters[suppressedCounter(c)]++
		counters[decidedCounter(c)]++
		return false
	}
	share := 0.0
	if st.decided > 0 {
		share = float64(st.suppressed) / float64(st.decided)
	}
	st.decided++
	counters[decidedCounter(c)]++
	if st.decided-1 < int64(rule.Review.MinDecisions) || share <= rule.Review.SuppressionShare {
		return false
	}
	rec.Reasons = append(rec.Reasons, ReasonReviewHold)
	rec.addNote(fmt.Sprintf("Held for review instead: campaign “%s” had %d of %d decisions suppressed (%.0f%%), above campaign rule %d's %.0f%%. "+
		"Release or drop it with kadenz queue.", c, st.suppressed, st.decided-1, 100*share, n+1, 100*rule.Review.SuppressionShare))
	return true
}

// ExemptFrom reports whether marketing mail of campaign from sender
// matches an exempt rule.
func ExemptFrom(g *config.Governor, campaign, sender string) bool {
	rule, _ := ruleFor(g, campaign, sender)
	return rule != nil && rule.Exempt
}

// addNote adds a sentence to the plain first line of the record's
// explanation, before the numbers and reason codes that follow it on
// later lines (scoring's Explain), so that a reader who sees only the
// first line (the dashboard folds the rest away) still reads the note.
func (rec *Record) addNote(note string) {
	first, rest, more := strings.Cut(rec.Explanation, "\n")
	rec.Explanation = strings.TrimSpace(first + " " + note)
	if more {
		rec.Explanation += "\n" + rest
	}
}
