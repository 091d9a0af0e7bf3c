package scoring

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// DecodeFeatures sets *f to the features raw holds, as json.Unmarshal into
// a zero Features does.
//
// Why not json.Unmarshal alone: a message's features are stored as the
// JSON json.Marshal wrote at intake, and deciding a campaign decodes them
// once per recipient; at 100,000 recipients encoding/json's reflection was
// a tenth of the decider's CPU (issue 16). So the form Marshal writes —
// the fields in the order of the struct, no white space, strings without
// escapes — is read here directly, and anything else (an escape, a key in
// another case or order, an unknown key, null, white space, a number
// Marshal would not write) goes to encoding/json, which then decides.
// FuzzDecodeFeatures checks that whatever the direct reading accepts,
// encoding/json decodes to the same.
func DecodeFeatures(raw []byte, f *Features) error {
	var g Features
	if featuresReader(raw).read(&g) { // one copy of raw: the strings read are slices of it
		*f = g
		return nil
	}
	*f = Features{}
	return json.Unmarshal(raw, f)
}

// featuresFields are Features' JSON keys in the order json.Marshal writes
// them (the order of the struct's fields).
var featuresFields = [...]string{
	"message_id", "subject", "campaign", "campaign_from_list", "topics", "topics_from_rules", "priority",
	"expires", "not_before", "timezone", "value", "has_value", "fingerprint", "words", "terms", "problems",
}

// featuresReader reads the form json.Marshal writes of a Features; each
// method reports false where it meets anything else.
type featuresReader string

func (r featuresReader) read(f *Features) bool {
	if len(r) < 2 || r[0] != '{' || r[len(r)-1] != '}' {
		return false
	}
	p := 1
	next := 0 // the first field that may still come
	for first := true; ; first = false {
		if r[p] == '}' {
			return p == len(r)-1 && (first || r[p-1] != ',')
		}
		if !first {
			if r[p] != ',' {
				return false
			}
			p++
		}
		key, q, ok := r.str(p)
		if !ok || q >= len(r) || r[q] != ':' {
			return false
		}
		p = q + 1
		i := next
		for i < len(featuresFields) && featuresFields[i] != key {
			i++
		}
		if i == len(featuresFields) {
			return false // unknown, repeated, out of order or in another case
		}
		next = i + 1
		if p, ok = r.field(f, i, p); !ok || p >= len(r) {
			return false
		}
	}
}

// field reads the value of field i at p into f and returns where it ends.
func (r featuresReader) field(f *Features, i, p int) (int, bool) {
	var ok bool
	switch i {
	case 0:
		f.MessageID, p, ok = r.str(p)
	case 1:
		f.Subject, p, ok = r.str(p)
	case 2:
		f.Campaign, p, ok = r.str(p)
	case 3:
		f.CampaignFromList, p, ok = r.boolean(p)
	case 4:
		f.Topics, p, ok = r.strs(p)
	case 5:
		f.TopicsFromRules, p, ok = r.boolean(p)
	case 6:
		f.Priority, p, ok = r.integer(p)
	case 7:
		p, ok = r.time(p, &f.Expires)
	case 8:
		p, ok = r.time(p, &f.NotBefore)
	case 9:
		f.Timezone, p, ok = r.str(p)
	case 10:
		f.Value, p, ok = r.integer(p)
	case 11:
		f.HasValue, p, ok = r.boolean(p)
	case 12:
		f.Fingerprint, p, ok = r.unsigned(p)
	case 13:
		f.Words, p, ok = r.integer(p)
	case 14:
		f.Terms, p, ok = r.strs(p)
	case 15:
		f.Problems, p, ok = r.strs(p)
	}
	return p, ok
}

// span returns the end of the JSON string at p (after its closing quote),
// if it has no escape or control character and is valid UTF-8.
func (r featuresReader) span(p int) (int, bool) {
	if p >= len(r) || r[p] != '"' {
		return 0, false
	}
	ascii := true
	for q := p + 1; q < len(r); q++ {
		switch c := r[q]; {
		case c == '"':
			if !ascii && !utf8.ValidString(string(r[p+1:q])) { // encoding/json would put U+FFFD in
				return 0, false
			}
			return q + 1, true
		case c == '\\' || c < 0x20:
			return 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return 0, false
}

func (r featuresReader) str(p int) (string, int, bool) {
	q, ok := r.span(p)
	if !ok {
		return "", 0, false
	}
	return string(r[p+1 : q-1]), q, true // no copy: a slice of the reader's string
}

func (r featuresReader) strs(p int) ([]string, int, bool) {
	if p >= len(r) || r[p] != '[' {
		return nil, 0, false
	}
	p++
	n := 0 // count first, so that the slice is made once
	for q := p; q < len(r) && r[q] != ']'; n++ {
		end, ok := r.span(q)
		if !ok || end >= len(r) {
			return nil, 0, false
		}
		switch q = end; r[q] {
		case ',':
			q++
			if q >= len(r) || r[q] == ']' {
				return nil, 0, false
			}
		case ']':
		default:
			return nil, 0, false
		}
	}
	out := make([]string, 0, n)
	for len(out) < n {
		s, q, _ := r.str(p)
		out = append(out, s)
		if p = q; r[p] == ',' {
			p++
		}
	}
	if p >= len(r) || r[p] != ']' {
		return nil, 0, false
	}
	return out, p + 1, true
}

func (r featuresReader) boolean(p int) (bool, int, bool) {
	switch {
	case len(r) >= p+4 && string(r[p:p+4]) == "true":
		return true, p + 4, true
	case len(r) >= p+5 && string(r[p:p+5]) == "false":
		return false, p + 5, true
	}
	return false, 0, false
}

// digits returns the end of a JSON integer at p: an optional minus if
// signed, then 0 or digits without a leading zero, followed by , or }.
func (r featuresReader) digits(p int, signed bool) (int, bool) {
	q := p
	if signed && q < len(r) && r[q] == '-' {
		q++
	}
	start := q
	for q < len(r) && r[q] >= '0' && r[q] <= '9' {
		q++
	}
	if q == start || q-start > 1 && r[start] == '0' || q >= len(r) || r[q] != ',' && r[q] != '}' {
		return 0, false
	}
	return q, true
}

func (r featuresReader) integer(p int) (int, int, bool) {
	q, ok := r.digits(p, true)
	if !ok {
		return 0, 0, false
	}
	n, err := strconv.ParseInt(string(r[p:q]), 10, strconv.IntSize)
	return int(n), q, err == nil
}

func (r featuresReader) unsigned(p int) (uint64, int, bool) {
	q, ok := r.digits(p, false)
	if !ok {
		return 0, 0, false
	}
	n, err := strconv.ParseUint(string(r[p:q]), 10, 64)
	return n, q, err == nil
}

// time reads a quoted time as encoding/json does: by the time's own
// UnmarshalJSON.
func (r featuresReader) time(p int, t *time.Time) (int, bool) {
	q, ok := r.span(p)
	if !ok || t.UnmarshalJSON([]byte(r[p:q])) != nil {
		return 0, false
	}
	return q, true
}
