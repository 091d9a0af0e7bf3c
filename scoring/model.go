package scoring

import "time"

// Population holds the priors a recipient's estimates shrink toward: what
// the average recipient of this sender does. The engine computes it from
// all profiles (or an operator sets it); scoring only reads it.
type Population struct {
	// OpenRate, ClickRate and ReplyRate are engagements per release.
	OpenRate  float64 `json:"open_rate"`
	ClickRate float64 `json:"click_rate"`
	ReplyRate float64 `json:"reply_rate"`
	// TopicLift is a topic's engagement relative to the average (1 =
	// average); topics not listed are average.
	TopicLift map[string]float64 `json:"topic_lift,omitempty"`
	// TermLift is, per content term bucket (content.go), the engagement of
	// releases with a term in it relative to the average; nil or a length
	// other than ContentBuckets means all average.
	TermLift []float64 `json:"term_lift,omitempty"`
	// HourOfWeek is relative engagement by local hour of week (Sunday
	// 00:00 first); all zero means flat.
	HourOfWeek [HoursPerWeek]float64 `json:"hour_of_week"`
	// UnsubscribeRate is unsubscribes plus complaints per release at a
	// comfortable volume; the base of the fatigue cost.
	UnsubscribeRate float64 `json:"unsubscribe_rate"`
	// OpenDelayPresent and OpenDelayAway are the list's delay law: the mean
	// time to a first open of a reader at their inbox and of one at their
	// quietest hour (presence.go; FitOpenDelays). Zero is the default.
	OpenDelayPresent time.Duration `json:"open_delay_present,omitempty"`
	OpenDelayAway    time.Duration `json:"open_delay_away,omitempty"`
	// LookOdds is the log odds that a reader of the list looks rather
	// than waits (presence.go; FitLookOdds): 0, even odds, is the default.
	LookOdds float64 `json:"look_odds,omitempty"`

	// Prior strengths: how many observations of the recipient's own it
	// takes to outweigh the population. Larger is more conservative.
	PriorSends    float64 `json:"prior_sends"`    // overall engagement
	TopicPrior    float64 `json:"topic_prior"`    // per-topic engagement
	HourPrior     float64 `json:"hour_prior"`     // hour-of-week engagement events
	ResponsePrior float64 `json:"response_prior"` // volume response, per volume band
}

// DefaultPopulation returns priors typical of opted-in marketing mail
// (docs/scoring.md says where the numbers come from). Replace them with
// measured ones as soon as there are any.
func DefaultPopulation() Population {
	return Population{
		OpenRate:        0.20,
		ClickRate:       0.025,
		ReplyRate:       0.002,
		UnsubscribeRate: 0.002,
		PriorSends:      10,
		TopicPrior:      5,
		HourPrior:       10,
		ResponsePrior:   10,
	}
}

