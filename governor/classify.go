package governor

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"net/mail"
	"net/netip"
	"net/textproto"
	"path"
	"slices"
	"strings"
	"sync"

	"kadenz/config"
)

// Classification follows the header contract in DESIGN.md, first rule
// that speaks wins:
//  1. X-Kadenz-Class, set by a CRM that knows (and that governor.header_trust
//     lets say so);
//  2. the admin's sender rules;
//  3. a list manager's administrative mail, recognised built in
//     (listadmin.go): transactional;
//  4. bulk markers: List-Unsubscribe (RFC 2369, RFC 8058), List-Id
//     (RFC 2919), Precedence: bulk/list/junk;
//  5. the configured default, transactional out of the box.
//
// It fails open only where nothing points at bulk mail: a message that says
// nothing is not held, since a receipt wrongly held is worse than a
// newsletter wrongly passed. A header that does not parse (a line without a
// colon, say) is read again line by line, skipping what is not a field, so
// that a newsletter's List-Unsubscribe still governs it: malformed input
// must not be a way around governance.

// classify returns the message's class and the rule that decided it.
func classify(h mail.Header, sender string, g *config.Governor) (class, reason string) {
	if h == nil {
		return config.ClassTransactional, "header could not be read: passed through"
	}
	switch v := strings.ToLower(strings.TrimSpace(h.Get("X-Kadenz-Class"))); v {
	case config.ClassTransactional, config.ClassMarketing:
		return v, "X-Kadenz-Class: " + v
	}
	for i, r := range g.SenderRules {
		if senderRuleMatches(&r, h, sender) {
			return r.Class, fmt.Sprintf("sender rule %d (%s)", i+1, describeSenderRule(&r))
		}
	}
	// A list manager's administrative mail (subscription confirmations,
	// welcome and goodbye notices, reminders) often carries the list's bulk
	// markers but is mail a person is waiting for (listadmin.go).
	if reason, ok := listAdministrative(h); ok {
		return config.ClassTransactional, reason
	}
	for _, marker := range []string{"List-Unsubscribe", "List-Id"} {
		if h.Get(marker) != "" {
			return config.ClassMarketing, "bulk marker " + marker
		}
	}
	switch p := strings.ToLower(strings.TrimSpace(h.Get("Precedence"))); p {
	case "bulk", "list", "junk":
		return config.ClassMarketing, "bulk marker Precedence: " + p
	}
	return g.DefaultClass, "no class header, sender rule or bulk marker: default " + g.DefaultClass
}

// senderRuleMatches reports whether every condition of r holds: the
// envelope sender matches its pattern, the header field it names is
// present with a value matching its pattern. Patterns compare
// case-insensitively; a field that appears several times matches if any
// of its values does.
func senderRuleMatches(r *config.SenderRule, h mail.Header, sender string) bool {
	if r.Sender != "" {
		if ok, _ := path.Match(strings.ToLower(r.Sender), strings.ToLower(sender)); !ok {
			return false
		}
	}
	if r.Header == "" {
		return true
	}
	for _, v := range h[textproto.CanonicalMIMEHeaderKey(r.Header)] {
		if r.Value == "" {
			return true
		}
		if ok, _ := path.Match(strings.ToLower(r.Value), strings.ToLower(strings.TrimSpace(v))); ok {
			return true
		}
	}
	return false
}

// describeSenderRule says what a rule matches, for the class reason.
func describeSenderRule(r *config.SenderRule) string {
	var parts []string
	if r.Sender != "" {
		parts = append(parts, "sender "+r.Sender)
	}
	if r.Header != "" {
		parts = append(parts, "header "+r.Header+": "+cmp.Or(r.Value, "*"))
	}
	return strings.Join(parts, ", ")
}

// headerReaders recycles the buffered readers readHeader parses through:
// net/mail would allocate a fresh 4 KB one for every message accepted.
// mail.ReadMessage uses a *bufio.Reader of at least its default size as it
// is, and the header it returns holds copies, not the reader's bytes.
var headerReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

// readHeader parses the message header, or returns nil if it cannot.
func readHeader(data []byte) mail.Header {
	br := headerReaders.Get().(*bufio.Reader)
	br.Reset(bytes.NewReader(data))
	m, err := mail.ReadMessage(br) // reads the header only
	br.Reset(nil)
	headerReaders.Put(br)
	if err != nil {
		return nil
	}
	return m.Header
}

// readHeaderTolerant is readHeader, and where that fails, a reading line
// by line that keeps every well-formed field (RFC 5322 2.2: a name of
// printable characters other than colon, then a colon) with its folded
// continuation lines and skips every other line. tolerant says the second
// reading was needed.
func readHeaderTolerant(data []byte) (h mail.Header, tolerant bool) {
	if h := readHeader(data); h != nil {
		return h, false
	}
	h = mail.Header{}
	for _, f := range headerFields(data) {
		colon := bytes.IndexByte(f, ':')
		if colon <= 0 || !isFieldName(f[:colon]) {
			continue
		}
		name := textproto.CanonicalMIMEHeaderKey(string(f[:colon]))
		value := strings.Join(strings.Fields(string(f[colon+1:])), " ") // unfolded
		h[name] = append(h[name], value)
	}
	return h, true
}

func isFieldName(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}

