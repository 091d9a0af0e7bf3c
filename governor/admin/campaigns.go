package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"kadenz/governor/admin/api"
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

func (a *Server) registerCampaignRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/campaigns/{name}/suspend", a.handleSuspend)
	mux.HandleFunc("POST /v1/campaigns/{name}/resume", a.handleResume)
	mux.HandleFunc("GET /v1/campaigns/suspended", func(w http.ResponseWriter, _ *http.Request) {
		set, err := a.db.SuspendedCampaigns()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		list := make([]api.SuspendedCampaign, 0, len(set))
		for _, s := range set {
			list = append(list, apiSuspendedCampaign(s))
		}
		writeJSON(w, list)
	})
}

var (
	suspendOp = queueOp{name: "suspend", from: []store.State{store.StateHeld, store.StateQueued}, marketingOnly: true,
		apply: func(a *Server, e *store.Envelope, info *messageInfo, profile []byte, now time.Time) ([]byte, engine.Record, error) {
			p, rec, err := operatorHold(a, e, info, profile, now)
			rec.Reasons = []string{engine.ReasonCampaignSuspended}
			rec.Explanation = fmt.Sprintf("Campaign “%s” suspended by an operator: waits in review until it is resumed or dropped.", info.campaign)
			return p, rec, err
		}}
	resumeOp = queueOp{name: "resume", from: []store.State{store.StateReview},
		apply: func(a *Server, e *store.Envelope, info *messageInfo, _ []byte, now time.Time) ([]byte, engine.Record, error) {
			// Holdout and exempt mail is not governed: it goes out now, as
			// it would have at intake.
			if e.Holdout || engine.ExemptFrom(&a.config().Governor, info.campaign, e.From) {
				e.State, e.Due = store.StateQueued, now
				return nil, engine.Record{Action: "release", At: now, Reasons: []string{engine.ReasonOperator},
					Explanation: fmt.Sprintf("Campaign “%s” resumed by an operator: sent now (not governed).", info.campaign)}, nil
			}
			e.State, e.Due = store.StateHeld, now
			return nil, engine.Record{Action: "defer", At: now, Reasons: []string{engine.ReasonOperator},
				Explanation: fmt.Sprintf("Campaign “%s” resumed by an operator: decided afresh.", info.campaign)}, nil
		}}
)

func (a *Server) handleSuspend(w http.ResponseWriter, req *http.Request) {
	name := strings.TrimSpace(req.PathValue("name"))
	if name == "" {
		http.Error(w, "empty campaign name", http.StatusBadRequest)
		return
	}
	c, err := a.suspendCampaign(name)
	a.writeCampaignChange(w, c, err)
}

func (a *Server) handleResume(w http.ResponseWriter, req *http.Request) {
	c, err := a.resumeCampaign(req.PathValue("name"))
	a.writeCampaignChange(w, c, err)
}

func (a *Server) writeCampaignChange(w http.ResponseWriter, c api.CampaignChange, err error) {
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
func (a *Server) suspendCampaign(name string) (api.CampaignChange, error) {
	if err := a.db.SuspendCampaign(name, a.now()); err != nil {
		return api.CampaignChange{}, err
	}
	if err := a.loadSuspended(); err != nil {
		return api.CampaignChange{}, err
	}
	return a.moveCampaign(name, true, suspendOp)
}

// resumeCampaign takes the campaign out of the suspension set and hands
// its mail in review back to the engine; ErrNotFound if it was not
// suspended.
func (a *Server) resumeCampaign(name string) (api.CampaignChange, error) {
	err := a.db.ResumeCampaign(name)
	if errors.Is(err, store.ErrNotFound) {
		return api.CampaignChange{}, fmt.Errorf("campaign %q is not suspended: %w", name, err)
	}
	if err == nil {
		err = a.loadSuspended()
	}
	if err != nil {
		return api.CampaignChange{}, err
	}
	c, err := a.moveCampaign(name, false, resumeOp)
	a.engine.Kick()
	return c, err
}

// moveCampaign moves the campaign's mail with op; having none to move is
// no error.
func (a *Server) moveCampaign(name string, suspended bool, op queueOp) (api.CampaignChange, error) {
	changed, err := a.applyQueueAction(api.QueueActionRequest{Campaign: name}, op)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return api.CampaignChange{}, err
	}
	a.log.Info("campaign "+map[bool]string{true: "suspended", false: "resumed"}[suspended], "campaign", name, "envelopes", len(changed))
	return api.CampaignChange{Campaign: name, Suspended: suspended, Changed: append([]string{}, changed...)}, nil
}

// loadSuspended refreshes the engine's copy of the suspension set.
func (a *Server) loadSuspended() error {
	set, err := a.db.SuspendedCampaigns()
	if err != nil {
		return err
	}
	a.engine.SetSuspended(set)
	return nil
}
