package governor

import (
	"fmt"

	"kadenz/scoring"
	"kadenz/store"
)

// lowerAddressKeys brings a database from before recipient keys were lower
// case up to date, once (see store/addresskeys.go): profiles kept under two
// spellings of one address are merged (scoring.Profile.Merge). A backend
// that never had mixed-case keys (store.AddressKeyLowerer missing) has
// nothing to bring up to date.
func (r *Relay) lowerAddressKeys() error {
	lowerer, ok := r.db.(store.AddressKeyLowerer)
	if !ok {
		return nil
	}
	moved, merged, err := lowerer.LowerAddressKeys(func(kept, other []byte) ([]byte, error) {
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
