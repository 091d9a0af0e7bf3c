package report

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
	"delivery status notification: error", // OpenSMTPD
	"delivery status notification: delay",
	"delivery_failure",                           // Lotus Domino
	"delivery failure:",                          // Lotus Domino
	"undeliverable mail",                         // IMail, Trend Micro
	"undelivered mail",                           //
	"returned mail:",                             // Sendmail
	"mail system error",                          // au (KDDI) and other carriers
	"notice: mail delivery status",               // Courier
	"nondeliverable mail",                        //
	"delivery notification: delivery has failed", // Exchange 2003
	"warning: could not send message",            // Sendmail delay warning
	"mail could not be delivered",                //
	"message delivery failure",                   //
	"your message could not be delivered",
	"unzustellbare nachricht", //
	"メール配信エラー",                // Japanese carriers
	"配信不能",                    //
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
	"this is the qmail-send program",                     // qmail
	"i wasn't able to deliver your message",              // qmail
	"this is the mailer-daemon, please do not reply",     // OpenSMTPD
	"an error has occurred while attempting to deliver",  // OpenSMTPD
	"there was an error delivering your mail",            // dma
	"did not reach the following recipient",              // Exchange 2003
	"was not delivered to:",                              // Lotus Domino
	"the following addresses had permanent fatal errors", // Sendmail
	"the following addresses had transient non-fatal errors",
	"transcript of session follows",                                // Sendmail
	"unable to deliver message to",                                 // Trend Micro
	"could not be delivered to the following",                      // au (KDDI)
	"your message cannot be delivered to the following recipients", // Sun/Oracle Messaging Server
	"delivery failed for the following recipient",
	"smtp error from remote",                        // Exim-style hosted (GMX, 1&1)
	"error code :",                                  // Zoho
	"delivery to the following recipients failed",   // Exchange 2007+ text
	"delivery to these recipients or groups failed", // Office 365 text
	"次のアドレスには",                                      // Japanese carriers
	"送信できませんでした",                                    //
}

// delayPhrases mark a notice that delivery is still being tried.
var delayPhrases = []string{
	"has not yet been delivered",
	"still being retried",
	"will continue",
	"will be retried",
	"delivery attempts will continue",
	"delayed",
	"will retry",
	"transient non-fatal errors", // Sendmail
	"temporary error",
	"not yet been delivered",
}

// copyMarkers start the copy of the original message a text bounce appends.
var copyMarkers = []string{
	"------ this is a copy of the message",         // Exim
	"--- below this line is a copy of the message", // qmail, Yahoo
	"--- undelivered message follows ---",          // old Postfix
	"----- original message -----",
	"original message headers:",                       // Exchange
	"------ this is a copy of the message's headers",  // Exim
	"below is a copy of the original message",         // OpenSMTPD
	"original message follows",                        // IMail, Sendmail
	"unsent message follows",                          // Sendmail V5
	"message headers follow",                          // dma
	"------ original message headers",                 //
	"the header of the original message is following", // Zoho and other hosted
	"------- returned message --------",               //
	"----- message header follows -----",              // Sendmail
}

func (p Parser) parseTextBounce(m *mime, r *Report, c *correlation) bool {
	text := m.text()
	if len(text) > maxBounceText {
		text = text[:maxBounceText]
	}
	lower := strings.ToLower(text)
	failed, isBounce := textBounceSigns(m, r, lower)
	if !isBounce {
		return false
	}
	r.Kind, r.Format = KindBounce, textFormat(m, lower)

	human, copied := splitAtCopy(text)
	c.offerOriginal(m.embeddedHeaders(), p.VERPPrefix)
	if copied != "" {
		c.offerOriginal(parseHeaderBlock([]byte(copied)), p.VERPPrefix)
	}
	rcpts := textRecipients(human, p.VERPPrefix, ourAddresses(m, copied))
	if len(rcpts) == 0 {
		// Broken MIME kept as text, or a delivery-status part labelled
		// text/plain, may still hold the report's fields.
		for _, pt := range m.parts {
			if pt.mediaType != "text/plain" {
				continue
			}
			if _, ds := parseDeliveryStatus(pt.body); len(ds) > 0 {
				r.Format = "rfc3464-text"
				r.Recipients = ds
				return true
			}
		}
	}
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
	if len(rcpts) == 0 {
		rcpts = append(rcpts, Recipient{Address: copiedRecipient(m, copied)})
	}
	judgeTextRecipients(rcpts, r.Subject, human)
	if len(rcpts) > maxRecipients {
		rcpts = rcpts[:maxRecipients]
	}
	r.Recipients = rcpts
	return true
}

