// Package store keeps everything Kadenz persists, in one bbolt file.
//
// A submitted message is stored once (its metadata and its body), with one
// envelope per recipient. The envelope is the unit of work: it carries a
// state, the time it is next due, its attempts and its last error. Index
// buckets keyed by due time make the database the schedule: the delivery
// loop asks for the envelopes due now and for the earliest time anything is
// due next, and nothing important lives only in memory.
//
// Writes go through a group committer (see commit.go): concurrent callers
// share one transaction and so one fsync, and a call returns only after its
// changes are durable. That is what lets intake answer 250 after DATA
// honestly (RFC 5321 section 6.1) without paying an fsync per message.
//
// The store knows nothing of SMTP, scoring or configuration; it stores
// and indexes. Only the daemon opens the file (bbolt locks it); other
// processes go through the daemon's admin API.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout this code reads and writes. Open refuses a
// file with a different version rather than misreading it, except the
// versions upgrades lists, which it brings up to date.
//
// Version 2 added the express lane (bucketDueExpress). A version-1 file
// needs nothing moved: its waiting envelopes stay in the ordinary lane. The
// number changes so that an older kadenz refuses the file instead of never
// seeing the mail in a lane it does not know.
//
// Version 3 keys bucketHeaderIDs by Message-ID and message ID, so that
// several messages may carry one Message-ID; the upgrade rewrites the old
// single entries (which are still read, should one be left).
//
// Version 4 stores large bodies in parts (bodies.go); the upgrade only
// creates the buckets, but an older kadenz must refuse the file rather
// than find such a message's body missing.
//
// Version 5 keeps tallies (tallies.go).
//
// Version 6 writes envelopes and messages in a binary form (codec.go),
// stores bodies compressed when that pays (bodycodec.go) and indexes every
// envelope by its recipient (byrecipient.go). Values stored before (JSON
// envelopes and messages, bodies as received) are still read; the upgrade
// builds the index, in the same walk as the tallies for older files. An
// older kadenz must refuse the file: it could not read its records and would
// hand a compressed body to the smarthost as it is stored.
//
// Version 7 keeps tallies per campaign and a list of each campaign's
// messages (campaigntallies.go); the upgrade builds them with the hourly
// tallies, in one walk. An older kadenz must refuse the file: it would
// write without moving them.
//
// Version 8 stores decision records compressed (decisioncodec.go). Lists
// stored before are JSON and still read; the upgrade has nothing to do. An
// older kadenz must refuse the file: it would hand a compressed list to
// the API, explain and the tallies as if it were JSON.
const SchemaVersion = 8

// upgrades are the older versions Open upgrades in place, and how.
var upgrades = map[string]func(*bolt.Tx) error{
	"1": func(tx *bolt.Tx) error { // the express lane is created like any other bucket
		return errors.Join(upgradeHeaderIDs(tx), buildTallies(tx), buildRecipientIndex(tx))
	},
	"2": func(tx *bolt.Tx) error {
		return errors.Join(upgradeHeaderIDs(tx), buildTallies(tx), buildRecipientIndex(tx))
	},
	"3": func(tx *bolt.Tx) error { return errors.Join(buildTallies(tx), buildRecipientIndex(tx)) }, // initSchema creates the new buckets
	"4": func(tx *bolt.Tx) error { return errors.Join(buildTallies(tx), buildRecipientIndex(tx)) }, // version 5 keeps tallies (tallies.go)
	"5": func(tx *bolt.Tx) error { return errors.Join(buildTallies(tx), buildRecipientIndex(tx)) }, // version 6 indexes envelopes by recipient (byrecipient.go)
	"6": buildTallies,                                                                              // version 7 keeps campaign tallies, built with the hourly ones (campaigntallies.go)
	"7": func(*bolt.Tx) error { return nil },                                                       // version 8 compresses decision records; JSON lists still read
}

// upgradeHeaderIDs rewrites Message-ID -> message ID entries as
// Message-ID + 0x00 + message ID -> message ID (version 3).
func upgradeHeaderIDs(tx *bolt.Tx) error {
	b := tx.Bucket(bucketHeaderIDs)
	type entry struct{ k, v []byte }
	var old []entry
	if err := b.ForEach(func(k, v []byte) error {
		if bytes.IndexByte(k, 0) < 0 {
			old = append(old, entry{bytes.Clone(k), bytes.Clone(v)})
		}
		return nil
	}); err != nil {
		return err
	}
	for _, e := range old {
		if err := b.Put(headerKey(string(e.k), string(e.v)), e.v); err != nil {
			return err
		}
		if err := b.Delete(e.k); err != nil {
			return err
		}
	}
	return nil
}

