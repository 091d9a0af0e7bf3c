// Package address checks mail addresses at Kadenz's edges: the SMTP envelope,
// the events and suppression APIs, CSV imports and addresses read out of
// bounce and complaint reports. One syntax, one set of length limits, so a
// string that is not a mailbox never becomes a profile key or a suppression.
//
// The syntax is RFC 5321 section 4.1.2's Mailbox (Local-part "@" Domain):
// a dot-string or quoted-string local part, and a domain of LDH labels or an
// address literal. With utf8 set (the client said SMTPUTF8, RFC 6531 section
// 3.3), non-ASCII UTF-8 is allowed in the local part and in domain labels.
// Limits are RFC 5321 section 4.5.3.1: 64 octets of local part, 255 of domain,
// and 254 for the whole address (a 256-octet path less its angle brackets).
//
// It does not normalise, resolve or look anything up: deciding that two
// addresses are the same person is store.NormalizeAddress's job.
package address

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Limits from RFC 5321 section 4.5.3.1.
const (
	MaxLocalPart = 64
	MaxDomain    = 255
	MaxAddress   = 254
)

// Error says why a string is not a valid address. Reason is short and fit to
// show a client ("local part longer than 64 octets").
type Error struct {
	Address string
	Reason  string
	err     error // ErrNeedsUTF8 or nil
}

func (e *Error) Error() string { return fmt.Sprintf("address %q: %s", clip(e.Address), e.Reason) }

// Unwrap returns ErrNeedsUTF8 where that is the only problem.
func (e *Error) Unwrap() error { return e.err }

// ErrNeedsUTF8 is wrapped by the error for an address that would be valid
// with SMTPUTF8 but was checked without it.
var ErrNeedsUTF8 = errors.New("non-ASCII address needs SMTPUTF8")

// Check returns nil if s is a valid mailbox, else an *Error (wrapping
// ErrNeedsUTF8 when only the lack of SMTPUTF8 stands in the way).
func Check(s string, allowUTF8 bool) error {
	fail := func(reason string) error { return &Error{Address: s, Reason: reason} }
	if s == "" {
		return fail("empty")
	}
	if !utf8.ValidString(s) {
		return fail("not valid UTF-8")
	}
	if len(s) > MaxAddress {
		return fail(fmt.Sprintf("longer than %d octets", MaxAddress))
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return fail("no @domain")
	}
	local, domain := s[:at], s[at+1:]
	if local == "" {
		return fail("empty local part")
	}
	if len(local) > MaxLocalPart {
		return fail(fmt.Sprintf("local part longer than %d octets", MaxLocalPart))
	}
	if reason := checkLocal(local); reason != "" {
		return fail(reason)
	}
	if reason := checkDomain(domain); reason != "" {
		return fail(reason)
	}
	if !allowUTF8 && !IsASCII(s) {
		return &Error{Address: s, Reason: "non-ASCII address without SMTPUTF8", err: ErrNeedsUTF8}
	}
	return nil
}

// Valid reports whether s is a valid mailbox, non-ASCII allowed.
func Valid(s string) bool { return Check(s, true) == nil }

// IsASCII reports whether s has only 7-bit characters. It takes bytes
// too, so a whole message is checked without a copy.
func IsASCII[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Domain returns the part after the last @ of a valid address, or "".
func Domain(s string) string {
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		return s[at+1:]
	}
	return ""
}

func checkLocal(local string) string {
	if local[0] == '"' {
		return checkQuoted(local)
	}
	// Dot-string: atoms of atext joined by single dots.
	for i, atom := range strings.Split(local, ".") {
		if atom == "" {
			if i == 0 {
				return "local part starts with a dot"
			}
			return "empty atom in local part (leading, trailing or double dot)"
		}
		for _, r := range atom {
			if !isAtext(r) {
				return fmt.Sprintf("character %q not allowed in local part", r)
			}
		}
	}
	return ""
}

// checkQuoted checks a quoted-string local part (RFC 5321 qtextSMTP and
// quoted-pairSMTP; RFC 6531 adds non-ASCII UTF-8 to qtext).
func checkQuoted(local string) string {
	if len(local) < 2 || local[len(local)-1] != '"' {
		return "unterminated quoted local part"
	}
	inner := local[1 : len(local)-1]
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case c == '\\':
			i++
			if i >= len(inner) || inner[i] < 32 || inner[i] > 126 {
				return "bad quoted pair in local part"
			}
		case c == '"':
			return "unescaped quote in local part"
		case c < 32 || c == 127:
			return "control character in local part"
		}
	}
	return ""
}

// isAtext is RFC 5322 atext, plus non-ASCII UTF-8 (RFC 6531 3.3) other than
// controls and spaces.
func isAtext(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r < 0x80:
		return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
	default:
		return isUTF8Letter(r)
	}
}

// isUTF8Letter admits non-ASCII characters except C1 controls, spaces,
// format characters commonly used to hide text, and U+FFFD.
func isUTF8Letter(r rune) bool {
	switch {
	case r < 0xA0: // C1 controls
		return false
	case r == 0xA0, r == 0x1680, r >= 0x2000 && r <= 0x200F, r >= 0x2028 && r <= 0x202F, r == 0x205F, r == 0x3000:
		return false // spaces and invisible format characters
	case r >= 0x3001 && r <= 0x3003, r >= 0xFF01 && r <= 0xFF0F && r != 0xFF0D, r == 0xFF1A, r == 0xFF1B:
		return false // CJK punctuation that trails addresses in prose
	case r == 0xFEFF, r == utf8.RuneError:
		return false
	}
	return true
}

func checkDomain(domain string) string {
	if domain == "" {
		return "empty domain"
	}
	if len(domain) > MaxDomain {
		return fmt.Sprintf("domain longer than %d octets", MaxDomain)
	}
	if domain[0] == '[' {
		return checkLiteral(domain)
	}
	labels := strings.Split(strings.TrimSuffix(domain, "."), ".")
	for _, l := range labels {
		if l == "" {
			return "empty label in domain"
		}
		if len(l) > 63 {
			return "domain label longer than 63 octets"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "domain label starts or ends with a hyphen"
		}
		for _, r := range l {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' ||
				r >= 0x80 && isUTF8Letter(r)
			if !ok {
				return fmt.Sprintf("character %q not allowed in domain", r)
			}
		}
	}
	if strings.HasSuffix(domain, ".") {
		return "domain ends with a dot"
	}
	return ""
}

// checkLiteral checks an address literal: [IPv4] or [IPv6:...].
func checkLiteral(domain string) string {
	if domain[len(domain)-1] != ']' {
		return "unterminated address literal"
	}
	inner := domain[1 : len(domain)-1]
	if v6, ok := strings.CutPrefix(inner, "IPv6:"); ok {
		if a, err := netip.ParseAddr(v6); err == nil && a.Is6() && a.Zone() == "" {
			return ""
		}
		return "bad IPv6 address literal"
	}
	if a, err := netip.ParseAddr(inner); err == nil && a.Is4() {
		return ""
	}
	return "bad address literal"
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
