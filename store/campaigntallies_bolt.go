package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// How the bbolt store keeps the campaign tallies (campaigntallies.go):
// written by flushTallies with the hourly ones, from the same notes of
// what a transaction touched (tallies_bolt.go), so they move in the
// transaction of the change. Files of schema version 6 and older get them
// from buildTallies at open, as a recovered copy does.

// bucketCampaignTallies: campaign + 0x00 + kind + fields -> 8-byte
// big-endian count. Kinds: 'e' envelopes (state + 0x00 + holdout "0"/"1"
// + deferred "0"/"1"), 'r' reasons of suppressed envelopes (reason), 'm'
// messages (nothing).
var bucketCampaignTallies = []byte("campaign_tallies")

// bucketCampaignMessages lists each campaign's counted messages: campaign
// + 0x00 + message ID -> subject. A campaign's page of envelopes walks it
// backwards, and its subject is the last entry's that has one.
var bucketCampaignMessages = []byte("campaign_messages")

func (k campaignEnvelopeKey) bytes() []byte {
	flags := []byte("00")
	if k.holdout {
		flags[0] = '1'
	}
	if k.deferred {
		flags[1] = '1'
	}
	return []byte(k.campaign + "\x00e" + string(k.state) + "\x00" + string(flags))
}

func (k campaignReasonKey) bytes() []byte { return []byte(k.campaign + "\x00r" + k.reason) }

func campaignMessagesKey(campaign string) []byte { return []byte(campaign + "\x00m") }

// write adds the delta to the kept campaign tallies and moves messages in
// and out of their campaign's list.
func (d *campaignDelta) write(tx *bolt.Tx) error {
	b := tx.Bucket(bucketCampaignTallies)
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
	for campaign, n := range d.messages {
		if err := add(campaignMessagesKey(campaign), n); err != nil {
			return err
		}
	}
	list := tx.Bucket(bucketCampaignMessages)
	for k, n := range d.index {
		var err error
		switch {
		case n > 0:
			err = list.Put([]byte(k), []byte(d.subjects[k]))
		case n < 0:
			err = list.Delete([]byte(k))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readCampaign reads one campaign's tallies in tx; ok is false when it
// counts nothing.
func readCampaign(tx *bolt.Tx, name string) (CampaignTally, bool, error) {
	t := CampaignTally{Campaign: name}
	prefix := []byte(name + "\x00")
	found := false
	c := tx.Bucket(bucketCampaignTallies).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		rest := k[len(prefix):]
		if len(rest) < 1 || len(v) != 8 {
			return t, false, fmt.Errorf("store: campaign tallies: malformed entry %q", k)
		}
		n := int(int64(binary.BigEndian.Uint64(v)))
		found = true
		switch f := string(rest[1:]); rest[0] {
		case 'e':
			state, flags, ok := strings.Cut(f, "\x00")
			if !ok || len(flags) != 2 {
				return t, false, fmt.Errorf("store: campaign tallies: malformed entry %q", k)
			}
			t.Envelopes = append(t.Envelopes, CampaignEnvelopeTally{State(state), flags[0] == '1', flags[1] == '1', n})
		case 'r':
			t.Reasons = append(t.Reasons, CampaignReasonTally{f, n})
		case 'm':
			t.Messages = n
		default:
			return t, false, fmt.Errorf("store: campaign tallies: malformed entry %q", k)
		}
	}
	if !found {
		return t, false, nil
	}
	// The subject: the latest message's that has one, walking back from
	// the campaign's last message (most have one: a step or two).
	mc := tx.Bucket(bucketCampaignMessages).Cursor()
	k, v := mc.Seek([]byte(name + "\x01"))
	if k == nil {
		k, v = mc.Last()
	} else {
		k, v = mc.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = mc.Prev() {
		if len(v) > 0 {
			t.Subject = string(v)
			break
		}
	}
	t.Sort()
	return t, true, nil
}

// CampaignTally reads one campaign's kept tallies; ok is false when no
// mail of it is stored.
func (db *DB) CampaignTally(name string) (t CampaignTally, ok bool, err error) {
	if name == "" {
		return t, false, nil
	}
	err = db.view(func(tx *bolt.Tx) error {
		t, ok, err = readCampaign(tx, name)
		return err
	})
	return t, ok, err
}

// CampaignTallies reads the kept tallies of up to limit campaigns whose
// names sort after after ("": from the first), in order of name.
func (db *DB) CampaignTallies(after string, limit int) ([]CampaignTally, error) {
	var out []CampaignTally
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCampaignTallies).Cursor()
		var k []byte
		if after == "" {
			k, _ = c.First()
		} else {
			k, _ = c.Seek([]byte(after + "\x01"))
		}
		for k != nil && len(out) < limit {
			name, _, ok := bytes.Cut(k, []byte{0})
			if !ok {
				return fmt.Errorf("store: campaign tallies: malformed entry %q", k)
			}
			t, found, err := readCampaign(tx, string(name))
			if err != nil {
				return err
			}
			if found {
				out = append(out, t)
			}
			k, _ = c.Seek(append(bytes.Clone(name), 1))
		}
		return nil
	})
	return out, err
}

// CampaignEnvelopes is one page of a campaign's envelopes (CampaignPage):
// up to limit, after before in that order ("": from the latest). It costs
// what the page holds, through the campaign's list of messages.
func (db *DB) CampaignEnvelopes(name, before string, limit int) (CampaignPage, error) {
	var p CampaignPage
	if limit <= 0 {
		limit = int(^uint(0) >> 1)
	}
	err := db.view(func(tx *bolt.Tx) error {
		prefix := []byte(name + "\x00")
		mc := tx.Bucket(bucketCampaignMessages).Cursor()
		var k []byte
		if before == "" {
			if k, _ = mc.Seek([]byte(name + "\x01")); k == nil {
				k, _ = mc.Last()
			} else {
				k, _ = mc.Prev()
			}
		} else {
			start := append(bytes.Clone(prefix), EnvelopeMessageID(before)...)
			if k, _ = mc.Seek(start); k == nil {
				k, _ = mc.Last()
			} else if !bytes.Equal(k, start) {
				k, _ = mc.Prev()
			}
		}
		envs := tx.Bucket(bucketEnvelopes)
		decisions := tx.Bucket(bucketDecisions)
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = mc.Prev() {
			msgID := string(k[len(prefix):])
			var ids []string
			ec := envs.Cursor()
			ep := []byte(msgID + "-")
			for ek, _ := ec.Seek(ep); ek != nil && bytes.HasPrefix(ek, ep); ek, _ = ec.Next() {
				if before == "" || msgID != EnvelopeMessageID(before) || string(ek) < before {
					ids = append(ids, string(ek))
				}
			}
			if len(ids) == 0 {
				continue
			}
			msg, err := getMessage(tx, msgID)
			if err != nil {
				return err
			}
			for i := len(ids) - 1; i >= 0; i-- {
				if len(p.Records) == limit {
					p.Next = p.Records[len(p.Records)-1].Envelope.ID
					return nil
				}
				e, err := getEnvelope(tx, ids[i])
				if err != nil {
					return err
				}
				ds, err := getDecisions(decisions, []byte(ids[i]))
				if err != nil {
					return err
				}
				p.Records = append(p.Records, EnvelopeRecord{Envelope: e, Message: &msg, Decisions: ds})
			}
		}
		return nil
	})
	return p, err
}
