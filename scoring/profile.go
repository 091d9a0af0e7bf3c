package scoring

import (
	"math"
	"strings"
	"time"
)

// HoursPerWeek is the number of buckets in an hour-of-week histogram.
const HoursPerWeek = 7 * 24

// HourOfWeek returns the bucket of t in its own location: Sunday 00:00-00:59
// is 0, Saturday 23:00-23:59 is 167.
func HourOfWeek(t time.Time) int { return int(t.Weekday())*24 + t.Hour() }

// Counts are decayed tallies of what happened to the mail a recipient got.
// They are float64 because old events fade continuously (see Memory).
type Counts struct {
	Sends   float64 `json:"sends"`
	Opens   float64 `json:"opens"`
	Clicks  float64 `json:"clicks"`
	Replies float64 `json:"replies"`
}

func (c *Counts) scale(f float64) {
	c.Sends *= f
	c.Opens *= f
	c.Clicks *= f
	c.Replies *= f
}

// Release is one marketing message released to the recipient, kept so that
// caps, fatigue and novelty can look back, and so that engagement can be
// attributed to the message that earned it.
type Release struct {
	At        time.Time `json:"at"`
	MessageID string    `json:"message_id,omitempty"`
	Campaign  string    `json:"campaign,omitempty"`
	// Sender is the envelope sender, for caps an administrator sets per
	// sender.
	Sender      string   `json:"sender,omitempty"`
	Topics      []string `json:"topics,omitempty"`
	Fingerprint uint64   `json:"fingerprint,omitempty"`
	// Opened, Clicked and Replied record the first engagement of each kind,
	// so that a mail opened five times counts once.
	Opened  bool `json:"opened,omitempty"`
	Clicked bool `json:"clicked,omitempty"`
	Replied bool `json:"replied,omitempty"`
	// OpenedAfter is the time from the release to its first open or
	// click, when one came (presence.go): how soon the reader saw it.
	OpenedAfter time.Duration `json:"opened_after,omitempty"`
	// Terms is the bucket set of the message's content terms, so that
	// engagement teaches the content model (content.go).
	Terms TermBits `json:"terms,omitzero"`
	// Quality is the key the campaign-quality counts are kept under
	// (QualityKey), when the release counts toward them.
	Quality string `json:"quality,omitempty"`
}

// Engaged reports whether the recipient did anything with the release.
func (r *Release) Engaged() bool { return r.Opened || r.Clicked || r.Replied }

// Profile is what Kadenz remembers about one recipient. It is plain data,
// serialised as JSON by the store; all changes go through RecordRelease and
// RecordEvent so that decay is applied consistently.
//
// The zero Profile is a recipient with no history, who is scored with the
// population's priors.
type Profile struct {
	// DecayedAt is the time the decayed counters below refer to.
	DecayedAt time.Time `json:"decayed_at,omitzero"`
	// All counts every release and engagement, whatever the topic.
	All Counts `json:"all"`
	// Topics counts releases and engagement per topic.
	Topics map[string]Counts `json:"topics,omitempty"`
	// Hours is decayed engagement (opens, clicks, replies) by the local
	// hour of week it happened in, Sunday 00:00 first.
	Hours [HoursPerWeek]float64 `json:"hours"`
	// History is the most recent releases, oldest first, at most
	// Memory.MaxHistory.
	History []Release `json:"history,omitempty"`
	// Content counts releases and engagement per hashed term bucket, for
	// mail without topics (content.go); nil until the first release with
	// terms.
	Content *ContentCounts `json:"content,omitempty"`

	// Timezone is the recipient's IANA zone, as learned from a sender.
	Timezone string `json:"timezone,omitempty"`
	// Value is how much the recipient matters to the sender, 0-100,
	// valid if HasValue; it protects valuable recipients from fatigue.
	Value    int  `json:"value,omitempty"`
	HasValue bool `json:"has_value,omitempty"`

	// Hard signals. A non-zero time means the signal was received then.
	// Unsubscribed, Complained and HardBounced stop all marketing mail
	// until an operator or the sender clears them.
	Unsubscribed time.Time `json:"unsubscribed,omitzero"`
	Complained   time.Time `json:"complained,omitzero"`
	HardBounced  time.Time `json:"hard_bounced,omitzero"`
	// AwayUntil defers marketing mail (an out-of-office reply, a pause
	// the recipient asked for) without stopping it.
	AwayUntil time.Time `json:"away_until,omitzero"`

	// Feedback bookkeeping, kept here so that it changes in the same
	// transaction as the rest of the profile; scoring does not read it.
	// SoftBounces counts soft bounces since SoftBounceSince; feedback
	// escalates them to a hard bounce at a configured limit.
	SoftBounces     int       `json:"soft_bounces,omitempty"`
	SoftBounceSince time.Time `json:"soft_bounce_since,omitzero"`
	// LastBounce is the latest bounce applied, with the reason the
	// feedback policy gave it (docs/feedback.md), so that a soft bounce's
	// "mailbox full" is on record as well as a hard one's "user unknown".
	LastBounce *BounceNote `json:"last_bounce,omitempty"`
	// PausedUntil pauses marketing mail without stopping it, for
	// PauseReason (a human reply: a person answers first); the engine
	// defers held mail until then.
	PausedUntil time.Time `json:"paused_until,omitzero"`
	PauseReason string    `json:"pause_reason,omitempty"`

	// ShadowHeld are, in shadow mode only, messages sent that enforce mode
	// would still hold, to be decided again (shadow.go).
	ShadowHeld []ShadowHeld `json:"shadow_held,omitempty"`

	// comfort is derived from History by decisions and kept to spare the
	// next one the work (comfortMemo); it is not part of the JSON form.
	comfort comfortMemo
}

