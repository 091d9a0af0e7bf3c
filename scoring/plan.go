package scoring

import (
	"math"
	"slices"
	"strings"
	"time"
)

const secondsPerDay = 24 * 60 * 60

func (d *decider) decide(out []Decision) {
	p := d.prof
	var stop Reasons
	if !p.Unsubscribed.IsZero() {
		stop |= ReasonUnsubscribed
	}
	if !p.Complained.IsZero() {
		stop |= ReasonComplained
	}
	if !p.HardBounced.IsZero() {
		stop |= ReasonHardBounced
	}
	if stop != 0 {
		for i := range out {
			out[i].Action, out[i].Reasons = ActionSuppress, stop
		}
		return
	}

	// The profile's customer value wins; a sender's header is the fallback.
	value := -1
	for i := range d.in.Held {
		if f := d.in.Held[i].Features; f != nil && f.HasValue && f.Value > value {
			value = f.Value
		}
	}
	d.fat = scoreFatigue(p, d.pop, &d.pol, value, d.now, d.pl)
	d.holdout = d.pol.HoldoutShare > 0 && draw(d.in.Recipient, "holdout", 0) < d.pol.HoldoutShare

	var empty Features
	empty.Priority = DefaultPriority
	horizonEnd := d.now.Add(d.pol.Horizon)
	recent := p.History[noveltyStart(p.History, d.now.Add(-d.pol.NoveltyWindow)):]
	for i := range d.in.Held {
		h := &d.in.Held[i]
		f := h.Features
		if f == nil {
			f = &empty
		}
		c := candidate{held: h, out: &out[i], slot: -1, best: -1, first: -1, delay0: 1}
		c.rel = scoreRelevance(f, p, d.pop, &d.pol, d.now, recent)
		c.rel.applyCampaign(h.Campaign, d.pop, &d.pol, d.now) // issue 18: campaign quality
		o := &out[i]
		d.fillNumbers(o, &c)
		deadline := f.Expires
		received := h.Received
		if received.IsZero() {
			received = d.now
		}
		if deadline.IsZero() {
			deadline = received.Add(d.pol.MaxHold)
		}
		switch {
		case !f.Expires.IsZero() && !f.Expires.After(d.now):
			o.Action, o.Reasons = ActionSuppress, ReasonExpired
			c.done = true
		case !deadline.After(d.now):
			o.Action, o.Reasons = ActionSuppress, ReasonStale
			c.done = true
		case p.AwayUntil.After(d.now) && !deadline.After(p.AwayUntil):
			o.Action, o.Reasons = ActionSuppress, ReasonAway|ReasonNoSlot
			c.done = true
		case p.AwayUntil.After(d.now):
			o.Action, o.Reasons, o.At = ActionDefer, ReasonAway, p.AwayUntil.In(d.loc)
			c.done = true
		case f.NotBefore.After(horizonEnd):
			o.Action, o.Reasons, o.At = ActionDefer, ReasonNotBefore, f.NotBefore.In(d.loc)
			c.done = true
		}
		c.start = max(d.nowUnix, f.NotBefore.Unix())
		c.deadline = deadline.Unix()
		if !f.Expires.IsZero() {
			c.expires = f.Expires.Unix()
		}
		d.cands = append(d.cands, c)
	}
	// Work in ID order, so that ties go the same way whatever order the
	// store listed the messages in.
	slices.SortStableFunc(d.cands, func(a, b candidate) int { return strings.Compare(a.held.ID, b.held.ID) })
	d.supersede()

	active := false
	for i := range d.cands {
		active = active || !d.cands[i].done
	}
	if !active {
		return
	}
	d.buildTimes()
	d.buildSlots()
	d.plan()
	d.finish(horizonEnd)
}

