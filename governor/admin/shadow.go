package admin

import (
	"encoding/json"
	"time"

	"kadenz/governor/admin/api"
	"kadenz/governor/engine"
	"kadenz/scoring"
)

// Shadow mode's forecast of enforce mode, for /v1/stats and the overview:
// the engine's forecast counters (governor/engine/shadow.go), kept per UTC
// day of arrival.

// maxForecastDays bounds the days a period reads one by one; a longer
// period reads the running total instead.
const maxForecastDays = 400

// shadowForecast reads the forecast of the envelopes that arrived on the
// UTC days [since, until) touches (every day for a zero since), or nil if
// nothing was ever decided in shadow mode there.
func (a *Server) shadowForecast(since, until time.Time) (*api.ShadowForecast, error) {
	var days []time.Time
	if !since.IsZero() && until.Sub(since) <= maxForecastDays*24*time.Hour {
		for d := utcDay(since); d.Before(until); d = d.AddDate(0, 0, 1) {
			days = append(days, d)
		}
		if len(days) == 0 {
			return nil, nil
		}
	}
	return a.forecastOfDays(days)
}

// forecastOfDays is the forecast of the envelopes that arrived on days (nil:
// all), or nil if there is none.
func (a *Server) forecastOfDays(days []time.Time) (*api.ShadowForecast, error) {
	f, err := engine.ReadForecast(a.db, days)
	if err != nil || f.Decided == 0 {
		return nil, err
	}
	out := &api.ShadowForecast{Decided: f.Decided, WouldRelease: f.Released, WouldSuppress: f.Suppressed,
		WouldReview: f.Review, Pending: f.Pending(), WouldDefer: f.Deferred, DeferReleased: f.DeferredReleased,
		ReleaseShare: float64(f.Released) / float64(f.Decided), SuppressShare: float64(f.Suppressed) / float64(f.Decided)}
	if len(days) > 0 {
		out.FirstDay, out.LastDay = days[0].Format(time.DateOnly), days[len(days)-1].Format(time.DateOnly)
	}
	return out, nil
}

func utcDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// profileJSON is a stored profile as the API shows it (scoring.ProfileJSON)
// with shadow mode's copies as api.ShadowCopy: the features the engine
// keeps with each copy are JSON in a []byte, which encoding/json would
// print as base64, so the view shows what the queue shows of a message
// instead (subject, campaign, topics), as explain leaves features out.
func profileJSON(raw []byte) (json.RawMessage, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	p, err := scoring.DecodeProfile(raw)
	if err != nil {
		return nil, err
	}
	if len(p.ShadowHeld) == 0 {
		return scoring.ProfileJSON(raw)
	}
	v := struct {
		*scoring.Profile
		// The outer field wins over the embedded profile's of the same
		// name (encoding/json's rule for embedded fields).
		ShadowHeld []api.ShadowCopy `json:"shadow_held"`
	}{Profile: p}
	for _, c := range p.ShadowHeld {
		sc := api.ShadowCopy{ID: c.ID, From: c.From, Received: c.Received, Sent: c.Sent, Due: c.Due,
			OpenedAt: c.OpenedAt, ClickedAt: c.ClickedAt, RepliedAt: c.RepliedAt}
		var f scoring.Features
		if json.Unmarshal(c.Features, &f) == nil { // unreadable: shown without them
			sc.Subject, sc.Campaign, sc.Topics = f.Subject, f.Campaign, f.Topics
		}
		v.ShadowHeld = append(v.ShadowHeld, sc)
	}
	return json.Marshal(v)
}
