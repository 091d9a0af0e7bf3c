package scoring

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// The profile's stored form. The store keeps profiles as opaque bytes; this
// is the one place that turns them into a Profile and back.
//
// Profiles are written in a compact binary form and read in it or in the
// JSON form earlier releases wrote. The binary form starts with
// profileMagic, a byte no JSON text can start with (JSON begins with
// whitespace, '{', '[', '"', '-', a digit, 't', 'f' or 'n'), and is never
// valid UTF-8 either, then a version byte. Version 1, field by field in the
// order of the Profile struct:
//
//   - integers are (zig-zag) varints, float64 their 8 bits little-endian,
//     so every score reads back to the bit;
//   - a time is a uvarint nanos<<2|kind (kind 0 zero, 1 UTC, 2 a fixed
//     offset), then for a non-zero time the varint seconds since the
//     previous time of its list (history) or since 1970, then for kind 2
//     the varint offset in seconds: JSON keeps the offset too, not the
//     zone's name;
//   - a string is a uvarint length and its bytes; the strings that repeat
//     (campaign, sender, topics) are written once per profile and then
//     referred to by their number (profileWriter.intern);
//   - Counts are a byte saying which of its four numbers are non-zero, then
//     those; Hours a 21-byte bitmap of the non-zero buckets, then those;
//     Topics are sorted by name, so that the same profile always gives the
//     same bytes;
//   - a release's flags byte also says whether its content terms (two
//     uint64) and its campaign-quality key (interned) follow;
//   - the content counts (issue 18) are a byte 0 or 1, then their time,
//     decayed release count, and three float32 arrays: in versions 1 and 2
//     each a uvarint count and every entry; in version 3 sparse, a uvarint
//     count, a bitmap of the entries that are not zero, then those;
//   - then the summary of the counted releases (comfortMemo) that spares a
//     decision the walk over the history, when there is one;
//   - versions 2 and up: last, shadow mode's held copies (ShadowHeld), a
//     uvarint count, then each one's ID, sender (interned), four times,
//     features (a string) and three engagement times;
//   - version 4: a release's flags byte may also say that its open delay
//     (OpenedAfter, a varint of nanoseconds) follows the quality key.
//
// A profile is written in the oldest version that holds it: version 4 when
// a release has an open delay, else version 3 when it has content counts
// (the sparse arrays are the only difference), else version 2 when it has
// shadow copies, else version 1, byte for byte as the releases before each
// version wrote it. Versions 3 and 4 write content counts sparse; 2 and up
// carry the shadow copies.
//
// A field added to Profile must be added here, at the end, with a new
// version; TestProfileCodecCoversEveryField fails until it is.
const (
	profileMagic = 0xC1
	// profileVersion is the form with open delays.
	profileVersion = 4
	// profileVersion3 is the form with content counts (sparse arrays).
	profileVersion3 = 3
	// profileVersion2 is the form with shadow copies and no content counts.
	profileVersion2 = 2
	// profileVersion1 is the form with neither.
	profileVersion1 = 1
)

// DecodeProfile reads a stored profile, binary or JSON. Nil or empty bytes
// are a recipient with no profile yet: a new, empty one.
func DecodeProfile(raw []byte) (*Profile, error) {
	p := &Profile{}
	if err := DecodeProfileInto(p, raw); err != nil {
		return nil, err
	}
	return p, nil
}

// DecodeProfileInto is DecodeProfile into p, which it empties first, for
// a caller that decodes one profile after another and keeps none: a
// Profile, with its 168 hourly floats, is 2.2 KB, and allocating one per
// event was a third of the bytes the events API allocated.
func DecodeProfileInto(p *Profile, raw []byte) error {
	*p = Profile{}
	if len(raw) == 0 {
		return nil
	}
	if raw[0] != profileMagic {
		if err := json.Unmarshal(raw, p); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
		return nil
	}
	if err := p.decodeBinary(raw); err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	return nil
}

// Encode returns p's stored form (binary).
func (p *Profile) Encode() ([]byte, error) { return p.AppendBinary(nil) }

