package store

import bolt "go.etcd.io/bbolt"

// RecipientsLoader is an optional ability (see backend.go): reading many
// recipients' held mail and profiles in one consistent view. A decision
// round over a campaign loads hundreds of recipients; on a database over
// the network each LoadRecipient is a transaction of its own, and their
// round trips, not the work, would set the pace.
type RecipientsLoader interface {
	// LoadRecipients is LoadRecipient for each of rcpts, in one view, in
	// the order given.
	LoadRecipients(rcpts []string) ([]Recipient, error)
}

var _ RecipientsLoader = (*DB)(nil)

// LoadRecipients reads several recipients in one read transaction.
func (db *DB) LoadRecipients(rcpts []string) ([]Recipient, error) {
	out := make([]Recipient, len(rcpts))
	err := db.view(func(tx *bolt.Tx) error {
		for i, rcpt := range rcpts {
			var err error
			if out[i], err = loadRecipient(tx, rcpt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