// Bucket names.
var (
	bucketMeta      = []byte("meta")      // "schema" -> version
	bucketMessages  = []byte("messages")  // message ID -> Message (codec.go; JSON before version 6)
	bucketBodies    = []byte("bodies")    // message ID -> raw message, compressed when that pays (bodycodec.go)
	bucketEnvelopes = []byte("envelopes") // envelope ID -> Envelope (codec.go; JSON before version 6)
	// bucketDue indexes envelopes waiting for delivery (queued, deferred):
	// 8-byte big-endian due time (Unix ns) + envelope ID -> nil.
	bucketDue = []byte("due")
	// bucketDueExpress is the same index for express envelopes
	// (transactional mail): claimed before anything in bucketDue, so a
	// receipt never waits behind a backlog of released marketing mail.
	bucketDueExpress = []byte("due_express")
	// bucketHeld indexes envelopes the governor holds, by the time they are
	// next to be decided; same key layout as bucketDue.
	bucketHeld = []byte("held")
	// bucketInflight holds IDs of envelopes being delivered right now.
	bucketInflight = []byte("inflight")
	// bucketHeldByRecipient lists each recipient's held envelopes:
	// recipient (NormalizeAddress) + 0x00 + envelope ID -> nil. The engine decides all of a
	// recipient's held mail together.
	bucketHeldByRecipient = []byte("held_by_recipient")
	// bucketProfiles: recipient (NormalizeAddress) -> profile (scoring's codec: binary, or JSON as earlier releases wrote it; owned by the engine).
	bucketProfiles = []byte("profiles")
	// bucketDecisions: envelope ID -> the envelope's decision records, a
	// JSON array, stored compressed with a fixed dictionary when that is
	// smaller (decisioncodec.go; files written before hold the JSON).
	bucketDecisions = []byte("decisions")
	// bucketHeaderIDs: Message-ID header + 0x00 + message ID -> message ID,
	// for "explain": several messages may carry one Message-ID (a resend,
	// a report). Files written before held Message-ID -> message ID, which
	// is still read (MessagesByHeaderID).
	bucketHeaderIDs = []byte("header_ids")
	// bucketReview indexes envelopes held for a person (see review.go), by
	// the time they entered review; same key layout as bucketDue.
	bucketReview = []byte("review")
	// bucketCounters: name -> 8-byte big-endian count (see review.go).
	bucketCounters = []byte("counters")
)

var allBuckets = [][]byte{bucketMeta, bucketMessages, bucketBodies, bucketEnvelopes, bucketDue, bucketDueExpress, bucketHeld,
	bucketInflight, bucketHeldByRecipient, bucketProfiles, bucketDecisions, bucketHeaderIDs,
	bucketReview, bucketCounters,
	bucketSuppressions, bucketEventIDs, bucketMailboxes,
	bucketForgotten, bucketSuspended, bucketBodyParts, bucketBodyChunks, bucketTallies, bucketByRecipient,
	bucketCampaignTallies, bucketCampaignMessages}

// ErrNotFound is returned for an unknown message or envelope ID.
var ErrNotFound = errors.New("not found")

// State is where an envelope is in its life.
type State string

// Envelope states. Queued, deferred, held and review are waiting;
// delivering is in progress; delivered, failed and suppressed are final.
const (
	StateQueued     State = "queued"     // due for delivery at Due
	StateDelivering State = "delivering" // claimed by a delivery worker
	StateDeferred   State = "deferred"   // failed temporarily, retried at Due
	StateDelivered  State = "delivered"  // accepted by the upstream (or written to the outbox)
	StateFailed     State = "failed"     // failed permanently or expired
	StateHeld       State = "held"       // held by the governor, decided at Due
	StateSuppressed State = "suppressed" // deliberately not sent by the governor
	StateReview     State = "review"     // held for a person to release or drop
)

// Final reports whether nothing more will happen to an envelope in s.
func (s State) Final() bool {
	return s == StateDelivered || s == StateFailed || s == StateSuppressed
}

