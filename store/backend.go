package store

import (
	"bytes"
	"encoding/json"
	"io"
	"time"
)

// The store's contract, as interfaces: what the relay needs from whatever
// keeps its state. *DB (bbolt, one node) is the first implementation; a
// second backend (SQL shared by several nodes) implements the same
// interfaces and must pass the same conformance suite, store/storetest.
//
// The contract is grouped by the part of the relay that relies on it, so a
// consumer can ask for only what it uses. Every write returns only once it
// is durable: that is what lets intake answer 250 (RFC 5321 section 6.1).
// Recipients are compared without regard to case (NormalizeAddress)
// everywhere a recipient is a key.

// Intake stores accepted mail.
type Intake interface {
	// Accept stores a message and one queued envelope per recipient, due
	// at now; envelope IDs are the message ID, "-" and the recipient's
	// 1-based position. A message ID that exists already is an error.
	Accept(msg Message, body []byte, rcpts []string, now time.Time) ([]Envelope, error)
	// AcceptWith is Accept with a hook that may change each new envelope
	// (state, due time, flags) before it is written.
	AcceptWith(msg Message, body []byte, rcpts []string, now time.Time, prepare func(i int, e *Envelope)) ([]Envelope, error)
}

// Queue is delivery's work list: the database is the schedule.
type Queue interface {
	// Claim moves up to limit envelopes due at now into StateDelivering
	// and returns them, express (transactional) mail first, then earliest
	// due first.
	Claim(now time.Time, limit int) ([]Envelope, error)
	// Settle writes the outcomes of finished deliveries and claims up to
	// limit more, in one transaction.
	Settle(outcomes []Envelope, now time.Time, limit int) ([]Envelope, error)
	// Update writes envelopes the caller read and changed, keeping the
	// schedule right.
	Update(envs ...Envelope) error
	// Recover makes every envelope in delivery due again at now (after a
	// crash: delivery is at-least-once); RecoverStale only those claimed
	// before cutoff (a worker that hung). A backend several nodes share
	// recovers only this node's claims: the others' are theirs until
	// RecoverStale's cutoff passes (their lease).
	Recover(now time.Time) (int, error)
	RecoverStale(now, cutoff time.Time) (int, error)
	// NextDue is the earliest due time of waiting mail; false if none.
	NextDue() (time.Time, bool, error)
	// Body is a message's bytes as stored.
	Body(messageID string) ([]byte, error)
}

// Decisions is the engine's per-recipient load-decide-apply.
type Decisions interface {
	// DueRecipients lists up to limit distinct recipients with held mail
	// due at now, earliest first.
	DueRecipients(now time.Time, limit int) ([]string, error)
	// NextHeld is the earliest due time of held mail; false if none.
	NextHeld() (time.Time, bool, error)
	// LoadRecipient reads all of a recipient's held mail (due or not),
	// its messages and the profile, in one consistent view.
	LoadRecipient(rcpt string) (Recipient, error)
	// ApplyDecisions writes one recipient's round atomically: envelopes,
	// profile, decision records and counters, all or nothing.
	ApplyDecisions(d Decided) error
	// ApplyDecisionsAll writes several rounds, each atomic on its own: a
	// failing round is rolled back alone. One error per round, in order.
	ApplyDecisionsAll(ds []Decided) []error
	// Transition applies an operator's change (release, drop, review) to
	// envelopes in one transaction: all or none.
	Transition(ids []string, change Change) ([]Envelope, error)
	// Counters reads named counters (zero when never written).
	Counters(names ...string) (map[string]int64, error)
	SuspendCampaign(name string, at time.Time) error
	ResumeCampaign(name string) error
	SuspendedCampaigns() (map[string]SuspendedCampaign, error)
}

// Feedback is what applying bounces, complaints and events needs.
type Feedback interface {
	// ApplyFeedback applies a batch in one transaction, all or none;
	// changes with an event ID seen before are skipped as duplicates.
	ApplyFeedback(now time.Time, changes []FeedbackChange) (applied, duplicates int, err error)
	Profile(rcpt string) ([]byte, error)
	PutProfile(rcpt string, profile []byte) error
	UpdateProfile(rcpt string, change func(old []byte) ([]byte, error)) error
	// Suppress adds entries; a listed address keeps its first entry
	// unless replace is set.
	Suppress(replace bool, list ...Suppression) (int, error)
	Unsuppress(addr string, profile func(old []byte) ([]byte, error)) (bool, error)
	SuppressionOf(addr string) (Suppression, bool, error)
	Suppressions() ([]Suppression, error)
	// SuppressionsAfter is one page of the list in the order Suppressions
	// gives: up to limit entries after the key after (nil: from the
	// start), and the key to pass for the next page (nil after the last).
	SuppressionsAfter(after []byte, limit int) (list []Suppression, next []byte, err error)
	PruneEventIDs(cutoff time.Time) (int, error)
	EventIDCount() (int, error)
	// MailboxState is an IMAP feedback mailbox's cursor (zeros if none).
	MailboxState(name string) (uidValidity, lastUID uint32, err error)
	SetMailboxState(name string, uidValidity, lastUID uint32) error
}

