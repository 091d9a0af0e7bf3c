package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// How the bbolt store keeps its tallies (tallies.go): in bucketTallies,
// written in the transaction of the change they count.
//
// A write that changes an envelope (putEnvelope, deleteEnvelope), its
// records (appendRecords) or drops its records (PurgeDecisions) first
// "touches" it: the first touch in a transaction notes what the envelope
// and its message contribute before any change. When the committer has
// run a transaction's writes, flushTallies reads what the touched
// envelopes and messages contribute now and writes the difference, so
// however many times a write moves an envelope, the tallies move once, and
// a transaction rolled back (the group committer reruns each write of a
// failed batch alone) leaves them as they were with everything else.
//
// Files written before the tallies (schema version 4 and older) get them
// built by one walk when they are upgraded at open; a recovered copy gets
// them rebuilt from what was recovered.

// bucketTallies: 8-byte hour (hourKey) + kind + fields joined by 0x00 ->
// 8-byte big-endian count. Kinds: 'e' envelopes (state, class, holdout
// "0"/"1", action), 'r' reasons (state, reason), 'm' messages (class).
var bucketTallies = []byte("tallies")

func hourKey(h int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(h)^(1<<63)) // sorts negative hours first
}

func (k envelopeTallyKey) bytes() []byte {
	holdout := "0"
	if k.holdout {
		holdout = "1"
	}
	return append(append(hourKey(k.hour), 'e'), strings.Join([]string{string(k.state), k.class, holdout, k.action}, "\x00")...)
}

func (k reasonTallyKey) bytes() []byte {
	return append(append(hourKey(k.hour), 'r'), string(k.state)+"\x00"+k.reason...)
}

func (k messageTallyKey) bytes() []byte {
	return append(append(hourKey(k.hour), 'm'), k.class...)
}

// tallyKeeper holds what each open write transaction touched.
type tallyKeeper struct {
	mu  sync.Mutex
	txs map[*bolt.Tx]*txTallies
	// classes caches message ID -> class, campaign and subject: a
	// campaign's envelopes share one message, and a message never changes.
	classes map[string]messageInfo
}

// messageInfo is what the tallies read of a message.
type messageInfo struct {
	class, campaign, subject string
}

// maxCachedClasses bounds the class cache; it is emptied when full.
const maxCachedClasses = 4096

type txTallies struct {
	envelopes map[string]contribution // envelope ID -> before the transaction
	messages  map[string]messageCount // message ID -> before the transaction
	// written and records are what the transaction wrote last for an
	// envelope and its records, so that the flush need not read and decode
	// again what the writes had at hand.
	written map[string]writtenEnvelope
	records map[string]writtenRecords
	// counters adds up the transaction's counter changes (addCounters),
	// written once at its end: a round of 1,024 decisions changes the same
	// few dozen counters a thousand times over.
	counters map[string]int64
}

// writtenEnvelope is what the tallies need of an envelope as last written
// (or that it was deleted).
type writtenEnvelope struct {
	deleted   bool
	messageID string
	created   time.Time
	state     State
	holdout   bool
}

// writtenRecords is an envelope's last decision record as last written:
// nil when its records were deleted; deferred says whether any of its
// records, the earlier ones included, deferred it; summary is what the
// tallies read of last.
type writtenRecords struct {
	last     []byte
	deferred bool
	summary  recordSummary
}

// recordSummary is what the tallies read of one decision record
// (decisionSummary): read once per record written, and for a decision
// round before the commit loop sees it (ApplyDecisionsAll, prepareRecord),
// so that the one goroutine every write waits for does not scan it.
type recordSummary struct {
	action  string
	reasons []string
	ok      bool
}

func summarize(record []byte) recordSummary {
	action, reasons, ok := decisionSummary(record)
	return recordSummary{action, reasons, ok}
}

func (s recordSummary) defers() bool { return s.ok && s.action == "defer" }

type messageCount struct {
	counted bool
	hour    int64
	messageInfo
}

// openTallies maps each open bbolt file to its keeper, as openCounts does.
var openTallies sync.Map // *bolt.DB -> *tallyKeeper

func (db *DB) startTallies() {
	openTallies.Store(db.bolt, &tallyKeeper{txs: map[*bolt.Tx]*txTallies{}, classes: map[string]messageInfo{}})
}

func (db *DB) stopTallies() { openTallies.Delete(db.bolt) }

func keeperOf(tx *bolt.Tx) *tallyKeeper {
	v, ok := openTallies.Load(tx.DB())
	if !ok {
		return nil
	}
	return v.(*tallyKeeper)
}

