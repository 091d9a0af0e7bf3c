// Package api holds the wire types of Kadenz's admin API: the JSON that
// the HTTP API (governor/admin) writes and reads, and that the command
// line (cmd/kadenz) decodes. They are the API's own types, not the
// store's: a storage struct can change its fields without changing what
// a client sees, and a client links neither the daemon nor the store.
//
// Where the API shows a stored record (an envelope, a message, a
// suppression) it has a type of its own here with the same JSON; the
// admin package converts, and its tests check that the two stay alike.
package api

import (
	"encoding/json"
	"time"
)

// Explanation is the answer to "why": a message, how it was classified,
// and for each of its envelopes the state and every decision taken.
type Explanation struct {
	Message   Message               `json:"message"`
	Envelopes []EnvelopeExplanation `json:"envelopes"`
	// BodyPurged: the retention period for bodies has passed.
	BodyPurged bool `json:"body_purged,omitempty"`
	// Also are the other messages (transactions) that carry the same
	// Message-ID, when that is what was asked for: a resend, a second
	// submission to other recipients. Oldest first; Message is the latest.
	Also []Explanation `json:"also,omitempty"`
}

// EnvelopeExplanation is one recipient's part of an Explanation.
type EnvelopeExplanation struct {
	Envelope
	Decisions json.RawMessage `json:"decisions,omitempty"`
}

// QueueEntry is one envelope as the queue listing shows it: the stored
// envelope's fields, and what its message and decisions say.
type QueueEntry struct {
	Envelope
	Class    string `json:"class,omitempty"`
	Subject  string `json:"subject,omitempty"`
	Campaign string `json:"campaign,omitempty"`
	// LastAction is the action of the envelope's latest decision record.
	LastAction string `json:"last_action,omitempty"`
}

// QueueActionRequest names the envelopes an action applies to: a list of
// envelope IDs or a campaign, not both.
type QueueActionRequest struct {
	IDs      []string `json:"ids,omitempty"`
	Campaign string   `json:"campaign,omitempty"`
}

// QueueActionResult lists the envelopes an action changed.
type QueueActionResult struct {
	Changed []string `json:"changed"`
}

// Event is one engagement or delivery event posted to /v1/events.
type Event struct {
	// ID makes the event idempotent: a repeat is acknowledged, not applied.
	ID   string `json:"id,omitempty"`
	Kind string `json:"kind"`
	// One of these names the recipient: the envelope (most precise), the
	// Message-ID header (with Recipient when the message had several), or
	// the recipient alone.
	EnvelopeID string `json:"envelope_id,omitempty"`
	MessageID  string `json:"message_id,omitempty"`
	Recipient  string `json:"recipient,omitempty"`
	// Timestamp is RFC 3339; the relay's clock when empty.
	Timestamp string `json:"timestamp,omitempty"`
	URL       string `json:"url,omitempty"`
	Topic     string `json:"topic,omitempty"`
	// Bounce is hard (default) or soft, for kind bounce.
	Bounce string `json:"bounce,omitempty"`
}

// EventsResult is the answer to a POST /v1/events that was applied.
type EventsResult struct {
	Applied    int `json:"applied"`
	Duplicates int `json:"duplicates"`
}

// EventError is the answer to a POST /v1/events that was refused: nothing
// of the request was applied.
type EventError struct {
	Error string `json:"error"`
	// Index is the position of the bad event in the batch (0 for a single
	// event), or -1 when the request as a whole is bad.
	Index int    `json:"index"`
	Field string `json:"field,omitempty"`
}

// SuppressionRequest is the body of POST /v1/suppressions.
type SuppressionRequest struct {
	Address string `json:"address"`
	Reason  string `json:"reason"`
}

