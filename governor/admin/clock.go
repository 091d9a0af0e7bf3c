package admin

import (
	"fmt"
	"net/http"
	"time"

	"kadenz/governor/admin/api"
)

// GET /v1/clock says the relay's time and whether it is caught up; POST
// moves a virtual clock (serve --clock virtual:...), for simulations and
// tests that drive the built binary.

func (a *Server) handleGetClock(w http.ResponseWriter, _ *http.Request) {
	caughtUp, err := a.relay.CaughtUp()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, api.ClockResponse{Now: a.now(), Virtual: a.clock != nil, CaughtUp: caughtUp})
}

func (a *Server) handleSetClock(w http.ResponseWriter, req *http.Request) {
	if a.clock == nil {
		http.Error(w, "the clock is real: start serve with --clock virtual:RFC3339 to move it", http.StatusConflict)
		return
	}
	var body api.ClockRequest
	if err := readStrict(req.Body, 4096, &body); err != nil {
		http.Error(w, "body must be {\"time\": RFC 3339} or {\"advance\": duration}: "+err.Error(), http.StatusBadRequest)
		return
	}
	target := body.Time
	switch {
	case body.Advance != "" && !target.IsZero():
		http.Error(w, "give time or advance, not both", http.StatusBadRequest)
		return
	case body.Advance != "":
		d, err := time.ParseDuration(body.Advance)
		if err != nil || d < 0 {
			http.Error(w, fmt.Sprintf("advance %q is not a non-negative duration such as 90m", body.Advance), http.StatusBadRequest)
			return
		}
		target = a.clock.Now().Add(d)
	case target.IsZero():
		http.Error(w, "give time or advance", http.StatusBadRequest)
		return
	}
	if err := a.clock.Set(target); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.log.Info("virtual clock moved", "now", target)
	a.relay.TimeMoved()
	writeJSON(w, api.ClockResponse{Now: target, Virtual: true})
}