// touched returns tx's notes, creating them.
func (k *tallyKeeper) touched(tx *bolt.Tx) *txTallies {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.txs[tx]
	if t == nil {
		t = &txTallies{envelopes: map[string]contribution{}, messages: map[string]messageCount{},
			written: map[string]writtenEnvelope{}, records: map[string]writtenRecords{}}
		k.txs[tx] = t
	}
	return t
}

func (k *tallyKeeper) forget(tx *bolt.Tx) {
	k.mu.Lock()
	delete(k.txs, tx)
	k.mu.Unlock()
}

// touchEnvelope notes envelope id's contribution before tx changes it;
// stored is the envelope as stored (nil: read it from tx, or it is new
// when absent). An envelope that is not stored yet is being created, and
// its message's count is noted too (a message counts once it has an
// envelope); deleteEnvelope notes it with touchMessage. Any other change
// (a state, a record) leaves what a message counts as it was, so a
// decision round does not look up each message's first envelope twice.
func touchEnvelope(tx *bolt.Tx, id, messageID string, stored *Envelope) error {
	k := keeperOf(tx)
	if k == nil {
		return nil
	}
	t := k.touched(tx)
	if _, done := t.envelopes[id]; done {
		return nil
	}
	if stored == nil {
		if v := tx.Bucket(bucketEnvelopes).Get([]byte(id)); v != nil {
			var e Envelope
			if err := decodeEnvelope(v, &e); err != nil {
				return fmt.Errorf("envelope %s: %w", id, err)
			}
			stored = &e
		}
	}
	c, err := k.contributionOf(tx, stored)
	if err != nil {
		return err
	}
	t.envelopes[id] = c
	if stored == nil {
		return k.touchMessage(tx, t, messageID)
	}
	return nil
}

// touchMessage notes what message id counts before tx adds or removes one
// of its envelopes (once per transaction: the first note is the before).
func (k *tallyKeeper) touchMessage(tx *bolt.Tx, t *txTallies, messageID string) error {
	if _, done := t.messages[messageID]; done || messageID == "" {
		return nil
	}
	m, err := k.messageCountOf(tx, messageID)
	if err != nil {
		return err
	}
	t.messages[messageID] = m
	return nil
}

// touchDeleted notes, before tx deletes envelope e, its contribution and
// its message's count.
func touchDeleted(tx *bolt.Tx, e *Envelope) error {
	if err := touchEnvelope(tx, e.ID, e.MessageID, e); err != nil {
		return err
	}
	if k := keeperOf(tx); k != nil {
		return k.touchMessage(tx, k.touched(tx), e.MessageID)
	}
	return nil
}

// noteWritten records what tx wrote of an envelope it touched first: e as
// written, or its deletion (e nil).
func noteWritten(tx *bolt.Tx, id string, e *Envelope) {
	k := keeperOf(tx)
	if k == nil {
		return
	}
	t := k.touched(tx)
	if e == nil {
		t.written[id] = writtenEnvelope{deleted: true}
		t.records[id] = writtenRecords{}
		return
	}
	t.written[id] = writtenEnvelope{messageID: e.MessageID, created: e.Created, state: e.State, holdout: e.Holdout}
}

// noteRecords records the last decision record tx wrote for an envelope
// it touched first (nil: its records were deleted), with its summary.
func noteRecords(tx *bolt.Tx, id string, last []byte, sum recordSummary) {
	k := keeperOf(tx)
	if k == nil {
		return
	}
	t := k.touched(tx)
	w := writtenRecords{last: last}
	if last != nil {
		w.summary = sum
		prev, noted := t.records[id]
		if !noted {
			prev.deferred = t.envelopes[id].deferred // touched before its records were written
		}
		w.deferred = prev.deferred || w.summary.defers()
	}
	t.records[id] = w
}

// contributionOf is what e, as stored in tx, counts (nothing for nil).
func (k *tallyKeeper) contributionOf(tx *bolt.Tx, e *Envelope) (contribution, error) {
	if e == nil {
		return contribution{}, nil
	}
	info, err := k.infoOf(tx, e.MessageID)
	if err != nil {
		return contribution{}, err
	}
	c := contribution{ok: true, hour: hourOf(e.Created), state: e.State, class: info.class, holdout: e.Holdout, campaign: info.campaign}
	records := tallyRecords(tx.Bucket(bucketDecisions).Get([]byte(e.ID)))
	if action, reasons, ok := lastDecision(records); ok {
		c.action, c.reasons = action, reasons
	}
	c.deferred = deferredIn(records)
	return c, nil
}