// textBounceSigns says whether a message without a usable delivery-status
// part is a bounce, from its subject, its text (lower case), its sender
// and report type; failed lists the addresses an X-Failed-Recipients
// header (Exim's) names, which make it one on their own.
func textBounceSigns(m *mime, r *Report, lower string) (failed []string, isBounce bool) {
	for _, a := range addressList(m.top.Get("X-Failed-Recipients")) {
		if a = mailbox(a); a != "" {
			failed = append(failed, a)
		}
	}
	subject := strings.ToLower(r.Subject)
	daemon := isDaemon(m.top.Get("From"))
	bySubject := hasPrefixAny(subject, bounceSubjects) || containsAny(subject, bounceSubjectPhrases)
	byText := containsAny(lower, bouncePhrases)
	// A delivery-status report whose machine-readable part was missing or
	// empty (parseDSN declined it) is a bounce by its own declaration.
	byReport := m.find("message/delivery-status", "message/global-delivery-status") != nil ||
		m.mediaType == "multipart/report" && strings.EqualFold(m.params["report-type"], "delivery-status")
	return failed, len(failed) > 0 || byReport || daemon && (bySubject || byText) || bySubject && byText
}

// ourAddresses are the addresses that are never the failed recipient: the
// bounce's own addressee (our return path) and the original's sender, as
// the bounce's header and the copy of the original name them.
func ourAddresses(m *mime, copied string) map[string]bool {
	ours := map[string]bool{}
	for _, h := range []string{"To", "Delivered-To", "X-Original-To", "Return-Path"} {
		for _, a := range addressList(m.top.Get(h)) {
			ours[a] = true
		}
	}
	for _, orig := range []fields{m.embeddedHeaders(), parseHeaderBlock([]byte(copied))} {
		for _, h := range []string{"from", "sender", "return-path", "reply-to"} {
			for _, a := range addressList(orig.get(h)) {
				ours[a] = true
			}
		}
	}
	return ours
}

// copiedRecipient is the recipient of a bounce whose explanation names
// nobody we can read: the one address the copy of our message was sent
// to, if it names one; else "" (the bounce is still one, for the envelope
// its return path names: the relay resolves it).
func copiedRecipient(m *mime, copied string) string {
	var to []string
	if copied != "" {
		to = addressList(parseHeaderBlock([]byte(copied)).get("to"))
	}
	if len(to) == 0 {
		to = addressList(m.embeddedHeaders().get("to"))
	}
	if len(to) == 1 {
		return mailbox(to[0])
	}
	return ""
}

// judgeTextRecipients sets each recipient's action (delayed or failed),
// status, diagnostic and classification from what the bounce's human part
// and subject say.
func judgeTextRecipients(rcpts []Recipient, subjectLine, human string) {
	subject := strings.ToLower(subjectLine)
	humanLower := strings.ToLower(human)
	delayed := containsAny(humanLower, delayPhrases) || strings.HasPrefix(subject, "warning: message") ||
		strings.HasPrefix(subject, "delayed mail") || strings.Contains(subject, "delay") ||
		strings.HasPrefix(subject, "warning: could not send")
	permanent := containsAny(humanLower, permanentPhrases)
	for i := range rcpts {
		rc := &rcpts[i]
		diag := rc.Diagnostic
		if len(rcpts) == 1 && !hasReason(rc.Status, diag) {
			// One recipient and nothing specific next to the address: the
			// whole explanation (and the subject, Lotus Domino puts the
			// reason there) is about them.
			diag = strings.TrimSpace(subjectLine + "\n" + diag + "\n" + human)
			if rc.Status == "" {
				rc.Status = statusCode(diag)
			}
			if rc.Diagnostic == "" {
				rc.Diagnostic = firstLines(human, 300)
			}
		}
		switch {
		case delayed && !permanent && (rc.Status == "" || rc.Status[0] == '4'):
			rc.Action = "delayed"
		default:
			rc.Action = "failed"
		}
		rc.Bounce, rc.Reason = Classify(rc.Action, rc.Status, diag)
	}
}

