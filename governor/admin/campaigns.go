package governor

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"kadenz/governor/engine"
	"kadenz/store"
)

// Suspending a campaign: an operator stops a campaign's marketing mail at
// once, without losing it, and lets it go on later.
//
//	POST /v1/campaigns/{name}/suspend
//	POST /v1/campaigns/{name}/resume
//	GET  /v1/campaigns/suspended
//
// While a campaign is suspended none of its mail is sent: what the engine
// would release goes to review with the reason campaign-suspended, new
// holdout and exempt mail waits in review instead of going out undelayed,
// and the suspension moves the campaign's held and queued-but-unsent
// marketing mail into review straight away. Resuming hands the campaign's
// mail in review back to the engine, which decides it afresh (a review rule
// may hold it again); holdout and exempt mail goes out at once. Mail in review can still be released or dropped one by one with
// kadenz queue. Campaign names compare case-insensitively.

func (r *Relay) registerCampaignRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/campaigns/{name}/suspend", r.handleSuspend)
	mux.HandleFunc("POST /v1/campaigns/{name}/resume", r.handleResume)
	mux.HandleFunc("GET /v1/campaigns/suspended", func(w http.ResponseWriter, _ *http.Request) {
		set, err := r.db.SuspendedCampaigns()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		list := make([]store.SuspendedCampaign, 0, len(set))
		for _, s := range set {
			list = append(list, s)
		}
		writeJSON(w, list)
	})
}

// CampaignChange is the answer to a suspend or resume: the envelopes it
// moved (into review, or back to the engine).
type CampaignChange struct {
	Campaign  string   `json:"campaign"`
	Suspended bool     `json:"suspended"`
	Changed   []string `json:"changed"`
}

var (
	suspendOp = queueOp{name: "suspend", from: []store.State{store.StateHeld, store.StateQueued}, marketingOnly: true,
		apply: func(r *Relay, e *store.Envelope, info *messageInfo, profile []byte, now time.Time) ([]byte, engine.Record, error) {
			p, rec, err := operatorHold(r, e, info, profile, now)
			rec.Reasons = []string{engine.ReasonCampaignSuspended}
			rec.Explanation = fmt.Sprintf("Campaign %q suspended by an operator: waits in review until it is resumed or dropped.", info.campaign)
			return p, rec, err
		}}
	resumeOp = queueOp{name: "resume", from: []store.State{store.StateReview},
		apply: func(r *Relay, e *store.Envelope, info *messageInfo, _ []byte, now time.Time) ([]byte, engine.Record, error) {
			// Holdout and exempt mail is not governed: it goes out now, as
			// it would have at intake.
			if e.Holdout || engine.ExemptFrom(&r.config().Governor, info.campaign, e.From) {
				e.State, e.Due = store.StateQueued, now
				return nil, engine.Record{Action: "release", At: now, Reasons: []string{engine.ReasonOperator},
					Explanation: fmt.Sprintf("Campaign %q resumed by an operator: sent now (not governed).", info.campaign)}, nil
			}
			e.State, e.Due = store.StateHeld, now
			return nil, engine.Record{Action: "defer", At: now, Reasons: []string{engine.ReasonOperator},
				Explanation: fmt.Sprintf("Campaign %q resumed by an operator: decided afresh.", info.campaign)}, nil
		}}
)

func (r *Relay) handleSuspend(w http.ResponseWriter, req *http.Request) {
	name := strings.TrimSpace(req.PathValue("name"))
	if name == "" {
		http.Error(w, "empty campaign name", http.StatusBadRequest)
		return
	}
	c, err := r.suspendCampaign(name)
	r.writeCampaignChange(w, c, err)
}

func (r *Relay) handleResume(w http.ResponseWriter, req *http.Request) {
	c, err := r.resumeCampaign(req.PathValue("name"))
	r.writeCampaignChange(w, c, err)
}

func (r *Relay) writeCampaignChange(w http.ResponseWriter, c CampaignChange, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		writeJSON(w, c)
	}
}

// suspendCampaign adds the campaign to the suspension set and moves its
// waiting marketing mail into review.
func (r *Relay) suspendCampaign(name string) (CampaignChange, error) {
	if err := r.db.SuspendCampaign(name, r.now()); err != nil {
		return CampaignChange{}, err
	}
	if err := r.loadSuspended(); err != nil {
		return CampaignChange{}, err
	}
	return r.moveCampaign(name, true, suspendOp)
}

// resumeCampaign takes the campaign out of the suspension set and hands
// its mail in review back to the engine; ErrNotFound if it was not
// suspended.
func (r *Relay) resumeCampaign(name string) (CampaignChange, error) {
	err := r.db.ResumeCampaign(name)
	if errors.Is(err, store.ErrNotFound) {
		return CampaignChange{}, fmt.Errorf("campaign %q is not suspended: %w", name, err)
	}
	if err == nil {
		err = r.loadSuspended()
	}
	if err != nil {
		return CampaignChange{}, err
	}
	c, err := r.moveCampaign(name, false, resumeOp)
	r.engine.Kick()
	return c, err
}

// moveCampaign moves the campaign's mail with op; having none to move is
// no error.
func (r *Relay) moveCampaign(name string, suspended bool, op queueOp) (CampaignChange, error) {
	changed, err := r.applyQueueAction(QueueActionRequest{Campaign: name}, op)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return CampaignChange{}, err
	}
	r.log.Info("campaign "+map[bool]string{true: "suspended", false: "resumed"}[suspended], "campaign", name, "envelopes", len(changed))
	return CampaignChange{Campaign: name, Suspended: suspended, Changed: append([]string{}, changed...)}, nil
}

// loadSuspended refreshes the engine's copy of the suspension set.
func (r *Relay) loadSuspended() error {
	set, err := r.db.SuspendedCampaigns()
	if err != nil {
		return err
	}
	r.engine.SetSuspended(set)
	return nil
}
