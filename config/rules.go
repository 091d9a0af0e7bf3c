package config

import (
	"fmt"
	"path"
	"strings"

	"github.com/robfig/cron/v3"
)

// Send windows, campaign rules and chores: the governor's admin rules that
// go beyond the global caps and quiet hours.

// CampaignRule applies to marketing mail whose campaign and sender match.
// Rules are tried in order and the first match wins; a rule with neither
// pattern matches nothing.
type CampaignRule struct {
	// Campaign is a pattern for the message's campaign (X-Kadenz-Campaign,
	// else List-Id), with * and ? as in path.Match, case-insensitive.
	// Empty matches any campaign.
	Campaign string `yaml:"campaign"`
	// Sender is a pattern for the envelope sender, like SenderRule's.
	// Empty matches any sender.
	Sender string `yaml:"sender"`
	// Caps limit how many of the matching mail's releases one recipient
	// gets, counting only releases this rule matches. They apply on top
	// of governor.caps (which count everything): a rule can only make
	// things stricter. 0 means no extra limit.
	Caps Caps `yaml:"caps"`
	// Exempt mail is not governed: released undelayed like holdout mail,
	// still recorded in the recipient's history.
	Exempt bool `yaml:"exempt"`
	// Review puts a campaign's further releases on hold for a person once
	// too many of its decisions were suppressions.
	Review ReviewRule `yaml:"review"`
}

// ReviewRule is the trigger of the review hold.
type ReviewRule struct {
	// SuppressionShare is the share of a campaign's decisions (releases and
	// suppressions) above which its releases wait for review; 0 is off.
	SuppressionShare float64 `yaml:"suppression_share"`
	// MinDecisions is how many decisions the campaign needs before the
	// share counts.
	MinDecisions int `yaml:"min_decisions"`
}

// Chores are periodic jobs, each a cron spec (standard five fields, or a
// descriptor such as "@every 5m"), evaluated in UTC unless it starts with
// TZ=Area/City. Empty turns the chore off.
type Chores struct {
	// Sweep re-checks the schedule and recovers envelopes stuck in
	// delivery, as a safety net under the engine's own wake-ups.
	Sweep string `yaml:"sweep"`
	// Retention purges message bodies and decision records past the
	// retention periods (see Retention).
	Retention string `yaml:"retention"`
}

// Matches reports whether the rule applies to mail of campaign from
// sender.
func (r *CampaignRule) Matches(campaign, sender string) bool {
	if r.Campaign == "" && r.Sender == "" {
		return false
	}
	return globMatch(r.Campaign, campaign) && globMatch(r.Sender, sender)
}

func globMatch(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(strings.ToLower(pattern), strings.ToLower(s))
	return ok
}

// sendWindowParser reads the five standard fields and nothing else: a
// window is a set of minutes, in the recipient's own zone.
var sendWindowParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// ParseSendWindow reads a send window: a cron expression whose matching
// minutes, in the recipient's local time, allow releases.
func ParseSendWindow(spec string) (cron.Schedule, error) {
	if strings.HasPrefix(strings.TrimSpace(spec), "TZ=") || strings.HasPrefix(strings.TrimSpace(spec), "CRON_TZ=") {
		return nil, fmt.Errorf("%q: a send window is read in each recipient's own zone and takes no TZ=", spec)
	}
	s, err := sendWindowParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron expression of five fields (minute hour day-of-month month day-of-week, e.g. \"* 9-17 * * 1-5\"): %v", spec, err)
	}
	return s, nil
}

// ParseChoreSpec reads a chore's schedule; it runs in UTC unless the spec
// names a zone with TZ=.
func ParseChoreSpec(spec string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron spec (five fields, or a descriptor like \"@every 5m\"): %v", spec, err)
	}
	return s, nil
}

func (v *validator) governorRules(g *Governor) {
	for i, w := range g.SendWindows {
		if _, err := ParseSendWindow(w); err != nil {
			v.errorf(fmt.Sprintf("governor.send_windows[%d]", i), "%v", err)
		}
	}
	for i, r := range g.CampaignRules {
		p := fmt.Sprintf("governor.campaign_rules[%d]", i)
		if strings.TrimSpace(r.Campaign) == "" && strings.TrimSpace(r.Sender) == "" {
			v.errorf(p, "needs a campaign or a sender pattern")
		}
		for key, pat := range map[string]string{"campaign": r.Campaign, "sender": r.Sender} {
			if _, err := path.Match(pat, ""); err != nil {
				v.errorf(p+"."+key, "%q is not a pattern (use * and ?, e.g. \"spring-*\")", pat)
			}
		}
		for key, n := range map[string]int{"per_day": r.Caps.PerDay, "per_week": r.Caps.PerWeek, "per_month": r.Caps.PerMonth} {
			if n < 0 {
				v.errorf(p+".caps."+key, "must not be negative (0 means no extra limit)")
			}
		}
		if r.Caps.MinGap < 0 {
			v.errorf(p+".caps.min_gap", "must not be negative")
		}
		if s := r.Review.SuppressionShare; !(s >= 0 && s < 1) {
			v.errorf(p+".review.suppression_share", "must be at least 0 (off) and below 1")
		}
		if r.Review.MinDecisions < 0 {
			v.errorf(p+".review.min_decisions", "must not be negative")
		}
		if r.Exempt && (r.Review.SuppressionShare > 0 || r.Caps != (Caps{})) {
			v.errorf(p+".exempt", "an exempt campaign is not governed, so its caps and review would never apply")
		}
	}
	if g.Chores.Sweep != "" {
		if _, err := ParseChoreSpec(g.Chores.Sweep); err != nil {
			v.errorf("governor.chores.sweep", "%v", err)
		}
	}
	if g.Chores.Retention != "" {
		if _, err := ParseChoreSpec(g.Chores.Retention); err != nil {
			v.errorf("governor.chores.retention", "%v", err)
		}
	}
}
