package governor

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"kadenz/config"
	"kadenz/governor/engine"
	"kadenz/scoring"
	"kadenz/store"
)

// The operator API beyond explain: metrics, config status, a recipient's
// profile, erasure (forget), statistics and campaign reports. Reports walk
// the envelopes in the store: fine for an operator's question, not for a
// dashboard polling every second (that is what /metrics is for).

// registerOperationRoutes adds this file's routes to the admin mux.
func (r *Relay) registerOperationRoutes(mux *http.ServeMux) {
	mux.Handle("GET /metrics", r.metrics.handler())
	mux.HandleFunc("GET /v1/config/status", r.handleConfigStatus)
	mux.HandleFunc("GET /v1/profiles/{address}", r.handleProfile)
	mux.HandleFunc("POST /v1/forget", r.handleForget)
	mux.HandleFunc("GET /v1/stats", r.handleStats)
	mux.HandleFunc("GET /v1/campaigns/{name}/report", r.handleCampaignReport)
}

// recentEnvelopes bounds the envelopes a profile view lists.
const recentEnvelopes = 50

// ProfileView is a recipient's profile with their latest envelopes.
type ProfileView struct {
	Address string          `json:"address"`
	Profile json.RawMessage `json:"profile"`
	// Suppressed says whether marketing mail to the address is stopped
	// (unsubscribe, complaint, hard bounce, or erased after one of these).
	Suppressed bool `json:"suppressed"`
	// Envelopes are the most recent first, at most recentEnvelopes.
	Envelopes []EnvelopeExplanation `json:"envelopes"`
	// Total is how many envelopes to the address are stored.
	Total int `json:"total"`
}