// ProfileView is a recipient's profile with their latest envelopes.
type ProfileView struct {
	Address string `json:"address"`
	// Profile is the profile's JSON form; its "shadow_held" entries are
	// ShadowCopy.
	Profile json.RawMessage `json:"profile"`
	// Suppressed says whether marketing mail to the address is stopped
	// (unsubscribe, complaint, hard bounce, or erased after one of these).
	Suppressed bool `json:"suppressed"`
	// Envelopes are one page of the recipient's envelopes, the most recent
	// first (50 unless the request sets limit; Link rel="next" names the
	// page after).
	Envelopes []EnvelopeExplanation `json:"envelopes"`
	// Total is how many envelopes to the address are stored.
	Total int `json:"total"`
}

// ShadowCopy is, in a profile's "shadow_held" (shadow mode only), a
// message shadow mode sent that enforce mode would still hold, to be
// decided again at Due (docs/governor.md, "Shadow mode"). The engine keeps
// the message's features with it; the view shows what a reader needs of
// them, as the queue does: subject, campaign, topics.
type ShadowCopy struct {
	// ID is the envelope's ID.
	ID   string `json:"id"`
	From string `json:"from,omitempty"`
	// Received is when the envelope arrived, Sent when shadow mode sent
	// it, Due when enforce would decide it again.
	Received time.Time `json:"received"`
	Sent     time.Time `json:"sent"`
	Due      time.Time `json:"due"`
	Subject  string    `json:"subject,omitempty"`
	Campaign string    `json:"campaign,omitempty"`
	Topics   []string  `json:"topics,omitempty"`
	// OpenedAt, ClickedAt and RepliedAt are the first engagement of each
	// kind the sent mail earned while enforce would still hold it.
	OpenedAt  time.Time `json:"opened_at,omitzero"`
	ClickedAt time.Time `json:"clicked_at,omitzero"`
	RepliedAt time.Time `json:"replied_at,omitzero"`
}

// Stats counts envelopes created in a period.
type Stats struct {
	Since     time.Time      `json:"since,omitzero"`
	Until     time.Time      `json:"until"`
	Envelopes int            `json:"envelopes"`
	Messages  int            `json:"messages"`
	ByState   map[string]int `json:"by_state"`
	ByClass   map[string]int `json:"by_class"`
	// ByAction counts each envelope's latest decision (what enforce mode
	// does or would do); ByReason its reason codes.
	ByAction map[string]int `json:"by_action"`
	ByReason map[string]int `json:"by_reason"`
	Holdout  int            `json:"holdout"`
	// ShadowForecast is, when the relay has decided in shadow mode, what
	// enforce mode would have done with that mail; absent otherwise.
	ShadowForecast *ShadowForecast `json:"shadow_forecast,omitempty"`
}

// ShadowForecast is shadow mode's forecast of enforce mode for governed
// marketing mail, by UTC day of arrival: shadow mode sent all of it
// (Decided), and enforce would have released, suppressed or put in review
// this much, each deferral decided again as enforce would (docs/governor.md,
// "Shadow mode").
type ShadowForecast struct {
	// FirstDay and LastDay are the UTC days of arrival counted (YYYY-MM-DD;
	// both empty: every day).
	FirstDay string `json:"first_day,omitempty"`
	LastDay  string `json:"last_day,omitempty"`
	// Decided is governed marketing mail decided in shadow mode, all of it
	// sent.
	Decided int64 `json:"decided"`
	// WouldRelease, WouldSuppress and WouldReview are enforce's outcomes;
	// Pending is mail enforce would still hold, deferred and not decided
	// again yet.
	WouldRelease  int64 `json:"would_release"`
	WouldSuppress int64 `json:"would_suppress"`
	WouldReview   int64 `json:"would_review"`
	Pending       int64 `json:"pending"`
	// WouldDefer is mail enforce would first have deferred; DeferReleased
	// how much of it enforce would release in the end.
	WouldDefer    int64 `json:"would_defer"`
	DeferReleased int64 `json:"defer_released"`
	// ReleaseShare and SuppressShare are WouldRelease and WouldSuppress
	// over Decided.
	ReleaseShare  float64 `json:"release_share"`
	SuppressShare float64 `json:"suppress_share"`
}

