package report

import (
	"bytes"
	"strings"

	"kadenz/governor/address"
)

// field is one "Name: value" line, unfolded.
type field struct {
	name  string // lower case
	value string
}

// fields is a block of header-like fields, in order. The DSN and ARF report
// bodies (RFC 3464 section 2.1, RFC 5965 section 3.1) and embedded original
// headers are all made of these; the parser is lenient because MTAs are.
type fields []field

// get returns the first value of the named field (lower case name), trimmed.
func (fs fields) get(name string) string {
	for _, f := range fs {
		if f.name == name {
			return f.value
		}
	}
	return ""
}

// all returns every value of the named field.
func (fs fields) all(name string) []string {
	var vs []string
	for _, f := range fs {
		if f.name == name {
			vs = append(vs, f.value)
		}
	}
	return vs
}

// maxFieldsPerBlock bounds a single block; a report with more fields than
// this is not one we can use anyway.
const maxFieldsPerBlock = 1000

// parseBlocks splits text into blocks separated by blank lines and parses the
// fields of each. Continuation lines (starting with white space) are joined
// to the field before them (RFC 5322 section 2.2.3); lines that are not fields
// are skipped.
func parseBlocks(text []byte) []fields {
	var blocks []fields
	var cur fields
	n := 0
	for len(text) > 0 {
		var line []byte
		line, text, _ = bytes.Cut(text, []byte("\n"))
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			if len(cur) > 0 {
				blocks = append(blocks, cur)
				cur = nil
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(cur) > 0 {
				last := &cur[len(cur)-1]
				last.value = strings.TrimSpace(last.value + " " + string(bytes.TrimSpace(line)))
			}
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !isFieldName(name) {
			continue
		}
		if n++; n > maxFieldsPerBlock*10 {
			break
		}
		if len(cur) < maxFieldsPerBlock {
			cur = append(cur, field{name: strings.ToLower(string(bytes.TrimSpace(name))), value: string(bytes.TrimSpace(value))})
		}
	}
	if len(cur) > 0 {
		blocks = append(blocks, cur)
	}
	return blocks
}

// parseHeaderBlock parses the first block of text: a header section up to the
// first blank line, such as a text/rfc822-headers part (RFC 6522 section 4).
func parseHeaderBlock(text []byte) fields {
	if i := headerEnd(text); i >= 0 {
		text = text[:i]
	}
	bs := parseBlocks(text)
	if len(bs) == 0 {
		return nil
	}
	return bs[0]
}

// headerEnd returns the offset of the blank line ending a header section, or
// -1. Leading blank lines are skipped first (some MTAs put one there).
func headerEnd(text []byte) int {
	start := 0
	for start < len(text) && (text[start] == '\n' || text[start] == '\r') {
		start++
	}
	i := start
	for i < len(text) {
		j := bytes.IndexByte(text[i:], '\n')
		if j < 0 {
			return -1
		}
		line := bytes.TrimRight(text[i:i+j], "\r")
		if len(line) == 0 && i > start {
			return i
		}
		i += j + 1
	}
	return -1
}

// isFieldName reports whether b is a field name (RFC 5322 section 3.6.8:
// printable US-ASCII except colon), trimmed, and short enough to be real.
func isFieldName(b []byte) bool {
	b = bytes.TrimRight(b, " \t")
	if len(b) == 0 || len(b) > 76 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// proseTrim is what may cling to an address written in prose: ASCII
// punctuation and the CJK and full-width marks Japanese and Chinese
// bounces put after it.
const proseTrim = ".,;:!?)]}'\"<>`*。、，；：！？」』）】〉》．｡＞＜「『（【〈《 \t"

// mailbox reduces an address field or an address found in prose to a
// valid addr-spec in lower case, or "" when it is not one (address.Check,
// RFC 5321 section 4.1.2): "@mx.example.org", a source route or an address
// with a trailing full stop never become a recipient.
func mailbox(s string) string {
	a := strings.Trim(bareAddress(s), proseTrim)
	if i := strings.IndexByte(a, ':'); i >= 0 && strings.HasPrefix(a, "@") {
		a = a[i+1:] // RFC 5321 section 4.1.2 source route: @relay:user@domain
	}
	if a == "" || !address.Valid(a) {
		return ""
	}
	// A single-label domain ("user@server") is valid syntax but no
	// recipient of Internet mail (RFC 7085): a host name leaking from a
	// report, not an address.
	if d := address.Domain(a); !strings.Contains(d, ".") && !strings.HasPrefix(d, "[") {
		return ""
	}
	return a
}
