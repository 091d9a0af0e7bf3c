package scoring

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"
)

// appendWords appends the normalised words of s to dst, at most max in all:
// lower case, letters and digits only. Tokens that are addresses or links
// (they carry per-recipient tracking parameters, so two copies of the same
// mail would look different) are left out. ASCII is handled byte by byte
// without decoding; anything else goes through the unicode tables.
func appendWords(dst []string, s string, max int) []string {
	for len(s) > 0 && len(dst) < max {
		// Take one whitespace-separated field.
		i := 0
		for i < len(s) {
			if c := s[i]; c < utf8.RuneSelf {
				if asciiSpace[c] {
					break
				}
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if unicode.IsSpace(r) {
				break
			}
			i += size
		}
		field := s[:i]
		s = s[i:]
		for len(s) > 0 {
			if c := s[0]; c < utf8.RuneSelf {
				if !asciiSpace[c] {
					break
				}
				s = s[1:]
				continue
			}
			r, size := utf8.DecodeRuneInString(s)
			if !unicode.IsSpace(r) {
				break
			}
			s = s[size:]
		}
		if field == "" || isLinkLike(field) {
			continue
		}
		dst = appendFieldWords(dst, field, max)
	}
	return dst
}

// asciiSpace holds the ASCII characters unicode.IsSpace accepts.
var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

func isLinkLike(field string) bool {
	if strings.IndexByte(field, ':') < 0 && strings.IndexByte(field, '@') < 0 && !strings.HasPrefix(field, "www.") {
		return false // the common case, a plain word, in two byte scans
	}
	return strings.Contains(field, "://") || strings.Contains(field, "@") ||
		strings.HasPrefix(field, "www.") || strings.HasPrefix(field, "mailto:")
}

// appendFieldWords splits one field on everything that is not a letter or a
// digit and appends the lower-cased pieces. An ASCII field is cut into
// substrings of itself, copied only when a piece has upper case to lower.
func appendFieldWords(dst []string, field string, max int) []string {
	n0 := len(dst)
	start, upper := -1, false
	for i := 0; i <= len(field); i++ {
		if i < len(field) {
			c := field[i]
			if c >= utf8.RuneSelf {
				return appendFieldWordsUnicode(dst[:n0], field, max)
			}
			if k := asciiWordByte[c]; k != 0 {
				if start < 0 {
					start, upper = i, false
				}
				upper = upper || k == wordUpper
				continue
			}
		}
		if start >= 0 {
			if len(dst) < max {
				w := field[start:i]
				if upper {
					w = strings.ToLower(w)
				}
				dst = append(dst, w)
			}
			start = -1
		}
	}
	return dst
}

// asciiWordByte classes the ASCII letters and digits, the bytes words are
// made of; 0 is anything else.
var asciiWordByte = func() (t [utf8.RuneSelf]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = wordLower
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = wordLower
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = wordUpper
	}
	return t
}()

const (
	wordLower = 1 // a lower-case letter or a digit
	wordUpper = 2 // an upper-case letter
)

// appendFieldWordsUnicode is appendFieldWords for a field with non-ASCII
// characters.
func appendFieldWordsUnicode(dst []string, field string, max int) []string {
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 && len(dst) < max {
			dst = append(dst, b.String())
		}
		b.Reset()
	}
	for _, r := range field {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		flush()
	}
	flush()
	return dst
}

// htmlText returns the readable text of an HTML document: tags become
// spaces, script and style contents and comments are dropped, and character
// references are decoded. It is deliberately forgiving rather than a full
// HTML parser: CRM templates are often not well-formed, and all we need is
// the words a reader would see.
func htmlText(s string) string {
	var b strings.Builder
	b.Grow(len(s) / 2)
	for len(s) > 0 {
		lt := strings.IndexByte(s, '<')
		if lt < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:lt])
		s = s[lt:]
		switch {
		case strings.HasPrefix(s, "<!--"):
			end := strings.Index(s[4:], "-->")
			if end < 0 {
				s = ""
			} else {
				s = s[4+end+3:]
			}
		case hasTagPrefix(s, "<script"), hasTagPrefix(s, "<style"), hasTagPrefix(s, "<head"):
			name := tagName(s)
			end := indexFold(s, "</"+name)
			if end < 0 {
				s = ""
				break
			}
			s = s[end:]
			if gt := strings.IndexByte(s, '>'); gt >= 0 {
				s = s[gt+1:]
			} else {
				s = ""
			}
		default:
			gt := strings.IndexByte(s, '>')
			if gt < 0 {
				s = ""
			} else {
				s = s[gt+1:]
			}
		}
		b.WriteByte(' ')
	}
	return html.UnescapeString(b.String())
}

// hasTagPrefix reports whether s starts with the opening tag prefix p
// (case-insensitive) followed by the end of the name.
func hasTagPrefix(s, p string) bool {
	if len(s) < len(p) || !strings.EqualFold(s[:len(p)], p) {
		return false
	}
	if len(s) == len(p) {
		return true
	}
	c := s[len(p)]
	return c == '>' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '/'
}

func tagName(s string) string {
	i := 1
	for i < len(s) && s[i] != '>' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && s[i] != '/' {
		i++
	}
	return strings.ToLower(s[1:i])
}

// indexFold is strings.Index, ignoring ASCII case in the needle's letters.
func indexFold(s, sub string) int {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		if s[i] == '<' && strings.EqualFold(s[i:i+n], sub) {
			return i
		}
	}
	return -1
}
