package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The stored form of envelopes and messages (schema version 6).
//
// They were JSON. Deciding a campaign decodes each envelope when its
// recipient is loaded and again when its outcome is written, reads its
// message's class for the tallies, and its creation hour; with a million
// held newsletters that decoding was a fifth of the relay's CPU while it
// decided (docs/benchmarks.md). Now each is written in a small binary
// form: a version byte, then the fields in a fixed order (strings and byte
// strings as a uvarint length and their bytes, integers as varints, times
// as described at appendTime). A JSON value begins with '{', never with a
// version byte, so the values written before version 6 are still read as
// they were, and rewritten in the new form the next time they change.
//
// A field added later makes a new version byte; decoders keep reading the
// old ones.

const (
	envelopeV1 = 0x01
	messageV1  = 0x01
)

// errCodec is wrapped by every decoding error of this file.
var errCodec = errors.New("malformed stored value")

// encodeEnvelope returns e's stored form.
func encodeEnvelope(e *Envelope) []byte {
	b := make([]byte, 0, 64+len(e.ID)+len(e.MessageID)+len(e.From)+len(e.To)+len(e.LastError)+len(e.ORcpt))
	b = append(b, envelopeV1)
	b = appendString(b, e.ID)
	b = appendString(b, e.MessageID)
	b = appendString(b, e.From)
	b = appendString(b, e.To)
	b = appendString(b, string(e.State))
	b = appendTime(b, e.Created)
	b = appendTime(b, e.Updated)
	b = appendTime(b, e.Due)
	b = binary.AppendVarint(b, int64(e.Attempts))
	b = appendString(b, e.LastError)
	var flags byte
	if e.Holdout {
		flags |= 1
	}
	if e.Express {
		flags |= 2
	}
	if e.DelayNotified {
		flags |= 4
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(e.Notify)))
	for _, n := range e.Notify {
		b = appendString(b, n)
	}
	b = appendString(b, e.ORcpt)
	return appendTime(b, e.FirstTried)
}

// decodeEnvelope reads a stored envelope, binary or JSON.
func decodeEnvelope(v []byte, e *Envelope) error {
	if len(v) == 0 || v[0] != envelopeV1 {
		return json.Unmarshal(v, e)
	}
	r := reader{b: v[1:]}
	*e = Envelope{
		ID: r.string(), MessageID: r.string(), From: r.string(), To: r.string(), State: State(r.string()),
		Created: r.time(), Updated: r.time(), Due: r.time(), Attempts: int(r.varint()), LastError: r.string(),
	}
	flags := r.byte()
	e.Holdout, e.Express, e.DelayNotified = flags&1 != 0, flags&2 != 0, flags&4 != 0
	if flags&^7 != 0 {
		r.fail()
	}
	if n := r.uvarint(); n > 0 {
		if n > uint64(len(r.b)) { // each takes a byte at least
			r.fail()
		} else {
			e.Notify = make([]string, n)
			for i := range e.Notify {
				e.Notify[i] = r.string()
			}
		}
	}
	e.ORcpt = r.string()
	e.FirstTried = r.time()
	return r.done("envelope")
}

// envelopeTo reads only a stored envelope's recipient.
func envelopeTo(v []byte) (string, error) {
	if len(v) == 0 || v[0] != envelopeV1 {
		var e struct {
			To string `json:"to"`
		}
		err := json.Unmarshal(v, &e)
		return e.To, err
	}
	r := reader{b: v[1:]}
	r.skip()
	r.skip()
	r.skip()
	to := r.string()
	return to, r.err
}

