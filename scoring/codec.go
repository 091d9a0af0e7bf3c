package scoring

import (
	"encoding/json"
	"fmt"
)

// The profile's stored form. The store keeps profiles as opaque bytes; this
// is the one place that turns them into a Profile and back, so a change of
// format (a compact binary codec, say) is made here and nowhere else.

// DecodeProfile reads a stored profile. Nil or empty bytes are a recipient
// with no profile yet: a new, empty one.
func DecodeProfile(raw []byte) (*Profile, error) {
	p := &Profile{}
	if len(raw) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(raw, p); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	return p, nil
}

// Encode returns p's stored form.
func (p *Profile) Encode() ([]byte, error) { return json.Marshal(p) }

// UpdateStored decodes a stored profile, lets change edit it, and returns
// the stored form of the result.
func UpdateStored(raw []byte, change func(*Profile)) ([]byte, error) {
	p, err := DecodeProfile(raw)
	if err != nil {
		return nil, err
	}
	change(p)
	return p.Encode()
}

// HardStopped reports whether the recipient asked for no more marketing
// mail or cannot receive it: unsubscribed, complained or hard-bounced.
func (p *Profile) HardStopped() bool {
	return !p.Unsubscribed.IsZero() || !p.Complained.IsZero() || !p.HardBounced.IsZero()
}
