// Package sim is the Kadenz simulator: it runs the real relay and decision
// engine on virtual time against a synthetic population and compares
// policies on the same mail and the same luck.
//
// How: Run draws a population (hidden topic interests, active hours, time
// zone and tolerance for volume per recipient) and a CRM's stream of
// campaigns and transactional mail from the seed, then replays the stream
// once per policy; Kadenz goes through a fresh relay (governor.New, never
// Start) in its own temporary data directory. Virtual time moves in fixed ticks:
// the tick's messages are submitted as real RFC 5322 bytes, the engine
// decides whatever is due, and what is due for delivery is claimed and
// handed to the response model (response.go), whose opens, clicks,
// unsubscribes and complaints flow back into the relay's profiles at
// their own virtual times, as feedback does in production. Send-all and
// the fixed caps (frontier.go) release everything at once, so they replay
// the same ticks without a relay (runDirect), with the same result.
//
// The same seed gives the same result: all randomness comes from
// math/rand/v2 PCG sources derived from it (the relay's message IDs
// included), and no clock is read.
//
// What it does not do: it is not a forecast. The population and the
// response model are assumptions, written down in docs/simulation.md;
// the simulator shows how policies compare under them, not what a real
// list will do. It does not exercise SMTP, delivery retries or the admin
// API.
package sim

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	_ "time/tzdata" // recipients' zones must resolve the same everywhere

	"kadenz/config"
	"kadenz/governor"
	"kadenz/governor/intake"
	"kadenz/scoring"
	"kadenz/store"
)

// Options configure a run. Zero values take the defaults.
type Options struct {
	// Recipients is the population size (default 500).
	Recipients int
	// Days is how long the CRM sends (default 14).
	Days int
	// Drain is how long the run continues after the last submission, so
	// held mail is decided and feedback arrives (default 2 days).
	Drain time.Duration
	// Seed makes the run; the same seed gives the same result.
	Seed uint64
	// Mix is the population mix (default MixDefault).
	Mix Mix
	// World is the shape of the list and its sender (default
	// WorldClassic, world.go).
	World World
	// Look is how readers come to look at their mail (default LookDelay,
	// response.go).
	Look Look
	// Bursts, when above 0, makes readers feel a burst of mail as the rate
	// it momentarily is: the load is the larger of the model's (a 2-day
	// half-life) and one decayed with this half-life (response.go). 0 is
	// the model as written.
	Bursts time.Duration
	// Tick is the virtual time step (default 5 minutes, the default hold
	// window).
	Tick time.Duration
	// TempDir is where each policy's data directory is made and removed
	// (default os.TempDir()).
	TempDir string
	// Configure, if set, changes the Kadenz policy's configuration after
	// the defaults are applied: "what if" runs (strictness, caps). The
	// comparison policies are not affected.
	Configure func(*config.Governor)
	// Logger receives the relay's logs (default: discarded; they are
	// many).
	Logger *slog.Logger
	// Diagnose keeps each Kadenz message's fate for Result.Diagnose.
	Diagnose bool
	// Only, if set, runs just these policies (a sweep over Kadenz
	// settings reuses send-all and the caps, which do not depend on
	// them). Any cap-<gap> (CapPolicy) may be named, in or out of CapGaps.
	// Ratios against send-all are then 0 unless send-all ran.
	Only []string
	// viaRelay runs the policies that release at once through a relay
	// too, as Kadenz is run; tests use it to check the direct path.
	viaRelay bool
}

