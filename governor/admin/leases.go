package admin

import (
	"net/http"

	"kadenz/store"
)

// handleLeases serves GET /v1/leases: the singleton leases of the nodes
// sharing the database (the decider, each feedback mailbox, each chore),
// who holds each and until when. A store without leases lists none.
func (a *Server) handleLeases(w http.ResponseWriter, _ *http.Request) {
	ls, ok := a.db.(store.Leases)
	if !ok {
		writeJSON(w, []store.Lease{})
		return
	}
	list, err := ls.LeaseList()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if list == nil {
		list = []store.Lease{}
	}
	writeJSON(w, list)
}
