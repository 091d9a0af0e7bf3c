package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"kadenz/config"
	"kadenz/scoring"
	"kadenz/store"
)

// Shadow mode's counterfactual: a forecast of enforce mode (issue 18,
// point 4).
//
// Shadow mode sends everything at once and records what enforce mode
// would have done. For that record to be a forecast, each decision must
// be made on the profile enforce mode would have had by then, not on the
// one the send-all volume builds: otherwise fatigue grows with every mail
// enforce would never have sent, and shadow forecasts far more
// suppressions than enforce makes (70% of marketing mail against 50% on
// one world). So in shadow mode the profile records only what enforce
// would have done:
//
//   - a would-release joins the history (and the caps, fatigue, campaign
//     and population counts) at the time enforce would have released it;
//   - a would-suppress, and a would-review (enforce waits for a person),
//     record nothing;
//   - a would-defer leaves a copy in the profile (scoring.ShadowHeld): the
//     message as enforce would still hold it, due when enforce would
//     decide it again. Later rounds of the recipient decide the copies
//     with their real held mail, as enforce decides deferred mail with
//     new mail; copies that came due before the round are first decided
//     in rounds of their own at their due times (shadowCatchUp), so that a
//     copy enforce would have released at 10:00 is in the history at
//     10:00 when new mail is decided at 15:00. A copy's outcome is a
//     profile change and a count, never an envelope: the mail was sent.
//
// The copies live in the profile, so they are written in the round's
// transaction, survive restarts and move with the recipient's data
// (erasure forgets them with the profile). The engine also remembers when
// each recipient's earliest copy comes due (shadowDueAt) and decides the
// recipient then, with or without new mail, as enforce would decide its
// deferred mail; that memory is only a wake-up: after a restart it is
// empty, and a recipient's copies are decided at their next mail instead
// (the catch-up rounds make the decisions the same; the forecast counts
// them as pending until then).
//
// The forecast is counted in store counters, per UTC day of the
// envelope's arrival and in total (ReadForecast):
//
//	shadow/all/<what>, shadow/day/<YYYY-MM-DD>/<what>
//
// where <what> is decided (governed marketing envelopes decided in shadow
// mode), deferred (of them, first decided "defer"), released, suppressed
// and review (final outcomes, deferrals decided again), and
// deferred-released (deferred, then released).
//
// Enforce mode has no copies and none of this runs: its rounds are the
// same bit for bit. A profile that still has copies when the mode is
// switched to enforce loses them at its next round.

const shadowPrefix = "shadow/"

// Forecast counter fields.
const (
	forecastDecided          = "decided"
	forecastDeferred         = "deferred"
	forecastReleased         = "released"
	forecastDeferredReleased = "deferred-released"
	forecastSuppressed       = "suppressed"
	forecastReview           = "review"
)

var forecastFields = []string{forecastDecided, forecastDeferred, forecastReleased, forecastDeferredReleased,
	forecastSuppressed, forecastReview}

// maxCatchUp bounds the rounds of copies decided before a recipient's
// round; each moves a copy's due time forward by at least a minute.
const maxCatchUp = 16

func forecastCounter(scope, what string) string { return shadowPrefix + scope + "/" + what }

func forecastDay(t time.Time) string { return "day/" + t.UTC().Format(time.DateOnly) }

// countForecast counts one outcome of an envelope that arrived at created.
func countForecast(counters map[string]int64, created time.Time, what string) {
	counters[forecastCounter("all", what)]++
	counters[forecastCounter(forecastDay(created), what)]++
}

// Forecast is what shadow mode forecast enforce mode would have done with
// governed marketing mail.
type Forecast struct {
	// Decided is the marketing mail decided in shadow mode (all of it
	// sent); Deferred how much of it enforce would first have deferred.
	Decided, Deferred int64
	// Released, Suppressed and Review are the outcomes enforce would have
	// reached, deferrals decided again; DeferredReleased is the deferred
	// mail among Released.
	Released, Suppressed, Review, DeferredReleased int64
}

// Pending is mail enforce would still hold: deferred and not decided
// again yet.
func (f Forecast) Pending() int64 {
	return max(f.Decided-f.Released-f.Suppressed-f.Review, 0)
}

// Counters is the store's counter read, all ReadForecast needs.
type Counters interface {
	Counters(names ...string) (map[string]int64, error)
}

