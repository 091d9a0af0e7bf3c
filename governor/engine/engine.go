package engine

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kadenz/config"
	"kadenz/scoring"
	"kadenz/store"
)

// Record is what explain shows for one decision on one envelope. It is
// stored as JSON with the envelope's decision records (store.Decided).
type Record struct {
	// DecidedAt is when the decision was made.
	DecidedAt time.Time `json:"decided_at"`
	Mode      string    `json:"mode"`
	// Action is what was done: release, defer or suppress.
	Action string `json:"action"`
	// Would is, in shadow mode, what enforce mode would have done.
	Would string `json:"would,omitempty"`
	// At is the release time (release) or the time of the next decision
	// (defer).
	At          time.Time        `json:"at,omitzero"`
	Reasons     []string         `json:"reasons,omitempty"`
	Numbers     *scoring.Numbers `json:"numbers,omitempty"`
	Explanation string           `json:"explanation"`
}

// Store is what the engine needs of the store: the per-recipient
// load-decide-apply, the counters the review hold reads, and the
// suppression list the gate consults.
type Store interface {
	DueRecipients(now time.Time, limit int) ([]string, error)
	NextHeld() (time.Time, bool, error)
	LoadRecipient(rcpt string) (store.Recipient, error)
	ApplyDecisionsAll(ds []store.Decided) []error
	Counters(names ...string) (map[string]int64, error)
	SuppressionOf(addr string) (store.Suppression, bool, error)
}

// Options configure an Engine.
type Options struct {
	Governor *config.Governor
	Store    Store
	Logger   *slog.Logger
	// Now is the clock (virtual in simulations and tests).
	Now func() time.Time
	// Released wakes delivery when mail was released for now.
	Released func()
	// Decided, if set, hears the records of every committed round
	// (metrics).
	Decided func([]Record)
	// Lease, if set, is asked before each round of the loop whether this
	// node may decide now (it holds the cluster's decider lease); when it
	// says no, the loop looks again after Poll. DecideDue does not ask.
	Lease func() bool
	// Poll, if set, bounds the loop's sleep: with several nodes on one
	// database, held mail another node accepted kicks no one here.
	Poll time.Duration
}

// Engine decides held marketing mail, recipient by recipient.
type Engine struct {
	db  Store
	log *slog.Logger
	now func() time.Time
	// rules are what a config reload may change; a round reads them once.
	rules atomic.Pointer[Rules]
	kick  chan struct{}
	// released wakes delivery when mail was released for now.
	released func()

	population scoring.Population
	// learned is what the last refresh learned of population's readers,
	// for operators (Learned); read from other goroutines.
	learned atomic.Pointer[Learned]
	// populationAt is the last refresh of population's lifts; knownTopics
	// the topics held mail had (population.go).
	populationAt time.Time
	knownTopics  map[string]bool
	memory       scoring.Memory
	// suspended is the set of campaigns an operator suspended (campaigns.go).
	suspended atomic.Pointer[map[string]store.SuspendedCampaign]
	// decided hears committed rounds (Options.Decided).
	decided func([]Record)
	// lease and poll: Options.Lease and Options.Poll.
	lease   func() bool
	poll    time.Duration
	planner scoring.Planner
	// pipe is the loop's pipeline while it computes a round (counter reads
	// go through it), nil otherwise.
	pipe *pipeline
	// overlapped counts the loop's rounds computed while the one before
	// was being written (pipeline.go).
	overlapped atomic.Int64
	decisions  []scoring.Decision // reused by each round, like planner
	zonesMu    sync.Mutex
	zones      map[string]*time.Location // resolved X-Kadenz-Timezone values
	// shadowDueAt is, in shadow mode, when each recipient's earliest held
	// copy comes due (shadow.go); a hint, rebuilt as recipients are decided.
	shadowDueAt map[string]time.Time

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	started  bool // set by start, before any shutdown can run
}

