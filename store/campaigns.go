package store

import (
	"encoding/json"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketSuspended holds the campaigns an operator suspended: lower-cased
// campaign name -> SuspendedCampaign.
var bucketSuspended = []byte("suspended_campaigns")

// SuspendedCampaign is one entry of the suspension set.
type SuspendedCampaign struct {
	Campaign string    `json:"campaign"` // as the operator wrote it
	At       time.Time `json:"at"`
}

func campaignKey(name string) []byte { return []byte(strings.ToLower(name)) }

// SuspendCampaign adds a campaign to the suspension set (names compare
// case-insensitively); suspending it again keeps the first time.
func (db *DB) SuspendCampaign(name string, at time.Time) error {
	return db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSuspended)
		if b.Get(campaignKey(name)) != nil {
			return nil
		}
		v, err := json.Marshal(SuspendedCampaign{Campaign: name, At: at})
		if err != nil {
			return err
		}
		return b.Put(campaignKey(name), v)
	})
}

// ResumeCampaign removes a campaign from the suspension set; ErrNotFound
// if it was not suspended.
func (db *DB) ResumeCampaign(name string) error {
	return db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSuspended)
		if b.Get(campaignKey(name)) == nil {
			return ErrNotFound
		}
		return b.Delete(campaignKey(name))
	})
}

// SuspendedCampaigns returns the suspension set, keyed by lower-cased name.
func (db *DB) SuspendedCampaigns() (map[string]SuspendedCampaign, error) {
	out := map[string]SuspendedCampaign{}
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSuspended).ForEach(func(k, v []byte) error {
			var s SuspendedCampaign
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			out[string(k)] = s
			return nil
		})
	})
	return out, err
}