// ReadForecast sums the forecast counters: over every day when days is
// nil, else over the envelopes that arrived on these UTC days.
func ReadForecast(db Counters, days []time.Time) (Forecast, error) {
	scopes := []string{"all"}
	if days != nil {
		scopes = scopes[:0]
		for _, d := range days {
			scopes = append(scopes, forecastDay(d))
		}
	}
	var names []string
	for _, s := range scopes {
		for _, f := range forecastFields {
			names = append(names, forecastCounter(s, f))
		}
	}
	var f Forecast
	if len(names) == 0 {
		return f, nil
	}
	vals, err := db.Counters(names...)
	if err != nil {
		return f, fmt.Errorf("shadow forecast counters: %w", err)
	}
	for _, s := range scopes {
		v := func(what string) int64 { return vals[forecastCounter(s, what)] }
		f.Decided += v(forecastDecided)
		f.Deferred += v(forecastDeferred)
		f.Released += v(forecastReleased)
		f.DeferredReleased += v(forecastDeferredReleased)
		f.Suppressed += v(forecastSuppressed)
		f.Review += v(forecastReview)
	}
	return f, nil
}

// shadowRound is one recipient's round in shadow mode: the envelope IDs
// of the copies it decides with the real held mail, and the counter
// changes of the copies decided before it.
type shadowRound struct {
	copies   map[string]bool
	counters map[string]int64
	// sup is the recipient's suppression list entry, if listed: the
	// gate's first rule, forecast as enforce applies it (shadowGate).
	sup    store.Suppression
	listed bool
}

func (sh *shadowRound) isCopy(id string) bool { return sh != nil && sh.copies[id] }

// startCounters are the counter changes the round's record starts from.
func (sh *shadowRound) startCounters() map[string]int64 {
	if sh == nil {
		return map[string]int64{}
	}
	return sh.counters
}

// shadowCopyKey is the message key a copy's features go under in the
// round's recipient, apart from real messages.
func shadowCopyKey(id string) string { return "shadow-copy/" + id }

// shadowPrepare readies a recipient's round for shadow mode: the copies
// due before now are decided in rounds of their own, and the rest join r's
// held mail (unless r has none: then the round is the copies' alone, and
// it is done). It returns nil outside shadow mode, where it only drops
// copies left from a time in shadow mode.
func (e *Engine) shadowPrepare(ru *Rules, r *store.Recipient, profile *scoring.Profile, now time.Time,
	counted map[string]int64) (*shadowRound, error) {
	if ru.cfg.Mode != config.ModeShadow {
		profile.ShadowHeld = nil
		return nil, nil
	}
	sup, listed, err := e.db.SuppressionOf(r.Address)
	if err != nil {
		return nil, err
	}
	sh := &shadowRound{copies: map[string]bool{}, counters: map[string]int64{}, sup: sup, listed: listed}
	// With no real mail held, the round is for copies alone: those due by
	// now are decided at their due times, the others wait, as enforce
	// decides a recipient only when something held is due.
	onlyCopies := len(r.Held) == 0
	if err := e.shadowCatchUp(ru, r.Address, profile, now, onlyCopies, counted, sh); err != nil {
		return nil, err
	}
	if len(profile.ShadowHeld) == 0 || onlyCopies {
		return sh, nil
	}
	copies := copiesRecipient(r.Address, profile)
	if r.Messages == nil {
		r.Messages = map[string]store.Message{}
	}
	for _, env := range copies.Held {
		sh.copies[env.ID] = true
		r.Messages[env.MessageID] = copies.Messages[env.MessageID]
	}
	// Held mail is in arrival order (IDs sort by time), as enforce would
	// load it with the deferred mail among it.
	r.Held = append(slices.Clip(r.Held), copies.Held...)
	slices.SortStableFunc(r.Held, func(a, b store.Envelope) int { return strings.Compare(a.ID, b.ID) })
	return sh, nil
}

// copiesRecipient is the recipient as enforce would hold them with only
// the profile's copies: one held envelope and message each.
func copiesRecipient(rcpt string, profile *scoring.Profile) store.Recipient {
	r := store.Recipient{Address: rcpt, Messages: map[string]store.Message{}}
	for _, c := range profile.ShadowHeld {
		key := shadowCopyKey(c.ID)
		r.Held = append(r.Held, store.Envelope{ID: c.ID, MessageID: key, From: c.From, To: rcpt,
			Created: c.Received, Updated: c.Sent, State: store.StateHeld, Due: c.Due})
		r.Messages[key] = store.Message{ID: key, From: c.From, Received: c.Received, Class: config.ClassMarketing,
			Features: c.Features}
	}
	slices.SortStableFunc(r.Held, func(a, b store.Envelope) int { return strings.Compare(a.ID, b.ID) })
	return r
}