// messageCountOf says whether a message counts (it has an envelope), in
// which hour and class.
func (k *tallyKeeper) messageCountOf(tx *bolt.Tx, messageID string) (messageCount, error) {
	prefix := []byte(messageID + "-")
	key, v := tx.Bucket(bucketEnvelopes).Cursor().Seek(prefix)
	if key == nil || !bytes.HasPrefix(key, prefix) {
		return messageCount{}, nil
	}
	var e Envelope
	if err := decodeEnvelope(v, &e); err != nil {
		return messageCount{}, fmt.Errorf("envelope %s: %w", key, err)
	}
	info, err := k.infoOf(tx, messageID)
	return messageCount{counted: true, hour: hourOf(e.Created), messageInfo: info}, err
}

func (k *tallyKeeper) infoOf(tx *bolt.Tx, messageID string) (messageInfo, error) {
	k.mu.Lock()
	info, ok := k.classes[messageID]
	k.mu.Unlock()
	if ok {
		return info, nil
	}
	info, err := readMessageInfo(tx, messageID)
	if err != nil {
		return info, err
	}
	k.mu.Lock()
	if len(k.classes) >= maxCachedClasses {
		clear(k.classes)
	}
	k.classes[messageID] = info
	k.mu.Unlock()
	return info, nil
}

// readMessageInfo reads a message's class, campaign and subject; nothing
// for a message that is gone, as a record walk would never meet it.
func readMessageInfo(tx *bolt.Tx, messageID string) (messageInfo, error) {
	v := tx.Bucket(bucketMessages).Get([]byte(messageID))
	if v == nil {
		return messageInfo{}, nil
	}
	var m Message
	if err := decodeMessage(v, &m); err != nil {
		return messageInfo{}, fmt.Errorf("message %s: %w", messageID, err)
	}
	info := messageInfo{class: m.Class}
	info.campaign, info.subject = CampaignOf(m.Features)
	return info, nil
}

// flushTallies writes what tx's changes did to the tallies. The committer
// calls it after a transaction's writes, before the commit.
func (db *DB) flushTallies(tx *bolt.Tx) error {
	k := keeperOf(tx)
	if k == nil {
		return nil
	}
	k.mu.Lock()
	t := k.txs[tx]
	k.mu.Unlock()
	if t == nil {
		return nil
	}
	if err := putCounters(tx, t.counters); err != nil {
		return err
	}
	d := newTallyDelta()
	envs := tx.Bucket(bucketEnvelopes)
	for id, before := range t.envelopes {
		after, err := k.afterContribution(tx, t, envs, id)
		if err != nil {
			return err
		}
		if sameContribution(before, after) {
			continue
		}
		d.add(before, -1)
		d.add(after, 1)
	}
	for id, before := range t.messages {
		after, err := k.messageCountOf(tx, id)
		if err != nil {
			return err
		}
		if before == after {
			continue
		}
		if before.counted {
			d.addMessage(before.hour, before.class, -1)
			d.campaigns.addMessage(before.campaign, id, before.subject, -1)
		}
		if after.counted {
			d.addMessage(after.hour, after.class, 1)
			d.campaigns.addMessage(after.campaign, id, after.subject, 1)
		}
	}
	return d.write(tx)
}

// afterContribution is what envelope id counts at the end of tx: from
// what tx wrote when it wrote it, otherwise as stored.
func (k *tallyKeeper) afterContribution(tx *bolt.Tx, t *txTallies, envs *bolt.Bucket, id string) (contribution, error) {
	w, written := t.written[id]
	if !written {
		v := envs.Get([]byte(id))
		if v == nil {
			return contribution{}, nil
		}
		var e Envelope
		if err := decodeEnvelope(v, &e); err != nil {
			return contribution{}, fmt.Errorf("envelope %s: %w", id, err)
		}
		w = writtenEnvelope{messageID: e.MessageID, created: e.Created, state: e.State, holdout: e.Holdout}
	}
	if w.deleted {
		return contribution{}, nil
	}
	info, err := k.infoOf(tx, w.messageID)
	if err != nil {
		return contribution{}, err
	}
	c := contribution{ok: true, hour: hourOf(w.created), state: w.state, class: info.class, holdout: w.holdout, campaign: info.campaign}
	var action string
	var reasons []string
	var ok bool
	if r, noted := t.records[id]; noted {
		if r.last != nil {
			action, reasons, ok = r.summary.action, r.summary.reasons, r.summary.ok
		}
		c.deferred = r.deferred
	} else {
		records := tallyRecords(tx.Bucket(bucketDecisions).Get([]byte(id)))
		action, reasons, ok = lastDecision(records)
		c.deferred = deferredIn(records)
	}
	if ok {
		c.action, c.reasons = action, reasons
	}
	return c, nil
}

