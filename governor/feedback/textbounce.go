package feedback

import (
	"strings"
)

// Non-standard bounces: MTAs that do not send RFC 3464 reports still follow a
// few shapes (Exim's "Mail delivery failed", Postfix without DSN support,
// qmail and Yahoo's "failure notice", legacy Exchange's "Undeliverable").
// Recognising one takes two signals, so that an automatic reply with a
// worrying word in it is never taken for a bounce.

// daemonLocalParts are the senders bounces come from (RFC 5321 section 4.5.1
// reserves postmaster; MAILER-DAEMON is the tradition).
var daemonLocalParts = []string{"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}

// bounceSubjects start (after case folding) the subject of a bounce.
var bounceSubjects = []string{
	"undelivered mail returned to sender", // Postfix
	"delayed mail (still being retried)",  // Postfix
	"mail delivery failed",                // Exim
	"warning: message",                    // Exim delay warning
	"delivery status notification",        // Google
	"undeliverable",                       // Exchange, Outlook
	"unzustellbar",                        // Exchange, German
	"non remis",                           // Exchange, French
	"failure notice",                      // qmail, Yahoo
	"returned mail",                       // Sendmail
	"delivery failure",
	"mail delivery failure",
	"message not delivered",
	"delivery has failed",
}

// bouncePhrases occur in the human-readable text of a bounce.
var bouncePhrases = []string{
	"this message was created automatically by mail delivery software",
	"could not be delivered to one or more",
	"your message could not be delivered",
	"your message couldn't be delivered",
	"your message wasn't delivered",
	"delivery has failed to these recipients",
	"unable to deliver your message",
	"the following address(es) failed",
	"has not yet been delivered",
	"this is the mail system at host",
	"delivery to the following recipient",
	"message could not be delivered",
}

// delayPhrases mark a notice that delivery is still being tried.
var delayPhrases = []string{
	"has not yet been delivered",
	"still being retried",
	"will continue",
	"will be retried",
	"delivery attempts will continue",
	"delayed",
}

// copyMarkers start the copy of the original message a text bounce appends.
var copyMarkers = []string{
	"------ this is a copy of the message",         // Exim
	"--- below this line is a copy of the message", // qmail, Yahoo
	"--- undelivered message follows ---",          // old Postfix
	"----- original message -----",
	"original message headers:",                      // Exchange
	"----- transcript of session follows -----",      // Sendmail (text only)
	"------ this is a copy of the message's headers", // Exim
}

func (p Parser) parseTextBounce(m *mime, r *Report, c *correlation) bool {
	text := m.text()
	lower := strings.ToLower(text)
	subject := strings.ToLower(r.Subject)
	failed := addressList(m.top.Get("X-Failed-Recipients")) // Exim
	daemon := isDaemon(m.top.Get("From"))
	bySubject := hasPrefixAny(subject, bounceSubjects)
	byText := containsAny(lower, bouncePhrases)
	if !(len(failed) > 0 || daemon && (bySubject || byText) || bySubject && byText) {
		return false
	}
	r.Kind, r.Format = KindBounce, textFormat(m, lower)

	human, copied := splitAtCopy(text)
	c.offerOriginal(m.embeddedHeaders(), p.VERPPrefix)
	if copied != "" {
		c.offerOriginal(parseHeaderBlock([]byte(copied)), p.VERPPrefix)
	}

	rcpts := textRecipients(human)
	seen := map[string]bool{}
	for _, rc := range rcpts {
		seen[rc.Address] = true
	}
	for _, a := range failed {
		if !seen[a] {
			rcpts = append(rcpts, Recipient{Address: a})
			seen[a] = true
		}
	}
	humanLower := strings.ToLower(human)
	delayed := containsAny(humanLower, delayPhrases) || strings.HasPrefix(subject, "warning: message") ||
		strings.HasPrefix(subject, "delayed mail")
	for i := range rcpts {
		rc := &rcpts[i]
		if rc.Status == "" && len(rcpts) == 1 {
			rc.Status = statusCode(human)
		}
		switch {
		case rc.Status != "":
			rc.Action = "failed"
			if rc.Status[0] == '4' && delayed {
				rc.Action = "delayed"
			}
		case delayed:
			rc.Action = "delayed"
		default:
			rc.Action = "failed"
		}
		rc.Bounce, rc.Reason = Classify(rc.Action, rc.Status, rc.Diagnostic)
	}
	if len(rcpts) > maxRecipients {
		rcpts = rcpts[:maxRecipients]
	}
	r.Recipients = rcpts
	return true
}

func textFormat(m *mime, lower string) string {
	switch {
	case m.top.Get("X-Failed-Recipients") != "" || strings.Contains(lower, "created automatically by mail delivery software"):
		return "exim"
	case strings.Contains(lower, "this is the mail system at host"):
		return "postfix-text"
	case strings.Contains(lower, "--- below this line is a copy of the message"):
		return "yahoo-text"
	case strings.Contains(lower, "delivery has failed to these recipients"):
		return "exchange-text"
	}
	return "text"
}

func isDaemon(from string) bool {
	a := bareAddress(from)
	local, _, _ := strings.Cut(a, "@")
	for _, d := range daemonLocalParts {
		if local == d {
			return true
		}
	}
	f := strings.ToLower(from)
	return strings.Contains(f, "mail delivery subsystem") || strings.Contains(f, "mail delivery system")
}

// splitAtCopy splits a text bounce into its explanation and the copy of the
// original message after it (which starts with its header), if any.
func splitAtCopy(text string) (human, copied string) {
	lower := strings.ToLower(text)
	best := -1
	for _, mk := range copyMarkers {
		if i := strings.Index(lower, mk); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	if best < 0 {
		return text, ""
	}
	rest := text[best:]
	if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
		rest = rest[nl+1:]
	} else {
		rest = ""
	}
	return text[:best], rest
}

// textRecipients finds the failed addresses in the explanation of a text
// bounce and the diagnostic that follows each. It knows two layouts: an
// address alone on a line (Exim indents it, Exchange does not), or
// "<address>: diagnostic" (Postfix, qmail, Yahoo), each followed by indented
// or adjacent diagnostic lines up to a blank line.
func textRecipients(human string) []Recipient {
	var out []Recipient
	var cur *Recipient
	sc := lineReader(human)
	for sc.Scan() && len(out) < maxRecipients {
		line := strings.TrimRight(sc.Text(), "\r")
		trim := strings.TrimSpace(line)
		if trim == "" {
			cur = nil
			continue
		}
		if addr, rest, ok := recipientLine(trim); ok {
			// Exchange names each address twice, the second time with the
			// diagnostic for administrators: merge.
			cur = nil
			for i := range out {
				if out[i].Address == addr {
					cur = &out[i]
				}
			}
			if cur == nil {
				out = append(out, Recipient{Address: addr})
				cur = &out[len(out)-1]
			}
			if rest != "" {
				cur.Diagnostic = strings.TrimSpace(cur.Diagnostic + " " + rest)
			}
			if cur.Status == "" {
				cur.Status = statusCode(rest)
			}
			continue
		}
		if cur != nil && len(cur.Diagnostic) < 2048 {
			cur.Diagnostic = strings.TrimSpace(cur.Diagnostic + " " + trim)
			if cur.Status == "" {
				cur.Status = statusCode(trim)
			}
		}
	}
	return out
}

// recipientLine recognises "user@example.org", "<user@example.org>" or
// "<user@example.org>: text" and returns the address and the text.
func recipientLine(s string) (addr, rest string, ok bool) {
	if strings.HasPrefix(s, "<") {
		end := strings.IndexByte(s, '>')
		if end < 0 {
			return "", "", false
		}
		addr = s[1:end]
		rest = strings.TrimSpace(strings.TrimPrefix(s[end+1:], ":"))
	} else {
		// "user@example.org" alone, or followed by a comment in parentheses
		// (Exchange writes the address again there).
		addr, rest, _ = strings.Cut(s, " ")
		rest = strings.TrimSpace(rest)
		if rest != "" && !strings.HasPrefix(rest, "(") {
			return "", "", false
		}
		rest = ""
	}
	if !looksLikeAddress(addr) {
		return "", "", false
	}
	return strings.ToLower(addr), rest, true
}

func looksLikeAddress(a string) bool {
	local, domain, ok := strings.Cut(a, "@")
	return ok && local != "" && strings.Contains(domain, ".") && !strings.ContainsAny(a, " \t<>()[],;:\"") &&
		!strings.HasSuffix(domain, ".")
}

func hasPrefixAny(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func containsAny(s string, subs []string) bool {
	for _, p := range subs {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}