// CampaignReport is what became of one campaign's mail.
type CampaignReport struct {
	Campaign string `json:"campaign"`
	// Subject is the subject of the campaign's latest message.
	Subject string `json:"subject,omitempty"`
	// Messages and Envelopes submitted under the campaign name.
	Messages  int `json:"messages"`
	Envelopes int `json:"envelopes"`
	// Governed envelopes went through the engine; Holdout ones were sent
	// undelayed to measure the lift.
	Governed GroupReport `json:"governed"`
	Holdout  GroupReport `json:"holdout"`
	// SuppressedBy counts the reason codes of suppressed envelopes.
	SuppressedBy map[string]int `json:"suppressed_by"`
	// Engagement is what recipients did with the governed mail released.
	Engagement Engagement `json:"engagement"`
}

// Engagement counts opens, clicks and replies (from the events API and the
// feedback mailboxes) on released governed mail. Engagement is recorded in
// the recipient's release history, which remembers a bounded number of
// recent releases. A report looks up the released governed envelopes among
// the campaign's latest 500 (Sampled of them), so that it costs a page,
// not a walk of the campaign; Remembered says how many of those could
// still be looked up. Holdout mail is not in that history and is not
// counted here.
type Engagement struct {
	Sampled    int `json:"sampled"`
	Remembered int `json:"remembered"`
	Opened     int `json:"opened"`
	Clicked    int `json:"clicked"`
	Replied    int `json:"replied"`
}

// GroupReport counts one group's envelopes.
type GroupReport struct {
	Envelopes int `json:"envelopes"`
	// Released were released (or, for holdout, queued at once) and not
	// refused; Failed were released, then refused for good by the
	// smarthost or expired (not counted as released); Deferred were
	// deferred at least once; Suppressed were never sent; Held wait for a
	// decision.
	Released   int `json:"released"`
	Deferred   int `json:"deferred"`
	Suppressed int `json:"suppressed"`
	Held       int `json:"held"`
	Delivered  int `json:"delivered"`
	Failed     int `json:"failed"`
}

// CampaignChange is the answer to a suspend or resume: the envelopes it
// moved (into review, or back to the engine).
type CampaignChange struct {
	Campaign  string   `json:"campaign"`
	Suspended bool     `json:"suspended"`
	Changed   []string `json:"changed"`
}

// ForgetResult is the answer of POST /v1/forget.
type ForgetResult struct {
	Address string `json:"address"`
	// Erased is what the store removed or pseudonymised.
	Erased ForgetReport `json:"erased"`
	// OutboxFiles counts .eml files of the recipient's mail removed from
	// the outbox (delivery without an upstream).
	OutboxFiles int `json:"outbox_files"`
	// ScrubbedPages counts pages of the database file overwritten because
	// they were free but still held deleted data.
	ScrubbedPages int `json:"scrubbed_pages"`
	// Incomplete says what could not be finished; run forget again.
	Incomplete string `json:"incomplete,omitempty"`
}

// ReloadStatus is the answer of GET /v1/config/status.
type ReloadStatus struct {
	// LoadedAt is when the configuration in force was loaded.
	LoadedAt time.Time `json:"loaded_at"`
	// LastAttempt is the last reload attempt, if any; OK and Errors are
	// its outcome.
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	OK          bool      `json:"ok"`
	Errors      []string  `json:"errors,omitempty"`
	// RestartNeeded lists keys that changed in the file but only take
	// effect at the next start.
	RestartNeeded []string `json:"restart_needed,omitempty"`
}

// ClockRequest is the body of POST /v1/clock: an absolute time or a
// duration to advance by, not both.
type ClockRequest struct {
	Time    time.Time `json:"time,omitzero"`
	Advance string    `json:"advance,omitempty"`
}

