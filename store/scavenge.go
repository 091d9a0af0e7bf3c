package store

import (
	"bytes"
	"regexp"
	"time"
)

// Scavenging is recovery's second pass, for mail the tree no longer
// reaches. bbolt writes new pages at the end of the file, so a file cut
// short usually loses its root and the upper levels of every tree, while
// most leaf pages, holding the messages themselves, are still there. The
// pass reads every page the tree walk did not reach and keeps the leaf
// pages that are, by their content, pages of the three buckets a message
// lives in: message records, bodies, envelopes. Those records are Kadenz's
// own and recognisable: a message ID, an envelope ID, a record that names its
// own key.
//
// Such a page may be a freed one, an older copy of a page rewritten since,
// so what it holds may be stale: an envelope found there may since have
// been delivered, or erased by "forget". So an envelope found only this way
// is never sent by itself: a waiting one is put in review, for a person to
// release or drop, with the reason in its last error; the newest copy
// (by its Updated time) of each envelope wins; and nothing found this way
// replaces what the tree walk read.

var (
	messageIDPattern  = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{20}$`)
	envelopeIDPattern = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{20}-[0-9]+$`)
)

// scavenged is what the pass found.
type scavenged struct {
	messages, bodies map[string][]byte
	envelopes        map[string]Envelope
}

// scavenge reads the pages of r not in reached.
func scavenge(r *pageReader, reached map[uint64]bool) *scavenged {
	found := &scavenged{messages: map[string][]byte{}, bodies: map[string][]byte{}, envelopes: map[string]Envelope{}}
	last := min(r.pages, uint64(r.size/int64(r.pageSize)))
	for id := uint64(2); id < last; id++ {
		if reached[id] {
			continue
		}
		b, err := r.read(id)
		if err != nil {
			continue // not a page header here: a continuation, or garbage
		}
		id += uint64(len(b)/r.pageSize - 1) // skip its overflow pages
		flags, _, leaves, err := elements(b)
		if err != nil || flags != leafPageFlag || len(leaves) == 0 {
			continue
		}
		found.page(leaves)
	}
	return found
}

// page keeps a leaf page whose every element is a record of one of the
// three buckets, and only such a page.
func (s *scavenged) page(leaves []leafElem) {
	kind := ""
	for _, e := range leaves {
		k := ""
		switch {
		case e.bucket:
			return
		case messageIDPattern.Match(e.key) && isMessageRecord(e.key, e.value):
			k = "message"
		case messageIDPattern.Match(e.key):
			k = "body"
		case envelopeIDPattern.Match(e.key):
			var env Envelope
			if decodeEnvelope(e.value, &env) != nil || env.ID != string(e.key) || env.MessageID == "" {
				return
			}
			k = "envelope"
		default:
			return
		}
		if kind != "" && k != kind {
			return
		}
		kind = k
	}
	for _, e := range leaves {
		key := string(e.key)
		switch kind {
		case "message":
			s.messages[key] = bytes.Clone(e.value)
		case "body":
			s.bodies[key] = bytes.Clone(e.value)
		case "envelope":
			var env Envelope
			decodeEnvelope(e.value, &env)
			if old, ok := s.envelopes[key]; !ok || env.Updated.After(old.Updated) {
				s.envelopes[key] = env
			}
		}
	}
}

// isMessageRecord says whether value is the stored message record keyed
// id: JSON that names its own key (before schema 6), or the binary form
// (codec.go) that decodes whole and names it. A body under the same kind
// of key never passes: it starts with a header field or with the NUL of
// its stored form (bodycodec.go), never with the version byte, and would
// have to decode to a record naming its own key.
func isMessageRecord(id, value []byte) bool {
	if bytes.HasPrefix(value, []byte(`{"id":"`+string(id)+`"`)) {
		return true
	}
	if len(value) == 0 || value[0] != messageV1 {
		return false
	}
	var m Message
	return decodeMessage(value, &m) == nil && m.ID == string(id)
}

// scavengeInto adds what the pass found and the copy lacks. It returns
// how many records it added per bucket, and the envelopes put in review.
func scavengeInto(c *copier, found *scavenged, now time.Time) (added map[string]int, review []string, err error) {
	added = map[string]int{}
	has := func(bucket []byte, key string) (bool, error) {
		b, err := c.target([][]byte{bucket})
		if err != nil {
			return false, err
		}
		return b.Get([]byte(key)) != nil, nil
	}
	put := func(bucket []byte, key string, value []byte) error {
		if ok, err := has(bucket, key); ok || err != nil {
			return err // the tree's copy stands
		}
		added[string(bucket)]++
		return c.put([][]byte{bucket}, []byte(key), value)
	}
	for id, v := range found.messages {
		if err := put(bucketMessages, id, v); err != nil {
			return nil, nil, err
		}
	}
	for id, v := range found.bodies {
		if err := put(bucketBodies, id, v); err != nil {
			return nil, nil, err
		}
	}
	for id, env := range found.envelopes {
		if ok, err := has(bucketEnvelopes, id); ok || err != nil {
			if err != nil {
				return nil, nil, err
			}
			continue
		}
		if !env.State.Final() {
			review = append(review, id+" (to "+env.To+", was "+string(env.State)+")")
			env.State, env.Due, env.Updated = StateReview, now, now
			env.LastError = "recovered from pages outside the damaged database's tree: it may be stale (sent or erased since); check, then release or drop"
		}
		if err := put(bucketEnvelopes, id, encodeEnvelope(&env)); err != nil {
			return nil, nil, err
		}
	}
	return added, review, c.commit()
}
