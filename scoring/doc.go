// Package scoring decides, for one recipient at a time, which held marketing
// messages to release, when, and which to defer or suppress, and says why.
//
// It is the model at the heart of Kadenz (docs/scoring.md describes it in
// full, with every parameter and the published work it draws on):
//
//   - ExtractFeatures reads what scoring needs from a raw RFC 5322 message:
//     topics, campaign, priority, expiry, not-before, time zone, customer
//     value and a SimHash fingerprint of its text, within fixed work bounds.
//   - Profile remembers a recipient: decayed per-topic sends and engagement,
//     recent releases, engagement by hour of week and hard signals.
//     RecordRelease and RecordEvent are the only ways to change it.
//   - ScoreRelevance predicts the value of a message for a recipient: a
//     Beta-binomial estimate of topic affinity shrunk toward the Population,
//     weighed by priority and novelty. ScoreFatigue prices one more mail:
//     an expected loss that grows with decayed recent volume and with how
//     this recipient has responded to volume.
//   - Decide puts them together under the administrator's caps, quiet hours
//     and send windows, choosing release times from the recipient's
//     hour-of-week engagement, letting messages compete for the budget, and
//     keeping a fairness floor and a small exploration share. Every
//     Decision carries reason codes, the numbers behind it, and Explain.
//
// The package is pure: it takes structs and the current time as arguments,
// reads no clock, does no I/O and keeps no state between calls, so the
// same input always gives the same decision and the simulator can run it
// on virtual time. Randomness (exploration, holdout) is a hash of the
// recipient, the message and the day. It does not load time zones (the
// caller passes a *time.Location), evaluate cron schedules (the caller
// passes a SendWindow), persist profiles or classify transactional mail:
// transactional mail never reaches it.
package scoring
