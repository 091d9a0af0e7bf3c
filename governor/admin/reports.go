package admin

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"kadenz/config"
	"kadenz/governor/admin/api"
	"kadenz/governor/engine"
	"kadenz/scoring"
	"kadenz/store"
)

// The operator API beyond explain: metrics, config status, a recipient's
// profile, erasure (forget), statistics and campaign reports. Statistics
// and campaign reports read counts the store keeps as it writes (tallies),
// so they cost what a period's hours or a campaign's counts hold.

// registerOperationRoutes adds this file's routes to the admin mux.
func (a *Server) registerOperationRoutes(mux *http.ServeMux) {
	mux.Handle("GET /metrics", a.metrics)
	mux.HandleFunc("GET /v1/config/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, a.relay.ReloadStatus())
	})
	mux.HandleFunc("GET /v1/profiles/{address}", a.handleProfile)
	mux.HandleFunc("POST /v1/forget", a.handleForget)
	mux.HandleFunc("GET /v1/stats", a.handleStats)
	mux.HandleFunc("GET /v1/campaigns/{name}/report", a.handleCampaignReport)
}

// recentEnvelopes is how many envelopes a page of a profile view lists
// unless the request asks for another number.
const recentEnvelopes = 50

// handleProfile answers GET /v1/profiles/{address}?limit=&after=: the
// profile and one page of the recipient's envelopes, the latest first; a
// Link rel="next" header names the page after, as /v1/queue does.
func (a *Server) handleProfile(w http.ResponseWriter, req *http.Request) {
	addr, err := parseAddress(req.PathValue("address"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := req.URL.Query()
	for key := range q {
		if key != "limit" && key != "after" {
			http.Error(w, fmt.Sprintf("unknown parameter %q (limit, after)", key), http.StatusBadRequest)
			return
		}
	}
	limit := recentEnvelopes
	if q.Get("limit") != "" {
		if limit, err = listLimit(q.Get("limit")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	v, next, err := a.profileView(addr, q.Get("after"), limit)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if v.Profile == nil && v.Total == 0 {
		http.Error(w, fmt.Sprintf("nothing is stored about %s", addr), http.StatusNotFound)
		return
	}
	setNextLink(w, req, next)
	writeJSON(w, v)
}

// profileView gathers a recipient's profile and one page of their
// envelopes, the latest first, after the envelope ID after ("": from the
// latest); next is the after of the page that follows ("" on the last).
// Both are empty when nothing is stored about addr. It reads the
// recipient's envelopes through the store's index of them, not a walk of
// every envelope.
func (a *Server) profileView(addr, after string, limit int) (v api.ProfileView, next string, err error) {
	raw, err := a.db.Profile(addr)
	if err != nil {
		return api.ProfileView{}, "", err
	}
	profile, err := profileJSON(raw) // stored in binary; the API speaks JSON (shadow.go)
	if err != nil {
		return api.ProfileView{}, "", err
	}
	v = api.ProfileView{Address: addr, Profile: profile, Suppressed: a.relay.HardStopped(addr)}
	page, err := a.db.RecipientEnvelopes(addr, after, limit)
	if err != nil {
		return api.ProfileView{}, "", err
	}
	v.Total = page.Total
	for _, rec := range page.Records {
		v.Envelopes = append(v.Envelopes, api.EnvelopeExplanation{Envelope: apiEnvelope(rec.Envelope), Decisions: rec.Decisions})
	}
	return v, page.Next, nil
}

// parseAddress accepts a bare address (no display name, no brackets).
func parseAddress(s string) (string, error) {
	a, bad := checkAddress("address", s)
	if bad != nil {
		return "", bad
	}
	return a, nil
}

// forgetRequest is the body of POST /v1/forget.
type forgetRequest struct {
	Address string `json:"address"`
}

// forgetRules: an erasure removes the recipient's held and queued
// marketing mail and their history, but not a delivery in progress (it
// cannot be recalled) nor transactional mail still to be delivered (a
// password reset or the confirmation of the erasure itself).
var forgetRules = store.ForgetRules{
	Keep: func(e store.Envelope, m store.Message) bool {
		switch {
		case e.State == store.StateDelivering:
			return true
		case e.State.Final(), e.State == store.StateHeld:
			return false
		}
		return m.Class != config.ClassMarketing
	},
	HardStop: func(raw []byte) bool {
		p, err := scoring.DecodeProfile(raw)
		return err != nil || p.HardStopped() // in doubt, keep the address out of marketing
	},
}

func (a *Server) handleForget(w http.ResponseWriter, req *http.Request) {
	var body forgetRequest
	if err := readStrict(req.Body, 64<<10, &body); err != nil {
		http.Error(w, "want JSON {\"address\": \"local@domain\"}: "+err.Error(), http.StatusBadRequest)
		return
	}
	addr, err := parseAddress(body.Address)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rep, err := a.db.Forget(addr, a.now(), forgetRules)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	res := api.ForgetResult{Address: addr, Erased: apiForgetReport(rep)}
	var incomplete []string
	if res.OutboxFiles, err = a.eraseOutbox(addr, rep.EnvelopeIDs); err != nil {
		a.log.Error("forget: outbox files left", "error", err)
		incomplete = append(incomplete, "some outbox files could not be removed (see the log)")
	}
	// Last: the deleted records' bytes stay in freed pages until scrubbed,
	// where the backend keeps pages of its own (store.FreePageScrubber).
	if scrubber, ok := a.db.(store.FreePageScrubber); ok {
		scrub, err := scrubber.ScrubFreePages()
		res.ScrubbedPages = scrub.Pages
		if err != nil {
			a.log.Error("forget: freed pages not overwritten", "error", err)
			incomplete = append(incomplete, "the database's freed pages were not overwritten: "+err.Error())
		}
	}
	res.Incomplete = strings.Join(incomplete, "; ")
	if a.forgotten != nil {
		a.forgotten.Inc()
	}
	// The log line itself must not undo the erasure: no address in it.
	a.log.Info("recipient forgotten", "envelopes", rep.Envelopes, "kept", rep.Kept, "profiles", rep.Profiles, "tombstone", rep.Tombstone,
		"suppressions", rep.Suppressions, "event_ids", rep.EventIDs, "outbox_files", res.OutboxFiles, "scrubbed_pages", res.ScrubbedPages)
	writeJSON(w, res)
}

// recordSummary is what reports read from an envelope's decisions.
type recordSummary struct {
	last     *engine.Record
	deferred bool
	released bool
}

func summarise(raw json.RawMessage) recordSummary {
	var s recordSummary
	var recs []engine.Record
	if json.Unmarshal(raw, &recs) != nil || len(recs) == 0 {
		return s
	}
	for _, d := range recs {
		a := cmp.Or(d.Would, d.Action)
		s.deferred = s.deferred || a == scoring.ActionDefer.String()
		s.released = s.released || a == scoring.ActionRelease.String()
	}
	s.last = &recs[len(recs)-1]
	return s
}

// parsePeriod reads since/until (RFC 3339) or last (a Go duration) from
// the query; until defaults to now.
func (a *Server) parsePeriod(req *http.Request) (since, until time.Time, err error) {
	q := req.URL.Query()
	until = a.now()
	if s := q.Get("until"); s != "" {
		if until, err = time.Parse(time.RFC3339, s); err != nil {
			return since, until, fmt.Errorf("until: want RFC 3339: %w", err)
		}
	}
	if s := q.Get("since"); s != "" {
		if since, err = time.Parse(time.RFC3339, s); err != nil {
			return since, until, fmt.Errorf("since: want RFC 3339: %w", err)
		}
	}
	if s := q.Get("last"); s != "" {
		if q.Get("since") != "" {
			return since, until, errors.New("give since or last, not both")
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return since, until, fmt.Errorf("last: want a positive duration such as 24h, got %q", s)
		}
		since = until.Add(-d)
	}
	if !since.IsZero() && !since.Before(until) {
		return since, until, errors.New("since must be before until")
	}
	return since, until, nil
}

func (a *Server) handleStats(w http.ResponseWriter, req *http.Request) {
	since, until, err := a.parsePeriod(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	st, err := a.stats(since, until)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, st)
}

// stats counts the envelopes created in the whole hours covering
// [since, until), from the store's tallies (kept on every commit), so
// it costs what the period's hours hold, not a read of every envelope.
// The answer names the hours it counted.
func (a *Server) stats(since, until time.Time) (api.Stats, error) {
	since, until = store.TallyHours(since, until)
	st := api.Stats{Since: since, Until: until, ByState: map[string]int{}, ByClass: map[string]int{},
		ByAction: map[string]int{}, ByReason: map[string]int{}}
	t, err := a.db.Tallies(since, until)
	if err != nil {
		return st, err
	}
	for _, e := range t.Envelopes {
		st.Envelopes += e.N
		st.ByState[string(e.State)] += e.N
		if e.Holdout {
			st.Holdout += e.N
		}
		if e.Action != "" {
			st.ByAction[e.Action] += e.N
		}
	}
	for _, r := range t.Reasons {
		st.ByReason[r.Reason] += r.N
	}
	for _, m := range t.Messages {
		st.Messages += m.N
		st.ByClass[m.Class] += m.N
	}
	st.ShadowForecast, err = a.shadowForecast(since, until) // shadow.go
	return st, err
}

func (a *Server) handleCampaignReport(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	rep, ok, err := a.campaignReport(name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !ok {
		http.Error(w, fmt.Sprintf("no mail of campaign %q is stored", name), http.StatusNotFound)
		return
	}
	writeJSON(w, rep)
}

// engagementPage bounds the envelopes a campaign report reads for its
// engagement: the campaign's latest, one page of the dashboard's list.
const engagementPage = 500

// campaignReport reports on one campaign from the store's campaign
// tallies, and on the engagement with the released governed mail among
// its latest engagementPage envelopes (Engagement.Sampled): a report costs
// a read of the campaign's counts and of one page, not a walk of every
// envelope. ok is false when none of its mail is stored.
func (a *Server) campaignReport(name string) (*api.CampaignReport, bool, error) {
	t, ok, err := a.db.CampaignTally(name)
	if err != nil || !ok {
		return nil, ok, err
	}
	rep := reportOf(t)
	page, err := a.db.CampaignEnvelopes(name, "", engagementPage)
	if err != nil {
		return rep, true, err
	}
	// The profiles are read after the page's read transaction has ended:
	// a read inside it would be a second one in the same goroutine, which
	// waits behind a commit that grows the file while that commit waits
	// for the first read to end (bbolt's remap).
	histories := map[string]map[string]scoring.Release{}
	for _, r := range page.Records {
		e := r.Envelope
		if e.Holdout || !releasedState(e.State) {
			continue
		}
		rep.Engagement.Sampled++
		rel, ok, err := a.releaseOf(histories, e)
		if err != nil {
			return rep, true, err
		}
		if ok {
			rep.Engagement.Remembered++
			rep.Engagement.Opened += b2i(rel.Opened)
			rep.Engagement.Clicked += b2i(rel.Clicked)
			rep.Engagement.Replied += b2i(rel.Replied)
		}
	}
	return rep, true, nil
}

// releasedState says whether an envelope in state s counts as released
// in a campaign report: not waiting for a decision or a person, not
// suppressed, not refused after its release.
func releasedState(s store.State) bool {
	switch s {
	case store.StateHeld, store.StateReview, store.StateSuppressed, store.StateFailed:
		return false
	}
	return true
}

// reportOf turns a campaign's tallies into its report, without the
// engagement. Mail waiting for a person (review) counts as held; failed
// mail was released, then refused, and counts apart from the released.
func reportOf(t store.CampaignTally) *api.CampaignReport {
	rep := &api.CampaignReport{Campaign: t.Campaign, Subject: t.Subject, Messages: t.Messages, SuppressedBy: map[string]int{}}
	for _, e := range t.Envelopes {
		rep.Envelopes += e.N
		g := &rep.Governed
		if e.Holdout {
			g = &rep.Holdout
		}
		g.Envelopes += e.N
		switch e.State {
		case store.StateHeld, store.StateReview:
			g.Held += e.N
		case store.StateSuppressed:
			g.Suppressed += e.N
		case store.StateFailed:
			g.Failed += e.N
		default:
			g.Released += e.N
		}
		if e.State == store.StateDelivered {
			g.Delivered += e.N
		}
		if e.Deferred {
			g.Deferred += e.N
		}
	}
	for _, r := range t.Reasons {
		rep.SuppressedBy[r.Reason] += r.N
	}
	return rep
}

// releaseOf finds an envelope's entry in its recipient's release history,
// reading each recipient's profile once per report.
func (a *Server) releaseOf(histories map[string]map[string]scoring.Release, e store.Envelope) (scoring.Release, bool, error) {
	h, ok := histories[e.To]
	if !ok {
		raw, err := a.db.Profile(e.To)
		if err != nil {
			return scoring.Release{}, false, err
		}
		h = map[string]scoring.Release{}
		p, err := scoring.DecodeProfile(raw)
		if err != nil {
			return scoring.Release{}, false, fmt.Errorf("%s: %w", e.To, err)
		}
		for _, rel := range p.History {
			h[rel.MessageID] = rel
		}
		histories[e.To] = h
	}
	rel, ok := h[e.ID]
	return rel, ok, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// subjectOf is the subject a message's features recorded ("" if none).
func subjectOf(m *store.Message) string {
	if m == nil || len(m.Features) == 0 {
		return ""
	}
	var f struct {
		Subject string `json:"subject"`
	}
	if json.Unmarshal(m.Features, &f) != nil {
		return ""
	}
	return f.Subject
}