// BounceNote records one bounce: when, its class (hard, soft), the named
// reason, the enhanced status code and where it came from (imap,
// smarthost, events).
type BounceNote struct {
	At     time.Time `json:"at"`
	Class  string    `json:"class"`
	Reason string    `json:"reason,omitempty"`
	Status string    `json:"status,omitempty"`
	Source string    `json:"source,omitempty"`
}

// Memory says how long the profile remembers.
type Memory struct {
	// HalfLife is the half-life of topic and overall counts: an open
	// HalfLife ago weighs half as much as one today.
	HalfLife time.Duration
	// HourHalfLife is the half-life of the hour-of-week histogram.
	HourHalfLife time.Duration
	// MaxHistory bounds Profile.History; the oldest releases are dropped.
	MaxHistory int
}

// DefaultMemory returns the memory settings documented in docs/scoring.md.
func DefaultMemory() Memory {
	return Memory{HalfLife: 90 * 24 * time.Hour, HourHalfLife: 60 * 24 * time.Hour, MaxHistory: 200}
}

func (m Memory) withDefaults() Memory {
	d := DefaultMemory()
	if m.HalfLife <= 0 {
		m.HalfLife = d.HalfLife
	}
	if m.HourHalfLife <= 0 {
		m.HourHalfLife = d.HourHalfLife
	}
	if m.MaxHistory <= 0 {
		m.MaxHistory = d.MaxHistory
	}
	return m
}

// decay is the weight left after d under half-life h.
func decay(d, h time.Duration) float64 {
	if d <= 0 {
		return 1
	}
	return math.Exp(-math.Ln2 * float64(d) / float64(h))
}

// advance moves the decayed counters forward to t (never backward) and
// returns the weight an event at t carries relative to DecayedAt: 1 for an
// event at or after DecayedAt, less for a late-arriving older one.
func (p *Profile) advance(t time.Time, m Memory) (topicWeight, hourWeight float64) {
	if p.DecayedAt.IsZero() {
		p.DecayedAt = t
		return 1, 1
	}
	if t.Before(p.DecayedAt) {
		return decay(p.DecayedAt.Sub(t), m.HalfLife), decay(p.DecayedAt.Sub(t), m.HourHalfLife)
	}
	d := t.Sub(p.DecayedAt)
	if d > 0 {
		f := decay(d, m.HalfLife)
		p.All.scale(f)
		for k, c := range p.Topics {
			c.scale(f)
			p.Topics[k] = c
		}
		fh := decay(d, m.HourHalfLife)
		for i := range p.Hours {
			p.Hours[i] *= fh
		}
		p.DecayedAt = t
	}
	return 1, 1
}

// RecordRelease notes that rel was released to the recipient: it counts as
// a send for its topics and joins the history. Call it when the engine
// commits a release (rel.At may be in the future for a scheduled release),
// so that the next decision sees it in caps and fatigue.
func (p *Profile) RecordRelease(rel Release, m Memory) {
	m = m.withDefaults()
	w, _ := p.advance(rel.At, m)
	p.All.Sends += w
	for _, t := range rel.Topics {
		p.bumpTopic(t, func(c *Counts) { c.Sends += w })
	}
	p.recordContent(rel.Terms, rel.At, m, true, 1, 0, 0) // issue 18: content relevance
	rel.Opened, rel.Clicked, rel.Replied, rel.OpenedAfter = false, false, false, 0
	// Keep History sorted by time; releases almost always arrive in order,
	// so the insertion point is found from the end.
	i := len(p.History)
	for i > 0 && p.History[i-1].At.After(rel.At) {
		i--
	}
	p.History = append(p.History, Release{})
	copy(p.History[i+1:], p.History[i:])
	p.History[i] = rel
	if over := len(p.History) - m.MaxHistory; over > 0 {
		p.History = append(p.History[:0], p.History[over:]...)
	}
}