// New builds an engine; Start runs its loop, DecideDue drives it by hand.
func New(o Options) (*Engine, error) {
	ru, err := NewRules(o.Governor)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		db: o.Store, log: o.Logger, now: o.Now, released: o.Released, decided: o.Decided,
		lease: o.Lease, poll: o.Poll,
		kick:       make(chan struct{}, 1),
		population: scoring.DefaultPopulation(), knownTopics: map[string]bool{},
		memory: scoring.DefaultMemory(),
		zones:  map[string]*time.Location{},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.released == nil {
		e.released = func() {}
	}
	if e.decided == nil {
		e.decided = func([]Record) {}
	}
	e.rules.Store(ru)
	return e, nil
}

// SetRules makes rules (built by NewRules from a reloaded configuration)
// govern the next round, and decides held mail under them at once.
func (e *Engine) SetRules(ru *Rules) {
	e.rules.Store(ru)
	e.zonesMu.Lock()
	clear(e.zones) // unknown zones fell back to the old default
	e.zonesMu.Unlock()
	e.Kick()
}

// Rules returns the rules in force.
func (e *Engine) Rules() *Rules { return e.rules.Load() }

// Memory is how fast the engine's profiles forget (scoring.Memory); the
// code that records feedback into a profile must use the same.
func (e *Engine) Memory() scoring.Memory { return e.memory }

// Rules are the engine's view of the governor configuration, resolved
// once: built at start and again by each successful reload, then swapped
// in whole, so a round never sees half of an old and half of a new config.
type Rules struct {
	cfg        config.Governor
	policy     scoring.Policy
	caps       scoring.Caps
	quiet      scoring.QuietHours
	window     *sendWindows // nil: any time
	defaultLoc *time.Location
}

// NewRules resolves a governor configuration; its errors are the
// configuration's (a zone or clock that does not parse).
func NewRules(cfg *config.Governor) (*Rules, error) {
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, fmt.Errorf("governor.timezone: %w", err)
	}
	start, err := config.ParseClock(cfg.QuietHours.Start)
	if err != nil {
		return nil, err
	}
	end, err := config.ParseClock(cfg.QuietHours.End)
	if err != nil {
		return nil, err
	}
	ru := &Rules{
		cfg:        *cfg,
		policy:     scoring.DefaultPolicy(),
		caps:       scoring.Caps{PerDay: cfg.Caps.PerDay, PerWeek: cfg.Caps.PerWeek, PerMonth: cfg.Caps.PerMonth, MinGap: cfg.Caps.MinGap},
		quiet:      scoring.QuietHours{Start: start, End: end},
		defaultLoc: loc,
	}
	ru.policy.Strictness = cfg.Strictness
	if len(cfg.SendWindows) > 0 {
		if ru.window, err = newSendWindows(cfg.SendWindows); err != nil {
			return nil, err
		}
	}
	return ru, nil
}

// Governor returns the configuration the rules were built from.
func (ru *Rules) Governor() config.Governor { return ru.cfg }

// Kick makes the engine look at the schedule again now.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Start runs the decision loop until Shutdown.
func (e *Engine) Start() {
	e.started = true
	go e.run()
}

// Shutdown stops the loop, if it was started, and waits for the round in
// progress.
func (e *Engine) Shutdown() {
	e.stopOnce.Do(func() { close(e.stop) })
	if e.started {
		<-e.done
	}
}

// RecipientsPerRound bounds one pass of DecideDue, so a stop is noticed
// between passes. The loop starts its rounds at this size and grows them
// while there is a backlog (pipeline.go).
const RecipientsPerRound = 64

func (e *Engine) run() {
	defer close(e.done)
	p := newPipeline()
	defer e.settle(p) // an outcome being written is written before Shutdown returns
	idle := idleCheck
	if e.poll > 0 {
		idle = min(e.poll, idleCheck)
	}
	for {
		if e.lease != nil && !e.lease() {
			e.settle(p) // the lease is gone: nothing of ours may still be on its way
			// Another node decides; look again in a while, in case it
			// died and its lease ran out.
			if !e.sleep(idle) {
				return
			}
			continue
		}
		full, err := e.pipelinedRound(p, e.now())
		wait := idle
		switch {
		case err != nil:
			e.log.Error("deciding", "error", err)
			wait = time.Second
		case full:
			wait = 0
		default:
			if next, ok, err := e.db.NextHeld(); err == nil && ok {
				wait = min(max(next.Sub(e.now()), 0), idle)
			}
		}
		if wait == 0 {
			select {
			case <-e.stop:
				return
			default:
				continue
			}
		}
		if !e.sleep(wait) {
			return
		}
	}
}

