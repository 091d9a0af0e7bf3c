package store

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketMailboxes: feedback mailbox name -> mailboxState (JSON). It is the
// IMAP reader's cursor: which messages of a mailbox were already handled.
var bucketMailboxes = []byte("mailboxes")

// mailboxState is a mailbox's cursor. UIDs only mean something together with
// the UIDVALIDITY of the folder they came from (RFC 9051 section 2.3.1.1),
// so the two are stored together.
type mailboxState struct {
	UIDValidity uint32 `json:"uid_validity"`
	LastUID     uint32 `json:"last_uid"`
}

// MailboxState returns the UIDVALIDITY and the highest UID handled so far
// for the feedback mailbox called name; both are 0 for a mailbox never read.
func (db *DB) MailboxState(name string) (uidValidity, lastUID uint32, err error) {
	if name == "" {
		return 0, 0, errors.New("store: mailbox without a name")
	}
	var st mailboxState
	err = db.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMailboxes).Get([]byte(name))
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &st); err != nil {
			return fmt.Errorf("store: mailbox %s: %w", name, err)
		}
		return nil
	})
	return st.UIDValidity, st.LastUID, err
}

// SetMailboxState records the cursor of the feedback mailbox called name; it
// returns once the change is durable.
func (db *DB) SetMailboxState(name string, uidValidity, lastUID uint32) error {
	if name == "" {
		return errors.New("store: mailbox without a name")
	}
	v, err := json.Marshal(mailboxState{UIDValidity: uidValidity, LastUID: lastUID})
	if err != nil {
		return err
	}
	return db.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMailboxes).Put([]byte(name), v)
	})
}