// index returns the bucket that schedules envelopes in state s, if any.
func (s State) index() []byte {
	switch s {
	case StateQueued, StateDeferred:
		return bucketDue
	case StateHeld:
		return bucketHeld
	case StateReview:
		return bucketReview
	case StateDelivering:
		return bucketInflight
	}
	return nil
}

// Message is what was submitted, once, whatever the number of recipients.
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
	// Features are what the engine extracted for scoring (its JSON).
	Features json.RawMessage `json:"features,omitempty"`
	// The client's DSN request for the whole message (RFC 3461 4.3, 4.4):
	// Ret is "FULL" or "HDRS" (empty: not said), EnvID the client's
	// envelope identifier, kept as sent (xtext decoded).
	Ret   string `json:"ret,omitempty"`
	EnvID string `json:"envid,omitempty"`
	// SMTPUTF8: the client declared it (RFC 6531 3.4); the envelope may
	// hold non-ASCII addresses and only an upstream offering SMTPUTF8 may
	// take the message.
	SMTPUTF8 bool `json:"smtputf8,omitempty"`
}

// Envelope is one recipient's copy of a message.
type Envelope struct {
	ID        string    `json:"id"`
	MessageID string    `json:"message_id"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	State     State     `json:"state"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	// Due is when the envelope is next acted on (delivery attempt or
	// decision). Zero for final states.
	Due       time.Time `json:"due,omitzero"`
	Attempts  int       `json:"attempts,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	// Holdout marks marketing mail to a holdout recipient: sent undelayed
	// so the governor's effect can be measured against it.
	Holdout bool `json:"holdout,omitempty"`
	// Express marks mail a person is waiting for (transactional): while it
	// waits for delivery it is in the express lane, claimed before any
	// other due mail.
	Express bool `json:"express,omitempty"`
	// Notify is the client's RCPT NOTIFY= list (RFC 3461 4.1: "NEVER", or
	// some of "SUCCESS", "FAILURE", "DELAY"); empty when not given.
	Notify []string `json:"notify,omitempty"`
	// ORcpt is the client's ORCPT= (RFC 3461 4.2) as "type;address".
	ORcpt string `json:"orcpt,omitempty"`
	// FirstTried is when delivery was first attempted; the delay notice
	// counts from it (held marketing mail is not late while held).
	FirstTried time.Time `json:"first_tried,omitzero"`
	// DelayNotified: a delay notice went to the sender already.
	DelayNotified bool `json:"delay_notified,omitempty"`
}

// index is the bucket indexing e in its state, nil if none: the state's,
// but express mail waiting for delivery has a lane of its own.
func (e *Envelope) index() []byte {
	idx := e.State.index()
	if e.Express && bytes.Equal(idx, bucketDue) {
		return bucketDueExpress
	}
	return idx
}

// Options tune the database.
type Options struct {
	// NoSync skips fsync (tests only: it breaks the durability contract).
	NoSync bool
}

// DB is the Kadenz database. It is safe for concurrent use.
type DB struct {
	bolt      *bolt.DB
	commits   chan []*commitRequest // groups of writes for the committer
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	commitCount, writeCount atomic.Int64
	// readers counts read transactions begun through view (erasure.go).
	readers atomic.Int64
}

// Open opens (creating if needed) the database at path.
func Open(path string, opts Options) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// The file is checked before bbolt maps it (check.go), under a shared
	// lock so that a running kadenz, which holds the exclusive one, is
	// reported as such rather than its file read mid-write.
	unlock, err := lockShared(path)
	if err != nil {
		return nil, err
	}
	err = checkBeforeOpen(path)
	unlock()
	if err != nil {
		return nil, err
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 2 * time.Second, // another process holds the lock: say so instead of hanging
		// The freelist is rebuilt on open instead of written on every
		// commit: one less page to sync per transaction.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		NoSync:         opts.NoSync,
	})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store: %s is locked by another process (is kadenz already running?)", path)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := boltCheck(b); err != nil {
		b.Close()
		return nil, &DamagedError{Path: path, Reason: "bbolt's consistency check failed: " + err.Error()}
	}
	if err := b.Update(initSchema); err != nil {
		b.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	if err := b.Update(func(tx *bolt.Tx) error { _, err := dropOrphanParts(tx); return err }); err != nil {
		b.Close()
		return nil, fmt.Errorf("store: %s: removing parts of bodies never accepted: %w", path, err)
	}
	if err := writeMarker(path); err != nil {
		b.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	db := &DB{bolt: b, commits: make(chan []*commitRequest, 1024), done: make(chan struct{})}
	if err := db.startCounting(); err != nil {
		b.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	db.startTallies()
	go db.commitLoop()
	return db, nil
}

func initSchema(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	want := []byte(fmt.Sprint(SchemaVersion))
	got := meta.Get([]byte("schema"))
	if got == nil {
		return meta.Put([]byte("schema"), want)
	}
	if bytes.Equal(got, want) {
		return nil
	}
	upgrade := upgrades[string(got)]
	if upgrade == nil {
		return fmt.Errorf("schema version %s, this kadenz reads version %s", got, want)
	}
	if err := upgrade(tx); err != nil {
		return fmt.Errorf("upgrading schema version %s to %s: %w", got, want, err)
	}
	return meta.Put([]byte("schema"), want)
}

// Close waits for pending commits and closes the file. Writes must have
// stopped; closing twice is harmless.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		close(db.commits)
		<-db.done
		db.stopCounting()
		db.stopTallies()
		leaseTables.Delete(db)
		db.closeErr = db.bolt.Close()
	})
	return db.closeErr
}

// Accept stores a message and one queued envelope per recipient, due at
// now, and returns after the commit is on disk. Envelope IDs are the
// message ID, a dash and the recipient's position (1-based).
func (db *DB) Accept(msg Message, body []byte, rcpts []string, now time.Time) ([]Envelope, error) {
	return db.AcceptWith(msg, body, rcpts, now, func(int, *Envelope) {})
}

// AcceptWith is Accept with a hook that may change each new envelope
// before it is written (the governor sets held envelopes this way).
func (db *DB) AcceptWith(msg Message, body []byte, rcpts []string, now time.Time, prepare func(i int, e *Envelope)) ([]Envelope, error) {
	stored := encodeBody(body) // here, not in the writer's transaction
	return db.acceptTx(msg, rcpts, now, prepare, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBodies).Put([]byte(msg.ID), stored)
	})
}

// acceptTx writes a message, its envelopes and (putBody) its body in one
// transaction.
func (db *DB) acceptTx(msg Message, rcpts []string, now time.Time, prepare func(i int, e *Envelope), putBody func(*bolt.Tx) error) ([]Envelope, error) {
	if len(rcpts) == 0 {
		return nil, errors.New("store: message without recipients")
	}
	envs := make([]Envelope, len(rcpts))
	for i, to := range rcpts {
		envs[i] = Envelope{
			ID:        fmt.Sprintf("%s-%d", msg.ID, i+1),
			MessageID: msg.ID,
			From:      msg.From,
			To:        to,
			State:     StateQueued,
			Created:   now,
			Updated:   now,
			Due:       now,
		}
		prepare(i, &envs[i])
	}
	msgValue := encodeMessage(&msg)
	err := db.update(func(tx *bolt.Tx) error {
		msgs := tx.Bucket(bucketMessages)
		if msgs.Get([]byte(msg.ID)) != nil {
			return fmt.Errorf("store: message ID %s already exists", msg.ID)
		}
		if err := msgs.Put([]byte(msg.ID), msgValue); err != nil {
			return err
		}
		if err := putBody(tx); err != nil {
			return err
		}
		if msg.HeaderID != "" {
			if err := tx.Bucket(bucketHeaderIDs).Put(headerKey(msg.HeaderID, msg.ID), []byte(msg.ID)); err != nil {
				return err
			}
		}
		for i := range envs {
			if err := putEnvelope(tx, nil, &envs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return envs, nil
}

// Claim moves up to limit envelopes that are due for delivery at now into
// StateDelivering and returns them, earliest due first.
func (db *DB) Claim(now time.Time, limit int) ([]Envelope, error) {
	return db.Settle(nil, now, limit)
}

// Settle is one round of the delivery dispatcher in one transaction: it
// writes the outcomes of finished deliveries (envelopes the caller claimed
// earlier and changed, as Update does), then claims up to limit envelopes
// due at now, as Claim does. Recording and claiming together halves the
// commits delivery adds to those of intake.
//
// In the express lane the limit does not split a message: when it is
// reached, the express envelopes of the last claimed one's message that are
// due at the same time (its other recipients, accepted together) are
// claimed too, up to MaxSiblings more, so that delivery can send them in
// one transaction.
func (db *DB) Settle(outcomes []Envelope, now time.Time, limit int) ([]Envelope, error) {
	var claimed []Envelope
	err := db.update(func(tx *bolt.Tx) error {
		claimed = claimed[:0] // the commit may run this function again
		if err := putChanged(tx, outcomes); err != nil {
			return err
		}
		var keys [][]byte
		end := dueKey(now, "")
		for _, lane := range [][]byte{bucketDueExpress, bucketDue} { // express first
			c := tx.Bucket(lane).Cursor()
			start := len(keys)
			k, _ := c.First()
			for ; k != nil && len(keys) < limit && bytes.Compare(k[:8], end[:8]) <= 0; k, _ = c.Next() {
				keys = append(keys, k)
			}
			// Finish the last message's group of recipients (express lane
			// only: elsewhere each copy is delivered on its own).
			for extra := 0; bytes.Equal(lane, bucketDueExpress) && k != nil && len(keys) > start && extra < MaxSiblings &&
				sameGroup(keys[len(keys)-1], k); k, _ = c.Next() {
				keys = append(keys, k)
				extra++
			}
		}
		for _, k := range keys {
			e, err := getEnvelope(tx, string(k[8:]))
			if err != nil {
				return err
			}
			old := e
			e.State = StateDelivering
			e.Updated = now
			if err := putEnvelope(tx, &old, &e); err != nil {
				return err
			}
			claimed = append(claimed, e)
		}
		return nil
	})
	return claimed, err
}

// MaxSiblings bounds how far Settle goes past its limit to claim the rest
// of one message's recipients.
const MaxSiblings = 1000

// sameGroup reports whether two due-index keys name envelopes of one
// message due at the same time: equal time prefix, and envelope IDs that
// share the message ID before their last dash (see AcceptWith).
func sameGroup(a, b []byte) bool {
	if !bytes.Equal(a[:8], b[:8]) {
		return false
	}
	ia, ib := bytes.LastIndexByte(a[8:], '-'), bytes.LastIndexByte(b[8:], '-')
	return ia > 0 && ia == ib && bytes.Equal(a[8:8+ia], b[8:8+ib])
}

// Update writes changed envelopes (the caller read them earlier and changed
// their state, due time, attempts or error), keeping the indexes right. It
// returns once the change is durable.
func (db *DB) Update(envs ...Envelope) error {
	return db.update(func(tx *bolt.Tx) error { return putChanged(tx, envs) })
}

// putChanged writes envelopes over their stored versions, moving them
// between indexes as their state and due time changed.
func putChanged(tx *bolt.Tx, envs []Envelope) error {
	for i := range envs {
		old, err := getEnvelope(tx, envs[i].ID)
		if err != nil {
			return err
		}
		if err := putEnvelope(tx, &old, &envs[i]); err != nil {
			return err
		}
	}
	return nil
}

// Recover makes envelopes that were being delivered when the process died
// due again at now (at-least-once delivery), and returns how many: every
// envelope in delivery, whenever it was claimed (see RecoverStale).
func (db *DB) Recover(now time.Time) (int, error) {
	return db.RecoverStale(now, time.Unix(1<<62, 0))
}

// NextDue returns the earliest due time among envelopes waiting for
// delivery, and false if there are none.
func (db *DB) NextDue() (time.Time, bool, error) {
	var t time.Time
	var ok bool
	err := db.view(func(tx *bolt.Tx) error {
		for _, lane := range [][]byte{bucketDueExpress, bucketDue} {
			if k, _ := tx.Bucket(lane).Cursor().First(); k != nil {
				if lt := time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))); !ok || lt.Before(t) {
					t, ok = lt, true
				}
			}
		}
		return nil
	})
	return t, ok, err
}

// Envelope returns one envelope.
func (db *DB) Envelope(id string) (Envelope, error) {
	var e Envelope
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		e, err = getEnvelope(tx, id)
		return err
	})
	return e, err
}

// Message returns a message's metadata.
func (db *DB) Message(id string) (Message, error) {
	var m Message
	err := db.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMessages).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("message %s: %w", id, ErrNotFound)
		}
		return decodeMessage(v, &m)
	})
	return m, err
}

// Body returns a message's raw bytes as submitted (with Kadenz's Received
// header on top), whole: OpenBody streams a large one instead.
func (db *DB) Body(messageID string) ([]byte, error) {
	var body []byte
	var man bodyManifest
	err := db.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBodies).Get([]byte(messageID)); v != nil {
			var err error
			body, err = decodeBody([]byte{}, v) // a copy (non-nil even if empty): v is only valid inside the transaction
			if err != nil {
				return fmt.Errorf("body of message %s: %w", messageID, err)
			}
			return nil
		}
		var err error
		man, err = manifestOf(tx, messageID)
		return err
	})
	if err != nil || body != nil {
		return body, err
	}
	body = make([]byte, man.Size)
	_, err = io.ReadFull(newPartReader(db, messageID, man), body)
	if err != nil {
		return nil, err
	}
	return body, nil
}

// Envelopes calls fn for every envelope, in ID order (and so in order of
// arrival), until fn returns false.
func (db *DB) Envelopes(fn func(Envelope) bool) error {
	return db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEnvelopes).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var e Envelope
			if err := decodeEnvelope(v, &e); err != nil {
				return fmt.Errorf("envelope %s: %w", k, err)
			}
			if !fn(e) {
				return nil
			}
		}
		return nil
	})
}

// CountByState returns how many envelopes are in each state: the counts
// kept on every commit (counts.go), so an admin read costs nothing however
// much mail is held.
func (db *DB) CountByState() (map[State]int, error) {
	if kept := db.StateCounts(); kept != nil {
		return kept, nil
	}
	return db.walkStateCounts()
}

// walkStateCounts counts envelopes by state by reading every one: how the
// kept counts start (counts.go), and what tests check them against.
func (db *DB) walkStateCounts() (map[State]int, error) {
	counts := map[State]int{}
	err := db.Envelopes(func(e Envelope) bool {
		counts[e.State]++
		return true
	})
	return counts, err
}

func getEnvelope(tx *bolt.Tx, id string) (Envelope, error) {
	var e Envelope
	v := tx.Bucket(bucketEnvelopes).Get([]byte(id))
	if v == nil {
		return e, fmt.Errorf("envelope %s: %w", id, ErrNotFound)
	}
	err := decodeEnvelope(v, &e)
	return e, err
}

// putEnvelope writes e and moves it between index buckets: out of the index
// old was in (nil for a new envelope), into the one its state belongs to.
func putEnvelope(tx *bolt.Tx, old, e *Envelope) error {
	if e.State.Final() {
		e.Due = time.Time{}
	}
	var oldState State
	if old != nil {
		oldState = old.State
	}
	countStateChange(tx, oldState, e.State)
	if err := touchEnvelope(tx, e.ID, e.MessageID, old); err != nil {
		return err
	}
	if old != nil {
		if idx := old.index(); idx != nil {
			if err := tx.Bucket(idx).Delete(indexKey(old)); err != nil {
				return err
			}
		}
	}
	if idx := e.index(); idx != nil {
		if err := tx.Bucket(idx).Put(indexKey(e), nil); err != nil {
			return err
		}
	}
	if old == nil || NormalizeAddress(old.To) != NormalizeAddress(e.To) {
		if err := indexRecipient(tx, old, e); err != nil {
			return err
		}
	}
	if wasHeld, isHeld := old != nil && old.State == StateHeld, e.State == StateHeld; wasHeld != isHeld {
		byRcpt := tx.Bucket(bucketHeldByRecipient)
		var err error
		if isHeld {
			err = byRcpt.Put(recipientKey(e.To, e.ID), nil)
		} else {
			err = byRcpt.Delete(recipientKey(e.To, e.ID))
		}
		if err != nil {
			return err
		}
	}
	noteWritten(tx, e.ID, e)
	return tx.Bucket(bucketEnvelopes).Put([]byte(e.ID), encodeEnvelope(e))
}

// indexKey is the key of e in its state's index: in-flight envelopes are
// indexed by ID alone, waiting ones by due time then ID.
func indexKey(e *Envelope) []byte {
	if e.State == StateDelivering {
		return []byte(e.ID)
	}
	return dueKey(e.Due, e.ID)
}

func dueKey(t time.Time, id string) []byte {
	k := make([]byte, 8+len(id))
	ns := t.UnixNano()
	if ns < 0 {
		ns = 0
	}
	binary.BigEndian.PutUint64(k, uint64(ns))
	copy(k[8:], id)
	return k
}

func recipientKey(rcpt, envelopeID string) []byte {
	return []byte(NormalizeAddress(rcpt) + "\x00" + envelopeID)
}