type ClockResponse struct {
	Now     time.Time `json:"now"`
	Virtual bool      `json:"virtual"`
	// CaughtUp says the relay has done all it had to do up to Now (see
	// the relay's CaughtUp): after a step of virtual time, a caller polls this
	// instead of guessing from metrics or sleeping.
	CaughtUp bool `json:"caught_up"`
}

// Message is a stored message as the API shows it.
type Message struct {
	ID         string    `json:"id"`
	From       string    `json:"from"`
	Received   time.Time `json:"received"`
	Size       int       `json:"size"`
	ClientAddr string    `json:"client_addr,omitempty"`
	AuthUser   string    `json:"auth_user,omitempty"`
	// HeaderID is the message's own Message-ID header, without brackets.
	HeaderID string `json:"header_id,omitempty"`
	// Class is "transactional" or "marketing", with the rule that said so.
	Class       string `json:"class,omitempty"`
	ClassReason string `json:"class_reason,omitempty"`
	// Features are what the engine extracted for scoring; explain leaves
	// them out.
	Features json.RawMessage `json:"features,omitempty"`
	// Ret and EnvID are the client's DSN request (RFC 3461 4.3, 4.4).
	Ret   string `json:"ret,omitempty"`
	EnvID string `json:"envid,omitempty"`
	// SMTPUTF8: the client declared it (RFC 6531 3.4).
	SMTPUTF8 bool `json:"smtputf8,omitempty"`
}

// Envelope is one recipient's copy of a message as the API shows it.
type Envelope struct {
	ID        string    `json:"id"`
	MessageID string    `json:"message_id"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	State     string    `json:"state"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	// Due is when the envelope is next acted on; zero for final states.
	Due       time.Time `json:"due,omitzero"`
	Attempts  int       `json:"attempts,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	// Holdout: marketing mail sent undelayed to measure the governor's
	// effect against it. Express: mail a person is waiting for.
	Holdout bool `json:"holdout,omitempty"`
	Express bool `json:"express,omitempty"`
	// Notify and ORcpt are the client's RCPT parameters (RFC 3461 4.1, 4.2).
	Notify []string `json:"notify,omitempty"`
	ORcpt  string   `json:"orcpt,omitempty"`
	// FirstTried is when delivery was first attempted; DelayNotified says
	// a delay notice went to the sender.
	FirstTried    time.Time `json:"first_tried,omitzero"`
	DelayNotified bool      `json:"delay_notified,omitempty"`
}

// Suppression is an entry of the suppression list.
type Suppression struct {
	Address string    `json:"address"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	// Source says who put it there: imap, events, admin, import.
	Source string `json:"source,omitempty"`
	// Pseudonym replaces Address in the entry of an erased recipient.
	Pseudonym string `json:"pseudonym,omitempty"`
}

// SuspendedCampaign is a campaign an operator suspended, and when.
type SuspendedCampaign struct {
	Campaign string    `json:"campaign"`
	At       time.Time `json:"at"`
}

// ForgetReport counts what an erasure removed or pseudonymised.
type ForgetReport struct {
	Envelopes int `json:"envelopes"`
	// Held, Queued and Final break Envelopes down by the state they were in.
	Held      int `json:"held"`
	Queued    int `json:"queued"`
	Final     int `json:"final"`
	Decisions int `json:"decision_records"`
	Messages  int `json:"messages"`
	Bodies    int `json:"bodies"`
	HeaderIDs int `json:"header_ids"`
	Profiles  int `json:"profiles"`
	// Tombstone: a hashed marker keeps marketing mail suppressed.
	Tombstone bool `json:"tombstone"`
	// Kept counts envelopes left alone (in delivery, or transactional mail
	// still to deliver): forget again once they are final.
	Kept int `json:"kept"`
	// SharedBodies counts bodies other recipients' copies still need.
	SharedBodies int `json:"shared_bodies_kept"`
	// Suppressions and EventIDs count entries now kept under a hash of the
	// address instead of the address.
	Suppressions int `json:"suppressions_pseudonymised"`
	EventIDs     int `json:"event_ids_pseudonymised"`
}
