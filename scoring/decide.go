package scoring

import "time"

// Held is one marketing message waiting for a decision for one recipient.
type Held struct {
	// ID is the engine's identifier for the envelope; Decide returns it
	// unchanged.
	ID string
	// Features were extracted from the message at intake.
	Features *Features
	// Received is when Kadenz accepted the message.
	Received time.Time
	// Campaign is what the message's campaign and sender earned so far
	// across recipients (campaign.go); nil: no evidence, factor 1.
	Campaign *CampaignEvidence
}

// Caps are an administrator's hard limits, checked over rolling windows:
// "at most PerDay in any 24 hours", PerWeek in any 7 days, PerMonth in any
// 30 days, and releases at least MinGap apart. Zero means no limit.
type Caps struct {
	PerDay   int
	PerWeek  int
	PerMonth int
	MinGap   time.Duration
}

// QuietHours is a daily period, in the recipient's local time, in which
// nothing is released. Start and End are offsets from local midnight; a
// Start after End wraps past midnight (21:00-08:00). Start == End means
// none.
type QuietHours struct {
	Start time.Duration
	End   time.Duration
}

// contains reports whether a local time of day (seconds since midnight) is
// quiet.
func (q QuietHours) contains(sec int64) bool {
	s, e := int64(q.Start/time.Second), int64(q.End/time.Second)
	switch {
	case s == e:
		return false
	case s < e:
		return sec >= s && sec < e
	default:
		return sec >= s || sec < e
	}
}

// SendWindow says when releases are allowed at all. The engine implements
// it from the administrator's schedules; scoring only asks. A nil
// SendWindow allows every time.
type SendWindow interface {
	Allows(t time.Time) bool
}

// Input is everything one decision for one recipient needs.
type Input struct {
	// Now is the time of the decision; scoring never reads a clock.
	Now time.Time
	// Recipient is the recipient's address, used only to draw exploration
	// and holdout deterministically.
	Recipient string
	// Profile is the recipient's history; nil is a recipient with none.
	// Decide reads it and may store in it a summary of the history for
	// the next decision to resume from (unexported, carried by the binary
	// stored form); nothing a decision reads changes, and the decisions
	// are the same with or without the summary. So a profile must not be
	// shared by concurrent decisions.
	Profile *Profile
	// Location is the recipient's time zone, resolved by the caller; nil
	// means UTC.
	Location *time.Location
	// Held are the recipient's messages waiting for a decision.
	Held []Held
	// Caps, Quiet and Window are the administrator's hard limits.
	Caps   Caps
	Quiet  QuietHours
	Window SendWindow
	// Population holds the priors; nil means DefaultPopulation.
	Population *Population
	// Policy holds the knobs; nil means DefaultPolicy.
	Policy *Policy
}

// Action is what to do with a held message.
type Action uint8

// Actions.
const (
	// ActionRelease releases the message at Decision.At.
	ActionRelease Action = iota + 1
	// ActionDefer keeps holding it and decides again at Decision.At.
	ActionDefer
	// ActionSuppress drops it for this recipient, for good.
	ActionSuppress
)

func (a Action) String() string {
	switch a {
	case ActionRelease:
		return "release"
	case ActionDefer:
		return "defer"
	case ActionSuppress:
		return "suppress"
	}
	return "unknown"
}

// Decision is the outcome for one held message, with the reasons and the
// numbers behind it.
type Decision struct {
	// ID is Held.ID.
	ID     string
	Action Action
	// At is the release time (Release), the time to decide again (Defer)
	// or the time of the decision (Suppress), in the recipient's zone.
	At time.Time
	// Reasons are the machine-readable reason codes.
	Reasons Reasons
	// Numbers are the scores behind the decision.
	Numbers Numbers
	// Subject and Campaign identify the message in explanations.
	Subject  string
	Campaign string
	// LookEvidence is the log of how much likelier the recipient's
	// settled history is for a reader who looks than for one who waits
	// (presence.go), the same for every decision of one call: 0 when
	// there is no settled release. The engine counts it at each release,
	// for the list's odds (FitLookOdds); it is not part of the decision.
	LookEvidence float64
}

// Numbers are the scores behind a decision, at the chosen time (or at the
// best time the message could have had, when it was not released).
type Numbers struct {
	// Affinity is the predicted engagement score; PopulationRate the
	// average recipient's.
	Affinity       float64
	PopulationRate float64
	// Priority, Novelty, Freshness, TimeLift and Delay are the factors
	// that turn affinity into Value.
	Priority  float64
	Novelty   float64
	Freshness float64
	TimeLift  float64
	Delay     float64
	// Value is the expected value of the release.
	Value float64
	// Volume is the decayed recent volume the release would add to,
	// including releases planned earlier in this decision.
	Volume float64
	// Sensitivity and CustomerValue scale the cost (see Fatigue).
	Sensitivity float64
	// Comfort is the recipient's comfortable volume (Fatigue.Comfort).
	Comfort       float64
	CustomerValue float64
	// Cost is the fatigue cost of the release.
	Cost float64
	// NearestBits is the SimHash distance to the most similar recent
	// release, -1 if none.
	NearestBits int
	// IgnoredStreak is the number of recent releases in a row the
	// recipient did nothing with.
	IgnoredStreak int
	// SinceLastRelease is the time since the recipient's last release;
	// -1 if there never was one.
	SinceLastRelease time.Duration
	// Draw is the deterministic exploration draw in [0, 1) compared with
	// Policy.ExploreShare (0 when exploration did not apply).
	Draw float64
	// Content is the term that moved a topic-less message's affinity most,
	// with the recipient's counts (content.go); empty Term when none.
	Content *ContentNote `json:",omitempty"`
	// Campaign is the factor from the campaign's engagement so far, with
	// its evidence (campaign.go); 1 without evidence.
	Campaign     float64
	CampaignNote *CampaignNote `json:",omitempty"`
}

