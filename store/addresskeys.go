package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Recipient keys.
//
// A recipient's profile and their held-mail index are keyed by the address
// in lower case (NormalizeAddress), like the suppression list and the
// holdout hash: Ann@Example.com and ann@example.com are one recipient. The
// domain is case-insensitive (RFC 5321 section 2.4); the local part may in
// theory be case-sensitive, but the same section discourages relying on
// it and the mail systems in use do not, while two profiles for one person
// would split their caps, history and hard stops. Envelopes keep the
// address as submitted: mail is delivered to it exactly as written.

// profileKey is the key of rcpt's profile.
func profileKey(rcpt string) []byte { return []byte(NormalizeAddress(rcpt)) }

// metaAddressKeys marks a database whose recipient keys are lower case.
var metaAddressKeys = []byte("address_keys")

// LowerAddressKeys re-keys profiles and held-mail index entries written
// before recipient keys were lower case, once per database. Two profiles
// that become one key are combined by merge(kept, other), where kept is
// the one already under the lower-case key (or moved there first). It
// returns how many profiles were moved and how many merged.
func (db *DB) LowerAddressKeys(merge func(kept, other []byte) ([]byte, error)) (moved, merged int, err error) {
	err = db.update(func(tx *bolt.Tx) error {
		moved, merged = 0, 0 // the committer may run this again
		meta := tx.Bucket(bucketMeta)
		if bytes.Equal(meta.Get(metaAddressKeys), []byte("lower")) {
			return nil
		}
		type kv struct{ k, v []byte }
		var stale []kv
		byRcpt := tx.Bucket(bucketHeldByRecipient)
		byRcpt.ForEach(func(k, _ []byte) error {
			if rcpt, _, ok := bytes.Cut(k, []byte{0}); ok && NormalizeAddress(string(rcpt)) != string(rcpt) {
				stale = append(stale, kv{k: bytes.Clone(k)})
			}
			return nil
		})
		for _, e := range stale {
			rcpt, id, _ := bytes.Cut(e.k, []byte{0})
			if err := byRcpt.Delete(e.k); err != nil {
				return err
			}
			if err := byRcpt.Put(recipientKey(string(rcpt), string(id)), nil); err != nil {
				return err
			}
		}
		stale = stale[:0]
		profiles := tx.Bucket(bucketProfiles)
		profiles.ForEach(func(k, v []byte) error {
			if NormalizeAddress(string(k)) != string(k) {
				stale = append(stale, kv{bytes.Clone(k), bytes.Clone(v)})
			}
			return nil
		})
		for _, p := range stale {
			key := profileKey(string(p.k))
			v := p.v
			if kept := profiles.Get(key); kept != nil {
				var err error
				if v, err = merge(bytes.Clone(kept), p.v); err != nil {
					return fmt.Errorf("merging the profiles of %s and %s: %w", key, p.k, err)
				}
				merged++
			} else {
				moved++
			}
			if err := profiles.Delete(p.k); err != nil {
				return err
			}
			if err := profiles.Put(key, v); err != nil {
				return err
			}
		}
		return meta.Put(metaAddressKeys, []byte("lower"))
	})
	return moved, merged, err
}