// Policy holds the knobs of the model. Start from DefaultPolicy and change
// what you mean to: the zero value of a knob is a real setting (for
// example Strictness 0 turns fatigue off), except where a field says
// otherwise. Every field is documented with its default in docs/scoring.md.
type Policy struct {
	// Strictness scales the fatigue cost against the value of a message:
	// 1 is the calibrated balance, 2 sends about half as much marginal
	// mail, 0 sends whatever caps allow.
	Strictness float64
	// LossWeight is how many engagements one lost subscriber is worth: the
	// exchange rate between the value side and the cost side.
	LossWeight float64
	// ComfortVolume is the decayed recent volume at which the chance of an
	// unsubscribe doubles, for a recipient Kadenz knows nothing about.
	ComfortVolume float64
	// ComfortSpread, when above 0, learns each recipient's own comfortable
	// volume from how they engaged at the volumes they got (Fatigue.Comfort),
	// in place of the low/high volume response: it is the standard
	// deviation of the prior on the log of their comfort, centred on
	// ComfortVolume (1 means about 2.7 times more or less is plausible).
	// The learned comfort is never above ComfortVolume: the evidence can
	// make a recipient dearer to mail, not cheaper. 0 gives everyone
	// ComfortVolume and the old volume response.
	ComfortSpread float64
	// VolumeHalfLife is how fast recent volume fades from fatigue.
	VolumeHalfLife time.Duration
	// StreakFree ignored releases in a row cost nothing extra; each one
	// beyond adds StreakWeight to the recipient's sensitivity.
	StreakFree   int
	StreakWeight float64
	// MaxSensitivity caps how much more sensitive than average a recipient
	// can be judged (and 1/MaxSensitivity how much less).
	MaxSensitivity float64
	// EngageGrace is how long a release has to earn engagement before it
	// counts as ignored.
	EngageGrace time.Duration
	// ValueWeight is how strongly customer value protects: a customer at
	// 100 weighs 2^ValueWeight times the fatigue cost of one at 50.
	ValueWeight float64

	// OpenWeight, ClickWeight and ReplyWeight turn a release's outcome
	// into an engagement score in [0, 1]; they should sum to 1.
	OpenWeight  float64
	ClickWeight float64
	ReplyWeight float64
	// PriorityWeight: a priority of 100 multiplies value by
	// 1+PriorityWeight, 0 by 1-PriorityWeight, 50 leaves it.
	PriorityWeight float64
	// FreshnessHorizon: with less than this left before expiry, value falls
	// with the square root of the time left.
	FreshnessHorizon time.Duration
	// NoveltyWindow is how far back near-duplicates and repeated campaigns
	// are looked for.
	NoveltyWindow time.Duration
	// DuplicateBits and DistinctBits bound the SimHash distance between a
	// near-duplicate (value times DuplicateValue) and distinct text (full
	// value); in between, value rises linearly.
	DuplicateBits  int
	DistinctBits   int
	DuplicateValue float64
	// RepeatCampaignValue multiplies the value of a message whose campaign
	// the recipient already got within NoveltyWindow.
	RepeatCampaignValue float64
	// TimeWeight is how much the hour of week matters: an hour with k times
	// the average engagement counts as k' = 1+TimeWeight·(k-1), and value is
	// multiplied by (2k'+1)/(k'+2), which stays between 0.5 and 2.
	TimeWeight float64
	// DailyPooling is the share of a recipient's own send-time histogram
	// taken from their hour of day pooled over all seven days, the rest
	// from the hour of week: 0 learns each weekday apart, 1 ignores the
	// weekday. Pooling learns a daily routine seven times faster.
	DailyPooling float64
	// DelayHalfLife discounts value for every hour a message waits, so a
	// slightly better hour next week does not beat a good one today. 5
	// days (3 until round 13 of docs/simulation.md): a message may wait
	// for a cheaper moment and for later arrivals to compete with.
	DelayHalfLife time.Duration

	// Horizon is how far ahead one decision plans (at most 7 days).
	// Zero means the default.
	Horizon time.Duration
	// Slot is the planning grid: candidate release times are now and every
	// local whole Slot after (minimum 15 minutes). Zero means the default.
	Slot time.Duration
	// Commit: a planned release within Commit of now is a release; a later
	// one is a deferral to re-decide then. Set it to at least the engine's
	// sweep interval. Zero means the default.
	Commit time.Duration
	// MaxHold is how long a message without an expiry may wait before it
	// is suppressed as stale. Zero means the default.
	MaxHold time.Duration

	// Floor guarantees the recipient's best message at least once per
	// Floor, even when the model rates every message below its cost.
	// Zero turns the floor off.
	Floor time.Duration
	// ExploreShare is the chance that a message the model rates too low is
	// released anyway, so estimates keep learning.
	ExploreShare float64
	// HoldoutShare is the share of recipients who receive everything caps
	// allow, to measure the model's lift.
	HoldoutShare float64

	// ContentWeight scales how far content-derived relevance moves the
	// affinity of mail without topics away from the recipient's overall
	// rate (content.go); 0 turns it off.
	ContentWeight float64
	// ContentPrior is the pseudo-sends behind each term bucket's rate.
	ContentPrior float64
	// CampaignWeight is the power of the campaign factor learned from a
	// campaign's engagement so far (campaign.go); 0 turns it off.
	CampaignWeight float64
	// CampaignPrior is the pseudo-releases (a third as many pseudo-opens
	// for the click rate) behind a campaign's rates, shrinking them toward
	// its sender's, and the sender's toward the population's.
	CampaignPrior float64
	// CampaignExplore: until this many of a campaign's releases have been
	// read, its factor is not below 1.
	CampaignExplore float64
	// CampaignReadTime is the mean time a release takes to be read, for
	// counting which releases could have earned engagement yet.
	CampaignReadTime time.Duration
	// CampaignMaxLift bounds the campaign factor to [1/max, max].
	CampaignMaxLift float64

	// Memory says how profiles decay; it must match what RecordRelease and
	// RecordEvent were given.
	Memory Memory
}