// sleep waits for d, a kick or the stop, and reports false on the stop.
func (e *Engine) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.stop:
		return false
	case <-e.kick:
	case <-t.C:
	}
	return true
}

// DecideDue runs one decision round for up to RecipientsPerRound
// recipients with held mail due at now, and returns how many it looked at.
// The loop calls it; so can a simulation that drives virtual time itself.
// A recipient whose round fails is logged and retried on a later call.
//
// Each recipient is decided in turn, and their outcomes are written
// together: one commit for the round instead of one per recipient (a
// campaign of 5,000 recipients took 34 s to decide with a commit each), yet
// each recipient's outcome is still atomic and one that cannot be written
// does not hold up the others (store.ApplyDecisionsAll). The campaign
// counters that the review rule reads include the round's earlier
// recipients, so each decision sees what it would have seen had those been
// committed one by one.
func (e *Engine) DecideDue(now time.Time) (int, error) {
	r, n, failed := e.computeRound(now, RecipientsPerRound, nil)
	if r == nil {
		return n, failed
	}
	if err := e.finishRound(r, e.db.ApplyDecisionsAll(r.outs)); err != nil {
		failed = err
	}
	return n, failed
}

// round is one decision round, computed and not yet written.
type round struct {
	decided []*decided
	outs    []store.Decided
	// counters adds up every recipient's counter changes.
	counters map[string]int64
}

// computeRound finds up to limit recipients due at now, leaving out those
// in busy (normalised addresses whose outcomes are being written), and
// decides each; it returns the round to write (nil when there is nothing
// to write), how many recipients it looked at, and the last error of a
// recipient that could not be decided (retried on a later round).
func (e *Engine) computeRound(now time.Time, limit int, busy map[string]bool) (*round, int, error) {
	rcpts, err := e.db.DueRecipients(now, limit+len(busy))
	if err != nil {
		return nil, 0, fmt.Errorf("finding recipients due for a decision: %w", err)
	}
	rcpts = e.withShadowDue(rcpts, now) // shadow mode's copies that came due (shadow.go)
	if len(busy) > 0 {
		// Whose outcome is still being written is still held in the
		// index; it is not due twice.
		kept := rcpts[:0]
		for _, rcpt := range rcpts {
			if !busy[store.NormalizeAddress(rcpt)] {
				kept = append(kept, rcpt)
			}
		}
		rcpts = kept
	}
	rcpts = rcpts[:min(len(rcpts), limit)]
	if len(rcpts) > 0 {
		if err := e.refreshPopulation(now); err != nil { // issue 18: population lifts
			e.log.Error("population lifts not refreshed", "error", err)
		}
	}
	var failed error
	r := &round{counters: map[string]int64{}} // counted: counter changes of the round so far
	loaded := e.loadAll(rcpts)
	for i, rcpt := range rcpts {
		var pre *store.Recipient
		if loaded != nil {
			pre = &loaded[i]
		}
		d, err := e.decide(rcpt, pre, now, r.counters)
		if err != nil {
			e.log.Error("decision failed; retried shortly", "recipient", rcpt, "error", err)
			failed = err
			continue
		}
		if d == nil {
			continue
		}
		for k, v := range d.out.Counters {
			r.counters[k] += v
		}
		r.decided = append(r.decided, d)
		r.outs = append(r.outs, d.out)
	}
	if len(r.decided) == 0 {
		return nil, len(rcpts), failed
	}
	return r, len(rcpts), failed
}