func (o *Options) defaults() {
	if o.Recipients <= 0 {
		o.Recipients = 500
	}
	if o.Days <= 0 {
		o.Days = 14
	}
	if o.Drain <= 0 {
		o.Drain = 48 * time.Hour
	}
	if o.Mix == "" {
		o.Mix = MixDefault
	}
	if o.World == "" {
		o.World = WorldClassic
	}
	if o.Look == "" {
		o.Look = LookDelay
	}
	if o.Tick <= 0 {
		o.Tick = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Start is the virtual time a run begins: a Monday, midnight UTC.
var Start = time.Date(2026, time.March, 2, 0, 0, 0, 0, time.UTC)

// Policy names.
const (
	PolicySendAll = "send-all"
	// PolicyCap is the example cap, one marketing mail per
	// recipient per 16 hours; it is one point of the cap frontier
	// (CapGaps, frontier.go).
	PolicyCap    = "cap-16h"
	PolicyKadenz = "kadenz"
	// PolicyOracle is a yardstick, not a product: send-all restricted to
	// mail on a topic the recipient (secretly) likes, without repeats of
	// a campaign within a week. It reads the hidden truth, so it only
	// runs when Options.Only asks for it, to bound what knowing
	// interests perfectly would buy. BayesPolicy (bayes.go) names its
	// counterpart that learns the interests from feedback instead.
	PolicyOracle = "oracle-liked"
	// PolicyShadow is Kadenz in governor.mode shadow: everything is sent
	// at once, and what enforce mode would have done is forecast
	// (PolicyResult.Forecast, shadow.go). It runs when Options.Only names
	// it (kadenz simulate --shadow).
	PolicyShadow = "kadenz-shadow"
)

// oracleRelevance is the hidden relevance at which the oracle sends:
// liked topics have interest 0.5-1, others 0-0.15.
const oracleRelevance = 0.4

// Result is one run: the same population and stream under each policy.
type Result struct {
	Recipients int    `json:"recipients"`
	Days       int    `json:"days"`
	Seed       uint64 `json:"seed"`
	Mix        Mix    `json:"mix"`
	World      World  `json:"world"`
	Look       Look   `json:"look"`
	// BurstsS is Options.Bursts in seconds (absent when 0).
	BurstsS float64 `json:"bursts_half_life_s,omitempty"`
	// Marketing and Transactional count the messages the CRM generated.
	Marketing     int `json:"marketing"`
	Transactional int `json:"transactional"`
	// Policies are send-all, the fixed caps from the loosest to the
	// strictest (CapGaps) and Kadenz, in that order.
	Policies []*PolicyResult `json:"policies"`
	// pop and stream are kept for Diagnose (Options.Diagnose only).
	pop    []*recipient
	stream []message
}

// PolicyResult is what one policy did.
type PolicyResult struct {
	Name string `json:"name"`
	// Submitted is marketing mail handed to the relay: the CRM's stream
	// minus mail to people who had unsubscribed or complained (and, for
	// the fixed cap, minus Dropped).
	Submitted int `json:"submitted"`
	// Dropped is marketing mail a fixed cap (or the oracle) discarded.
	Dropped int `json:"dropped"`
	// Released is marketing mail delivered to recipients.
	Released int `json:"released"`
	// Suppressed is marketing mail the engine decided never to send;
	// HeldAtEnd is what was still held or scheduled when the run ended.
	Suppressed int `json:"suppressed"`
	HeldAtEnd  int `json:"held_at_end"`
	Opens      int `json:"opens"`
	Clicks     int `json:"clicks"`
	// Unsubscribes and Complaints count recipients (each stops once).
	Unsubscribes int `json:"unsubscribes"`
	Complaints   int `json:"complaints"`
	// ClicksPerMessage is Clicks / Released.
	ClicksPerMessage float64 `json:"clicks_per_message"`
	// Transactional delay, submission to release, in seconds.
	TransactionalMaxDelay  float64 `json:"transactional_max_delay_s"`
	TransactionalMeanDelay float64 `json:"transactional_mean_delay_s"`
	// Ratios against send-all (1 for send-all itself).
	ReleasedVsSendAll float64 `json:"released_vs_send_all"`
	ClicksVsSendAll   float64 `json:"clicks_vs_send_all"`
	StopsVsSendAll    float64 `json:"stops_vs_send_all"`
	// Releases is the release log, in order of release.
	Releases []Release `json:"-"`
	// Fates is, with Options.Diagnose, each marketing message's final
	// state and last decision, by stream index (Kadenz only).
	Fates map[int]Fate `json:"-"`
	// Forecast is, for Kadenz in shadow mode (PolicyShadow), what it
	// forecast enforce mode would have done; for Kadenz in enforce mode
	// in a run with PolicyShadow, what enforce did, in the same terms.
	Forecast *Forecast `json:"forecast,omitempty"`
}

// Stops is unsubscribes plus complaints.
func (p *PolicyResult) Stops() int { return p.Unsubscribes + p.Complaints }

// Release is one message delivered in a run.
type Release struct {
	Recipient string
	// Message is the message's index in the stream.
	Message   int
	Campaign  string
	Marketing bool
	Submitted time.Time
	Released  time.Time
	// Clicked is whether the reader clicked it; ClickAt when.
	Clicked bool
	ClickAt time.Time
	// Opened is whether the reader opened it; OpenAt when. Unsubscribed
	// and Complained are whether it made them stop; StopAt when. Pressure
	// is the reader's hidden over-mailing when it arrived (1 at none; the
	// response model's 1 + (L/2)²), for the diagnostics only.
	Opened, Unsubscribed, Complained bool
	OpenAt, StopAt                   time.Time
	Pressure                         float64
}

// Run simulates every policy on one population and stream.
func Run(opts Options) (*Result, error) {
	opts.defaults()
	if err := opts.World.check(); err != nil {
		return nil, err
	}
	if err := opts.Look.check(); err != nil {
		return nil, err
	}
	if opts.Bursts < 0 {
		return nil, fmt.Errorf("burst half-life %v is negative", opts.Bursts)
	}
	pop, err := newPopulation(rand.New(rand.NewPCG(opts.Seed, 1)), opts.Recipients, opts.Mix, opts.World)
	if err != nil {
		return nil, err
	}
	var stream []message
	if opts.World.structured() {
		stream = newStructuredStream(rand.New(rand.NewPCG(opts.Seed, 2)), pop, Start, opts.Days, opts.World)
	} else {
		stream = newStream(rand.New(rand.NewPCG(opts.Seed, 2)), pop, Start, opts.Days)
	}
	res := &Result{Recipients: opts.Recipients, Days: opts.Days, Seed: opts.Seed, Mix: opts.Mix, World: opts.World, Look: opts.Look,
		BurstsS: opts.Bursts.Seconds()}
	if opts.Diagnose {
		res.pop, res.stream = pop, stream
	}
	for i := range stream {
		if stream[i].marketing {
			res.Marketing++
		} else {
			res.Transactional++
		}
	}
	// Policies run side by side: each has its own relay and database,
	// and they only read the population and the stream. Most of a run is
	// waiting for database commits, so this overlaps well even on few cores.
	names := DefaultPolicies()
	if len(opts.Only) > 0 {
		names = opts.Only
	}
	res.Policies = make([]*PolicyResult, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			res.Policies[i], errs[i] = runPolicy(&opts, name, pop, stream)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", name, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	base := res.Policy(PolicySendAll)
	if base == nil {
		return res, nil
	}
	for _, p := range res.Policies {
		p.ReleasedVsSendAll = ratio(p.Released, base.Released)
		p.ClicksVsSendAll = ratio(p.Clicks, base.Clicks)
		p.StopsVsSendAll = ratio(p.Stops(), base.Stops())
	}
	return res, nil
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// pcgReader turns a PCG into the io.Reader the relay draws message IDs
// from.
type pcgReader struct{ rng *rand.PCG }

func (r pcgReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(r.rng.Uint64())
	}
	return len(b), nil
}

var _ io.Reader = pcgReader{}

// feedback is an event waiting for its virtual time.
type feedback struct {
	at    time.Time
	seq   int // keeps equal times in the order they were made
	rcpt  string
	event scoring.Event
}

type feedbackQueue []feedback

func (q feedbackQueue) Len() int { return len(q) }
func (q feedbackQueue) Less(i, j int) bool {
	if c := q[i].at.Compare(q[j].at); c != 0 {
		return c < 0
	}
	return q[i].seq < q[j].seq
}
func (q feedbackQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *feedbackQueue) Push(x any)   { *q = append(*q, x.(feedback)) }
func (q *feedbackQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// replay is one policy's side of a run that does not depend on how mail
// is released: what the sender admits, what readers do with what they
// get, and the counts. The relay path (runPolicy) and the direct path
// (runDirect) share it, so they cannot drift apart.
type replay struct {
	opts    *Options
	name    string
	gap     time.Duration // a fixed cap's minimum gap; 0 for other policies
	pop     []*recipient
	out     *PolicyResult
	readers []reader
	// lastCapped is when the fixed cap last admitted mail to a recipient.
	lastCapped []time.Time
	transDelay time.Duration
	transCount int
	// bayes is the state of a Bayes yardstick (bayes.go), nil for others.
	bayes *bayesPolicy
	// timed is the state of a timed oracle (timed.go), nil for others.
	timed *timedOracle
}

func newReplay(opts *Options, name string, pop []*recipient) (*replay, error) {
	r := &replay{opts: opts, name: name, pop: pop, out: &PolicyResult{Name: name}}
	switch gap, isCap := capGapOf(name); {
	case isCap:
		r.gap = gap
		r.lastCapped = make([]time.Time, len(pop))
	case name == PolicySendAll, name == PolicyKadenz, name == PolicyOracle, name == PolicyShadow:
	case isBayes(name):
		if err := r.startBayes(name); err != nil {
			return nil, err
		}
	case isTimed(name):
		if err := r.startTimed(name); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown policy %q", name)
	}
	r.readers = make([]reader, len(pop))
	for i := range r.readers {
		r.readers[i].campaigns = map[string]time.Time{}
	}
	return r, nil
}

// admit says whether the sender submits m under this policy, counting
// what is submitted and what a fixed cap or the oracle drops.
// Transactional mail is always submitted.
func (r *replay) admit(m *message) bool {
	if !m.marketing {
		return true
	}
	// The sender honours unsubscribes and complaints it has heard of,
	// under every policy.
	if s := r.readers[m.rcpt].stopped; !s.IsZero() && !s.After(m.at) {
		return false
	}
	if r.timed != nil && !r.timed.plan(m) || r.timed == nil && r.bayes != nil && !r.bayes.admit(m) {
		r.out.Dropped++
		return false
	}
	if r.name == PolicyOracle {
		last, seen := r.readers[m.rcpt].campaigns[m.campaign.id]
		if r.pop[m.rcpt].relevance(m.campaign.topics) < oracleRelevance || seen && m.at.Sub(last) < repeatWindow {
			r.out.Dropped++
			return false
		}
	}
	if r.gap > 0 {
		if l := r.lastCapped[m.rcpt]; !l.IsZero() && m.at.Sub(l) < r.gap {
			r.out.Dropped++
			return false
		}
		r.lastCapped[m.rcpt] = m.at
	}
	r.out.Submitted++
	return true
}

// deliver records m as released at at and returns what its reader did
// (nothing for transactional mail).
func (r *replay) deliver(m *message, at time.Time) outcome {
	p := r.pop[m.rcpt]
	out := r.out
	out.Releases = append(out.Releases, Release{
		Recipient: p.addr, Message: m.index, Marketing: m.marketing,
		Submitted: m.at, Released: at,
	})
	rel := &out.Releases[len(out.Releases)-1]
	if !m.marketing {
		d := max(at.Sub(m.at), 0)
		r.transDelay += d
		r.transCount++
		out.TransactionalMaxDelay = max(out.TransactionalMaxDelay, d.Seconds())
		return outcome{}
	}
	rel.Campaign = m.campaign.id
	out.Released++
	o := respond(p, &r.readers[m.rcpt], m, at, drawsFor(r.opts.Seed, m), r.opts.Look, r.opts.Bursts)
	rel.Opened, rel.OpenAt, rel.Pressure = o.opened, o.openAt, o.pressure
	rel.Unsubscribed, rel.Complained, rel.StopAt = o.unsubscribed, o.complained, o.stopAt
	switch {
	case r.timed != nil:
		r.timed.delivered(m, at, o)
	case r.bayes != nil:
		r.bayes.delivered(m, at, o)
	}
	if o.opened {
		out.Opens++
	}
	if o.clicked {
		rel.Clicked, rel.ClickAt = true, o.clickAt
		out.Clicks++
	}
	switch {
	case o.complained:
		out.Complaints++
	case o.unsubscribed:
		out.Unsubscribes++
	}
	return o
}

// finish computes the derived numbers.
func (r *replay) finish() *PolicyResult {
	out := r.out
	if out.Released > 0 {
		out.ClicksPerMessage = float64(out.Clicks) / float64(out.Released)
	}
	if r.transCount > 0 {
		out.TransactionalMeanDelay = (r.transDelay / time.Duration(r.transCount)).Seconds()
	}
	return out
}

// runPolicy replays the stream under one policy. Policies that release
// everything they are given at once take the direct path (runDirect)
// unless Options.viaRelay asks for the relay.
func runPolicy(opts *Options, name string, pop []*recipient, stream []message) (*PolicyResult, error) {
	if name != PolicyKadenz && name != PolicyShadow && (!opts.viaRelay || isTimed(name)) {
		return runDirect(opts, name, pop, stream)
	}
	return runRelay(opts, name, pop, stream)
}

// runRelay replays the stream through a fresh relay under one policy.
func runRelay(opts *Options, name string, pop []*recipient, stream []message) (*PolicyResult, error) {
	r, err := newReplay(opts, name, pop)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.TempDir, "kadenz-sim-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	run := &relayRun{opts: opts, replay: r, pop: pop, clock: Start, byID: map[string]*message{}}
	if err := run.start(name, dir); err != nil {
		return nil, err
	}
	defer run.db.Close()

	end := Start.AddDate(0, 0, opts.Days).Add(opts.Drain)
	next := 0
	for t := Start; t.Before(end); t = t.Add(opts.Tick) {
		tickEnd := t.Add(opts.Tick)
		var err error
		if next, err = run.submitUntil(stream, next, tickEnd); err != nil {
			return nil, err
		}
		run.clock = tickEnd
		if err := run.applyUntil(tickEnd); err != nil {
			return nil, err
		}
		if err := run.decideAndDeliver(tickEnd); err != nil {
			return nil, err
		}
	}
	counts, err := run.db.CountByState()
	if err != nil {
		return nil, err
	}
	out := r.finish()
	if opts.Diagnose && name == PolicyKadenz {
		if out.Fates, err = fates(run.db, run.byID); err != nil {
			return nil, err
		}
	}
	out.Suppressed = counts[store.StateSuppressed]
	out.HeldAtEnd = counts[store.StateHeld] + counts[store.StateQueued]
	if name == PolicyShadow || name == PolicyKadenz && slices.Contains(opts.Only, PolicyShadow) {
		if out.Forecast, err = forecastOf(run.db, name == PolicyShadow); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// relayRun is one replay through a real relay on the simulation's clock:
// the stream goes in over the relay's intake, the engine decides at each
// tick, and what it releases is "delivered" to the simulated recipients,
// whose reactions come back as events at their own times.
type relayRun struct {
	opts   *Options
	replay *replay
	pop    []*recipient
	relay  *governor.Relay
	db     store.Store
	clock  time.Time
	byID   map[string]*message // relay message ID -> stream message
	events feedbackQueue
	seq    int
}

// start builds the relay for the policy named, with its data in dir.
func (run *relayRun) start(name, dir string) error {
	cfg := config.Default()
	cfg.DataDir = dir
	if name == PolicyKadenz || name == PolicyShadow {
		cfg.Governor.Mode = config.ModeEnforce
		if run.opts.Configure != nil {
			run.opts.Configure(&cfg.Governor)
		}
		if name == PolicyShadow {
			cfg.Governor.Mode = config.ModeShadow
		}
	} else {
		cfg.Governor.Mode = config.ModeOff // everything goes at once
	}
	relay, err := governor.New(governor.Options{
		Config: cfg, Logger: run.opts.Logger,
		Now:    func() time.Time { return run.clock },
		Store:  store.Options{NoSync: true},
		Random: pcgReader{rand.NewPCG(run.opts.Seed, 3)},
	})
	if err != nil {
		return err
	}
	run.relay, run.db = relay, relay.DB()
	return nil
}

// emit schedules a recipient's reaction for its time.
func (run *relayRun) emit(at time.Time, rcpt string, ev scoring.Event) {
	ev.At = at
	run.seq++
	heap.Push(&run.events, feedback{at: at, seq: run.seq, rcpt: rcpt, event: ev})
}

// applyUntil feeds the relay every event up to and including t.
func (run *relayRun) applyUntil(t time.Time) error {
	for len(run.events) > 0 && !run.events[0].at.After(t) {
		f := heap.Pop(&run.events).(feedback)
		if err := run.relay.RecordEvent(f.rcpt, f.event); err != nil {
			return err
		}
	}
	return nil
}

// submitUntil submits the stream's messages from next that arrive before
// tickEnd, each at its own time, and returns where the next tick starts.
func (run *relayRun) submitUntil(stream []message, next int, tickEnd time.Time) (int, error) {
	for ; next < len(stream) && stream[next].at.Before(tickEnd); next++ {
		m := &stream[next]
		run.clock = m.at
		if err := run.applyUntil(m.at); err != nil {
			return next, err
		}
		if !run.replay.admit(m) {
			continue
		}
		p := run.pop[m.rcpt]
		id, err := run.relay.Submit(&intake.Submission{
			From:       map[bool]string{true: "bounces@news.shop.example", false: "bounces@orders.shop.example"}[m.marketing],
			To:         []string{p.addr},
			Data:       m.bytes(p),
			ClientAddr: netip.AddrFrom4([4]byte{127, 0, 0, 1}),
			Helo:       "crm.shop.example",
			Received:   m.at,
		})
		if err != nil {
			return next, err
		}
		run.byID[id] = m
	}
	return next, nil
}

// decideAndDeliver runs every decision round due at tickEnd, then hands
// everything due to the simulated recipients.
func (run *relayRun) decideAndDeliver(tickEnd time.Time) error {
	for {
		n, err := run.relay.DecideDue(tickEnd)
		if err != nil {
			return err
		}
		if n < governor.RecipientsPerRound {
			break
		}
	}
	for {
		envs, err := run.db.Claim(tickEnd, 512)
		if err != nil {
			return err
		}
		for _, e := range envs {
			run.deliver(e)
			e.State, e.Due = store.StateDelivered, time.Time{}
		}
		if err := run.db.Update(envs...); err != nil {
			return err
		}
		if len(envs) < 512 {
			return nil
		}
	}
}

// deliver hands one envelope to its recipient and schedules what they do
// with it.
func (run *relayRun) deliver(e store.Envelope) {
	m := run.byID[e.MessageID]
	// e.Due is when the relay made it due: its release time.
	o := run.replay.deliver(m, e.Due)
	if !m.marketing {
		return
	}
	addr := run.pop[m.rcpt].addr
	ids := scoring.Event{MessageID: e.ID, Topics: topicNames(m.campaign.topics)}
	if run.opts.World.structured() {
		// An event names the message, not its (hidden) topics: what the
		// engine knows of them is what the message said.
		ids.Topics = nil
	}
	if o.opened {
		ev := ids
		ev.Kind = scoring.EventOpen
		run.emit(o.openAt, addr, ev)
	}
	if o.clicked {
		ev := ids
		ev.Kind = scoring.EventClick
		run.emit(o.clickAt, addr, ev)
	}
	if o.unsubscribed || o.complained {
		ev := ids
		ev.Kind = scoring.EventUnsubscribe
		if o.complained {
			ev.Kind = scoring.EventComplaint
		}
		run.emit(o.stopAt, addr, ev)
	}
}

func topicNames(ts []int) []string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = Topics[t]
	}
	return names
}