// supersede suppresses all but the newest held message of each campaign:
// a CRM that sends an updated version of a campaign means it to replace
// the old one. A campaign that is only a list's List-Id is a stream of
// distinct posts, not versions of one send: its posts never supersede
// one another (near-duplicate content is caught by novelty instead).
func (d *decider) supersede() {
	for i := range d.cands {
		a := &d.cands[i]
		if a.done || a.held.Features == nil || a.held.Features.Campaign == "" || a.held.Features.CampaignFromList {
			continue
		}
		for j := range d.cands {
			b := &d.cands[j]
			if i == j || b.held.Features == nil || b.held.Features.CampaignFromList ||
				!strings.EqualFold(a.held.Features.Campaign, b.held.Features.Campaign) {
				continue
			}
			newer := b.held.Received.After(a.held.Received) ||
				(b.held.Received.Equal(a.held.Received) && b.held.ID > a.held.ID)
			if newer && !(b.done && b.out.Reasons&(ReasonExpired|ReasonStale) != 0) {
				a.out.Action, a.out.Reasons = ActionSuppress, ReasonSuperseded
				a.done = true
				break
			}
		}
	}
}

// buildTimes collects the release times caps must look at, sorted.
func (d *decider) buildTimes() {
	caps := d.in.Caps
	var window time.Duration
	switch {
	case caps.PerMonth > 0:
		window = 30 * 24 * time.Hour
	case caps.PerWeek > 0:
		window = 7 * 24 * time.Hour
	case caps.PerDay > 0:
		window = 24 * time.Hour
	}
	window = max(window, caps.MinGap)
	if window == 0 {
		return
	}
	from := d.nowUnix - int64(window/time.Second)
	for i := range d.prof.History {
		if u := d.prof.History[i].At.Unix(); u > from {
			d.times = append(d.times, u)
		}
	}
	// History is kept sorted by RecordRelease, but a profile edited by
	// hand or by an older version must not break the caps.
	if !slices.IsSorted(d.times) {
		slices.Sort(d.times)
	}
}

