package admin

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/governor/engine"
	"kadenz/scoring"
	"kadenz/store"
)

// The dashboard's pages: what each one gathers. Numbers come from the
// same functions as the JSON API.

// overviewDays is how many days the overview charts.
const overviewDays = 14

// dayCount is one day of the overview: envelopes that arrived that day
// (UTC) and what has become of them.
type dayCount struct {
	Day time.Time
	// Submitted counts every envelope that arrived; Released those that
	// left the hold and were not refused (queued, being delivered,
	// deferred, delivered); Failed those the smarthost refused for good
	// (or that expired); Suppressed those that will never be sent.
	Submitted, Released, Failed, Suppressed int
}

// groupLift compares governed and holdout marketing mail.
type groupLift struct {
	Name                                   string
	Envelopes, Released, Delivered, Failed int
	Suppressed                             int
	Recipients                             int
	// Engaged recipients opened, clicked or replied to anything, as their
	// profile counts it; Unsubscribed and Complained ever did so.
	Engaged, Unsubscribed, Complained int
}

// VolumePerRecipient is released envelopes per recipient.
func (g groupLift) VolumePerRecipient() float64 { return ratio(g.Released, g.Recipients) }

// EngagedShare is the share of recipients who engaged.
func (g groupLift) EngagedShare() float64 { return ratio(g.Engaged, g.Recipients) }