// Decide decides, for one recipient, what to do with each held message:
// release it at a time, defer it, or suppress it. Decisions are returned
// in the order of in.Held. It is deterministic: the same input gives the
// same decisions.
//
// How: hard stops first (unsubscribed, complained, hard-bounced suppress
// everything; away defers). Then every candidate release time in the
// planning horizon is marked open or closed by quiet hours, send windows
// and caps, and every message is valued at every open time. The best
// (message, time) pair whose value exceeds its fatigue cost is planned
// first; planning it adds to the volume later times see and uses up cap
// room, and the next best pair is chosen, until nothing is worth its cost.
// A recipient with nothing planned who has gone Policy.Floor without a
// release gets their best message anyway, and a message the model rates
// too low is released with probability Policy.ExploreShare.
func Decide(in Input) []Decision {
	var p Planner
	return p.Decide(make([]Decision, 0, len(in.Held)), &in)
}

// Planner holds scratch space for Decide, so that an engine deciding for
// many recipients in a loop does not allocate per decision. The zero value
// is ready to use. A Planner is not safe for concurrent use: give each
// goroutine its own.
type Planner struct {
	slots []slot
	open  []int // indices of the slots neither quiet hours nor a send window close
	times []int64
	cands []candidate
	// Stand-ins for a nil Profile or Population. They live here rather
	// than in the per-call state so that state can stay on the stack.
	noProfile Profile
	defaults  Population
	hasDefs   bool
	// The comfort grid (initInv) for ComfortVolume invFor.
	inv    [comfortGrid]float64
	invFor float64
	hasInv bool
	// The sum of the population's hour-of-week histogram popHours
	// (populationTotal).
	popHours    [HoursPerWeek]float64
	popTotal    float64
	hasPopHours bool
	// The presence model's tables for the last delay law (presenceLaw).
	presence presenceLaw
}

// Decide is the package's Decide, appending the decisions to dst.
func (pl *Planner) Decide(dst []Decision, in *Input) []Decision {
	var d decider
	d.init(in, pl)
	d.pl = pl
	d.slots, d.times, d.cands, d.open = pl.slots[:0], pl.times[:0], pl.cands[:0], pl.open[:0]
	base := len(dst)
	for i := range in.Held {
		h := &in.Held[i]
		dd := Decision{ID: h.ID, At: d.nowLocal, Numbers: Numbers{NearestBits: -1, SinceLastRelease: d.sinceLast}}
		if h.Features != nil {
			dd.Subject, dd.Campaign = h.Features.Subject, h.Features.Campaign
		}
		dst = append(dst, dd)
	}
	d.decide(dst[base:])
	for i := base; i < len(dst); i++ {
		dst[i].LookEvidence = d.lookEvidence
	}
	// Keep the grown buffers, without holding on to the caller's data.
	clear(d.cands)
	pl.slots, pl.times, pl.cands, pl.open = d.slots[:0], d.times[:0], d.cands[:0], d.open[:0]
	return dst
}

// planning state of one decision.
type decider struct {
	in        *Input
	pl        *Planner
	pol       Policy
	pop       *Population
	prof      *Profile
	loc       *time.Location
	now       time.Time
	nowUnix   int64
	nowLocal  time.Time
	sinceLast time.Duration
	fat       Fatigue
	slots     []slot
	open      []int   // indices of the slots not closed, ascending
	times     []int64 // release times (unix seconds) relevant to caps, sorted
	cands     []candidate
	stepVol   float64 // volume decay over one regular slot step
	planned   int
	holdout   bool
	// lookEvidence is Decision.LookEvidence, set by presenceLift.
	lookEvidence float64
}

type slot struct {
	t      time.Time
	unix   int64
	closed Reasons // quiet hours or send window
	capped Reasons // caps, recomputed as releases are planned
	lift   float64
	delay  float64
	vol    float64 // decayed volume, including releases planned so far
	vol0   float64 // decayed volume from the history alone
	cost0  float64 // the cost at vol0 (open slots only)
}

type candidate struct {
	held     *Held
	out      *Decision
	rel      Relevance
	start    int64 // earliest release (unix seconds)
	deadline int64 // release must be before this
	expires  int64 // 0 if none
	done     bool
	slot     int // planned slot, -1 if none
	best     int // best slot before competition and caps, -1 if none is open
	first    int // first open slot in range, -1 if none
	delay0   float64
	// the numbers at the planned slot, or else at the best one
	value  float64
	fresh  float64
	vol    float64
	cost   float64
	extra  Reasons
	draw   float64
	worthy bool // value exceeded cost at some open time, before competition
	// explore is set when the exploration draw exempts c from the cost.
	explore bool
}

func (d *decider) init(in *Input, pl *Planner) {
	d.in = in
	if in.Policy != nil {
		d.pol = in.Policy.withDefaults()
	} else {
		d.pol = DefaultPolicy()
	}
	d.pop = in.Population
	if d.pop == nil {
		if !pl.hasDefs {
			pl.defaults, pl.hasDefs = DefaultPopulation(), true
		}
		d.pop = &pl.defaults
	}
	d.prof = in.Profile
	if d.prof == nil {
		d.prof = &pl.noProfile
	}
	d.loc = in.Location
	if d.loc == nil {
		d.loc = time.UTC
	}
	d.now = in.Now
	d.nowUnix = in.Now.Unix()
	d.nowLocal = in.Now.In(d.loc)
	d.sinceLast = -1
	if n := len(d.prof.History); n > 0 {
		d.sinceLast = max(0, d.now.Sub(d.prof.History[n-1].At))
	}
}