// shadowCatchUp decides, in time order, the copies that came due before
// now (inclusive: or at now), each time in a round of the copies alone at
// the due time: what enforce would have decided then, with no other mail
// held, the gate first (shadowGate).
func (e *Engine) shadowCatchUp(ru *Rules, rcpt string, profile *scoring.Profile, now time.Time, inclusive bool,
	counted map[string]int64, sh *shadowRound) error {
	counters := sh.counters
	for range maxCatchUp {
		var at time.Time
		for _, c := range profile.ShadowHeld {
			if at.IsZero() || c.Due.Before(at) {
				at = c.Due
			}
		}
		if at.IsZero() || at.After(now) || at.Equal(now) && !inclusive {
			return nil
		}
		if v := sh.gate(profile, at, true); v != nil {
			gateCopies(v, profile, counters) // every copy suppressed, or due when the pause ends
			continue
		}
		r := copiesRecipient(rcpt, profile)
		held, features, err := heldFeatures(r, profile)
		if err != nil {
			return err
		}
		if err := e.campaignEvidence(held, r.Held, counted); err != nil {
			return err
		}
		in := scoring.Input{
			Now: at, Recipient: rcpt, Profile: profile, Location: e.Location(profile.Timezone),
			Held: held, Caps: ru.caps, Quiet: ru.quiet, Population: &e.population, Policy: &ru.policy,
		}
		if ru.window != nil {
			in.Window = ru.window
		}
		e.decisions = e.planner.Decide(e.decisions[:0], &in)
		stats, err := e.campaignStats(ru, r.Held, features, counted)
		if err != nil {
			return err
		}
		byID := make(map[string]store.Envelope, len(r.Held))
		for _, env := range r.Held {
			byID[env.ID] = env
		}
		for i := range e.decisions {
			if err := e.shadowCopyOutcome(ru, &e.decisions[i], byID[e.decisions[i].ID], features, profile, stats, counters, at); err != nil {
				return err
			}
		}
	}
	return nil
}

// shadowCopyOutcome applies enforce's decision on a copy: the rules on top
// of the planner's decision, as for real mail, then the counterfactual.
func (e *Engine) shadowCopyOutcome(ru *Rules, d *scoring.Decision, env store.Envelope, features map[string]*scoring.Features,
	profile *scoring.Profile, stats map[string]*reviewStats, counters map[string]int64, now time.Time) error {
	rec := Record{Reasons: d.Reasons.Codes()}
	action, at := d.Action, d.At
	f := features[env.MessageID]
	review := e.applyRules(ru, &rec, &action, &at, now, env, f, profile, stats, counters)
	countLookEvidence(counters, d, action, review)
	return e.counterfactual(action, at, review, env, f, profile, counters, now, true)
}

// shadowOutcome is outcome in shadow mode for real held mail: the record
// says what enforce would have done (Would), the profile learns it, and
// the envelope is released now.
func (e *Engine) shadowOutcome(rec *Record, action scoring.Action, at time.Time, review bool, env store.Envelope,
	f *scoring.Features, profile *scoring.Profile, counters map[string]int64, now time.Time) (store.Envelope, Record, bool, error) {
	if review {
		rec.Action = ActionReview
	}
	rec.Would, rec.Action = rec.Action, scoring.ActionRelease.String()
	countForecast(counters, env.Created, forecastDecided)
	if err := e.counterfactual(action, at, review, env, f, profile, counters, now, false); err != nil {
		return env, *rec, false, err
	}
	if rec.Would == scoring.ActionDefer.String() {
		rec.addNote(fmt.Sprintf("Shadow mode: enforce would decide again at %s; the forecast follows it.",
			maxTime(at, now.Add(time.Minute)).UTC().Format(time.RFC3339)))
	}
	env.Updated = now
	env.State, env.Due, rec.At = store.StateQueued, now, now
	return env, *rec, true, nil
}