// finishRound reports a written round: errs are ApplyDecisionsAll's, one
// per recipient. It returns the last error.
func (e *Engine) finishRound(r *round, errs []error) error {
	var failed error
	releasedNow := false
	e.logRound(r, errs)
	for i, err := range errs {
		if err != nil {
			e.log.Error("decision failed; retried shortly", "recipient", r.decided[i].out.Recipient, "error", err)
			failed = err
			continue
		}
		e.decided(r.decided[i].recs)
		releasedNow = releasedNow || r.decided[i].releasedNow
	}
	if releasedNow {
		e.released()
	}
	return failed
}

// loadAll reads the round's recipients in one view where the store can
// (store.RecipientsLoader): on a database over the network one query set
// for the round instead of a transaction per recipient. nil when it
// cannot; decide then loads each recipient itself.
func (e *Engine) loadAll(rcpts []string) []store.Recipient {
	loader, ok := e.db.(store.RecipientsLoader)
	if !ok || len(rcpts) < 2 {
		return nil
	}
	loaded, err := loader.LoadRecipients(rcpts)
	if err != nil || len(loaded) != len(rcpts) {
		e.log.Warn("loading the round's recipients together failed; loading them one by one", "error", err)
		return nil
	}
	return loaded
}

// decided is one recipient's decision round, computed and not yet written.
type decided struct {
	out  store.Decided
	recs []Record
	// releasedNow: some mail is due for delivery at once.
	releasedNow bool
}

// idleCheck bounds a sleep, as a safety net against a clock that jumps.
const idleCheck = time.Minute

// decide runs one decision round for one recipient and returns what to
// write, or nil when there is nothing to write (no held mail). counted
// holds the campaign counter changes of the round's recipients decided
// before this one. pre is the recipient as loaded with the round's
// others, or nil to load it here.
func (e *Engine) decide(rcpt string, pre *store.Recipient, now time.Time, counted map[string]int64) (*decided, error) {
	var r store.Recipient
	var err error
	if pre != nil {
		r = *pre
	} else {
		r, err = e.db.LoadRecipient(rcpt)
	}
	if err != nil || len(r.Held) == 0 && !e.shadowDue(rcpt, now) {
		return nil, err
	}
	ru := e.rules.Load()
	profile, err := scoring.DecodeProfile(r.Profile)
	if err != nil {
		return nil, err
	}
	profile.Unsubscribed = cmp.Or(profile.Unsubscribed, r.Forgotten) // an erased opt-out still counts
	if d, err := e.gate(ru, rcpt, r.Held, profile, now); d != nil || err != nil {
		return d, err // suppression list or a reply pause: see gate.go
	}
	sh, err := e.shadowPrepare(ru, &r, profile, now, counted) // shadow mode's forecast (shadow.go); nil otherwise
	if err != nil || len(r.Held) == 0 {
		return e.shadowOnly(rcpt, profile, sh, len(r.Profile) > 0, err)
	}
	if v := sh.gate(profile, now, false); v != nil { // shadow mode's forecast of the gate; nil otherwise
		return e.shadowGated(rcpt, &r, profile, sh, v, now)
	}
	held, features, err := heldFeatures(r, profile)
	if err != nil {
		return nil, err
	}
	if err := e.campaignEvidence(held, r.Held, counted); err != nil { // issue 18: campaign quality
		return nil, err
	}
	e.notePopulationTopics(held)
	in := scoring.Input{
		Now: now, Recipient: rcpt, Profile: profile, Location: e.Location(profile.Timezone),
		Held: held, Caps: ru.caps, Quiet: ru.quiet, Population: &e.population, Policy: &ru.policy,
	}
	if ru.window != nil {
		in.Window = ru.window // a nil *sendWindows must not become a non-nil interface
	}
	e.decisions = e.planner.Decide(e.decisions[:0], &in)

	byID := make(map[string]store.Envelope, len(r.Held))
	for _, env := range r.Held {
		byID[env.ID] = env
	}
	out := store.Decided{Recipient: rcpt, Records: map[string][]byte{}, Counters: sh.startCounters()}
	stats, err := e.campaignStats(ru, r.Held, features, counted)
	if err != nil {
		return nil, err
	}
	recs := make([]Record, 0, len(e.decisions))
	releasedNow := false
	for _, d := range e.decisions {
		if sh.isCopy(d.ID) { // sent already: only the forecast learns its outcome
			if err := e.shadowCopyOutcome(ru, &d, byID[d.ID], features, profile, stats, out.Counters, now); err != nil {
				return nil, err
			}
			continue
		}
		env, rec, now0, err := e.outcome(ru, &d, byID[d.ID], features, profile, stats, out.Counters, now)
		if err != nil {
			return nil, err
		}
		releasedNow = releasedNow || now0
		out.Envelopes = append(out.Envelopes, env)
		recs = append(recs, rec)
		if out.Records[env.ID], err = appendRecordJSON(make([]byte, 0, 640+len(rec.Explanation)), &rec); err != nil { // json.Marshal's bytes
			return nil, err
		}
		e.logDecision(env, rcpt, &rec)
	}
	e.noteShadowDue(rcpt, profile, sh)
	if out.Profile, err = profile.Encode(); err != nil {
		return nil, err
	}
	return &decided{out: out, recs: recs, releasedNow: releasedNow}, nil
}

