package report

import (
	"strings"
)

// parseDSN reads a delivery status notification (RFC 3464): a
// multipart/report whose machine-readable part is message/delivery-status
// (or message/global-delivery-status, RFC 6533 section 6). MTAs that forget
// the report-type parameter or wrap the report in multipart/mixed are
// recognised by the part alone.
func (p Parser) parseDSN(m *mime, r *Report, c *correlation) bool {
	ds := m.find("message/delivery-status", "message/global-delivery-status")
	if ds == nil {
		return false
	}
	msg, rcpts := parseDeliveryStatus(ds.body)
	if len(rcpts) == 0 {
		// RFC 3464 section 2.1 requires a per-recipient block; without one
		// the human-readable part is all there is (parseTextBounce).
		return false
	}
	r.Format = "rfc3464"
	r.Reporter = mtaName(msg.get("reporting-mta"))
	if len(rcpts) == 1 && rcpts[0].Bounce != NoBounce && !hasReason(rcpts[0].Status, rcpts[0].Diagnostic) {
		// No diagnostic that names a reason: the human-readable part of
		// a report about one recipient speaks about them.
		if text := m.text(); text != "" {
			if len(text) > 4096 {
				text = text[:4096]
			}
			rc := &rcpts[0]
			rc.Bounce, rc.Reason = Classify(rc.Action, rc.Status, rc.Diagnostic+"\n"+text)
		}
	}
	r.Recipients = rcpts
	// RFC 3464 section 2.2.1: the ENVID we gave in MAIL FROM comes back here.
	c.offerEnvelope(xtextDecode(msg.get("original-envelope-id")), SourceENVID)
	c.offerOriginal(m.embeddedHeaders(), p.VERPPrefix)

	r.Kind = KindDelivered
	for _, rc := range rcpts {
		if rc.Bounce != NoBounce {
			r.Kind = KindBounce
		}
	}
	return true
}

// parseDeliveryStatus parses the body of a message/delivery-status part
// (RFC 3464 section 2.1): per-message fields, then one block of fields per
// recipient. Blocks are normally separated by blank lines; a new block also
// starts where a recipient field repeats, for MTAs that leave the blank line
// out.
func parseDeliveryStatus(body []byte) (fields, []Recipient) {
	var msg fields
	var groups []fields
	for _, b := range parseBlocks(body) {
		var cur fields
		hasFinal, hasOrig := false, false
		for _, f := range b {
			switch f.name {
			// RFC 3464 puts Original-Recipient first; Postfix puts it
			// second. Either way it belongs with a Final-Recipient unless
			// that one's fields have begun.
			case "final-recipient":
				if hasFinal || hasOrig && cur.get("action") != "" {
					groups = append(groups, cur)
					cur, hasOrig = nil, false
				}
				hasFinal = true
			case "original-recipient":
				if hasOrig || hasFinal && cur.get("action") != "" {
					groups = append(groups, cur)
					cur, hasFinal = nil, false
				}
				hasOrig = true
			case "reporting-mta", "original-envelope-id", "arrival-date", "received-from-mta", "dsn-gateway":
				if !hasFinal && !hasOrig {
					msg = append(msg, f)
					continue
				}
			}
			cur = append(cur, f)
		}
		if len(cur) > 0 {
			groups = append(groups, cur)
		}
	}
	var rcpts []Recipient
	for _, g := range groups {
		final, orig := g.get("final-recipient"), g.get("original-recipient")
		if final == "" && orig == "" {
			continue
		}
		rc := Recipient{
			Address:         mailbox(final),
			OriginalAddress: mailbox(orig),
			Action:          strings.ToLower(firstWord(g.get("action"))),
			Diagnostic:      diagnosticText(g.get("diagnostic-code")),
			RemoteMTA:       mtaName(g.get("remote-mta")),
		}
		if rc.Address == "" {
			rc.Address = rc.OriginalAddress
		}
		if rc.Address == "" {
			continue // no mailbox named: nothing to apply it to
		}
		rc.Status = statusCode(g.get("status"))
		if rc.Status == "" {
			rc.Status = statusCode(rc.Diagnostic)
		}
		rc.Bounce, rc.Reason = Classify(rc.Action, rc.Status, rc.Diagnostic)
		rcpts = append(rcpts, rc)
		if len(rcpts) >= maxRecipients {
			break
		}
	}
	return msg, rcpts
}

// maxRecipients bounds the recipients reported from one message.
const maxRecipients = 500

// statusCode finds the first status code in s: an enhanced code
// (class.subject.detail, RFC 3463 section 2), or else a basic SMTP reply
// code at the start of a word (RFC 5321 section 4.2), mapped to X.0.0.
func statusCode(s string) string {
	if len(s) > 4096 {
		s = s[:4096]
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '2' || c > '5' || c == '3' || (i > 0 && isDigitOrDot(s[i-1])) {
			continue
		}
		if code, ok := enhancedAt(s, i); ok {
			return code
		}
	}
	for i := 0; i+3 <= len(s); i++ {
		if (s[i] == '4' || s[i] == '5') && isDigit(s[i+1]) && isDigit(s[i+2]) &&
			(i == 0 || !isIDChar(s[i-1]) && s[i-1] != '.') &&
			(i+3 == len(s) || !isIDChar(s[i+3]) && s[i+3] != '.') {
			return s[i:i+1] + ".0.0"
		}
	}
	return ""
}

// enhancedAt parses class "." subject "." detail at s[i:], with 1-3 digit
// subject and detail.
func enhancedAt(s string, i int) (string, bool) {
	j := i + 1
	if j >= len(s) || s[j] != '.' {
		return "", false
	}
	j++
	for part := 0; part < 2; part++ {
		k := j
		for k < len(s) && k-j < 3 && isDigit(s[k]) {
			k++
		}
		if k == j {
			return "", false
		}
		j = k
		if part == 0 {
			if j >= len(s) || s[j] != '.' {
				return "", false
			}
			j++
		}
	}
	if j < len(s) && (isDigit(s[j]) || s[j] == '.' && j+1 < len(s) && isDigit(s[j+1])) {
		return "", false // part of a longer number, an IP address or version
	}
	return s[i:j], true
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isDigitOrDot(c byte) bool { return isDigit(c) || c == '.' }
func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// diagnosticText drops the diagnostic type ("smtp;", "X-Postfix;", RFC 3464
// section 2.3.6) from a Diagnostic-Code value.
func diagnosticText(v string) string {
	if t, rest, ok := strings.Cut(v, ";"); ok && !strings.ContainsAny(strings.TrimSpace(t), " \t") {
		return strings.TrimSpace(rest)
	}
	return strings.TrimSpace(v)
}

// mtaName drops the "dns;" type from a Reporting-MTA or Remote-MTA value.
func mtaName(v string) string {
	return strings.ToLower(diagnosticText(v))
}

// xtextDecode decodes RFC 3461 section 4 xtext (+XX hex escapes), used by
// Original-Envelope-Id.
func xtextDecode(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i+2 < len(s) {
			if v, ok := unhex(s[i+1], s[i+2]); ok {
				b.WriteByte(v)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(a, b byte) (byte, bool) {
	h := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, true
		}
		return 0, false
	}
	x, ok1 := h(a)
	y, ok2 := h(b)
	return x<<4 | y, ok1 && ok2
}