// AppendBinary appends p's stored form to b.
func (p *Profile) AppendBinary(b []byte) ([]byte, error) {
	w := profileWriter{b: slices.Grow(b, 64+len(p.History)*48+len(p.Topics)*24)}
	version := byte(profileVersion1)
	switch {
	case p.hasOpenDelays():
		version = profileVersion
	case p.Content != nil:
		version = profileVersion3
	case len(p.ShadowHeld) > 0:
		version = profileVersion2
	}
	w.b = append(w.b, profileMagic, version)
	w.time(p.DecayedAt, 0)
	w.counts(p.All)
	w.uvarint(uint64(len(p.Topics)))
	if len(p.Topics) > 0 {
		keys := make([]string, 0, len(p.Topics))
		for k := range p.Topics {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			w.intern(k)
			w.counts(p.Topics[k])
		}
	}
	var bits [(HoursPerWeek + 7) / 8]byte
	for i, v := range p.Hours {
		if math.Float64bits(v) != 0 {
			bits[i/8] |= 1 << (i % 8)
		}
	}
	w.b = append(w.b, bits[:]...)
	for _, v := range p.Hours {
		if math.Float64bits(v) != 0 {
			w.float(v)
		}
	}
	w.uvarint(uint64(len(p.History)))
	var prev int64
	for i := range p.History {
		h := &p.History[i]
		prev = w.time(h.At, prev)
		w.str(h.MessageID)
		w.intern(h.Campaign)
		w.intern(h.Sender)
		w.uvarint(uint64(len(h.Topics)))
		for _, t := range h.Topics {
			w.intern(t)
		}
		w.b = binary.LittleEndian.AppendUint64(w.b, h.Fingerprint)
		w.b = append(w.b, flags(h.Opened, h.Clicked, h.Replied, h.Terms != TermBits{}, h.Quality != "", h.OpenedAfter != 0))
		if h.Terms != (TermBits{}) {
			w.b = binary.LittleEndian.AppendUint64(w.b, h.Terms[0])
			w.b = binary.LittleEndian.AppendUint64(w.b, h.Terms[1])
		}
		if h.Quality != "" {
			w.intern(h.Quality)
		}
		if h.OpenedAfter != 0 {
			w.varint(int64(h.OpenedAfter))
		}
	}
	w.str(p.Timezone)
	w.varint(int64(p.Value))
	w.b = append(w.b, flags(p.HasValue))
	w.time(p.Unsubscribed, 0)
	w.time(p.Complained, 0)
	w.time(p.HardBounced, 0)
	w.time(p.AwayUntil, 0)
	w.varint(int64(p.SoftBounces))
	w.time(p.SoftBounceSince, 0)
	if n := p.LastBounce; n != nil {
		w.b = append(w.b, 1)
		w.time(n.At, 0)
		w.str(n.Class)
		w.str(n.Reason)
		w.str(n.Status)
		w.str(n.Source)
	} else {
		w.b = append(w.b, 0)
	}
	w.time(p.PausedUntil, 0)
	w.str(p.PauseReason)
	if c := p.Content; c != nil {
		w.b = append(w.b, 1)
		w.time(c.At, 0)
		w.float(c.Releases)
		for _, v := range [][]float32{c.Sends, c.Opens, c.Clicks} {
			w.sparseFloats(v)
		}
	} else {
		w.b = append(w.b, 0)
	}
	p.comfort.append(&w)
	if version >= profileVersion2 {
		w.uvarint(uint64(len(p.ShadowHeld)))
		for i := range p.ShadowHeld {
			c := &p.ShadowHeld[i]
			w.str(c.ID)
			w.intern(c.From)
			for _, t := range []time.Time{c.Received, c.Sent, c.Due} {
				w.time(t, 0)
			}
			w.str(string(c.Features))
			for _, t := range []time.Time{c.OpenedAt, c.ClickedAt, c.RepliedAt} {
				w.time(t, 0)
			}
		}
	}
	if w.err != nil {
		return nil, fmt.Errorf("profile: %w", w.err)
	}
	return w.b, nil
}

func flags(bs ...bool) byte {
	var f byte
	for i, b := range bs {
		if b {
			f |= 1 << i
		}
	}
	return f
}

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

// ProfileJSON returns a stored profile, binary or JSON, as JSON, for
// people and for programs reading the admin API. Nil or empty bytes give
// nil.
func ProfileJSON(raw []byte) (json.RawMessage, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if raw[0] != profileMagic {
		return raw, nil
	}
	p, err := DecodeProfile(raw)
	if err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// HardStopped reports whether the recipient asked for no more marketing
// mail or cannot receive it: unsubscribed, complained or hard-bounced.
func (p *Profile) HardStopped() bool {
	return !p.Unsubscribed.IsZero() || !p.Complained.IsZero() || !p.HardBounced.IsZero()
}

// profileWriter appends the binary form.
type profileWriter struct {
	b []byte
	// interned numbers the repeated strings written so far.
	interned map[string]uint64
	err      error
}

func (w *profileWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *profileWriter) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *profileWriter) float(v float64) {
	w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(v))
}

