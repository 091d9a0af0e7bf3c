package admin

import (
	"kadenz/governor/admin/api"
	"kadenz/store"
)

// The store's records as the API shows them (governor/admin/api). Each
// conversion names every field; wire_test.go checks that a record and its
// API form write the same JSON, so a field added to one and not the other
// fails a test instead of vanishing from the API.

func apiMessage(m store.Message) api.Message {
	return api.Message{ID: m.ID, From: m.From, Received: m.Received, Size: m.Size, ClientAddr: m.ClientAddr, AuthUser: m.AuthUser,
		HeaderID: m.HeaderID, Class: m.Class, ClassReason: m.ClassReason, Features: m.Features, Ret: m.Ret, EnvID: m.EnvID, SMTPUTF8: m.SMTPUTF8}
}

func apiEnvelope(e store.Envelope) api.Envelope {
	return api.Envelope{ID: e.ID, MessageID: e.MessageID, From: e.From, To: e.To, State: string(e.State), Created: e.Created, Updated: e.Updated,
		Due: e.Due, Attempts: e.Attempts, LastError: e.LastError, Holdout: e.Holdout, Express: e.Express, Notify: e.Notify, ORcpt: e.ORcpt,
		FirstTried: e.FirstTried, DelayNotified: e.DelayNotified}
}

func apiSuppression(s store.Suppression) api.Suppression {
	return api.Suppression{Address: s.Address, Reason: s.Reason, At: s.At, Source: s.Source, Pseudonym: s.Pseudonym}
}

func apiSuppressions(list []store.Suppression) []api.Suppression {
	out := make([]api.Suppression, len(list)) // [] not null when empty
	for i, s := range list {
		out[i] = apiSuppression(s)
	}
	return out
}

func apiSuspendedCampaign(c store.SuspendedCampaign) api.SuspendedCampaign {
	return api.SuspendedCampaign{Campaign: c.Campaign, At: c.At}
}

func apiForgetReport(r store.ForgetReport) api.ForgetReport {
	return api.ForgetReport{Envelopes: r.Envelopes, Held: r.Held, Queued: r.Queued, Final: r.Final, Decisions: r.Decisions,
		Messages: r.Messages, Bodies: r.Bodies, HeaderIDs: r.HeaderIDs, Profiles: r.Profiles, Tombstone: r.Tombstone, Kept: r.Kept,
		SharedBodies: r.SharedBodies, Suppressions: r.Suppressions, EventIDs: r.EventIDs}
}