func sameContribution(a, b contribution) bool {
	return a.ok == b.ok && a.envelopeKey() == b.envelopeKey() && slicesEqual(a.reasons, b.reasons) &&
		a.campaign == b.campaign && a.deferred == b.deferred
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// addCount adds n to the count kept at key in b, a big-endian int64;
// a count that comes to zero is deleted, so a bucket of counts holds only
// what is not zero. Both the hourly and the campaign tallies keep theirs so.
func addCount(b *bolt.Bucket, key []byte, n int) error {
	if n == 0 {
		return nil
	}
	var have int64
	if v := b.Get(key); len(v) == 8 {
		have = int64(binary.BigEndian.Uint64(v))
	}
	if have += int64(n); have == 0 {
		return b.Delete(key)
	}
	return b.Put(key, binary.BigEndian.AppendUint64(nil, uint64(have)))
}

// write adds the delta to the kept tallies.
func (d *tallyDelta) write(tx *bolt.Tx) error {
	b := tx.Bucket(bucketTallies)
	add := func(key []byte, n int) error { return addCount(b, key, n) }
	for k, n := range d.envelopes {
		if err := add(k.bytes(), n); err != nil {
			return err
		}
	}
	for k, n := range d.reasons {
		if err := add(k.bytes(), n); err != nil {
			return err
		}
	}
	for k, n := range d.messages {
		if err := add(k.bytes(), n); err != nil {
			return err
		}
	}
	return d.campaigns.write(tx)
}

// buildTallies counts every stored envelope afresh into bucketTallies:
// the upgrade of a file written before them, and the last step of a
// recovery.
func buildTallies(tx *bolt.Tx) error {
	if tx.Bucket(bucketTallies) != nil {
		if err := tx.DeleteBucket(bucketTallies); err != nil {
			return err
		}
	}
	if _, err := tx.CreateBucket(bucketTallies); err != nil {
		return err
	}
	for _, name := range [][]byte{bucketCampaignTallies, bucketCampaignMessages} {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	k := &tallyKeeper{classes: map[string]messageInfo{}}
	d := newTallyDelta()
	lastMsg := ""
	decisions := tx.Bucket(bucketDecisions)
	c := tx.Bucket(bucketEnvelopes).Cursor()
	for key, v := c.First(); key != nil; key, v = c.Next() {
		var e Envelope
		if err := decodeEnvelope(v, &e); err != nil {
			return fmt.Errorf("envelope %s: %w", key, err)
		}
		info, err := k.infoOf(tx, e.MessageID)
		if err != nil {
			return err
		}
		h := hourOf(e.Created)
		ct := contribution{ok: true, hour: h, state: e.State, class: info.class, holdout: e.Holdout, campaign: info.campaign}
		records := tallyRecords(decisions.Get(key))
		if action, reasons, ok := lastDecision(records); ok {
			ct.action, ct.reasons = action, reasons
		}
		ct.deferred = deferredIn(records)
		d.add(ct, 1)
		if e.MessageID != lastMsg {
			d.addMessage(h, info.class, 1)
			d.campaigns.addMessage(info.campaign, e.MessageID, info.subject, 1)
			lastMsg = e.MessageID
		}
	}
	return d.write(tx)
}

// Tallies reads the kept tallies of the hours covering [since, until).
func (db *DB) Tallies(since, until time.Time) (Tallies, error) {
	from, to := TallyHours(since, until)
	lo, hi := hourKey(hourOf(from)), hourKey(hourOf(to))
	var t Tallies
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTallies).Cursor()
		for k, v := c.Seek(lo); k != nil && bytes.Compare(k[:8], hi) < 0; k, v = c.Next() {
			if len(k) < 9 || len(v) != 8 {
				return fmt.Errorf("store: tallies: malformed entry %q", k)
			}
			hour := hourStart(int64(binary.BigEndian.Uint64(k[:8]) ^ (1 << 63)))
			n := int(int64(binary.BigEndian.Uint64(v)))
			f := strings.Split(string(k[9:]), "\x00")
			switch {
			case k[8] == 'e' && len(f) == 4:
				t.Envelopes = append(t.Envelopes, EnvelopeTally{hour, State(f[0]), f[1], f[2] == "1", f[3], n})
			case k[8] == 'r' && len(f) == 2:
				t.Reasons = append(t.Reasons, ReasonTally{hour, State(f[0]), f[1], n})
			case k[8] == 'm' && len(f) == 1:
				t.Messages = append(t.Messages, MessageTally{hour, f[0], n})
			default:
				return fmt.Errorf("store: tallies: malformed entry %q", k)
			}
		}
		return nil
	})
	t.Sort()
	return t, err
}

// tallyRecords is the JSON list of a stored decisions value for the
// tallies: a list that cannot be read counts as no decision, as unreadable
// JSON always did (lastDecision), so that a damaged record never fails the
// delivery or decision that touches its envelope; every walk counts it the
// same way.
func tallyRecords(v []byte) []byte {
	js, err := decisionsJSON(v)
	if err != nil {
		return nil
	}
	return js
}
