package sim

import (
	"cmp"
	"encoding/json"

	"kadenz/config"
	"kadenz/governor/engine"
	"kadenz/store"
)

// Shadow mode's forecast against enforce mode's outcome (issue 18, point
// 4). PolicyShadow runs Kadenz in governor.mode shadow on the same world
// as PolicyKadenz: it sends everything, and the question is whether what
// it says enforce would have done is what enforce did.

// Forecast is one policy's marketing mail by what became (or would have
// become) of it. Holdout mail is left out: the engine never decides it.
type Forecast struct {
	// Decided is governed marketing mail the engine decided at least once.
	Decided int `json:"decided"`
	// First* are each envelope's first decision, as its record says (in
	// shadow mode, its "would"): what shadow mode's records and the
	// decision metrics show.
	FirstRelease  int `json:"first_release"`
	FirstDefer    int `json:"first_defer"`
	FirstSuppress int `json:"first_suppress"`
	FirstReview   int `json:"first_review"`
	// Released, Suppressed and Review are the final outcomes, deferrals
	// decided again: for enforce the envelopes' states at the end, for
	// shadow its forecast counters (engine.ReadForecast); Pending is
	// mail deferred and not decided again by the end.
	Released   int `json:"released"`
	Suppressed int `json:"suppressed"`
	Review     int `json:"review"`
	Pending    int `json:"pending"`
}

// SuppressedShare is Suppressed over Decided.
func (f *Forecast) SuppressedShare() float64 { return ratio(f.Suppressed, f.Decided) }

// FirstSuppressShare is FirstSuppress over Decided: the share shadow
// mode's records call "would suppress".
func (f *Forecast) FirstSuppressShare() float64 { return ratio(f.FirstSuppress, f.Decided) }

// forecastOf counts the policy's governed marketing mail; shadow says the
// final outcomes are the engine's forecast counters rather than states.
func forecastOf(db store.Store, shadow bool) (*Forecast, error) {
	f := &Forecast{}
	err := db.Records(func(rec store.EnvelopeRecord) bool {
		if rec.Message == nil || rec.Message.Class != config.ClassMarketing || rec.Envelope.Holdout {
			return true
		}
		var recs []engine.Record
		if json.Unmarshal(rec.Decisions, &recs) != nil || len(recs) == 0 {
			return true
		}
		f.Decided++
		switch cmp.Or(recs[0].Would, recs[0].Action) {
		case "release":
			f.FirstRelease++
		case "defer":
			f.FirstDefer++
		case "suppress":
			f.FirstSuppress++
		case engine.ActionReview:
			f.FirstReview++
		}
		if shadow {
			return true
		}
		switch rec.Envelope.State {
		case store.StateSuppressed:
			f.Suppressed++
		case store.StateReview:
			f.Review++
		case store.StateHeld:
			f.Pending++
		default:
			f.Released++
		}
		return true
	})
	if err != nil || !shadow {
		return f, err
	}
	fc, err := engine.ReadForecast(db, nil)
	if err != nil {
		return nil, err
	}
	f.Released, f.Suppressed, f.Review = int(fc.Released), int(fc.Suppressed), int(fc.Review)
	f.Pending = int(fc.Pending())
	return f, nil
}