// buildSlots lays out the candidate release times: now, then every local
// whole Slot up to the horizon, each with whether it is open, its
// hour-of-week lift, its delay discount and the volume already there.
func (d *decider) buildSlots() {
	step := int64(d.pol.Slot / time.Second)
	end := d.nowUnix + int64(d.pol.Horizon/time.Second)
	_, off := d.nowLocal.Zone()
	local := d.nowUnix + int64(off)
	next := local - mod(local, step) + step - int64(off)
	hours := d.newHourModel()
	hist := d.prof.History
	j := len(hist)
	for j > 0 && hist[j-1].At.After(d.now) {
		j-- // hist[j:] are releases already scheduled in the future
	}
	vol := d.fat.Volume
	prev := d.now
	d.stepVol = decay(d.pol.Slot, d.pol.VolumeHalfLife)
	stepDelay := decay(d.pol.Slot, d.pol.DelayHalfLife)
	delay := 1.0
	var cur capCursor
	for k := 0; ; k++ {
		var t time.Time
		if k == 0 {
			t = d.nowLocal
		} else {
			u := next + int64(k-1)*step
			if u > end {
				break
			}
			t = time.Unix(u, 0).In(d.loc)
			if k == 1 {
				vol *= decay(t.Sub(prev), d.pol.VolumeHalfLife)
				delay = decay(t.Sub(d.now), d.pol.DelayHalfLife)
			} else {
				vol *= d.stepVol
				delay *= stepDelay
			}
			for ; j < len(hist) && !hist[j].At.After(t); j++ {
				vol += decay(t.Sub(hist[j].At), d.pol.VolumeHalfLife)
			}
		}
		prev = t
		s := slot{t: t, unix: t.Unix(), delay: delay, vol: vol, vol0: vol}
		_, off := t.Zone()
		local := s.unix + int64(off)
		sod := mod(local, secondsPerDay)
		if d.in.Quiet.contains(sod) {
			s.closed |= ReasonQuietHours
		}
		if d.in.Window != nil && !d.in.Window.Allows(t) {
			s.closed |= ReasonSendWindow
		}
		s.capped = d.capCheckScan(s.unix, &cur)
		if s.closed == 0 {
			// Only open slots are valued: a closed one's lift and cost
			// are never read.
			weekday := mod(floorDiv(local, secondsPerDay)+4, 7) // 1970-01-01 was a Thursday
			s.lift = hours.lift(int(weekday*24 + sod/3600))
			s.cost0 = d.cost(s.vol0)
			d.open = append(d.open, len(d.slots))
		}
		d.slots = append(d.slots, s)
	}
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func floorDiv(a, b int64) int64 { return (a - mod(a, b)) / b }

// hourModel is the send-time model: the recipient's engagement by hour of
// week, smoothed over neighbouring hours and shrunk toward the population's
// (a Dirichlet-multinomial posterior with HourPrior pseudo-events).
type hourModel struct {
	hours    *[HoursPerWeek]float64
	pop      *[HoursPerWeek]float64
	scale    float64 // decay of the recipient's counts to now
	total    float64 // recipient's decayed events
	popTotal float64
	prior    float64
	weight   float64
	// daily is the share of the recipient's own distribution taken from
	// their hour of day pooled over the week (Policy.DailyPooling);
	// byDay holds that pooled, smoothed count per hour of day, already
	// divided by 7 so it spreads the same mass over the week.
	daily float64
	byDay [24]float64
	// precomputed reciprocals: lift runs for every slot of every decision
	invPop, invDen float64
	// presence is the presence model's lift by local hour of day
	// (presence.go), used in place of the histogram's when hasPresence.
	presence    [24]float64
	hasPresence bool
}

func (d *decider) newHourModel() hourModel {
	m := hourModel{hours: &d.prof.Hours, pop: &d.pop.HourOfWeek, scale: 1, prior: d.pop.HourPrior, weight: d.pol.TimeWeight}
	if m.hasPresence = d.presenceLift(&m.presence); m.hasPresence {
		return m // the histogram is not read
	}
	if !d.prof.DecayedAt.IsZero() && d.now.After(d.prof.DecayedAt) {
		m.scale = decay(d.now.Sub(d.prof.DecayedAt), d.pol.Memory.HourHalfLife)
	}
	// One pass, in hour-of-week order for every sum, as separate passes
	// would add them.
	var day [24]float64
	for w := range 7 {
		hours := m.hours[w*24 : w*24+24]
		for h, v := range hours {
			m.total += v
			day[h] += v
		}
	}
	m.popTotal = d.pl.populationTotal(m.pop)
	m.total *= m.scale
	if m.daily = clamp(d.pol.DailyPooling, 0, 1); m.daily > 0 {
		for h := range day {
			m.byDay[h] = (0.25*day[(h+23)%24] + 0.5*day[h] + 0.25*day[(h+1)%24]) / 7
		}
	}
	if m.popTotal > 0 {
		m.invPop = 1 / m.popTotal
	}
	if m.total+m.prior > 0 {
		m.invDen = 1 / (m.total + m.prior)
	}
	return m
}

// populationTotal is the sum of the population's hour-of-week histogram.
// The engine decides recipient after recipient with the same population,
// so the Planner keeps the sum with a copy of the histogram it is of:
// comparing the copy is several times cheaper than adding up again. A
// nil Planner just adds up.
func (pl *Planner) populationTotal(pop *[HoursPerWeek]float64) float64 {
	if pl != nil && pl.hasPopHours && pl.popHours == *pop {
		return pl.popTotal
	}
	var t float64
	for _, v := range pop {
		t += v
	}
	if pl != nil {
		pl.popHours, pl.popTotal, pl.hasPopHours = *pop, t, true
	}
	return t
}

// lift is the value factor of releasing at hour-of-week h. With k the
// engagement there relative to the average hour, tempered by TimeWeight as
// k' = 1 + TimeWeight·(k-1), the factor is (2k'+1)/(k'+2): 1 at an average
// hour, rising toward 2 at the best hours and falling toward 0.5 at the
// worst, smoothly, so the best hour still beats its neighbours however
// peaked the histogram is, and timing can never outweigh relevance.
// A reader with settled releases is timed by the presence model instead
// (presence.go), whose lift is that of the hour of day.
func (m *hourModel) lift(h int) float64 {
	if m.hasPresence {
		return m.presence[h%24]
	}
	if m.total+m.prior <= 0 {
		return 1
	}
	prior := 1.0 / HoursPerWeek
	if m.popTotal > 0 {
		prior = m.pop[h] * m.invPop
	}
	own := 0.25*m.hours[(h+HoursPerWeek-1)%HoursPerWeek] + 0.5*m.hours[h] + 0.25*m.hours[(h+1)%HoursPerWeek]
	if m.daily > 0 {
		// Routines repeat daily more than weekly: an open at 08:00 on a
		// Tuesday says something about 08:00 on a Wednesday too.
		own = (1-m.daily)*own + m.daily*m.byDay[h%24]
	}
	q := (own*m.scale + m.prior*prior) * m.invDen
	k := max(0, 1+m.weight*(q*HoursPerWeek-1))
	return (2*k + 1) / (k + 2)
}

// capCheck returns the caps a release at u (unix seconds) would break.
func (d *decider) capCheck(u int64) Reasons {
	caps := &d.in.Caps
	var r Reasons
	if g := int64(caps.MinGap / time.Second); g > 0 {
		i := searchTimes(d.times, u-g+1)
		if i < len(d.times) && d.times[i] < u+g {
			r |= ReasonMinGap
		}
	}
	if windowFull(d.times, u, secondsPerDay, caps.PerDay) {
		r |= ReasonCapDay
	}
	if windowFull(d.times, u, 7*secondsPerDay, caps.PerWeek) {
		r |= ReasonCapWeek
	}
	if windowFull(d.times, u, 30*secondsPerDay, caps.PerMonth) {
		r |= ReasonCapMonth
	}
	return r
}

// searchTimes is slices.BinarySearch for the sorted release times: the
// index of the first time at or after x. Caps run it several times for
// every slot of every decision, and written out for int64 it inlines.
func searchTimes(times []int64, x int64) int {
	lo, hi := 0, len(times)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if times[m] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// capCursor keeps capCheckScan's place in the release times.
type capCursor struct {
	after, gap int
	// Per window (day, week, month): its length in seconds, the cap, and
	// the first release time at or after the start of the window that
	// ends at the slot.
	span    [3]int64
	n       [3]int
	reason  [3]Reasons
	lo      [3]int
	started bool
}

// capCheckScan is capCheck for times u checked in increasing order, as
// buildSlots does: instead of searching the release times afresh for every
// slot, it moves each search's answer forward from the previous slot's.
func (d *decider) capCheckScan(u int64, c *capCursor) Reasons {
	caps := &d.in.Caps
	times := d.times
	g := int64(caps.MinGap / time.Second)
	if !c.started {
		// The first slot: search; later ones move forward from here.
		c.started = true
		c.span = [3]int64{secondsPerDay, 7 * secondsPerDay, 30 * secondsPerDay}
		c.n = [3]int{caps.PerDay, caps.PerWeek, caps.PerMonth}
		c.reason = [3]Reasons{ReasonCapDay, ReasonCapWeek, ReasonCapMonth}
		c.after = searchTimes(times, u+1)
		c.gap = searchTimes(times[:c.after], u-g+1)
		for w := range c.lo {
			c.lo[w] = searchTimes(times[:c.after], u-c.span[w]+1)
		}
	}
	var r Reasons
	if g > 0 {
		c.gap = skipBefore(times, c.gap, u-g+1)
		if c.gap < len(times) && times[c.gap] < u+g {
			r |= ReasonMinGap
		}
	}
	c.after = skipBefore(times, c.after, u+1)
	for w := range c.lo {
		// windowFull, with its searches replaced by the cursors.
		n := c.n[w]
		if n <= 0 || len(times) < n {
			continue
		}
		span := c.span[w]
		c.lo[w] = skipBefore(times, c.lo[w], u-span+1)
		if c.after-c.lo[w] >= n ||
			(c.after < len(times) && times[c.after] < u+span && fullAhead(times, u, span, n, c.after)) {
			r |= c.reason[w]
		}
	}
	return r
}

// skipBefore returns the index of the first time at or after x, searching
// forward from i, which must not be past it.
func skipBefore(times []int64, i int, x int64) int {
	for i < len(times) && times[i] < x {
		i++
	}
	return i
}

// windowFull reports whether one more release at u would put more than n
// releases into some window of w seconds. Only windows containing u
// matter; the fullest of them starts just after u-w or just before one of
// the releases in (u, u+w) falls out of it.
func windowFull(times []int64, u, w int64, n int) bool {
	if n <= 0 || len(times) < n {
		return false // not enough releases to fill any window
	}
	// releases in [u-w+1, u+1): the window that ends with u
	i := searchTimes(times, u+1)
	if i-searchTimes(times[:i], u-w+1) >= n {
		return true
	}
	return fullAhead(times, u, w, n, i)
}

// fullAhead reports whether a window that ends with one of the releases
// in (u, u+w), times[i] the first of them, holds n releases with one more
// at u.
func fullAhead(times []int64, u, w int64, n int, i int) bool {
	for ; i < len(times) && times[i] < u+w; i++ {
		// releases in [times[i]-w+1, times[i]+1)
		a := times[i] - w + 1
		if i+1-searchTimes(times[:i+1], a) >= n {
			return true
		}
	}
	return false
}

// valueAt is the value of releasing candidate c in slot s. The delay
// discount counts from the message's first open slot: waiting that a send
// window or not-before imposes is not the message's fault.
func (d *decider) valueAt(c *candidate, s *slot) (value, fresh float64) {
	fresh = 1
	if c.expires != 0 && d.pol.FreshnessHorizon > 0 {
		left := float64(c.expires-s.unix) / d.pol.FreshnessHorizon.Seconds()
		if left < 1 {
			fresh = math.Sqrt(max(left, 0))
		}
	}
	return c.rel.Value * s.lift * (s.delay / c.delay0) * fresh, fresh
}

// costOf is the cost candidate c pays at volume vol: none while exploring.
func (d *decider) costOf(c *candidate, vol float64) float64 {
	if c.explore {
		return 0
	}
	return d.cost(vol)
}

func (d *decider) cost(vol float64) float64 {
	if d.holdout {
		return 0
	}
	return d.fat.Cost(vol)
}

// inRange reports whether slot s is within c's release range.
func (c *candidate) inRange(s *slot) bool { return s.unix >= c.start && s.unix < c.deadline }

// plan chooses releases greedily: the (message, slot) pair with the highest
// value net of fatigue first, while any pair is worth its cost. Planning a
// release raises the volume every later slot sees and uses up cap room,
// so the next message has to be worth more: messages compete for the
// budget instead of going first come, first served.
func (d *decider) plan() {
	// Exploration (an epsilon-greedy bandit): a deterministic draw per
	// recipient, message and day exempts a small share of messages from
	// the fatigue cost, so that the estimates of what this recipient likes
	// keep learning. The draw comes before any cost is known, so more
	// volume can never turn a message into an exploration candidate.
	day := floorDiv(d.nowUnix, secondsPerDay)
	for i := range d.cands {
		c := &d.cands[i]
		if c.done || d.pol.ExploreShare <= 0 {
			continue
		}
		if c.rel.NearestBits >= 0 && c.rel.NearestBits <= d.pol.DuplicateBits {
			continue // a duplicate teaches nothing
		}
		c.draw = draw(d.in.Recipient, c.held.ID, day)
		c.explore = c.draw < d.pol.ExploreShare
	}
	for i := range d.cands {
		d.bestAlone(&d.cands[i])
	}
	for {
		best, bestSlot, bestNet := -1, -1, math.Inf(-1)
		for i := range d.cands {
			c := &d.cands[i]
			if c.done || c.slot >= 0 {
				continue
			}
			for _, k := range d.open {
				s := &d.slots[k]
				if s.capped != 0 || !c.inRange(s) {
					continue
				}
				v, _ := d.valueAt(c, s)
				net := v - d.costOf(c, s.vol)
				if net > bestNet {
					best, bestSlot, bestNet = i, k, net
				}
			}
		}
		if best < 0 || bestNet < 0 {
			break
		}
		r := ReasonWorthIt
		switch {
		case d.holdout:
			r = ReasonHoldout
		case !d.cands[best].worthy:
			r = ReasonExplore
		}
		d.commit(best, bestSlot, r)
	}

	// Fairness floor: someone the model rates low still gets their best
	// message once per Floor, so no estimate can write a recipient off.
	if d.planned > 0 || d.pol.Floor <= 0 || (d.sinceLast >= 0 && d.sinceLast < d.pol.Floor) {
		return
	}
	best, bestSlot, bestValue := -1, -1, math.Inf(-1)
	for i := range d.cands {
		c := &d.cands[i]
		if c.done || c.slot >= 0 {
			continue
		}
		if k := d.bestOpen(c, false); k >= 0 {
			if v, _ := d.valueAt(c, &d.slots[k]); v > bestValue {
				best, bestSlot, bestValue = i, k, v
			}
		}
	}
	if best >= 0 {
		d.commit(best, bestSlot, ReasonFloor)
	}
}

// bestOpen returns the open, uncapped slot in c's range with the highest
// value net of cost (net true) or the highest value (net false); -1 if none.
func (d *decider) bestOpen(c *candidate, net bool) int {
	best, bestScore := -1, math.Inf(-1)
	for _, k := range d.open {
		s := &d.slots[k]
		if s.capped != 0 || !c.inRange(s) {
			continue
		}
		score, _ := d.valueAt(c, s)
		if net {
			score -= d.cost(s.vol)
		}
		if score > bestScore {
			best, bestScore = k, score
		}
	}
	return best
}

// bestAlone finds the slot where c would be worth most if it were the only
// message and there were no caps, so that a message that is not released
// can be told apart as "not worth it" or "lost to caps and competition".
func (d *decider) bestAlone(c *candidate) {
	if c.done {
		return
	}
	bestNet := math.Inf(-1)
	for _, k := range d.open {
		s := &d.slots[k]
		if !c.inRange(s) {
			continue
		}
		if c.first < 0 {
			c.first, c.delay0 = k, s.delay
		}
		v, fresh := d.valueAt(c, s)
		cost := s.cost0
		if v-cost > bestNet {
			bestNet = v - cost
			c.value, c.fresh, c.vol, c.cost = v, fresh, s.vol0, cost
			c.best = k
		}
	}
	c.worthy = bestNet >= 0
}

// commit plans candidate i for slot k.
func (d *decider) commit(i, k int, why Reasons) {
	c := &d.cands[i]
	s := &d.slots[k]
	c.slot = k
	c.value, c.fresh = d.valueAt(c, s)
	c.vol, c.cost = s.vol, d.cost(s.vol)
	c.extra = why
	if k > 0 {
		// Say why not now: the sender, the limits, or a better time.
		s0 := &d.slots[0]
		if !c.inRange(s0) {
			c.extra |= ReasonNotBefore
		} else {
			c.extra |= s0.closed | s0.capped
		}
		for j := range k {
			if o := &d.slots[j]; o.closed == 0 && o.capped == 0 && c.inRange(o) {
				c.extra |= ReasonBestTime
				break
			}
		}
	}
	d.planned++
	i = searchTimes(d.times, s.unix)
	d.times = slices.Insert(d.times, i, s.unix)
	// The release adds to the volume every later slot sees; slots after
	// the first are a regular step apart, so the decay is a product.
	w := 1.0
	for j := k; j < len(d.slots); j++ {
		switch {
		case j == k:
		case j == 1:
			w = decay(d.slots[1].t.Sub(d.slots[0].t), d.pol.VolumeHalfLife)
		default:
			w *= d.stepVol
		}
		d.slots[j].vol += w
	}
	for j := range d.slots {
		if o := &d.slots[j]; o.capped == 0 {
			o.capped = d.capCheck(o.unix)
		}
	}
}

// draw is a deterministic uniform number in [0, 1) from its inputs, so that
// the same recipient, message and day always draw the same.
func draw(recipient, id string, day int64) float64 {
	h := fnvString(fnvOffset64, recipient)
	h = fnvString(h, "\x00")
	h = fnvString(h, id)
	for i := 0; i < 8; i++ {
		h ^= uint64(byte(day >> (8 * i)))
		h *= fnvPrime64
	}
	return float64(mix64(h)>>11) / (1 << 53)
}

// fillNumbers sets the numbers that do not depend on the release time.
func (d *decider) fillNumbers(o *Decision, c *candidate) {
	n := &o.Numbers
	n.Affinity, n.PopulationRate = c.rel.Affinity, c.rel.PopulationRate
	n.Priority, n.Novelty, n.NearestBits = c.rel.Priority, c.rel.Novelty, c.rel.NearestBits
	n.Content, n.Campaign, n.CampaignNote = c.rel.Content, c.rel.Campaign, c.rel.CampaignNote // issue 18
	n.Sensitivity, n.CustomerValue, n.Comfort = d.fat.Sensitivity, d.fat.CustomerValue, d.fat.Comfort
	n.IgnoredStreak = d.fat.IgnoredStreak
	n.Volume = d.fat.Volume
	n.Cost = d.fat.Cost(d.fat.Volume)
	n.Value = c.rel.Value
	n.Freshness, n.TimeLift, n.Delay = 1, 1, 1
}

// finish turns plans into decisions and explains the messages left out.
func (d *decider) finish(horizonEnd time.Time) {
	commitBy := d.nowUnix + int64(d.pol.Commit/time.Second)
	for i := range d.cands {
		c := &d.cands[i]
		if c.done {
			continue
		}
		o := c.out
		novelty := Reasons(0)
		if c.rel.NearestBits >= 0 && c.rel.NearestBits <= d.pol.DuplicateBits {
			novelty |= ReasonNearDuplicate
		}
		if c.rel.RepeatCampaign {
			novelty |= ReasonRepeatCampaign
		}
		k := c.slot
		if k < 0 {
			k = c.best
		}
		if k >= 0 {
			s := &d.slots[k]
			n := &o.Numbers
			n.Value, n.Freshness, n.Volume, n.Cost = c.value, c.fresh, c.vol, c.cost
			n.TimeLift, n.Delay, n.Draw = s.lift, s.delay/c.delay0, c.draw
		}
		switch {
		case c.slot >= 0:
			s := &d.slots[c.slot]
			o.At, o.Reasons = s.t, c.extra|novelty
			o.Action = ActionRelease
			if s.unix >= commitBy {
				o.Action = ActionDefer
			}
		case c.best < 0:
			// No open time in the message's range within the horizon.
			var closed Reasons
			for k := range d.slots {
				if s := &d.slots[k]; c.inRange(s) {
					closed |= s.closed
				}
			}
			if c.start > d.slots[len(d.slots)-1].unix {
				closed |= ReasonNotBefore
			}
			d.giveUpOrWait(o, c, closed, horizonEnd)
		case !c.worthy:
			o.Action, o.At, o.Reasons = ActionSuppress, d.nowLocal, ReasonLowValue|novelty
		default:
			// Worth it on its own, but caps or better messages took every
			// time it could have had.
			r := d.capCheck(d.slots[c.best].unix)
			if r == 0 {
				r = ReasonOutcompeted
			}
			d.giveUpOrWait(o, c, r|novelty, horizonEnd)
		}
	}
}

// giveUpOrWait defers a message that found no time in this horizon to the
// horizon's end, or suppresses it if its deadline comes first.
func (d *decider) giveUpOrWait(o *Decision, c *candidate, r Reasons, horizonEnd time.Time) {
	if c.deadline > horizonEnd.Unix() {
		o.Action, o.At, o.Reasons = ActionDefer, horizonEnd.In(d.loc), r
		if r.Has(ReasonNotBefore) {
			o.At = time.Unix(c.start, 0).In(d.loc)
		}
		return
	}
	o.Action, o.At, o.Reasons = ActionSuppress, d.nowLocal, r|ReasonNoSlot
}
