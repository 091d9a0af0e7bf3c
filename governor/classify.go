package governor

import (
	"bytes"
	"net/mail"
	"path"
	"strings"

	"kadenz/config"
)

// Classification follows the header contract in DESIGN.md, first rule
// that speaks wins:
//  1. X-Kadenz-Class, set by a CRM that knows;
//  2. the admin's sender rules;
//  3. bulk markers: List-Unsubscribe (RFC 2369, RFC 8058), List-Id
//     (RFC 2919), Precedence: bulk/list/junk;
//  4. the configured default, transactional out of the box.
//
// It fails open: a message whose header cannot be read, or that says
// nothing, is not held. A receipt wrongly held is worse than a newsletter
// wrongly passed.

// classify returns the message's class and the rule that decided it.
func classify(h mail.Header, sender string, g *config.Governor) (class, reason string) {
	if h == nil {
		return config.ClassTransactional, "header could not be read: passed through"
	}
	switch v := strings.ToLower(strings.TrimSpace(h.Get("X-Kadenz-Class"))); v {
	case config.ClassTransactional, config.ClassMarketing:
		return v, "X-Kadenz-Class: " + v
	}
	lowSender := strings.ToLower(sender)
	for _, r := range g.SenderRules {
		if ok, _ := path.Match(strings.ToLower(r.Sender), lowSender); ok {
			return r.Class, "sender rule " + r.Sender
		}
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

// readHeader parses the message header, or returns nil if it cannot.
func readHeader(data []byte) mail.Header {
	m, err := mail.ReadMessage(bytes.NewReader(data)) // reads the header only
	if err != nil {
		return nil
	}
	return m.Header
}

const kadenzHeaderPrefix = "x-kadenz-"

// stripKadenzHeaders removes the X-Kadenz-* fields: they are instructions
// to Kadenz, not for the recipient. When a DKIM-Signature signs any of them
// (its h= tag names one, RFC 6376 3.5), removing it would break the
// signature, so the message is left exactly as it is.
func stripKadenzHeaders(data []byte) []byte {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		return data
	}
	header := data[:end+2]
	if !containsFold(header, kadenzHeaderPrefix) {
		return data // the common case, on every accept: nothing to split
	}
	var fields [][]byte // each field with its folded continuation lines
	for len(header) > 0 {
		i := bytes.Index(header, []byte("\r\n"))
		line := header[:i+2]
		header = header[i+2:]
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] = append(fields[len(fields)-1], line...)
			continue
		}
		fields = append(fields, append([]byte(nil), line...))
	}
	found := false
	for _, f := range fields {
		name := strings.ToLower(string(f[:max(bytes.IndexByte(f, ':'), 0)]))
		if strings.HasPrefix(name, kadenzHeaderPrefix) {
			found = true
		}
		if name == "dkim-signature" && dkimSignsKadenzHeader(string(f)) {
			return data
		}
	}
	if !found {
		return data
	}
	out := make([]byte, 0, len(data))
	for _, f := range fields {
		name := strings.ToLower(string(f[:max(bytes.IndexByte(f, ':'), 0)]))
		if !strings.HasPrefix(name, kadenzHeaderPrefix) {
			out = append(out, f...)
		}
	}
	return append(out, data[end+2:]...)
}

func dkimSignsKadenzHeader(field string) bool {
	_, value, _ := strings.Cut(field, ":")
	for tag := range strings.SplitSeq(value, ";") {
		k, v, ok := strings.Cut(tag, "=")
		if !ok || strings.TrimSpace(k) != "h" {
			continue
		}
		for name := range strings.SplitSeq(v, ":") {
			if strings.HasPrefix(strings.ToLower(strings.Join(strings.Fields(name), "")), kadenzHeaderPrefix) {
				return true
			}
		}
	}
	return false
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