func (p *Profile) bumpTopic(topic string, f func(*Counts)) {
	topic = strings.ToLower(strings.TrimSpace(topic))
	if topic == "" {
		return
	}
	if p.Topics == nil {
		p.Topics = make(map[string]Counts)
	}
	c := p.Topics[topic]
	f(&c)
	p.Topics[topic] = c
}

// EventKind is what a recipient did, as reported by feedback.
type EventKind int

// Event kinds. Opens are noisy (image proxies open everything, image
// blocking hides real opens), which is why they weigh less than clicks and
// replies in relevance (see Population).
const (
	EventOpen EventKind = iota + 1
	EventClick
	EventReply
	EventUnsubscribe
	EventComplaint
	EventHardBounce
	// EventAway defers marketing mail until Event.Until (an auto-reply
	// that names a return date, RFC 3834).
	EventAway
)

var eventNames = [...]string{"", "open", "click", "reply", "unsubscribe", "complaint", "hard-bounce", "away"}

func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one piece of feedback about a recipient.
type Event struct {
	Kind EventKind
	At   time.Time
	// MessageID names the released message the event is about, if known;
	// its topics are taken from the history.
	MessageID string
	// Topics are used when the message is no longer in the history.
	Topics []string
	// Until ends an EventAway.
	Until time.Time
}

// RecordEvent applies one piece of feedback to the profile. loc is the
// recipient's time zone for the hour-of-week histogram (nil means UTC); the
// caller resolves it, because loading zone data is I/O.
//
// An open, click or reply counts once per released message: repeats of the
// same kind on the same message are ignored when the message is still in
// the history. A click implies an open (images are often blocked).
func (p *Profile) RecordEvent(ev Event, loc *time.Location, m Memory) {
	m = m.withDefaults()
	switch ev.Kind {
	case EventUnsubscribe:
		if p.Unsubscribed.IsZero() {
			p.Unsubscribed = ev.At
		}
		return
	case EventComplaint:
		if p.Complained.IsZero() {
			p.Complained = ev.At
		}
		return
	case EventHardBounce:
		if p.HardBounced.IsZero() {
			p.HardBounced = ev.At
		}
		return
	case EventAway:
		if ev.Until.After(p.AwayUntil) {
			p.AwayUntil = ev.Until
		}
		return
	case EventOpen, EventClick, EventReply:
	default:
		return
	}

	topics := ev.Topics
	var rel *Release
	if ev.MessageID != "" {
		for i := len(p.History) - 1; i >= 0; i-- {
			if p.History[i].MessageID == ev.MessageID {
				rel = &p.History[i]
				topics = rel.Topics
				break
			}
		}
	}
	var open, click, reply bool
	switch ev.Kind {
	case EventOpen:
		open = rel == nil || !rel.Opened
	case EventClick:
		click = rel == nil || !rel.Clicked
		open = rel != nil && !rel.Opened
	case EventReply:
		reply = rel == nil || !rel.Replied
	}
	if !open && !click && !reply {
		return
	}
	if rel != nil {
		if (open || click) && !rel.Opened && !rel.Clicked && ev.At.After(rel.At) {
			rel.OpenedAfter = ev.At.Sub(rel.At)
		}
		rel.Opened = rel.Opened || open
		rel.Clicked = rel.Clicked || click
		rel.Replied = rel.Replied || reply
	}
	w, wh := p.advance(ev.At, m)
	add := func(c *Counts) {
		if open {
			c.Opens += w
		}
		if click {
			c.Clicks += w
		}
		if reply {
			c.Replies += w
		}
	}
	add(&p.All)
	for _, t := range topics {
		p.bumpTopic(t, add)
	}
	if rel != nil { // issue 18: content relevance
		p.recordContent(rel.Terms, ev.At, m, false, 0, b2f(open), b2f(click || reply))
	}
	if loc == nil {
		loc = time.UTC
	}
	p.Hours[HourOfWeek(ev.At.In(loc))] += wh
}