func (r *Relay) handleProfile(w http.ResponseWriter, req *http.Request) {
	addr, err := parseAddress(req.PathValue("address"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	v, err := r.profileView(addr)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if v.Profile == nil && v.Total == 0 {
		http.Error(w, fmt.Sprintf("nothing is stored about %s", addr), http.StatusNotFound)
		return
	}
	writeJSON(w, v)
}

// profileView gathers a recipient's profile and latest envelopes; both
// are empty when nothing is stored about addr.
func (r *Relay) profileView(addr string) (ProfileView, error) {
	raw, err := r.db.Profile(addr)
	if err != nil {
		return ProfileView{}, err
	}
	profile, err := scoring.ProfileJSON(raw) // stored in binary; the API speaks JSON
	if err != nil {
		return ProfileView{}, err
	}
	v := ProfileView{Address: addr, Profile: profile, Suppressed: r.hardStopped(addr)}
	err = r.db.Records(func(rec store.EnvelopeRecord) bool {
		if strings.EqualFold(rec.Envelope.To, addr) {
			v.Total++
			v.Envelopes = append(v.Envelopes, EnvelopeExplanation{Envelope: rec.Envelope, Decisions: rec.Decisions})
		}
		return true
	})
	slices.Reverse(v.Envelopes)
	v.Envelopes = v.Envelopes[:min(len(v.Envelopes), recentEnvelopes)]
	return v, err
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

func (r *Relay) handleForget(w http.ResponseWriter, req *http.Request) {
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
	rep, err := r.db.Forget(addr, r.now(), forgetRules)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	res := ForgetResult{Address: addr, Erased: rep}
	var incomplete []string
	if res.OutboxFiles, err = r.eraseOutbox(addr, rep.EnvelopeIDs); err != nil {
		r.log.Error("forget: outbox files left", "error", err)
		incomplete = append(incomplete, "some outbox files could not be removed (see the log)")
	}
	// Last: the deleted records' bytes stay in freed pages until scrubbed.
	scrub, err := r.db.ScrubFreePages()
	res.ScrubbedPages = scrub.Pages
	if err != nil {
		r.log.Error("forget: freed pages not overwritten", "error", err)
		incomplete = append(incomplete, "the database's freed pages were not overwritten: "+err.Error())
	}
	res.Incomplete = strings.Join(incomplete, "; ")
	r.metrics.forgotten.Inc()
	// The log line itself must not undo the erasure: no address in it.
	r.log.Info("recipient forgotten", "envelopes", rep.Envelopes, "kept", rep.Kept, "profiles", rep.Profiles, "tombstone", rep.Tombstone,
		"suppressions", rep.Suppressions, "event_ids", rep.EventIDs, "outbox_files", res.OutboxFiles, "scrubbed_pages", res.ScrubbedPages)
	writeJSON(w, res)
}

// Stats counts envelopes created in a period.
type Stats struct {
	Since     time.Time      `json:"since,omitzero"`
	Until     time.Time      `json:"until"`
	Envelopes int            `json:"envelopes"`
	Messages  int            `json:"messages"`
	ByState   map[string]int `json:"by_state"`
	ByClass   map[string]int `json:"by_class"`
	// ByAction counts each envelope's latest decision (what enforce mode
	// does or would do); ByReason its reason codes.
	ByAction map[string]int `json:"by_action"`
	ByReason map[string]int `json:"by_reason"`
	Holdout  int            `json:"holdout"`
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
func (r *Relay) parsePeriod(req *http.Request) (since, until time.Time, err error) {
	q := req.URL.Query()
	until = r.now()
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

func (r *Relay) handleStats(w http.ResponseWriter, req *http.Request) {
	since, until, err := r.parsePeriod(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	st, err := r.stats(since, until)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, st)
}

// stats counts the envelopes created in [since, until).
func (r *Relay) stats(since, until time.Time) (Stats, error) {
	st := Stats{Since: since, Until: until, ByState: map[string]int{}, ByClass: map[string]int{},
		ByAction: map[string]int{}, ByReason: map[string]int{}}
	lastMsg := ""
	err := r.db.Records(func(rec store.EnvelopeRecord) bool {
		e := rec.Envelope
		if e.Created.Before(since) || !e.Created.Before(until) {
			return true
		}
		st.Envelopes++
		if e.MessageID != lastMsg {
			st.Messages++
			st.ByClass[rec.Message.Class]++
			lastMsg = e.MessageID
		}
		st.ByState[string(e.State)]++
		if e.Holdout {
			st.Holdout++
		}
		if s := summarise(rec.Decisions); s.last != nil {
			st.ByAction[cmp.Or(s.last.Would, s.last.Action)]++
			for _, reason := range s.last.Reasons {
				st.ByReason[reason]++
			}
		}
		return true
	})
	return st, err
}

// CampaignReport is what became of one campaign's mail.
type CampaignReport struct {
	Campaign string `json:"campaign"`
	// Messages and Envelopes submitted under the campaign name.
	Messages  int `json:"messages"`
	Envelopes int `json:"envelopes"`
	// Governed envelopes went through the engine; Holdout ones were sent
	// undelayed to measure the lift.
	Governed GroupReport `json:"governed"`
	Holdout  GroupReport `json:"holdout"`
	// SuppressedBy counts the reason codes of suppressed envelopes.
	SuppressedBy map[string]int `json:"suppressed_by"`
	// Engagement is what recipients did with the governed mail released.
	Engagement Engagement `json:"engagement"`
}

// Engagement counts opens, clicks and replies (from the events API and the
// feedback mailboxes) on released governed mail. Engagement is recorded in
// the recipient's release history, which remembers a bounded number of
// recent releases, so Remembered says how many of the released envelopes
// could still be looked up; holdout mail is not in that history and is
// not counted here.
type Engagement struct {
	Remembered int `json:"remembered"`
	Opened     int `json:"opened"`
	Clicked    int `json:"clicked"`
	Replied    int `json:"replied"`
}

// GroupReport counts one group's envelopes.
type GroupReport struct {
	Envelopes int `json:"envelopes"`
	// Released were released (or, for holdout, queued at once);
	// Deferred were deferred at least once; Suppressed were never sent;
	// Held wait for a decision.
	Released   int `json:"released"`
	Deferred   int `json:"deferred"`
	Suppressed int `json:"suppressed"`
	Held       int `json:"held"`
	Delivered  int `json:"delivered"`
	Failed     int `json:"failed"`
}

func (r *Relay) handleCampaignReport(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	reps, err := r.campaignReports(name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rep, ok := reps[name]
	if !ok {
		http.Error(w, fmt.Sprintf("no mail of campaign %q is stored", name), http.StatusNotFound)
		return
	}
	writeJSON(w, rep)
}

// campaignReports walks the stored envelopes once and reports on the
// campaign named only, or on every campaign when only is empty. Mail
// without a campaign is left out.
func (r *Relay) campaignReports(only string) (map[string]*CampaignReport, error) {
	reps := map[string]*CampaignReport{}
	campaigns := campaignCache{}
	histories := map[string]map[string]scoring.Release{}
	lastMsg := ""
	var failed error
	err := r.db.Records(func(rec store.EnvelopeRecord) bool {
		c := campaigns.of(rec.Message)
		if c == "" || (only != "" && c != only) {
			return true
		}
		rep := reps[c]
		if rep == nil {
			rep = &CampaignReport{Campaign: c, SuppressedBy: map[string]int{}}
			reps[c] = rep
			lastMsg = ""
		}
		e := rec.Envelope
		rep.Envelopes++
		if e.MessageID != lastMsg {
			rep.Messages++
			lastMsg = e.MessageID
		}
		g := &rep.Governed
		if e.Holdout {
			g = &rep.Holdout
		}
		g.Envelopes++
		s := summarise(rec.Decisions)
		switch e.State {
		case store.StateHeld, store.StateReview: // review waits for a person
			g.Held++
		case store.StateSuppressed:
			g.Suppressed++
			if s.last != nil {
				for _, reason := range s.last.Reasons {
					rep.SuppressedBy[reason]++
				}
			}
		default:
			g.Released++
			if !e.Holdout {
				rel, ok, err := r.releaseOf(histories, e)
				if err != nil {
					failed = err
					return false
				}
				if ok {
					rep.Engagement.Remembered++
					rep.Engagement.Opened += b2i(rel.Opened)
					rep.Engagement.Clicked += b2i(rel.Clicked)
					rep.Engagement.Replied += b2i(rel.Replied)
				}
			}
		}
		if s.deferred {
			g.Deferred++
		}
		switch e.State {
		case store.StateDelivered:
			g.Delivered++
		case store.StateFailed:
			g.Failed++
		}
		return true
	})
	if err == nil {
		err = failed
	}
	return reps, err
}

// campaignCache maps message IDs to their campaign, reading each
// message's features once during a walk over envelope records.
type campaignCache map[string]string

func (c campaignCache) of(m *store.Message) string {
	name, ok := c[m.ID]
	if !ok {
		var f struct {
			Campaign string `json:"campaign"`
		}
		json.Unmarshal(m.Features, &f) // no features: no campaign
		name = f.Campaign
		c[m.ID] = name
	}
	return name
}

// releaseOf finds an envelope's entry in its recipient's release history,
// reading each recipient's profile once per report.
func (r *Relay) releaseOf(histories map[string]map[string]scoring.Release, e store.Envelope) (scoring.Release, bool, error) {
	h, ok := histories[e.To]
	if !ok {
		raw, err := r.db.Profile(e.To)
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

// AdminAddr returns where the admin listener is bound (useful with port
// 0), or nil when it does not run.
func (r *Relay) AdminAddr() net.Addr { return r.adminAddr }
