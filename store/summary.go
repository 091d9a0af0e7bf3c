package store

import (
	"bytes"
	"strings"
)

// Reading a decision record's action, would and reasons without decoding
// it (tallies.go). Every decision round writes one record per envelope and
// the tallies read those three fields back in the same transaction; the
// JSON decoder's validation and reflection over a record of a kilobyte
// were 5% of the relay's CPU while it decided a campaign. The records the
// store holds were validated when they were appended (appendRecord), so
// this scanner only walks them; anything it is not sure of (an escape in a
// key or in a wanted string, a key in another case, a value of another
// type) makes it give up, and the caller decodes the record with
// encoding/json as before, so the result is always what that gives.

// summaryScan reads record's top-level "action", "would" and "reasons".
// ok is false when it cannot say; the record may still be valid.
func summaryScan(record []byte) (action, would string, reasons []string, ok bool) {
	s := scanner{b: record}
	if !s.byte('{') {
		return "", "", nil, false
	}
	if s.byte('}') {
		return "", "", nil, s.end()
	}
	for {
		key, fine := s.plainString()
		if !fine || !s.byte(':') {
			return "", "", nil, false
		}
		switch {
		case key == "action":
			if action, fine = s.plainString(); !fine {
				return "", "", nil, false
			}
		case key == "would":
			if would, fine = s.plainString(); !fine {
				return "", "", nil, false
			}
		case key == "reasons":
			if reasons, fine = s.plainStrings(); !fine {
				return "", "", nil, false
			}
		case foldsTo(key, "action", "would", "reasons"):
			return "", "", nil, false // encoding/json matches keys in any case
		default:
			if !s.skipValue() {
				return "", "", nil, false
			}
		}
		if s.byte(',') {
			continue
		}
		if !s.byte('}') {
			return "", "", nil, false
		}
		return action, would, reasons, s.end()
	}
}

// lastElementScan returns the last element of a JSON array, ok false when
// it cannot say (or the array is empty).
func lastElementScan(list []byte) (last []byte, ok bool) {
	s := scanner{b: list}
	if !s.byte('[') || s.byte(']') {
		return nil, false
	}
	for {
		s.space()
		start := s.i
		if !s.skipValue() {
			return nil, false
		}
		last = s.b[start:s.i]
		if s.byte(',') {
			continue
		}
		if !s.byte(']') || !s.end() {
			return nil, false
		}
		return last, true
	}
}

func foldsTo(key string, names ...string) bool {
	for _, n := range names {
		if len(key) == len(n) && bytes.EqualFold([]byte(key), []byte(n)) {
			return true
		}
	}
	return false
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte consumes c (after white space) if it is next.
func (s *scanner) byte(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (s *scanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// plainString reads a string without escapes or control characters.
func (s *scanner) plainString() (string, bool) {
	if !s.byte('"') {
		return "", false
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return string(s.b[start : s.i-1]), true
		case c == '\\' || c < 0x20 || c >= 0x80: // escapes and UTF-8 checks: the decoder's
			return "", false
		}
		s.i++
	}
	return "", false
}

// plainStrings reads an array of plain strings.
func (s *scanner) plainStrings() ([]string, bool) {
	if !s.byte('[') {
		return nil, false
	}
	out := []string{}
	if s.byte(']') {
		return out, true
	}
	for {
		v, ok := s.plainString()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if s.byte(',') {
			continue
		}
		return out, s.byte(']')
	}
}

// skipValue passes over one value, checking only that strings, objects
// and arrays close; the scanner's callers fall back to the decoder when it
// fails, and otherwise read records appendRecord validated.
func (s *scanner) skipValue() bool {
	s.space()
	depth := 0
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch c {
		case '"':
			s.i++
			for s.i < len(s.b) && s.b[s.i] != '"' {
				if s.b[s.i] == '\\' {
					s.i++
				}
				s.i++
			}
			if s.i >= len(s.b) {
				return false
			}
			s.i++
		case '{', '[':
			depth++
			s.i++
		case '}', ']':
			if depth == 0 {
				return false // an empty value
			}
			depth--
			s.i++
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return false
			}
			s.i++
		default: // a number or a literal
			for s.i < len(s.b) && strings.IndexByte(",:]} \t\n\r\"{[", s.b[s.i]) < 0 {
				s.i++
			}
		}
		if depth == 0 {
			s.space()
			if s.i == len(s.b) || s.b[s.i] == ',' || s.b[s.i] == '}' || s.b[s.i] == ']' {
				return true
			}
			return false
		}
	}
	return false
}