// heldFeatures pairs each held envelope with its message's features for
// the planner. r.Held is in arrival order (envelope IDs sort by time), so
// what the latest message says about the recipient's zone and value wins,
// the same way on every run; profile takes it.
func heldFeatures(r store.Recipient, profile *scoring.Profile) ([]scoring.Held, map[string]*scoring.Features, error) {
	held := make([]scoring.Held, len(r.Held))
	features := make(map[string]*scoring.Features, len(r.Messages))
	for i, env := range r.Held {
		f, ok := features[env.MessageID]
		if !ok {
			f = &scoring.Features{}
			if raw := r.Messages[env.MessageID].Features; len(raw) > 0 {
				if err := scoring.DecodeFeatures(raw, f); err != nil {
					return nil, nil, fmt.Errorf("features of %s: %w", env.MessageID, err)
				}
			}
			features[env.MessageID] = f
		}
		if f.Timezone != "" {
			profile.Timezone = f.Timezone
		}
		if f.HasValue {
			profile.Value, profile.HasValue = f.Value, true
		}
		held[i] = scoring.Held{ID: env.ID, Features: f, Received: env.Created}
	}
	return held, features, nil
}

// outcome turns one of the planner's decisions into the envelope to write
// and its record: the administrator's rules on top, shadow mode's "would"
// (shadow.go), and the release recorded in the profile. releasedNow says
// the envelope is due for delivery at once.
func (e *Engine) outcome(ru *Rules, d *scoring.Decision, env store.Envelope, features map[string]*scoring.Features,
	profile *scoring.Profile, stats map[string]*reviewStats, counters map[string]int64, now time.Time) (_ store.Envelope, _ Record, releasedNow bool, _ error) {
	rec := Record{
		DecidedAt: now, Mode: ru.cfg.Mode, Action: d.Action.String(),
		Reasons: d.Reasons.Codes(), Numbers: &d.Numbers, Explanation: d.Explain(),
	}
	action, at := d.Action, d.At
	f := features[env.MessageID]
	review := e.applyRules(ru, &rec, &action, &at, now, env, f, profile, stats, counters)
	countLookEvidence(counters, d, action, review)
	if ru.cfg.Mode == config.ModeShadow {
		// Shadow mode sends now, records what enforce would have done and
		// keeps the profile enforce would have had.
		return e.shadowOutcome(&rec, action, at, review, env, f, profile, counters, now)
	}
	if review {
		rec.Action = ActionReview
	}
	env.Updated = now
	switch {
	case review:
		// Waits for a person; not in the history until released.
		env.State, env.Due = store.StateReview, now
	case action == scoring.ActionRelease:
		at = maxTime(at, now)
		env.State, env.Due, rec.At = store.StateQueued, at, at
		// issue 18: content terms, campaign quality and population counts
		rel := scoring.Release{At: at, MessageID: env.ID, Campaign: f.Campaign, Sender: env.From, Topics: f.Topics,
			Fingerprint: f.Fingerprint, Terms: scoring.TermBitsOf(f.Terms), Quality: scoring.QualityKey(f)}
		profile.RecordRelease(rel, e.memory)
		countRelease(counters, &rel)
		releasedNow = !at.After(now)
	case action == scoring.ActionDefer:
		// A defer to now or the past would spin; decide again shortly.
		at = maxTime(at, now.Add(time.Minute))
		env.State, env.Due, rec.At = store.StateHeld, at, at
	default:
		env.State = store.StateSuppressed
	}
	return env, rec, releasedNow, nil
}

