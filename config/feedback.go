package config

import (
	"net/mail"
	"strings"
	"time"
)

// Feedback configures what Kadenz learns from recipients: bounces,
// complaints, replies and engagement events, and what it does about them.
type Feedback struct {
	// TeamAddress receives human replies to marketing mail, forwarded with
	// their context. Empty: replies pause marketing but are not forwarded.
	TeamAddress string `yaml:"team_address"`
	// ReplyPause is how long marketing mail to a recipient pauses after
	// they wrote back in their own words, so a person can answer first.
	ReplyPause time.Duration `yaml:"reply_pause"`
	// SoftBounceLimit soft bounces within SoftBounceWindow count as a hard
	// bounce (the address is suppressed); 0 never escalates.
	SoftBounceLimit  int           `yaml:"soft_bounce_limit"`
	SoftBounceWindow time.Duration `yaml:"soft_bounce_window"`
	// VERP, when its domain is set, makes the return path of released
	// marketing mail prefix+ENVELOPEID@domain, so a bounce names its
	// envelope whatever the bouncing server writes.
	VERP VERP `yaml:"verp"`
}

// VERP is a variable envelope return path: prefix+ENVELOPEID@domain.
type VERP struct {
	Prefix string `yaml:"prefix"`
	// Domain is where bounces to the VERP address arrive (the bounce
	// mailbox's domain). Empty: VERP is off.
	Domain string `yaml:"domain"`
}

// defaultFeedback is Default's feedback section.
func defaultFeedback() Feedback {
	return Feedback{
		ReplyPause:       7 * 24 * time.Hour,
		SoftBounceLimit:  5,
		SoftBounceWindow: 30 * 24 * time.Hour,
		VERP:             VERP{Prefix: "bounce"},
	}
}

func (v *validator) feedback(f *Feedback) {
	if f.TeamAddress != "" {
		if a, err := mail.ParseAddress(f.TeamAddress); err != nil || a.Address != f.TeamAddress {
			v.errorf("feedback.team_address", "%s is not a bare email address such as team@example.com", quoteShort(f.TeamAddress))
		}
	}
	if f.ReplyPause < 0 {
		v.errorf("feedback.reply_pause", "must not be negative (0 means no pause)")
	}
	if f.SoftBounceLimit < 0 {
		v.errorf("feedback.soft_bounce_limit", "must not be negative (0 means soft bounces never suppress)")
	}
	if f.SoftBounceLimit > 0 && f.SoftBounceWindow <= 0 {
		v.errorNear("feedback.soft_bounce_window", []string{"feedback.soft_bounce_limit"}, "must be greater than 0 when soft_bounce_limit is set")
	}
	if p := f.VERP.Prefix; p == "" || strings.ContainsAny(p, "+@<> \t\"\\") {
		v.errorf("feedback.verp.prefix", "%s must be a plain local part without + or @, e.g. bounce", quoteShort(p))
	}
	if d := f.VERP.Domain; d != "" && !validHostname(d) {
		v.errorf("feedback.verp.domain", "%s is not a domain name", quoteShort(d))
	}
}