// counterfactual records in the profile what enforce would have done with
// env (a copy when isCopy), and counts it.
func (e *Engine) counterfactual(action scoring.Action, at time.Time, review bool, env store.Envelope,
	f *scoring.Features, profile *scoring.Profile, counters map[string]int64, now time.Time, isCopy bool) error {
	switch {
	case review:
		profile.DropShadowHeld(env.ID)
		countForecast(counters, env.Created, forecastReview)
	case action == scoring.ActionRelease:
		at = maxTime(at, now)
		rel := scoring.Release{At: at, MessageID: env.ID, Campaign: f.Campaign, Sender: env.From, Topics: f.Topics,
			Fingerprint: f.Fingerprint, Terms: scoring.TermBitsOf(f.Terms), Quality: scoring.QualityKey(f)}
		profile.RecordRelease(rel, e.memory)
		countRelease(counters, &rel)
		countForecast(counters, env.Created, forecastReleased)
		if !isCopy {
			return nil
		}
		countForecast(counters, env.Created, forecastDeferredReleased)
		c, _ := profile.DropShadowHeld(env.ID)
		// What the sent mail earned while enforce would still have held
		// it, learned as if it came after enforce's release.
		for _, ev := range c.ShadowEvents(at) {
			for k, v := range QualityFeedbackCounters(profile.RecordEventCounted(ev, e.Location(profile.Timezone), e.memory)) {
				counters[k] += v
			}
		}
	case action == scoring.ActionDefer:
		due := maxTime(at, now.Add(time.Minute)) // as enforce: a defer to now would spin
		if isCopy {
			for i := range profile.ShadowHeld {
				if profile.ShadowHeld[i].ID == env.ID {
					profile.ShadowHeld[i].Due = due
				}
			}
			return nil
		}
		raw, err := json.Marshal(f)
		if err != nil {
			return err
		}
		profile.AddShadowHeld(scoring.ShadowHeld{ID: env.ID, From: env.From, Received: env.Created, Sent: now, Due: due,
			Features: raw})
		countForecast(counters, env.Created, forecastDeferred)
	default:
		profile.DropShadowHeld(env.ID)
		countForecast(counters, env.Created, forecastSuppressed)
	}
	return nil
}

// gate is the gate's verdict (gate.go) on the recipient at at, as enforce
// would have reached it then, or nil. In a catch-up round (at before the
// round) a suppression list entry counts from its time: enforce decided
// the copy at at, before a later entry existed. A reply pause has no
// start in the profile, so a pause in force now is taken to be in force
// at at too: a copy that came due shortly before a reply and is decided
// only after it (the engine decides copies within a minute of their due
// time, or after a restart at the recipient's next mail) is deferred
// where enforce would have decided it before the reply.
func (sh *shadowRound) gate(p *scoring.Profile, at time.Time, catchUp bool) *gateVerdict {
	if sh == nil {
		return nil
	}
	listed := sh.listed && (!catchUp || !sh.sup.At.After(at))
	return gateRule(Record{DecidedAt: at, Mode: config.ModeShadow}, sh.sup, listed, p, at)
}

// gateCopies applies the gate's verdict to every copy, as enforce applies
// it to every held envelope: suppressed (counted), or held until the
// pause ends.
func gateCopies(v *gateVerdict, profile *scoring.Profile, counters map[string]int64) {
	if v.state == store.StateSuppressed {
		for _, c := range profile.ShadowHeld {
			countForecast(counters, c.Received, forecastSuppressed)
		}
		profile.ShadowHeld = nil
		return
	}
	for i := range profile.ShadowHeld {
		profile.ShadowHeld[i].Due = v.due
	}
}

// shadowGated is shadow mode's round for a recipient the gate stops
// (verdict v, at now): the copies as gateCopies says, and the real held
// mail sent now with the gate's record as its "would" (a suppression list
// entry: would suppress; a reply pause: would defer, kept as a copy due
// when the pause ends). The model does not weigh them, as in enforce mode.
func (e *Engine) shadowGated(rcpt string, r *store.Recipient, profile *scoring.Profile, sh *shadowRound, v *gateVerdict,
	now time.Time) (*decided, error) {
	out := store.Decided{Recipient: rcpt, Records: map[string][]byte{}, Counters: sh.startCounters()}
	gateCopies(v, profile, out.Counters)
	recs := make([]Record, 0, len(r.Held))
	for _, env := range r.Held {
		if sh.isCopy(env.ID) {
			continue // done by gateCopies
		}
		rec := v.rec
		if code := stopCode(profile, sh.sup); v.state == store.StateSuppressed && code != "" && env.Created.Before(sh.sup.At) {
			// Held when the hard stop arrived: enforce suppressed it then,
			// through feedback, with the stop's own reason
			// (governor/feedback/apply.go), not at its round with the list's.
			rec.Reasons = []string{code}
			rec.Explanation = fmt.Sprintf("%s reported (%s): marketing mail to this address stops", sh.sup.Reason, sh.sup.Source)
		}
		rec.Would, rec.Action = rec.Action, scoring.ActionRelease.String()
		countForecast(out.Counters, env.Created, forecastDecided)
		if v.state == store.StateSuppressed {
			countForecast(out.Counters, env.Created, forecastSuppressed)
		} else {
			profile.AddShadowHeld(scoring.ShadowHeld{ID: env.ID, From: env.From, Received: env.Created, Sent: now, Due: v.due,
				Features: bytes.Clone(r.Messages[env.MessageID].Features)})
			countForecast(out.Counters, env.Created, forecastDeferred)
			rec.addNote(fmt.Sprintf("Shadow mode: enforce would decide again at %s; the forecast follows it.",
				v.due.UTC().Format(time.RFC3339)))
		}
		env.Updated = now
		env.State, env.Due, rec.At = store.StateQueued, now, now
		raw, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		out.Envelopes = append(out.Envelopes, env)
		out.Records[env.ID] = raw
		recs = append(recs, rec)
		e.logDecision(env, rcpt, &rec)
	}
	e.noteShadowDue(rcpt, profile, sh)
	if len(r.Profile) > 0 { // as enforce's gate, no profile for a recipient who has none
		var err error
		if out.Profile, err = profile.Encode(); err != nil {
			return nil, err
		}
	}
	return &decided{out: out, recs: recs, releasedNow: len(out.Envelopes) > 0}, nil
}