// Reads serve explain, the admin API and the dashboard.
type Reads interface {
	Envelope(id string) (Envelope, error)
	Message(id string) (Message, error)
	// MessageByHeaderID is the latest message carrying a Message-ID;
	// MessagesByHeaderID all of them, in order of arrival.
	MessageByHeaderID(headerID string) (string, error)
	MessagesByHeaderID(headerID string) ([]string, error)
	EnvelopesOf(messageID string) ([]Envelope, error)
	Decisions(envelopeID string) (json.RawMessage, error)
	Envelopes(fn func(Envelope) bool) error
	EnvelopesInState(s State, fn func(Envelope) bool) error
	// EnvelopesInStateAfter is EnvelopesInState from the first envelope
	// after a cursor (CursorOf an envelope it gave; the zero cursor is the
	// start), for listings in pages: a page far into a million held
	// envelopes must cost what the first one does.
	EnvelopesInStateAfter(s State, after EnvelopeCursor, fn func(Envelope) bool) error
	Records(fn func(EnvelopeRecord) bool) error
	// RecipientEnvelopes is one page of the envelopes to a recipient
	// (compared as NormalizeAddress does), the highest ID first: up to
	// limit envelopes with IDs below before ("": from the highest). It
	// costs what that recipient's envelopes do, not what the store holds.
	RecipientEnvelopes(rcpt, before string, limit int) (RecipientPage, error)
	// CountByState counts envelopes by state, cheaply enough for an admin
	// read during a campaign (bbolt answers from counts kept on every
	// commit, SQL with one grouped count); StateCounts is the same without
	// the error, for a metrics scrape.
	CountByState() (map[State]int, error)
	StateCounts() map[State]int
	// Tallies counts envelopes, their last decisions' reasons and their
	// messages by hour of arrival, for the hours covering [since, until)
	// (tallies.go): what statistics and the dashboard's overview report.
	// It must equal WalkTallies and cost what the period's hours hold, not
	// what its envelopes do (bbolt keeps the counts on every commit).
	Tallies(since, until time.Time) (Tallies, error)
	// CampaignTally is one campaign's counts (campaigntallies.go), ok false
	// when none of its mail is stored; CampaignTallies those of up to limit
	// campaigns named after after, by name. Both must equal
	// WalkCampaignTallies and cost what the campaigns' counts hold, not
	// what their envelopes do.
	CampaignTally(name string) (t CampaignTally, ok bool, err error)
	CampaignTallies(after string, limit int) ([]CampaignTally, error)
	// CampaignEnvelopes is one page of a campaign's envelopes, the latest
	// message first (CampaignPage): up to limit after the envelope before
	// ("": from the latest). It costs what the page holds.
	CampaignEnvelopes(name, before string, limit int) (CampaignPage, error)
	HasBody(messageID string) (bool, error)
}

// Privacy is erasure and retention.
type Privacy interface {
	Forget(addr string, now time.Time, rules ForgetRules) (ForgetReport, error)
	Forgotten(addr string) (time.Time, error)
	PurgeBodies(before time.Time) (int, error)
	PurgeDecisions(before time.Time) (int, error)
	PseudonymKey(purpose string) ([]byte, error)
}

// Store is the whole contract.
type Store interface {
	Intake
	Queue
	Decisions
	Feedback
	Reads
	Privacy
	Close() error
}

// BodyStreams is an optional part of the contract, for bodies too large
// to hold whole in memory: the relay hands a large message to AcceptStream
// as a reader and delivery reads it back through OpenBody. With a backend
// that lacks it, the relay reads the body whole and uses Accept and Body.
// The bodies are the same ones: Body returns what AcceptStream stored and
// OpenBody streams what Accept stored.
type BodyStreams interface {
	// AcceptStream is AcceptWith with the body read from a reader, to its
	// end, before the message is stored; if reading fails nothing is
	// stored. Its memory use must not grow with the body's size.
	AcceptStream(msg Message, body io.Reader, rcpts []string, now time.Time, prepare func(i int, e *Envelope)) ([]Envelope, error)
	// OpenBody streams a message's body; ErrNotFound if there is none. A
	// body damaged in storage is a read error, never short or altered
	// bytes.
	OpenBody(messageID string) (io.ReadCloser, error)
}

// Optional abilities. A backend has them or not; the relay asks for each
// with a type assertion where it needs it and says so when it is missing.
// They are outside Store because they belong to how one backend keeps its
// data (bbolt: one file, pages, an old key layout), not to what the relay
// needs of any backend.

// Snapshotter copies the whole database, consistent as of one moment, to
// w while the relay goes on serving; size, if set, hears the copy's size
// before it is written. A backend without it is backed up with its own
// tools (for SQL, the database's dump and replication).
type Snapshotter interface {
	Backup(w io.Writer, size func(int64)) (int64, error)
}

// FreePageScrubber overwrites what deleted records left in freed storage,
// so that an erasure reaches the bytes on disk (bbolt reuses pages but
// never clears them). A backend without it leaves that to its own
// housekeeping (for SQL, vacuuming).
type FreePageScrubber interface {
	ScrubFreePages() (ScrubReport, error)
}

// AddressKeyLowerer brings data written before recipient keys were lower
// case up to date, once; merge combines two profiles of one address. A
// backend that always kept lower-case keys has nothing to do and need not
// have it.
type AddressKeyLowerer interface {
	LowerAddressKeys(merge func(kept, other []byte) ([]byte, error)) (moved, merged int, err error)
}

// GroupCommitter counts the commits a backend ran and the writes they
// carried (writes/commits is the group commit's average batch), for the
// log line at shutdown.
type GroupCommitter interface {
	CommitStats() (commits, writes int64)
}

// OpenBody streams a message's body where the store can (BodyStreams),
// and otherwise reads it whole and hands out a reader over it.
func OpenBody(s Queue, messageID string) (io.ReadCloser, error) {
	if bs, ok := s.(BodyStreams); ok {
		return bs.OpenBody(messageID)
	}
	body, err := s.Body(messageID)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(body)), nil
}

var (
	_ GroupCommitter    = (*DB)(nil)
	_ Store             = (*DB)(nil)
	_ Snapshotter       = (*DB)(nil)
	_ FreePageScrubber  = (*DB)(nil)
	_ AddressKeyLowerer = (*DB)(nil)
	_ BodyStreams       = (*DB)(nil)
)
