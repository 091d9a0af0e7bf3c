package store

// canonicalJSON reports whether rec is one valid JSON value that
// json.Marshal(json.RawMessage(rec)) would return unchanged: no white space
// outside strings, no '<', '>' or '&', no U+2028 or U+2029 (which Marshal
// escapes). Decision records come from json.Marshal and are all like that;
// appendRecord then keeps them as they are instead of running them through
// encoding/json's scanner and copying them twice (7% of the relay's CPU
// while it decided a campaign). It may say false for a value Marshal would
// keep: the caller then takes the slow way, which decides.
func canonicalJSON(rec []byte) bool {
	v := validator{b: rec}
	return v.value(0) && v.i == len(rec)
}

type validator struct {
	b []byte
	i int
}

// maxCanonicalDepth bounds nesting; deeper values take the slow way
// (encoding/json has a limit of its own).
const maxCanonicalDepth = 64

func (v *validator) peek() byte {
	if v.i < len(v.b) {
		return v.b[v.i]
	}
	return 0
}

func (v *validator) value(depth int) bool {
	if depth > maxCanonicalDepth {
		return false
	}
	switch v.peek() {
	case '{':
		v.i++
		if v.peek() == '}' {
			v.i++
			return true
		}
		for {
			if v.peek() != '"' || !v.str() || v.peek() != ':' {
				return false
			}
			v.i++
			if !v.value(depth + 1) {
				return false
			}
			switch v.peek() {
			case ',':
				v.i++
			case '}':
				v.i++
				return true
			default:
				return false
			}
		}
	case '[':
		v.i++
		if v.peek() == ']' {
			v.i++
			return true
		}
		for {
			if !v.value(depth + 1) {
				return false
			}
			switch v.peek() {
			case ',':
				v.i++
			case ']':
				v.i++
				return true
			default:
				return false
			}
		}
	case '"':
		return v.str()
	case 't':
		return v.lit("true")
	case 'f':
		return v.lit("false")
	case 'n':
		return v.lit("null")
	}
	return v.num()
}

func (v *validator) lit(s string) bool {
	if len(v.b)-v.i >= len(s) && string(v.b[v.i:v.i+len(s)]) == s {
		v.i += len(s)
		return true
	}
	return false
}

// str passes a string, at its opening quote.
func (v *validator) str() bool {
	v.i++
	for v.i < len(v.b) {
		c := v.b[v.i]
		switch {
		case c == '"':
			v.i++
			return true
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2 && v.i+2 < len(v.b) && v.b[v.i+1] == 0x80 && v.b[v.i+2]&^1 == 0xA8:
			return false
		case c == '\\':
			v.i++
			switch v.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				v.i++
			case 'u':
				if len(v.b)-v.i < 5 {
					return false
				}
				for _, h := range v.b[v.i+1 : v.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				v.i += 5
			default:
				return false
			}
		default:
			v.i++
		}
	}
	return false
}

// num passes a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (v *validator) num() bool {
	digits := func() bool {
		start := v.i
		for v.i < len(v.b) && '0' <= v.b[v.i] && v.b[v.i] <= '9' {
			v.i++
		}
		return v.i > start
	}
	if v.peek() == '-' {
		v.i++
	}
	switch c := v.peek(); {
	case c == '0':
		v.i++
	case '1' <= c && c <= '9':
		digits()
	default:
		return false
	}
	if v.peek() == '.' {
		v.i++
		if !digits() {
			return false
		}
	}
	if c := v.peek(); c == 'e' || c == 'E' {
		v.i++
		if c := v.peek(); c == '+' || c == '-' {
			v.i++
		}
		if !digits() {
			return false
		}
	}
	return true
}