// sparseFloats writes v (version 3's content arrays): its length, a bitmap
// of the entries whose bits are not all zero, then those entries. A new
// recipient's counts are a few terms of one release among 128 buckets, and
// the dense form (4 bytes each) made them 1.5 KB of a 1.7 KB profile.
func (w *profileWriter) sparseFloats(v []float32) {
	w.uvarint(uint64(len(v)))
	start := len(w.b)
	w.b = append(w.b, make([]byte, (len(v)+7)/8)...)
	for i, x := range v {
		if bits := math.Float32bits(x); bits != 0 {
			w.b[start+i/8] |= 1 << (i % 8)
			w.b = binary.LittleEndian.AppendUint32(w.b, bits)
		}
	}
}

func (w *profileWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// intern writes a string that is likely to repeat: 0 for "", 2·length+2
// and the bytes the first time, 2·number+1 after.
func (w *profileWriter) intern(s string) {
	if s == "" {
		w.uvarint(0)
		return
	}
	if n, ok := w.interned[s]; ok {
		w.uvarint(n<<1 | 1)
		return
	}
	if w.interned == nil {
		w.interned = make(map[string]uint64)
	}
	w.interned[s] = uint64(len(w.interned))
	w.uvarint(uint64(len(s))<<1 + 2)
	w.b = append(w.b, s...)
}

// time writes t relative to base (unix seconds) and returns its seconds.
func (w *profileWriter) time(t time.Time, base int64) int64 {
	if t.IsZero() {
		w.uvarint(0)
		return base
	}
	_, off := t.Zone()
	kind := uint64(1)
	if off != 0 {
		kind = 2
	}
	sec := t.Unix()
	if sec < -maxSeconds || sec > maxSeconds {
		w.err = fmt.Errorf("time %v out of range", t)
	}
	w.uvarint(uint64(t.Nanosecond())<<2 | kind)
	w.varint(sec - base)
	if kind == 2 {
		w.varint(int64(off))
	}
	return sec
}

func (w *profileWriter) counts(c Counts) {
	f := [4]float64{c.Sends, c.Opens, c.Clicks, c.Replies}
	var mask byte
	for i, v := range f {
		if math.Float64bits(v) != 0 {
			mask |= 1 << i
		}
	}
	w.b = append(w.b, mask)
	for _, v := range f {
		if math.Float64bits(v) != 0 {
			w.float(v)
		}
	}
}

func (m *comfortMemo) append(w *profileWriter) {
	w.uvarint(uint64(m.n))
	if m.n == 0 {
		return
	}
	w.b = binary.LittleEndian.AppendUint64(w.b, m.key)
	w.float(m.comfortVolume)
	w.varint(int64(m.volumeHalfLife))
	s := &m.state
	w.b = append(w.b, flags(m.learn, s.seen))
	w.float(s.v)
	w.varint(s.last)
	w.float(s.nLow)
	w.float(s.eLow)
	w.float(s.nHi)
	w.float(s.eHi)
	w.varint(int64(s.streak))
	if m.learn {
		for _, v := range s.cp.sumW {
			w.float(v)
		}
		for _, v := range s.cp.sumLogW {
			w.float(v)
		}
		w.float(s.cp.engaged)
		w.varint(int64(s.cp.releases))
	}
}

var errShort = errors.New("truncated")

// maxSeconds bounds a stored time (about 34,000 years either side of
// 1970), far beyond the years 0-9999 JSON can hold, so that no time the
// reader accepts overflows time.Time's arithmetic.
const maxSeconds = 1 << 40

// profileReader reads the binary form. The first error sticks; reads after
// it return zero values.
type profileReader struct {
	b        []byte
	err      error
	interned []string
}

func (r *profileReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *profileReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *profileReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a number of things that take at least min bytes each, so a
// damaged count cannot make the reader allocate more than the input holds.
func (r *profileReader) count(min int) int {
	n := r.uvarint()
	if n > uint64(len(r.b)/min) {
		r.fail(fmt.Errorf("count %d exceeds the %d bytes left", n, len(r.b)))
		return 0
	}
	return int(n)
}

// int reads a varint that must fit an int.
func (r *profileReader) int() int {
	v := r.varint()
	if int64(int(v)) != v {
		r.fail(fmt.Errorf("integer %d out of range", v))
		return 0
	}
	return int(v)
}

func (r *profileReader) byte() byte {
	if len(r.b) < 1 {
		r.fail(errShort)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *profileReader) u64() uint64 {
	if len(r.b) < 8 {
		r.fail(errShort)
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *profileReader) float() float64 { return math.Float64frombits(r.u64()) }

// u64Bytes reads an n-byte (n <= 8) little-endian number.
func (r *profileReader) u64Bytes(n int) uint64 {
	b := r.bytes(uint64(n))
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func (r *profileReader) bytes(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail(errShort)
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

// sparseFloats reads what profileWriter.sparseFloats wrote (nil for a
// length of 0). A bitmap bit past the length is damage.
func (r *profileReader) sparseFloats() []float32 {
	n := r.uvarint()
	if n > 8*uint64(len(r.b)) {
		r.fail(fmt.Errorf("count %d exceeds the %d bytes left", n, len(r.b)))
		return nil
	}
	bits := r.bytes((n + 7) / 8)
	if r.err != nil || n == 0 {
		return nil
	}
	if extra := n % 8; extra != 0 && bits[len(bits)-1]>>extra != 0 {
		r.fail(errors.New("content bitmap has bits past its length"))
		return nil
	}
	v := make([]float32, n)
	for i := range v {
		if r.err == nil && bits[i/8]&(1<<(i%8)) != 0 {
			v[i] = math.Float32frombits(uint32(r.u64Bytes(4)))
		}
	}
	return v
}

func (r *profileReader) str() string { return string(r.bytes(r.uvarint())) }

func (r *profileReader) intern() string {
	x := r.uvarint()
	switch {
	case x == 0:
		return ""
	case x&1 == 1:
		i := x >> 1
		if i >= uint64(len(r.interned)) {
			r.fail(fmt.Errorf("string %d of %d", i, len(r.interned)))
			return ""
		}
		return r.interned[i]
	}
	s := string(r.bytes(x>>1 - 1))
	r.interned = append(r.interned, s)
	return s
}

// time reads a time written relative to base and returns it and its
// seconds.
func (r *profileReader) time(base int64) (time.Time, int64) {
	head := r.uvarint()
	kind, nsec := head&3, head>>2
	if kind == 0 {
		if nsec != 0 {
			r.fail(errors.New("zero time with nanoseconds"))
		}
		return time.Time{}, base
	}
	if kind > 2 || nsec >= 1e9 {
		r.fail(fmt.Errorf("bad time header %d", head))
		return time.Time{}, base
	}
	sec := base + r.varint()
	if sec < -maxSeconds || sec > maxSeconds {
		r.fail(fmt.Errorf("time %d s out of range", sec))
		return time.Time{}, base
	}
	t := time.Unix(sec, int64(nsec))
	if kind == 1 {
		return t.UTC(), sec
	}
	off := r.varint()
	if off == 0 || off < -24*3600 || off > 24*3600 {
		r.fail(fmt.Errorf("bad zone offset %d", off))
		return time.Time{}, base
	}
	return t.In(time.FixedZone("", int(off))), sec
}

func (r *profileReader) abs() time.Time {
	t, _ := r.time(0)
	return t
}

func (r *profileReader) counts() Counts {
	mask := r.byte()
	if mask > 15 {
		r.fail(fmt.Errorf("bad counts mask %#x", mask))
	}
	var f [4]float64
	for i := range f {
		if mask&(1<<i) != 0 {
			f[i] = r.float()
		}
	}
	return Counts{Sends: f[0], Opens: f[1], Clicks: f[2], Replies: f[3]}
}

func (r *profileReader) flags(max byte) byte {
	f := r.byte()
	if f > max {
		r.fail(fmt.Errorf("bad flags %#x", f))
	}
	return f
}

// hasOpenDelays reports whether a release carries an open delay, which
// only version 4 writes.
func (p *Profile) hasOpenDelays() bool {
	for i := range p.History {
		if p.History[i].OpenedAfter != 0 {
			return true
		}
	}
	return false
}

func (p *Profile) decodeBinary(raw []byte) error {
	if len(raw) < 2 {
		return errShort
	}
	version := raw[1]
	if version < profileVersion1 || version > profileVersion {
		return fmt.Errorf("binary profile version %d: this Kadenz reads versions 1 to %d (written by a newer release?)", version, profileVersion)
	}
	r := profileReader{b: raw[2:]}
	// The release flags each version knows: version 4 added the delay.
	releaseFlags := byte(31)
	if version >= profileVersion {
		releaseFlags = 63
	}
	p.DecayedAt = r.abs()
	p.All = r.counts()
	if n := r.count(2); n > 0 {
		p.Topics = make(map[string]Counts, n)
		for range n {
			k := r.intern()
			if _, dup := p.Topics[k]; dup && r.err == nil {
				r.fail(fmt.Errorf("topic %q twice", k))
			}
			p.Topics[k] = r.counts()
		}
	}
	bits := r.bytes((HoursPerWeek + 7) / 8)
	for i := range p.Hours {
		if r.err == nil && bits[i/8]&(1<<(i%8)) != 0 {
			p.Hours[i] = r.float()
		}
	}
	if n := r.count(12); n > 0 {
		p.History = make([]Release, n)
		var prev int64
		// The releases' topics share one array (most have one or two);
		// each slice is capped at its end, so appending to one copies.
		topics := make([]string, 0, n)
		for i := range p.History {
			h := &p.History[i]
			h.At, prev = r.time(prev)
			h.MessageID = r.str()
			h.Campaign = r.intern()
			h.Sender = r.intern()
			if nt := r.count(1); nt > 0 {
				start := len(topics)
				for range nt {
					topics = append(topics, r.intern())
				}
				h.Topics = topics[start:len(topics):len(topics)]
			}
			h.Fingerprint = r.u64()
			f := r.flags(releaseFlags)
			h.Opened, h.Clicked, h.Replied = f&1 != 0, f&2 != 0, f&4 != 0
			if f&8 != 0 {
				h.Terms = TermBits{r.u64(), r.u64()}
			}
			if f&16 != 0 {
				h.Quality = r.intern()
			}
			if f&32 != 0 {
				h.OpenedAfter = time.Duration(r.varint())
			}
			if r.err != nil {
				break
			}
		}
	}
	p.Timezone = r.str()
	p.Value = r.int()
	p.HasValue = r.flags(1) != 0
	p.Unsubscribed = r.abs()
	p.Complained = r.abs()
	p.HardBounced = r.abs()
	p.AwayUntil = r.abs()
	p.SoftBounces = r.int()
	p.SoftBounceSince = r.abs()
	switch r.flags(1) {
	case 1:
		p.LastBounce = &BounceNote{At: r.abs(), Class: r.str(), Reason: r.str(), Status: r.str(), Source: r.str()}
	}
	p.PausedUntil = r.abs()
	p.PauseReason = r.str()
	if r.flags(1) == 1 {
		c := &ContentCounts{At: r.abs(), Releases: r.float()}
		for _, v := range []*[]float32{&c.Sends, &c.Opens, &c.Clicks} {
			if version >= profileVersion3 {
				*v = r.sparseFloats()
			} else if n := r.count(4); n > 0 {
				*v = make([]float32, n)
				for i := range *v {
					(*v)[i] = math.Float32frombits(uint32(r.u64Bytes(4)))
				}
			}
		}
		p.Content = c
	}
	p.comfort.read(&r, len(p.History))
	if version >= profileVersion2 {
		if n := r.count(8); n > 0 {
			p.ShadowHeld = make([]ShadowHeld, n)
			for i := range p.ShadowHeld {
				c := &p.ShadowHeld[i]
				c.ID = r.str()
				c.From = r.intern()
				c.Received, c.Sent, c.Due = r.abs(), r.abs(), r.abs()
				if f := r.bytes(r.uvarint()); len(f) > 0 {
					c.Features = slices.Clone(f)
				}
				c.OpenedAt, c.ClickedAt, c.RepliedAt = r.abs(), r.abs(), r.abs()
				if r.err != nil {
					break
				}
			}
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail(fmt.Errorf("%d bytes after the end", len(r.b)))
	}
	if r.err != nil {
		*p = Profile{}
	}
	return r.err
}

func (m *comfortMemo) read(r *profileReader, releases int) {
	n := r.uvarint()
	if n == 0 {
		return
	}
	if n > uint64(releases) {
		r.fail(fmt.Errorf("summary of %d releases, %d in the history", n, releases))
		return
	}
	m.n = int(n)
	m.key = r.u64()
	m.comfortVolume = r.float()
	m.volumeHalfLife = time.Duration(r.varint())
	f := r.flags(3)
	m.learn = f&1 != 0
	s := &m.state
	s.seen = f&2 != 0
	s.v = r.float()
	s.last = r.varint()
	s.nLow = r.float()
	s.eLow = r.float()
	s.nHi = r.float()
	s.eHi = r.float()
	s.streak = r.int()
	if m.learn {
		for j := range s.cp.sumW {
			s.cp.sumW[j] = r.float()
		}
		for j := range s.cp.sumLogW {
			s.cp.sumLogW[j] = r.float()
		}
		s.cp.engaged = r.float()
		s.cp.releases = r.int()
	}
	if r.err != nil {
		*m = comfortMemo{}
	}
}