// encodeMessage returns m's stored form. The class comes first: the
// tallies read it alone (messageClass).
func encodeMessage(m *Message) []byte {
	b := make([]byte, 0, 64+len(m.ID)+len(m.From)+len(m.ClassReason)+len(m.Features)+len(m.HeaderID))
	b = append(b, messageV1)
	b = appendString(b, m.Class)
	b = appendString(b, m.ClassReason)
	b = appendString(b, m.ID)
	b = appendString(b, m.From)
	b = appendTime(b, m.Received)
	b = binary.AppendVarint(b, int64(m.Size))
	b = appendString(b, m.ClientAddr)
	b = appendString(b, m.AuthUser)
	b = appendString(b, m.HeaderID)
	b = appendString(b, string(m.Features))
	b = appendString(b, m.Ret)
	b = appendString(b, m.EnvID)
	var flags byte
	if m.SMTPUTF8 {
		flags |= 1
	}
	return append(b, flags)
}

// AsStored returns m as the store reads it back (decodeMessage of
// encodeMessage): the time of receipt without its zone's name or monotonic
// reading, and no empty features. A message accepted a moment ago can
// then be used in place of a read of it (the delivery queue's hand-off).
func AsStored(m Message) Message {
	m.Received = storedTime(m.Received)
	if len(m.Features) == 0 {
		m.Features = nil
	}
	return m
}

// storedTime is t as appendTime writes it and reader.time reads it.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	_, off := t.Zone()
	u := time.Unix(t.Unix(), int64(t.Nanosecond()))
	if off == 0 {
		return u.UTC()
	}
	return u.In(time.FixedZone("", off))
}

// decodeMessage reads a stored message, binary or JSON.
func decodeMessage(v []byte, m *Message) error {
	if len(v) == 0 || v[0] != messageV1 {
		return json.Unmarshal(v, m)
	}
	r := reader{b: v[1:]}
	*m = Message{Class: r.string(), ClassReason: r.string(), ID: r.string(), From: r.string(),
		Received: r.time(), Size: int(r.varint()), ClientAddr: r.string(), AuthUser: r.string(), HeaderID: r.string()}
	if f := r.bytes(); len(f) > 0 {
		m.Features = json.RawMessage(append([]byte(nil), f...)) // v is bbolt's memory, valid only in its transaction
	}
	m.Ret, m.EnvID = r.string(), r.string()
	flags := r.byte()
	m.SMTPUTF8 = flags&1 != 0
	if flags&^1 != 0 {
		r.fail()
	}
	return r.done("message")
}

// messageClassOf reads only a stored message's class.
func messageClassOf(v []byte) (string, error) {
	if len(v) == 0 || v[0] != messageV1 {
		var m struct {
			Class string `json:"class"`
		}
		err := json.Unmarshal(v, &m)
		return m.Class, err
	}
	r := reader{b: v[1:]}
	class := r.string()
	return class, r.err
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendTime writes a time as JSON kept it: instant and zone offset, not
// the zone's name nor the monotonic reading. 0 is the zero time;
// otherwise 1, then seconds since 1970 (varint), nanoseconds (uvarint) and
// the offset east of UTC in seconds (varint). Decoded, an offset of 0 is
// UTC, any other a fixed zone.
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	_, off := t.Zone()
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	return binary.AppendVarint(b, int64(off))
}

// reader decodes the binary forms; the first error sticks and every read
// after it returns zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errCodec
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// bytes returns the next byte string, pointing into the value.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *reader) string() string { return string(r.bytes()) }

func (r *reader) skip() { r.bytes() }

func (r *reader) time() time.Time {
	switch r.byte() {
	case 0:
		return time.Time{}
	case 1:
	default:
		r.fail()
		return time.Time{}
	}
	sec, nsec, off := r.varint(), r.uvarint(), r.varint()
	if r.err != nil || nsec >= 1e9 || off <= -24*3600 || off >= 24*3600 {
		r.fail()
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec))
	if off == 0 {
		return t.UTC()
	}
	return t.In(time.FixedZone("", int(off)))
}

// done reports the first error, or bytes left over.
func (r *reader) done(what string) error {
	if r.err == nil && len(r.b) > 0 {
		r.err = errCodec
	}
	if r.err != nil {
		return fmt.Errorf("%s: %w", what, r.err)
	}
	return nil
}
