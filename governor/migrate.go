package governor

import (
	"fmt"

	"kadenz/scoring"
)

// lowerAddressKeys brings a database from before recipient keys were lower
// case up to date, once (see store/addresskeys.go): profiles kept under two
// spellings of one address are merged (scoring.Profile.Merge).
func (r *Relay) lowerAddressKeys() error {
	moved, merged, err := r.db.LowerAddressKeys(func(kept, other []byte) ([]byte, error) {
		a, err := scoring.DecodeProfile(kept)
		if err != nil {
			return nil, err
		}
		b, err := scoring.DecodeProfile(other)
		if err != nil {
			return nil, err
		}
		a.Merge(b, r.engine.Memory())
		return a.Encode()
	})
	if err != nil {
		return fmt.Errorf("lower-case recipient keys: %w", err)
	}
	if moved+merged > 0 {
		r.log.Info("recipient profiles now keyed by the address in lower case", "moved", moved, "merged", merged)
	}
	return nil
}