// maxBounceText bounds the text of a bounce that is searched.
const maxBounceText = 64 << 10

// bounceSubjectPhrases occur anywhere in a bounce's subject.
var bounceSubjectPhrases = []string{"undeliverable", "delivery failure", "returned mail", "delivery status notification",
	"mail delivery failed", "non-delivery", "nondelivery", "undelivered", "failure notice", "unzustellbar"}

// permanentPhrases say the MTA gave up, which overrides a "will retry"
// elsewhere in the same text.
var permanentPhrases = []string{"permanent error", "permanent fatal", "i've given up", "i have given up",
	"giving up", "gave up", "has been rejected", "delivery has failed"}

// hasReason reports whether a status or diagnostic names a reason of its
// own (not the generic fallback).
func hasReason(status, diag string) bool {
	if diag == "" && (status == "" || strings.HasSuffix(status, ".0.0")) {
		return false
	}
	rs, _ := matchReason(status, diag)
	return rs != ReasonOther
}

// firstLines returns the start of s with runs of white space folded, at
// most n bytes.
func firstLines(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n]
	}
	return s
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
	// A copy of the original without a marker line: its header starts
	// with Return-Path or Received at the start of a line.
	for _, mk := range []string{"\nreturn-path: <", "\nreceived: from "} {
		if i := strings.Index(lower, mk); i >= 0 && (best < 0 || i < best) {
			return text[:i+1], text[i+1:]
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
// bounce and the diagnostic that follows each. Layouts seen in the wild:
//
//   - the address alone on a line, or followed by a comment or a date
//     (Exim indents it, Exchange 2003 adds "on DATE", Domino lists it);
//   - "<address>: diagnostic" or "address: diagnostic" (Postfix, qmail,
//     OpenSMTPD, Yahoo, Trend Micro), "address, ERROR CODE ..." (Zoho),
//     "\"address\":" (GMX, 1&1);
//   - "NNN <address>... diagnostic" (Sendmail's transcript);
//   - "Label: address" (IMail's "Unknown user: address", Sun's "Recipient
//     address: address");
//   - an <address> inside a sentence about delivery (dma, Trend Micro).
//
// Each is followed by indented or adjacent diagnostic lines up to a blank
// line. Our own addresses (the VERP return path) and postmaster-type
// addresses are never recipients.
func textRecipients(human, verpPrefix string, ours map[string]bool) []Recipient {
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
		if addr, rest, ok := recipientLine(trim); ok && !notRecipient(addr, verpPrefix) && !ours[addr] {
			// Exchange and Sendmail name each address twice, the second
			// time with the diagnostic: merge.
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
			if rest != "" && len(cur.Diagnostic) < 2048 {
				cur.Diagnostic = strings.TrimSpace(cur.Diagnostic + " " + rest)
			}
			if statusCode(rest) == "" && statusCode(trim) != "" {
				// The code came before the address ("550 5.1.1 <a>: ..."):
				// keep it with the diagnostic.
				cur.Diagnostic = strings.TrimSpace(cur.Diagnostic + " " + trim)
			}
			continue
		}
		if cur != nil && len(cur.Diagnostic) < 2048 {
			cur.Diagnostic = strings.TrimSpace(cur.Diagnostic + " " + trim)
		}
	}
	// The code may be wrapped onto the next line ("said: 552\n 5.2.2"):
	// read it from the whole diagnostic, enhanced codes first.
	for i := range out {
		out[i].Status = statusCode(out[i].Diagnostic)
	}
	return out
}

// notRecipient reports addresses a bounce names that are not the failed
// recipient: our VERP return path, postmaster and daemon addresses.
func notRecipient(addr, verpPrefix string) bool {
	if _, ok := EnvelopeIDFromVERP(addr, verpPrefix); ok {
		return true
	}
	local, _, _ := strings.Cut(addr, "@")
	for _, d := range daemonLocalParts {
		if local == d {
			return true
		}
	}
	return false
}

// headerLabels are the field names a bounce repeats from the original
// ("To: address"); a line so labelled names no failure.
var headerLabels = []string{"to", "from", "cc", "bcc", "sender", "reply-to", "return-path", "subject", "sent",
	"date", "message-id", "envelope-to", "delivered-to", "x-original-to", "original-mail-from", "mail from",
	"reporting-mta", "received-from-mta", "x-postfix-sender", "for", "an", "von", "de", "a", "à", "envelope-from"}

// deliveryWords in a sentence make an <address> inside it a recipient.
var deliveryWords = []string{"deliver", "recipient", "address", "mailbox", "user", "rcpt", "not", "failed",
	"error", "unable", "rejected", "unknown", "宛", "送信", "配信"}

// recipientLine recognises a line that names a failed recipient (see
// textRecipients) and returns the address and the text about it.
func recipientLine(s string) (addr, rest string, ok bool) {
	// "NNN <address>... text" and "NNN address... text" (Sendmail).
	if len(s) > 4 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2]) && (s[3] == ' ' || s[3] == '-') {
		t := strings.TrimSpace(s[4:])
		if code, r, ok := strings.Cut(t, " "); ok && len(code) >= 5 && isDigit(code[0]) && code[1] == '.' {
			t = r // the enhanced code after the reply code
		}
		if a, r, ok := strings.Cut(t, "..."); ok {
			if addr := mailbox(a); addr != "" {
				return addr, strings.TrimSpace(s[:4] + r), true
			}
		}
	}
	// The address first: "<a>", "<a>: text", "a", "a (comment)", "a on
	// DATE", "a: text", "\"a\":", "a, ERROR CODE ...", "<a>... text".
	first, after := cutToken(s)
	if a := mailbox(strings.Trim(first, "\"")); a != "" && looksLikeAddress(a) {
		rest = strings.TrimSpace(after)
		rest = strings.TrimSpace(strings.TrimLeft(rest, ":,.;-"))
		if strings.HasPrefix(rest, "(") && strings.HasSuffix(rest, ")") && strings.Contains(rest, "@") {
			rest = "" // Exchange repeats the address in parentheses
		}
		return a, rest, true
	}
	// "Label: address" (IMail, Sun Messaging Server).
	if label, v, ok := strings.Cut(s, ":"); ok && !strings.ContainsAny(label, "<>@") && len(label) < 60 {
		l := strings.ToLower(strings.TrimSpace(label))
		if a := mailbox(strings.TrimSpace(v)); a != "" && !strings.ContainsAny(strings.TrimSpace(v), " \t") && !contains(headerLabels, l) {
			return a, strings.TrimSpace(label), true
		}
	}
	// "<address>" inside a sentence about delivery (dma: "There was an
	// error delivering your mail to <a>.").
	if i := strings.IndexByte(s, '<'); i > 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			lower := strings.ToLower(s)
			if a := mailbox(s[i : i+j+1]); a != "" && containsAny(lower, deliveryWords) &&
				!strings.HasPrefix(lower, ">>>") && !strings.HasPrefix(lower, "<<<") &&
				!strings.HasPrefix(lower, "from") && !strings.HasPrefix(lower, "to:") {
				return a, s, true
			}
		}
	}
	return "", "", false
}

// cutToken splits s at its first space (or CJK punctuation, which
// Japanese bounces put right after an address), keeping an <address>
// whole.
func cutToken(s string) (first, rest string) {
	if strings.HasPrefix(s, "<") {
		if j := strings.IndexByte(s, '>'); j > 0 {
			return s[:j+1], s[j+1:]
		}
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || strings.ContainsRune("。、，：；（", r) }); i >= 0 {
		first, rest = s[:i], s[i:]
	} else {
		first = s
	}
	if a, r, ok := strings.Cut(first, "..."); ok { // "<a>...User"
		return a, r + " " + rest
	}
	return first, rest
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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
