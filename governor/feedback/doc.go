// Package feedback applies what comes back about recipients: bounces,
// complaints, automatic and human replies read from the feedback mailboxes,
// engagement events posted to the admin API, and a smarthost's permanent
// refusals. The parsers that read a message are in the sub-package report;
// this package decides what each outcome means for the recipient and
// writes it.
//
// Every piece of feedback becomes a signal about one recipient, and each
// signal one store.FeedbackChange: the profile updated, the address put on
// the suppression list for a hard stop (hard bounce, complaint,
// unsubscribe), the recipient's waiting marketing mail suppressed with a
// decision record that says why. A batch commits in one transaction or
// not at all. A human reply also pauses marketing and is forwarded to the
// team with its context (takeover.go).
//
// It is built from what it is handed (Options: the store, the engine, the
// live configuration) and never reaches into the relay.
package feedback