// DefaultPolicy returns the defaults documented in docs/scoring.md.
func DefaultPolicy() Policy {
	return Policy{
		Strictness:          1,
		LossWeight:          25,
		ComfortVolume:       3,
		ComfortSpread:       1,
		VolumeHalfLife:      4 * 24 * time.Hour,
		StreakFree:          3,
		StreakWeight:        0.25,
		MaxSensitivity:      5,
		EngageGrace:         3 * 24 * time.Hour,
		ValueWeight:         1,
		OpenWeight:          0.3,
		ClickWeight:         0.5,
		ReplyWeight:         0.2,
		PriorityWeight:      0.5,
		FreshnessHorizon:    24 * time.Hour,
		NoveltyWindow:       30 * 24 * time.Hour,
		DuplicateBits:       8,
		DistinctBits:        20,
		DuplicateValue:      0,
		RepeatCampaignValue: 0.5,
		TimeWeight:          1,
		DailyPooling:        0.7,
		DelayHalfLife:       5 * 24 * time.Hour,
		Horizon:             48 * time.Hour,
		Slot:                time.Hour,
		Commit:              time.Hour,
		MaxHold:             7 * 24 * time.Hour,
		Floor:               14 * 24 * time.Hour,
		ExploreShare:        0.02,
		HoldoutShare:        0,
		ContentWeight:       1,
		ContentPrior:        3,
		CampaignWeight:      1,
		CampaignPrior:       30,
		CampaignExplore:     20,
		CampaignReadTime:    4 * time.Hour,
		CampaignMaxLift:     3,
		Memory:              DefaultMemory(),
	}
}

// maxHorizon bounds the planning work of one decision.
const maxHorizon = 7 * 24 * time.Hour

// withDefaults fills the fields whose zero value would break the planner
// (not the knobs, whose zero is meaningful).
func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	if p.Slot <= 0 {
		p.Slot = d.Slot
	}
	p.Slot = max(p.Slot, 15*time.Minute)
	if p.Horizon <= 0 {
		p.Horizon = d.Horizon
	}
	p.Horizon = min(p.Horizon, maxHorizon)
	if p.Commit <= 0 {
		p.Commit = d.Commit
	}
	if p.MaxHold <= 0 {
		p.MaxHold = d.MaxHold
	}
	if p.VolumeHalfLife <= 0 {
		p.VolumeHalfLife = d.VolumeHalfLife
	}
	if p.CampaignReadTime <= 0 {
		p.CampaignReadTime = d.CampaignReadTime
	}
	if p.DelayHalfLife <= 0 {
		p.DelayHalfLife = d.DelayHalfLife
	}
	if p.ComfortVolume <= 0 {
		p.ComfortVolume = d.ComfortVolume
	}
	if p.MaxSensitivity < 1 {
		p.MaxSensitivity = 1
	}
	if p.DistinctBits <= p.DuplicateBits {
		p.DistinctBits = p.DuplicateBits + 1
	}
	p.Memory = p.Memory.withDefaults()
	return p
}
