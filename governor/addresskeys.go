package governor

import (
	"encoding/json"
	"fmt"

	"kadenz/scoring"
)

// lowerAddressKeys brings a database from before recipient keys were lower
// case up to date, once (see store/addresskeys.go): profiles kept under two
// spellings of one address are merged (scoring.Profile.Merge).
func (r *Relay) lowerAddressKeys() error {
	moved, merged, err := r.db.LowerAddressKeys(func(kept, other []byte) ([]byte, error) {
		var a, b scoring.Profile
		if err := json.Unmarshal(kept, &a); err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		if err := json.Unmarshal(other, &b); err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		a.Merge(&b, r.engine.memory)
		return json.Marshal(&a)
	})
	if err != nil {
		return fmt.Errorf("lower-case recipient keys: %w", err)
	}
	if moved+merged > 0 {
		r.log.Info("recipient profiles now keyed by the address in lower case", "moved", moved, "merged", merged)
	}
	return nil
}
