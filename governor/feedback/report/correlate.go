package report

import (
	"net/mail"
	"strings"
)

// DefaultVERPPrefix is the local-part prefix of Kadenz's VERP return path,
// bounce+ENVELOPEID@domain.
const DefaultVERPPrefix = "bounce"

// DefaultUnsubscribePrefix is the local part of the mailto: unsubscribe
// address, unsubscribe@domain or unsubscribe+ENVELOPEID@domain.
const DefaultUnsubscribePrefix = "unsubscribe"

// envelopeIDChars is lower-case Crockford base32, the alphabet of Kadenz
// message IDs (no i, l, o, u).
const envelopeIDChars = "0123456789abcdefghjkmnpqrstvwxyz"

// messageIDLen is the length of a Kadenz message ID: 96 bits in base32.
const messageIDLen = 20

// IsEnvelopeID reports whether s has the shape of a Kadenz envelope ID: a
// message ID (20 characters of lower-case Crockford base32), a dash and the
// recipient's 1-based position, e.g. "06h0hh51xwchm3pfcs2g-1".
func IsEnvelopeID(s string) bool {
	if len(s) < messageIDLen+2 || s[messageIDLen] != '-' {
		return false
	}
	for i := 0; i < messageIDLen; i++ {
		if strings.IndexByte(envelopeIDChars, s[i]) < 0 {
			return false
		}
	}
	num := s[messageIDLen+1:]
	if len(num) > 9 || num[0] == '0' {
		return false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return false
		}
	}
	return true
}

// normalizeEnvelopeID lower-cases a candidate (mail systems may change the
// case of a local part; the alphabet is case-insensitive) and checks it.
func normalizeEnvelopeID(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	return s, IsEnvelopeID(s)
}

// VERPAddress returns the VERP return path for an envelope:
// prefix+envelopeID@domain.
func VERPAddress(prefix, envelopeID, domain string) string {
	if prefix == "" {
		prefix = DefaultVERPPrefix
	}
	return prefix + "+" + envelopeID + "@" + domain
}

// EnvelopeIDFromVERP returns the envelope ID in a VERP address
// prefix+ENVELOPEID@domain (angle brackets and a display name allowed), and
// whether there was one. The prefix is compared without regard to case.
func EnvelopeIDFromVERP(addr, prefix string) (string, bool) {
	if prefix == "" {
		prefix = DefaultVERPPrefix
	}
	local, _, ok := strings.Cut(bareAddress(addr), "@")
	if !ok {
		return "", false
	}
	p, id, ok := strings.Cut(local, "+")
	if !ok || !strings.EqualFold(p, prefix) {
		return "", false
	}
	if id, ok = normalizeEnvelopeID(id); !ok {
		return "", false
	}
	return id, true
}

// findEnvelopeID returns the first envelope ID that occurs as a word in s.
func findEnvelopeID(s string) (string, bool) {
	s = strings.ToLower(s)
	for i := 0; i+messageIDLen+2 <= len(s); i++ {
		if i > 0 && isIDChar(s[i-1]) {
			continue
		}
		j := i + messageIDLen + 1
		for j < len(s) && j < i+messageIDLen+10 && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j < len(s) && isIDChar(s[j]) {
			continue
		}
		if IsEnvelopeID(s[i:j]) {
			return s[i:j], true
		}
	}
	return "", false
}

func isIDChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// bareAddress reduces an address field to addr-spec, lower case: it drops a
// display name, angle brackets, an "rfc822;" address type (RFC 3464 section
// 2.3.1) and surrounding space. Unparseable input is trimmed and returned.
func bareAddress(s string) string {
	s = strings.TrimSpace(s)
	if t, rest, ok := strings.Cut(s, ";"); ok && !strings.ContainsAny(t, "@<\" ") {
		s = strings.TrimSpace(rest) // address type, e.g. rfc822; or utf-8;
	}
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			s = s[i+1 : i+j]
		}
	} else if a, err := mail.ParseAddress(s); err == nil {
		s = a.Address
	}
	s = strings.Trim(strings.TrimSpace(s), "<>")
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		s = s[:i]
	}
	return strings.ToLower(s)
}

// addressList returns the bare addresses of an address-list header value.
func addressList(v string) []string {
	if v == "" {
		return nil
	}
	if as, err := mail.ParseAddressList(v); err == nil {
		out := make([]string, 0, len(as))
		for _, a := range as {
			out = append(out, strings.ToLower(a.Address))
		}
		return out
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if a := bareAddress(p); strings.Contains(a, "@") {
			out = append(out, a)
		}
	}
	return out
}

// messageIDs returns the msg-ids in an In-Reply-To, References or Message-ID
// value (RFC 5322 section 3.6.4), without angle brackets, in order. A value
// without brackets counts as one ID, as some mailers write it so.
func messageIDs(v string) []string {
	var ids []string
	rest := v
	for len(ids) < 100 {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(rest[i+1 : i+j]); id != "" && !strings.ContainsAny(id, " \t<") {
			ids = append(ids, id)
		}
		rest = rest[i+j+1:]
	}
	if len(ids) == 0 {
		if t := strings.Trim(strings.TrimSpace(v), "<>"); t != "" && strings.Contains(t, "@") && !strings.ContainsAny(t, " \t") {
			ids = append(ids, t)
		}
	}
	return ids
}

// firstMessageID returns the first msg-id in v, or "".
func firstMessageID(v string) string {
	if ids := messageIDs(v); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// correlation collects candidates while a message is read: the first
// envelope ID offered from each source, and the first Message-ID.
type correlation struct {
	envelopes map[Source]string
	messageID string
}

// sourceRank orders the sources by how directly they name our envelope: the
// ENVID and VERP address were set by us on the envelope; a header can be
// copied along with a message; a subject is typed by a mail client.
var sourceRank = []Source{SourceENVID, SourceVERP, SourceHeader, SourceSubject}

func (c *correlation) offerEnvelope(id string, src Source) {
	if c.envelopes[src] != "" {
		return
	}
	if id, ok := normalizeEnvelopeID(id); ok {
		if c.envelopes == nil {
			c.envelopes = map[Source]string{}
		}
		c.envelopes[src] = id
	}
}

// envelope returns the best envelope ID offered and its source.
func (c *correlation) envelope() (string, Source) {
	for _, s := range sourceRank {
		if id := c.envelopes[s]; id != "" {
			return id, s
		}
	}
	return "", SourceNone
}

func (c *correlation) offerMessageID(id string) {
	if c.messageID == "" && id != "" {
		c.messageID = id
	}
}

// offerVERP offers the envelope IDs of VERP addresses in an address-list value.
func (c *correlation) offerVERP(v, prefix string) {
	if c.envelopes[SourceVERP] != "" || v == "" {
		return
	}
	for _, a := range addressList(v) {
		if id, ok := EnvelopeIDFromVERP(a, prefix); ok {
			c.offerEnvelope(id, SourceVERP)
			return
		}
	}
	if id, ok := EnvelopeIDFromVERP(v, prefix); ok {
		c.offerEnvelope(id, SourceVERP)
	}
}

// offerOriginal takes what the headers of our original message (embedded in a
// report, RFC 3462 / RFC 6522 text/rfc822-headers or message/rfc822) say.
func (c *correlation) offerOriginal(h fields, prefix string) {
	c.offerEnvelope(h.get("x-kadenz-envelope"), SourceHeader)
	c.offerVERP(h.get("return-path"), prefix)
	c.offerMessageID(firstMessageID(h.get("message-id")))
}