// UnsubscribedShare is the share of recipients who unsubscribed.
func (g groupLift) UnsubscribedShare() float64 { return ratio(g.Unsubscribed, g.Recipients) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

type countKV struct {
	Key   string
	Count int
}

type overviewPage struct {
	// Since and Until bound the period; LastDay is its last day.
	Since, Until, LastDay time.Time
	Days                  []dayCount
	Totals                dayCount
	Reasons               []countKV
	Governed              groupLift
	Holdout               groupLift
	Queue                 []countKV
	DaysChart             template.HTML
	ReasonsChart          template.HTML
	QueueChart            template.HTML
	HoldoutShare          float64
	// Shadow is shadow mode's forecast of enforce for the period's mail,
	// nil when none of it was decided in shadow mode (shadow.go).
	Shadow *api.ShadowForecast
	// Enforce is what enforce mode did with the period's governed
	// marketing mail it decided, nil when it decided none (or while the
	// recipients are being counted: it is counted in the same walk).
	Enforce *enforceOutcome
	// RecipientsAt is when the holdout comparison's recipients were
	// counted (see liftCache); zero while the first count runs.
	RecipientsAt time.Time
}

// released says the envelope has left the hold on its way out and was not
// refused: failed mail is counted apart, so "released" is what reached
// recipients or still may.
func released(s store.State) bool {
	switch s {
	case store.StateQueued, store.StateDelivering, store.StateDeferred, store.StateDelivered:
		return true
	}
	return false
}

func (d *dashboard) handleOverview(w http.ResponseWriter, req *http.Request, s *uiSession) {
	p, err := d.overview(d.a.now().UTC())
	if err != nil {
		d.fail(w, req, s, http.StatusInternalServerError, err.Error())
		return
	}
	d.render(w, http.StatusOK, "overview", pageData{Title: "Overview", Nav: "overview", CSRF: s.csrf, Body: p})
}

// overview builds the overview page for the overviewDays up to now's day.
// Envelope counts come from the store's tallies (kept on every commit);
// the recipient counts of the holdout comparison need a walk of the
// period's marketing mail and its recipients' profiles, so they come from
// d.lift, counted in the background (liftCache).
func (d *dashboard) overview(now time.Time) (*overviewPage, error) {
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	p := &overviewPage{Since: today.AddDate(0, 0, -(overviewDays - 1)), Until: today.AddDate(0, 0, 1),
		HoldoutShare: d.a.config().Governor.Holdout.Share, LastDay: today}
	p.Days = make([]dayCount, overviewDays)
	for i := range p.Days {
		p.Days[i].Day = p.Since.AddDate(0, 0, i)
	}
	p.Governed.Name, p.Holdout.Name = "governed", "holdout"
	t, err := d.a.db.Tallies(p.Since, p.Until)
	if err != nil {
		return nil, err
	}
	reasons := map[string]int{}
	for _, e := range t.Envelopes {
		p.count(e)
	}
	for _, r := range t.Reasons {
		if r.State == store.StateSuppressed {
			reasons[r.Reason] += r.N
		}
	}
	since, until := p.Since, p.Until
	lift, ok := d.lift.get(since, until, d.wall(), func() (recipientLift, error) { return d.countRecipients(since, until) },
		func(err error) { d.a.log.Error("dashboard: counting the overview's recipients", "error", err) })
	if ok {
		lift.apply(p)
	}
	for _, day := range p.Days {
		p.Totals.Submitted += day.Submitted
		p.Totals.Released += day.Released
		p.Totals.Failed += day.Failed
		p.Totals.Suppressed += day.Suppressed
	}
	p.Reasons = sortedCounts(reasons)
	days := make([]time.Time, len(p.Days))
	for i := range p.Days {
		days[i] = p.Days[i].Day
	}
	if p.Shadow, err = d.a.forecastOfDays(days); err != nil {
		return nil, err
	}
	counts, err := d.a.db.CountByState()
	if err != nil {
		return nil, err
	}
	for _, st := range allStates {
		p.Queue = append(p.Queue, countKV{string(st), counts[st]})
	}
	p.DaysChart = dayChart(p.Days)
	p.ReasonsChart = barChart(p.Reasons, "reason")
	p.QueueChart = barChart(p.Queue, "state")
	return p, nil
}

// count adds a tally of envelopes created in the period to its day and,
// for marketing mail, to its group.
func (p *overviewPage) count(t store.EnvelopeTally) {
	if t.Hour.Before(p.Since) || !t.Hour.Before(p.Until) {
		return
	}
	day := &p.Days[int(t.Hour.Sub(p.Since)/(24*time.Hour))]
	day.Submitted += t.N
	switch {
	case t.State == store.StateSuppressed:
		day.Suppressed += t.N
	case t.State == store.StateFailed:
		day.Failed += t.N
	case released(t.State):
		day.Released += t.N
	}
	if t.Class != config.ClassMarketing {
		return
	}
	g := &p.Governed
	if t.Holdout {
		g = &p.Holdout
	}
	g.Envelopes += t.N
	switch {
	case t.State == store.StateSuppressed:
		g.Suppressed += t.N
	case t.State == store.StateFailed:
		g.Failed += t.N
	case released(t.State):
		g.Released += t.N
	}
	if t.State == store.StateDelivered {
		g.Delivered += t.N
	}
}

// groupRecipients are the per-recipient numbers of one group.
type groupRecipients struct {
	Recipients, Engaged, Unsubscribed, Complained int
}

// recipientLift is the holdout comparison's per-recipient half: the
// marketing recipients of a period, by group, and what their profiles say
// they did.
type recipientLift struct {
	Governed, Holdout groupRecipients
	// Enforce is what became of the period's governed marketing mail
	// that enforce mode decided, counted in the same walk.
	Enforce enforceOutcome
	// At is when it was counted (the wall clock).
	At time.Time
}

func (l recipientLift) apply(p *overviewPage) {
	for _, x := range []struct {
		g *groupLift
		r groupRecipients
	}{{&p.Governed, l.Governed}, {&p.Holdout, l.Holdout}} {
		x.g.Recipients, x.g.Engaged, x.g.Unsubscribed, x.g.Complained = x.r.Recipients, x.r.Engaged, x.r.Unsubscribed, x.r.Complained
	}
	p.RecipientsAt = l.At
	if l.Enforce.Decided > 0 {
		e := l.Enforce
		p.Enforce = &e
	}
}

// enforceOutcome is what became of governed marketing mail whose first
// decision was made in enforce mode: the number to set beside shadow
// mode's forecast when a period has both (a trial in shadow mode, then
// enforce). Released counts mail refused by the smarthost as well, as the
// forecast's would-release does.
type enforceOutcome struct {
	Decided, Released, Suppressed, Review, Pending int
}

// ReleaseShare and SuppressShare are over Decided.
func (o *enforceOutcome) ReleaseShare() float64  { return ratio(o.Released, o.Decided) }
func (o *enforceOutcome) SuppressShare() float64 { return ratio(o.Suppressed, o.Decided) }

// count adds envelope e, with its decision records, if its first
// decision was enforce mode's.
func (o *enforceOutcome) count(e store.Envelope, decisions []byte) {
	var recs []struct {
		Mode string `json:"mode"`
	}
	if len(decisions) == 0 || json.Unmarshal(decisions, &recs) != nil || len(recs) == 0 || recs[0].Mode != config.ModeEnforce {
		return
	}
	o.Decided++
	switch {
	case e.State == store.StateSuppressed:
		o.Suppressed++
	case e.State == store.StateReview:
		o.Review++
	case e.State == store.StateHeld:
		o.Pending++
	default:
		o.Released++
	}
}

// countRecipients walks the marketing mail created in [since, until) and
// reads each recipient's profile once. A recipient with any holdout
// envelope in the period counts in the holdout group. Engagement is per
// recipient: holdout mail is not in a recipient's release history, so it
// cannot be attributed per message.
func (d *dashboard) countRecipients(since, until time.Time) (recipientLift, error) {
	group := map[string]bool{} // marketing recipient (lower case) -> in holdout
	var l recipientLift
	err := d.a.db.Records(func(rec store.EnvelopeRecord) bool {
		e := rec.Envelope
		if e.Created.Before(since) || !e.Created.Before(until) || rec.Message.Class != config.ClassMarketing {
			return true
		}
		addr := strings.ToLower(e.To)
		group[addr] = group[addr] || e.Holdout
		if !e.Holdout {
			l.Enforce.count(e, rec.Decisions)
		}
		return true
	})
	if err != nil {
		return recipientLift{}, err
	}
	for addr, holdout := range group {
		g := &l.Governed
		if holdout {
			g = &l.Holdout
		}
		g.Recipients++
		raw, err := d.a.db.Profile(addr)
		if err != nil || raw == nil {
			continue
		}
		prof, err := scoring.DecodeProfile(raw)
		if err != nil {
			continue
		}
		if prof.All.Opens+prof.All.Clicks+prof.All.Replies > 0 {
			g.Engaged++
		}
		if !prof.Unsubscribed.IsZero() {
			g.Unsubscribed++
		}
		if !prof.Complained.IsZero() {
			g.Complained++
		}
	}
	l.At = d.wall()
	return l, nil
}

// liftMaxAge is how long the overview shows recipient counts before it
// counts them again (in the background, showing the last ones meanwhile).
// A count reads every marketing envelope of the period and each of its
// recipients' profiles: seconds at 100,000 recipients.
const liftMaxAge = 5 * time.Minute

// liftCache keeps the last recipient counts of the overview's period and
// counts them in the background, one count at a time: the first view of a
// period starts a count and shows none; a later view shows the last count
// and, when it is older than liftMaxAge, starts another. So no view waits
// for a walk of the database.
type liftCache struct {
	mu           sync.Mutex
	since, until time.Time
	have         bool
	lift         recipientLift
	counting     bool
}

// get returns the last counts of [since, until) and whether there are
// any, and starts a count if there are none or they are old.
func (c *liftCache) get(since, until, now time.Time, count func() (recipientLift, error), log func(error)) (recipientLift, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	same := c.since.Equal(since) && c.until.Equal(until)
	if !same {
		c.since, c.until, c.have = since, until, false
	}
	if !c.counting && (!c.have || now.Sub(c.lift.At) >= liftMaxAge) {
		c.counting = true
		go func() {
			l, err := count()
			c.mu.Lock()
			c.counting = false
			if err != nil {
				log(err)
			} else if c.since.Equal(since) && c.until.Equal(until) {
				c.lift, c.have = l, true
			}
			c.mu.Unlock()
		}()
	}
	return c.lift, c.have
}

// sortedCounts orders counts largest first, then by name.
func sortedCounts(m map[string]int) []countKV {
	out := make([]countKV, 0, len(m))
	for k, v := range m {
		out = append(out, countKV{k, v})
	}
	slices.SortFunc(out, func(a, b countKV) int { return cmp.Or(b.Count-a.Count, strings.Compare(a.Key, b.Key)) })
	return out
}

// campaignsPage bounds the campaigns /ui/campaigns lists: a page, in
// order of name, with a link to the next.
const campaignsPage = 100

type campaignsList struct {
	Campaigns []*api.CampaignReport
	// After is the campaign the page starts after ("" on the first page),
	// Next the link to the next page ("" on the last).
	After, Next string
}

func (d *dashboard) handleCampaigns(w http.ResponseWriter, req *http.Request, s *uiSession) {
	after := req.URL.Query().Get("after")
	tallies, err := d.a.db.CampaignTallies(after, campaignsPage+1)
	if err != nil {
		d.fail(w, req, s, http.StatusInternalServerError, err.Error())
		return
	}
	l := campaignsList{After: after}
	for i, t := range tallies {
		if i == campaignsPage {
			l.Next = "/ui/campaigns?after=" + url.QueryEscape(tallies[i-1].Campaign)
			break
		}
		l.Campaigns = append(l.Campaigns, reportOf(t))
	}
	d.render(w, http.StatusOK, "campaigns", pageData{Title: "Campaigns", Nav: "campaigns", CSRF: s.csrf, Body: l})
}

type campaignPage struct {
	Report  *api.CampaignReport
	Reasons []countKV
	Chart   template.HTML
	// Envelopes are one page of the campaign's, newest first; After is
	// the envelope the page starts after ("" on the first page), Next the
	// link to the next page ("" on the last).
	Envelopes   []api.QueueEntry
	After, Next string
	// Suspended says an operator suspended the campaign; InReview and
	// Held count its mail the campaign-wide buttons act on.
	Suspended      bool
	InReview, Held int
	Done           string
}

// campaignEnvelopes bounds the envelopes a campaign page lists: a page,
// with a link to the next.
const campaignEnvelopes = 500

// handleCampaign shows a campaign's counts, from the store's campaign
// tallies, and one page of its envelopes, newest first, read through the
// store's list of the campaign's messages: what it reads is the page, not
// the campaign.
func (d *dashboard) handleCampaign(w http.ResponseWriter, req *http.Request, s *uiSession) {
	name := req.PathValue("name")
	t, ok, err := d.a.db.CampaignTally(name)
	if err != nil {
		d.fail(w, req, s, http.StatusInternalServerError, err.Error())
		return
	}
	if !ok {
		d.fail(w, req, s, http.StatusNotFound, fmt.Sprintf("No mail of campaign “%s” is stored.", name))
		return
	}
	rep := reportOf(t)
	after := req.URL.Query().Get("after")
	page, err := d.a.db.CampaignEnvelopes(name, after, campaignEnvelopes)
	if err != nil {
		d.fail(w, req, s, http.StatusInternalServerError, err.Error())
		return
	}
	p := campaignPage{Report: rep, Reasons: sortedCounts(rep.SuppressedBy), After: after, Suspended: d.a.engine.IsSuspended(name)}
	for _, e := range t.Envelopes {
		switch e.State {
		case store.StateReview:
			p.InReview += e.N
		case store.StateHeld:
			p.Held += e.N
		}
	}
	for _, r := range page.Records {
		q := api.QueueEntry{Envelope: apiEnvelope(r.Envelope), Campaign: name}
		if sum := summarise(r.Decisions); sum.last != nil {
			q.LastAction = sum.last.Action
		}
		p.Envelopes = append(p.Envelopes, q)
	}
	if page.Next != "" {
		p.Next = "/ui/campaigns/" + url.PathEscape(name) + "?after=" + url.QueryEscape(page.Next)
	}
	p.Done = campaignDone[req.URL.Query().Get("done")] // only known words are shown
	p.Chart = barChart(p.Reasons, "reason")
	d.render(w, http.StatusOK, "campaign", pageData{Title: "Campaign " + name, Nav: "campaigns", CSRF: s.csrf, Body: p})
}

// campaignDone words what a campaign-wide action did, for the page it
// redirects to.
var campaignDone = map[string]string{
	"release": "Released the campaign's mail in review.",
	"drop":    "Dropped the campaign's held mail and mail in review.",
	"suspend": "Suspended the campaign: its waiting mail is in review.",
	"resume":  "Resumed the campaign: its mail in review is decided afresh.",
}

// handleCampaignAction acts on all of a campaign's waiting mail: release
// (review), drop (held and review), suspend or resume.
func (d *dashboard) handleCampaignAction(w http.ResponseWriter, req *http.Request, s *uiSession) {
	name, op := req.PathValue("name"), req.PathValue("op")
	var err error
	switch op {
	case "release", "drop":
		i := slices.IndexFunc(queueOps, func(q queueOp) bool { return q.name == op })
		_, err = d.a.applyQueueAction(api.QueueActionRequest{Campaign: name}, queueOps[i])
	case "suspend":
		_, err = d.a.suspendCampaign(name)
	case "resume":
		_, err = d.a.resumeCampaign(name)
	default:
		d.fail(w, req, s, http.StatusNotFound, fmt.Sprintf("unknown action %q (release, drop, suspend or resume)", op))
		return
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		d.fail(w, req, s, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrState):
		d.fail(w, req, s, http.StatusConflict, err.Error())
	case err != nil:
		d.fail(w, req, s, http.StatusInternalServerError, err.Error())
	default:
		http.Redirect(w, req, "/ui/campaigns/"+url.PathEscape(name)+"?done="+op, http.StatusSeeOther)
	}
}

type reviewPage struct {
	Review, Held []api.QueueEntry
	// ReviewTotal and HeldTotal count all of them, of which Review and
	// Held are one page; NextReview and NextHeld link to the next pages
	// ("" on the last).
	ReviewTotal, HeldTotal int
	NextReview, NextHeld   string
	Done, ID               string
}

// reviewLimit bounds each list of the review page: a page, with a link
// to the next.
const reviewLimit = 500

func (d *dashboard) handleReview(w http.ResponseWriter, req *http.Request, s *uiSession) {
	q := req.URL.Query()
	p := reviewPage{ID: q.Get("id")}
	for _, list := range []struct {
		state   store.State
		param   string
		entries *[]api.QueueEntry
		next    *string
	}{{store.StateReview, "review_after", &p.Review, &p.NextReview}, {store.StateHeld, "held_after", &p.Held, &p.NextHeld}} {
		states := []store.State{list.state}
		after, err := parseQueueCursor(q.Get(list.param), states)
		if err != nil {
			d.fail(w, req, s, http.StatusBadRequest, err.Error())
			return
		}
		entries, next, err := d.a.queuePage(states, "", "", reviewLimit, after)
		if err != nil {
			d.fail(w, req, s, http.StatusInternalServerError, err.Error())
			return
		}
		*list.entries = entries
		if next != "" {
			nq := url.Values{}
			for _, keep := range []string{"review_after", "held_after"} {
				if v := q.Get(keep); v != "" {
					nq.Set(keep, v)
				}
			}
			nq.Set(list.param, next)
			*list.next = "/ui/review?" + nq.Encode()
		}
	}
	counts, err := d.a.db.CountByState()
	if err != nil {
		d.fail(w, req, s, http.StatusInternalServerError, err.Error())
		return
	}
	p.ReviewTotal, p.HeldTotal = counts[store.StateReview], counts[store.StateHeld]
	switch q.Get("done") { // only known words are shown
	case "release":
		p.Done = "Released"
	case "drop":
		p.Done = "Dropped"
	}
	d.render(w, http.StatusOK, "review", pageData{Title: "Review", Nav: "review", CSRF: s.csrf, Body: p})
}

func (d *dashboard) handleReviewAction(w http.ResponseWriter, req *http.Request, s *uiSession) {
	name := req.PathValue("op")
	i := slices.IndexFunc(queueOps, func(op queueOp) bool { return op.name == name })
	if i < 0 || name == "hold" {
		d.fail(w, req, s, http.StatusNotFound, fmt.Sprintf("unknown action %q (release or drop)", name))
		return
	}
	id := strings.TrimSpace(req.PostForm.Get("id"))
	if id == "" {
		d.fail(w, req, s, http.StatusBadRequest, "no envelope named (form field id)")
		return
	}
	body, _ := json.Marshal(api.QueueActionRequest{IDs: []string{id}})
	_, err := d.a.queueAction(strings.NewReader(string(body)), queueOps[i])
	switch {
	case errors.Is(err, errBadRequest):
		d.fail(w, req, s, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrNotFound):
		d.fail(w, req, s, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrState):
		d.fail(w, req, s, http.StatusConflict, err.Error())
	case err != nil:
		d.fail(w, req, s, http.StatusInternalServerError, err.Error())
	default:
		http.Redirect(w, req, "/ui/review?done="+name+"&id="+url.QueryEscape(id), http.StatusSeeOther)
	}
}

func (d *dashboard) handleRecipientSearch(w http.ResponseWriter, req *http.Request, s *uiSession) {
	addr := strings.TrimSpace(req.URL.Query().Get("address"))
	if addr == "" {
		d.render(w, http.StatusOK, "recipient", pageData{Title: "Recipients", Nav: "recipients", CSRF: s.csrf, Body: recipientPage{}})
		return
	}
	http.Redirect(w, req, "/ui/recipients/"+url.PathEscape(addr), http.StatusSeeOther)
}

// decisionView is one decision record on a page.
type decisionView struct {
	engine.Record
	Envelope string
	Subject  string
}

type recipientPage struct {
	View    *api.ProfileView
	Profile *scoring.Profile
	// Decisions are newest first.
	Decisions []decisionView
	// Fatigue plots the numbers of the decisions that have them.
	Fatigue template.HTML
	Points  int
	Error   string
	// Next links to the page of older envelopes ("" on the last page).
	Next string
}

func (d *dashboard) handleRecipient(w http.ResponseWriter, req *http.Request, s *uiSession) {
	data := pageData{Title: "Recipient", Nav: "recipients", CSRF: s.csrf}
	addr, err := parseAddress(req.PathValue("address"))
	if err != nil {
		data.Body = recipientPage{Error: err.Error()}
		d.render(w, http.StatusBadRequest, "recipient", data)
		return
	}
	after := req.URL.Query().Get("after")
	v, next, err := d.a.profileView(addr, after, recentEnvelopes)
	if err != nil {
		d.fail(w, req, s, http.StatusInternalServerError, err.Error())
		return
	}
	data.Title = addr
	if v.Profile == nil && v.Total == 0 {
		data.Body = recipientPage{Error: "Nothing is stored about " + addr + "."}
		d.render(w, http.StatusNotFound, "recipient", data)
		return
	}
	p := recipientPage{View: &v}
	if next != "" {
		p.Next = "/ui/recipients/" + url.PathEscape(addr) + "?after=" + url.QueryEscape(next)
	}
	if v.Profile != nil {
		p.Profile, _ = scoring.DecodeProfile(v.Profile) // unreadable: shown as none
	}
	msgs := messageCache{a: d.a}
	var points []fatiguePoint
	for _, e := range v.Envelopes {
		var recs []engine.Record
		json.Unmarshal(e.Decisions, &recs)
		subject := ""
		if m, err := msgs.get(e.MessageID); err == nil {
			subject = m.subject
		}
		for i := len(recs) - 1; i >= 0; i-- {
			p.Decisions = append(p.Decisions, decisionView{Record: recs[i], Envelope: e.ID, Subject: subject})
			if n := recs[i].Numbers; n != nil {
				points = append(points, fatiguePoint{At: recs[i].DecidedAt, Volume: n.Volume, Cost: n.Cost, Value: n.Value})
			}
		}
	}
	slices.SortStableFunc(p.Decisions, func(a, b decisionView) int { return b.DecidedAt.Compare(a.DecidedAt) })
	slices.SortStableFunc(points, func(a, b fatiguePoint) int { return a.At.Compare(b.At) })
	p.Points = len(points)
	p.Fatigue = fatigueChart(points)
	data.Body = p
	d.render(w, http.StatusOK, "recipient", data)
}

type envelopePage struct {
	X     *api.Explanation
	Views []envelopeView
}

type envelopeView struct {
	api.EnvelopeExplanation
	Records []engine.Record
}

func (d *dashboard) handleEnvelope(w http.ResponseWriter, req *http.Request, s *uiSession) {
	x, err := d.a.explain(req.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		d.fail(w, req, s, http.StatusNotFound, err.Error())
		return
	case err != nil:
		d.fail(w, req, s, http.StatusInternalServerError, err.Error())
		return
	}
	p := envelopePage{X: x}
	for _, e := range x.Envelopes {
		v := envelopeView{EnvelopeExplanation: e}
		json.Unmarshal(e.Decisions, &v.Records)
		p.Views = append(p.Views, v)
	}
	d.render(w, http.StatusOK, "envelope", pageData{Title: "Envelope " + req.PathValue("id"), Nav: "", CSRF: s.csrf, Body: p})
}

var dashboardFuncs = template.FuncMap{
	"pct": func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) },
	"num": func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"day":       func(t time.Time) string { return t.Format("Mon 2 Jan") },
	"pathEsc":   url.PathEscape,
	"dur":       func(d time.Duration) string { return d.Round(time.Minute).String() },
	"join":      strings.Join,
	"liftPts":   func(a, b float64) string { return fmt.Sprintf("%+.1f points", 100*(a-b)) },
	"isReview":  func(s any) bool { return fmt.Sprint(s) == string(store.StateReview) }, // api.Envelope or store.Envelope
	"stateCls":  func(s any) string { return "state-" + fmt.Sprint(s) },
	"actionCls": func(a string) string { return "action-" + a },
	"sub":       func(a, b float64) float64 { return a - b },
	// sentence is an explanation's plain first line, formula the lines
	// after it (the numbers and reason codes), shown behind a disclosure.
	"sentence": func(s string) string { first, _, _ := strings.Cut(s, "\n"); return first },
	"formula": func(s string) string {
		_, rest, _ := strings.Cut(s, "\n")
		return strings.TrimSpace(rest)
	},
}