// headerFields splits the header of data (up to the first empty line, or
// all of data) into fields, each with its CRLFs and folded continuation
// lines. A continuation line before any field is a field of its own.
// A field and its continuation lines follow each other in data, so each
// field is a slice of data (full: appending to one cannot overwrite the
// next); nothing is copied.
func headerFields(data []byte) [][]byte {
	header := data
	if end := bytes.Index(data, []byte("\r\n\r\n")); end >= 0 {
		header = data[:end+2]
	} else if bytes.HasPrefix(data, []byte("\r\n")) {
		return nil
	}
	fields := make([][]byte, 0, 16)
	start := -1 // where the field being read starts
	for pos := 0; pos < len(header); {
		next := len(header)
		if i := bytes.Index(header[pos:], []byte("\r\n")); i >= 0 {
			next = pos + i + 2
		}
		if c := header[pos]; (c != ' ' && c != '\t') || start < 0 {
			if start >= 0 {
				fields = append(fields, header[start:pos:pos])
			}
			start = pos
		}
		pos = next
	}
	if start >= 0 {
		fields = append(fields, header[start:len(header):len(header)])
	}
	return fields
}

// fieldName is the lower-case name of a header field, "" if it has none.
func fieldName(f []byte) string {
	return strings.ToLower(strings.TrimSpace(string(f[:max(bytes.IndexByte(f, ':'), 0)])))
}

// removeFields returns data without the header fields whose lower-case
// name drop reports, and the names it removed; data itself if none.
func removeFields(data []byte, drop func(name string) bool) ([]byte, []string) {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		return data, nil
	}
	fields := headerFields(data)
	var removed []string
	out := make([]byte, 0, len(data))
	for _, f := range fields {
		if name := fieldName(f); name != "" && drop(name) {
			removed = append(removed, name)
			continue
		}
		out = append(out, f...)
	}
	if removed == nil {
		return data, nil
	}
	return append(out, data[end+2:]...), removed
}

// headerTrust returns which X-Kadenz-* fields a submission may set, by
// governor.header_trust (nil: all of them, the rules being empty).
func headerTrust(rules []config.HeaderTrust, user string, addr netip.Addr) func(name string) bool {
	if len(rules) == 0 {
		return nil
	}
	for i := range rules {
		r := &rules[i]
		match := user != "" && slices.Contains(r.Users, user)
		for _, n := range r.Networks {
			if p, err := netip.ParsePrefix(n); err == nil && p.Contains(addr) {
				match = true
			}
		}
		if match {
			return r.Trusts
		}
	}
	return func(string) bool { return false }
}

// untrustedRemoved returns data without the X-Kadenz-* fields trusted
// does not allow (trusted nil allows all), and the names removed, for
// classification and scoring to read: an untrusted X-Kadenz-Class is as
// if absent.
func untrustedRemoved(data []byte, trusted func(string) bool) ([]byte, []string) {
	if trusted == nil || !containsFold(data[:headerEnd(data)], kadenzHeaderPrefix) {
		return data, nil
	}
	return removeFields(data, func(name string) bool {
		return strings.HasPrefix(name, kadenzHeaderPrefix) && !trusted(name)
	})
}

// headerEnd is where the header of data ends (all of data if no empty line).
func headerEnd(data []byte) int {
	if end := bytes.Index(data, []byte("\r\n\r\n")); end >= 0 {
		return end + 2
	}
	return len(data)
}

const kadenzHeaderPrefix = "x-kadenz-"

// stripKadenzHeaders removes the X-Kadenz-* fields: they are instructions
// to Kadenz, not for the recipient. A field whose name a DKIM-Signature's
// h= tag lists (RFC 6376 3.5) stays, since removing it would break that
// signature; the others go. Kadenz does not verify signatures (that needs
// DNS), so a forged DKIM-Signature can keep the X-Kadenz-* names it lists
// in the delivered mail, but no others.
func stripKadenzHeaders(data []byte) []byte {
	if !containsFold(data[:headerEnd(data)], kadenzHeaderPrefix) {
		return data // the common case, on every accept: nothing to split
	}
	signed := map[string]bool{}
	for _, f := range headerFields(data) {
		if fieldName(f) == "dkim-signature" {
			for _, name := range dkimSignedNames(string(f)) {
				signed[name] = true
			}
		}
	}
	out, _ := removeFields(data, func(name string) bool {
		return strings.HasPrefix(name, kadenzHeaderPrefix) && !signed[name]
	})
	return out
}

// dkimSignedNames lists the lower-case field names in a DKIM-Signature
// field's h= tag.
func dkimSignedNames(field string) []string {
	_, value, _ := strings.Cut(field, ":")
	var names []string
	for tag := range strings.SplitSeq(value, ";") {
		k, v, ok := strings.Cut(tag, "=")
		if !ok || strings.TrimSpace(k) != "h" {
			continue
		}
		for name := range strings.SplitSeq(v, ":") {
			names = append(names, strings.ToLower(strings.Join(strings.Fields(name), "")))
		}
	}
	return names
}

// containsFold reports whether s contains the lower-case ASCII word sub in
// any letter case, without copying s.
func containsFold(s []byte, sub string) bool {
	word := []byte(sub)
	for i := 0; i+len(word) <= len(s); i++ {
		if bytes.EqualFold(s[i:i+len(word)], word) {
			return true
		}
	}
	return false
}