// logDecision writes one line for one envelope's decision, at debug level:
// at a campaign's scale a line per envelope was 4% of the decider's CPU
// (issue 16), the record kadenz explain reads says more, and the round's
// line at info level (logRound) says what was chosen.
func (e *Engine) logDecision(env store.Envelope, rcpt string, rec *Record) {
	if !e.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	attrs := []any{"envelope", env.ID, "to", rcpt, "action", rec.Action, "reasons", strings.Join(rec.Reasons, ",")}
	if rec.Would != "" {
		attrs = append(attrs, "would", rec.Would)
	}
	if !rec.At.IsZero() {
		attrs = append(attrs, "at", rec.At)
	}
	e.log.Debug("decided", attrs...)
}

// logRound writes one line at info level for a written round: how many
// recipients it decided and how many envelopes it released, deferred,
// suppressed and put in review (in shadow mode: what was done; "would" is
// in each envelope's record). Failed recipients are logged on their own.
func (e *Engine) logRound(r *round, errs []error) {
	var rcpts, envs, release, deferred, suppress, review, other int
	for i, err := range errs {
		if err != nil {
			continue
		}
		rcpts++
		for j := range r.decided[i].recs {
			envs++
			switch r.decided[i].recs[j].Action {
			case actionRelease:
				release++
			case actionDefer:
				deferred++
			case actionSuppress:
				suppress++
			case ActionReview:
				review++
			default:
				other++
			}
		}
	}
	if rcpts == 0 {
		return
	}
	attrs := []slog.Attr{slog.Int("recipients", rcpts), slog.Int("envelopes", envs), slog.Int("release", release),
		slog.Int("defer", deferred), slog.Int("suppress", suppress), slog.Int("review", review)}
	if other > 0 {
		attrs = append(attrs, slog.Int("other", other))
	}
	e.log.LogAttrs(context.Background(), slog.LevelInfo, "decided round", attrs...)
}

// The planner's actions as records name them (scoring.Action.String).
var (
	actionRelease  = scoring.ActionRelease.String()
	actionDefer    = scoring.ActionDefer.String()
	actionSuppress = scoring.ActionSuppress.String()
)

// Location resolves a recipient's zone, falling back to the configured one.
func (e *Engine) Location(name string) *time.Location {
	defaultLoc := e.rules.Load().defaultLoc
	if name == "" {
		return defaultLoc
	}
	e.zonesMu.Lock() // feedback resolves zones too, from other goroutines
	defer e.zonesMu.Unlock()
	loc, ok := e.zones[name]
	if !ok {
		var err error
		if loc, err = time.LoadLocation(name); err != nil {
			e.log.Warn("unknown time zone, using the default", "zone", name)
			loc = defaultLoc
		}
		e.zones[name] = loc
	}
	return loc
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// InHoldout reports whether a recipient belongs to the holdout group: a
// stable hash of the salted, lower-cased address, so a recipient stays in
// or out across messages and restarts.
func InHoldout(rcpt string, h config.Holdout) bool {
	if h.Share <= 0 {
		return false
	}
	f := fnv.New64a()
	f.Write([]byte(h.Salt))
	f.Write([]byte{0})
	f.Write([]byte(strings.ToLower(rcpt)))
	return float64(f.Sum64())/float64(1<<64) < h.Share
}
