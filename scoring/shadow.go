package scoring

import (
	"slices"
	"time"
)

// Shadow mode's counterfactual (issue 18, point 4).
//
// In shadow mode every message is sent at once, but the profile is to be
// the one enforce mode would have built: its history holds only what
// enforce would have released, at the time it would have released it.
// A message enforce would have deferred has been sent, yet enforce would
// still hold it and decide it again later: a better hour, a suppression
// when something newer supersedes it, an expiry. ShadowHeld is that
// message as enforce would still hold it, kept in the profile so that it
// is written in the same transaction as the decision that deferred it,
// survives restarts, and is decided again by the engine's later rounds
// (governor/engine/shadow.go). Enforce mode never has any.

// ShadowHeld is a message shadow mode sent that enforce mode would still
// hold.
type ShadowHeld struct {
	// ID is the envelope's ID; a release decided for the copy joins the
	// history under it, so that feedback on the sent mail finds it.
	ID string `json:"id"`
	// From is the envelope sender; Received when the envelope arrived;
	// Sent when shadow mode actually released it; Due when enforce mode
	// would decide it again.
	From     string    `json:"from,omitempty"`
	Received time.Time `json:"received"`
	Sent     time.Time `json:"sent"`
	Due      time.Time `json:"due"`
	// Features are the message's features as the store keeps them (JSON),
	// so that the copy can be decided after the message is gone.
	Features []byte `json:"features,omitempty"`
	// OpenedAt, ClickedAt and RepliedAt are the first engagement of each
	// kind the sent mail earned while enforce would still have held it;
	// a release of the copy learns them, shifted to its own time.
	OpenedAt  time.Time `json:"opened_at,omitzero"`
	ClickedAt time.Time `json:"clicked_at,omitzero"`
	RepliedAt time.Time `json:"replied_at,omitzero"`
}

// maxShadowHeld bounds the copies a profile keeps: enforce holds few
// messages per recipient at once, and a profile must stay small. The
// oldest copy gives way.
const maxShadowHeld = 64

// AddShadowHeld keeps c (replacing a copy of the same ID).
func (p *Profile) AddShadowHeld(c ShadowHeld) {
	p.DropShadowHeld(c.ID)
	p.ShadowHeld = append(p.ShadowHeld, c)
	if over := len(p.ShadowHeld) - maxShadowHeld; over > 0 {
		p.ShadowHeld = append(p.ShadowHeld[:0], p.ShadowHeld[over:]...)
	}
}

// DropShadowHeld forgets the copy of envelope id, if any, and returns it.
func (p *Profile) DropShadowHeld(id string) (ShadowHeld, bool) {
	i := slices.IndexFunc(p.ShadowHeld, func(c ShadowHeld) bool { return c.ID == id })
	if i < 0 {
		return ShadowHeld{}, false
	}
	c := p.ShadowHeld[i]
	p.ShadowHeld = slices.Delete(p.ShadowHeld, i, i+1)
	if len(p.ShadowHeld) == 0 {
		p.ShadowHeld = nil
	}
	return c, true
}

// InHistory reports whether the release of message id is in the history.
func (p *Profile) InHistory(id string) bool {
	for i := len(p.History) - 1; i >= 0; i-- {
		if p.History[i].MessageID == id {
			return true
		}
	}
	return false
}

// NoteShadowEngagement records an open, click or reply on the copy the
// event names, and reports whether there was one. Only the first of each
// kind is kept, like the history's flags.
func (p *Profile) NoteShadowEngagement(ev Event) bool {
	i := slices.IndexFunc(p.ShadowHeld, func(c ShadowHeld) bool { return c.ID == ev.MessageID })
	if ev.MessageID == "" || i < 0 {
		return false
	}
	c := &p.ShadowHeld[i]
	first := func(t *time.Time) {
		if t.IsZero() {
			*t = ev.At
		}
	}
	switch ev.Kind {
	case EventOpen:
		first(&c.OpenedAt)
	case EventClick:
		first(&c.ClickedAt)
	case EventReply:
		first(&c.RepliedAt)
	default:
		return false
	}
	return true
}

// ShadowEvents are the engagement events a copy noted, moved to a release
// at releasedAt: each keeps its delay after the actual send, so that the
// counterfactual learns the reader's hours as they would have been.
func (c *ShadowHeld) ShadowEvents(releasedAt time.Time) []Event {
	var out []Event
	for _, e := range []struct {
		kind EventKind
		at   time.Time
	}{{EventOpen, c.OpenedAt}, {EventClick, c.ClickedAt}, {EventReply, c.RepliedAt}} {
		if e.at.IsZero() {
			continue
		}
		out = append(out, Event{Kind: e.kind, At: releasedAt.Add(max(e.at.Sub(c.Sent), 0)), MessageID: c.ID})
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.At.Compare(b.At) })
	return out
}
