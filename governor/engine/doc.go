// Package engine makes every decision on held marketing mail, and keeps
// every reason code in one place (reasons.go).
//
// Marketing envelopes are stored held, due for a first decision when the
// hold window ends. The engine sleeps until the earliest held envelope is
// due (or a kick), then decides recipient by recipient: it loads all of
// the recipient's held mail (due or not, so that messages compete) and
// their profile, and
//
//   - the gate (gate.go) decides first for recipients the model must not
//     weigh: on the suppression list, or paused after a human reply;
//   - otherwise scoring's planner decides, and the administrator's rules
//     (rules.go: send windows, campaign caps, the review hold) and campaign
//     suspension (campaigns.go) are applied on top of its decisions;
//   - in shadow mode every decision is recorded as what enforce mode would
//     do, and the mail is released at once; the profile keeps what enforce
//     would have done, would-defers included (shadow.go), so that the
//     records forecast enforce.
//
// A round's outcomes — envelopes released (queued, due at the release
// time), deferred (held, due for a new decision), suppressed or put in
// review, the profile with the planned releases, a Record per envelope —
// are written in one commit for the whole round, each recipient's atomic
// on its own (store.ApplyDecisionsAll). One goroutine decides, so a
// recipient is never decided twice at once. The database is the schedule:
// after a restart the engine simply resumes.
//
// It does not apply feedback (governor/feedback's job, which suppresses
// waiting mail when a hard stop arrives), deliver, or serve the admin API;
// operator actions on single envelopes are the admin API's, recorded with
// ReasonOperator.
package engine