// stopCode is the reason code of the profile's hard stop that put the
// address on the suppression list (entry sup): feedback lists the address
// at the stop's time, which the profile keeps. "" for an entry no stop of
// the profile made: an operator's, an import.
func stopCode(p *scoring.Profile, sup store.Suppression) string {
	for _, s := range []struct {
		at   time.Time
		code string
	}{{p.Unsubscribed, ReasonUnsubscribed}, {p.Complained, ReasonComplained}, {p.HardBounced, ReasonHardBounced}} {
		if !s.at.IsZero() && s.at.Equal(sup.At) {
			return s.code
		}
	}
	return ""
}

// withShadowDue adds to the round's recipients those whose earliest held
// copy came due by now, earliest first, up to RecipientsPerRound.
func (e *Engine) withShadowDue(rcpts []string, now time.Time) []string {
	if len(e.shadowDueAt) == 0 || len(rcpts) >= RecipientsPerRound {
		return rcpts
	}
	type due struct {
		rcpt string
		at   time.Time
	}
	var dues []due
	for r, at := range e.shadowDueAt {
		if !at.After(now) && !slices.Contains(rcpts, r) {
			dues = append(dues, due{r, at})
		}
	}
	slices.SortFunc(dues, func(a, b due) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.rcpt, b.rcpt)
	})
	for _, d := range dues[:min(len(dues), RecipientsPerRound-len(rcpts))] {
		rcpts = append(rcpts, d.rcpt)
	}
	return rcpts
}

// shadowDue reports whether rcpt has a held copy due by now.
func (e *Engine) shadowDue(rcpt string, now time.Time) bool {
	at, ok := e.shadowDueAt[rcpt]
	return ok && !at.After(now)
}

// noteShadowDue remembers when rcpt's earliest copy comes due, after a
// round (sh nil: not in shadow mode, nothing to remember).
func (e *Engine) noteShadowDue(rcpt string, profile *scoring.Profile, sh *shadowRound) {
	var at time.Time
	if sh != nil {
		for _, c := range profile.ShadowHeld {
			if at.IsZero() || c.Due.Before(at) {
				at = c.Due
			}
		}
	}
	if at.IsZero() {
		delete(e.shadowDueAt, rcpt)
		return
	}
	if e.shadowDueAt == nil {
		e.shadowDueAt = map[string]time.Time{}
	}
	e.shadowDueAt[rcpt] = at
}

// shadowOnly is a recipient's round with no real held mail, for copies
// that came due (decided by shadowPrepare): the profile and the counts.
// stored says the recipient had a stored profile: one erased since the
// copies were noted is not written again.
func (e *Engine) shadowOnly(rcpt string, profile *scoring.Profile, sh *shadowRound, stored bool, err error) (*decided, error) {
	if err != nil {
		return nil, err
	}
	e.noteShadowDue(rcpt, profile, sh)
	if !stored {
		return nil, nil
	}
	raw, err := profile.Encode()
	if err != nil {
		return nil, err
	}
	return &decided{out: store.Decided{Recipient: rcpt, Profile: raw, Records: map[string][]byte{}, Counters: sh.startCounters()}}, nil
}
