package engine

import (
	"strings"

	"kadenz/store"
)

// Campaign suspension: the set of campaigns an operator suspended, kept
// in the store and mirrored here so a round need not read it. The admin
// API changes the store and hands the new set over with SetSuspended.

// SetSuspended replaces the set of suspended campaigns (keys lower case,
// as store.SuspendedCampaigns returns them).
func (e *Engine) SetSuspended(set map[string]store.SuspendedCampaign) {
	e.suspended.Store(&set)
}

// IsSuspended reports whether an operator suspended the campaign.
func (e *Engine) IsSuspended(campaign string) bool {
	if campaign == "" {
		return false
	}
	set := e.suspended.Load()
	if set == nil {
		return false
	}
	_, ok := (*set)[strings.ToLower(campaign)]
	return ok
}
