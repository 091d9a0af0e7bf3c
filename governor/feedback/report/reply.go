package report

import (
	"html"
	"regexp"
	"strings"
)

// replyPrefixes start the subject of a reply in common mail clients' languages
// (RFC 5322 section 3.6.5 suggests "Re: ").
var replyPrefixes = []string{"re:", "re :", "aw:", "sv:", "antw:", "vs:", "r:", "res:", "ynt:", "odp:", "atb:"}

// unsubscribeSubjects are what a mailto: unsubscribe request says in its
// subject (RFC 2369 section 3.2 examples use ?subject=unsubscribe).
var unsubscribeSubjects = []string{"unsubscribe", "abbestellen", "abmelden", "désabonner", "desabonner", "remove me"}

// parseUnsubscribe recognises a request sent to our mailto: List-Unsubscribe
// address: it is addressed to unsubscribe@ or unsubscribe+ID@, or its subject
// (or, for an empty subject, its first line) says unsubscribe. A person who
// writes "please stop" in a reply to a campaign is a reply, not this: a human
// should read it.
//
// For generated mail (a list server's notice, say) only the address
// counts: its subject is not a person asking.
func (p Parser) parseUnsubscribe(m *mime, r *Report, c *correlation, generated bool) bool {
	toUs := false
	for _, h := range []string{"Delivered-To", "X-Original-To", "To"} {
		for _, a := range addressList(strings.Join(m.top.Values(h), ",")) {
			local, _, _ := strings.Cut(a, "@")
			base, tag, _ := strings.Cut(local, "+")
			if strings.EqualFold(base, p.UnsubscribePrefix) {
				toUs = true
				c.offerEnvelope(tag, SourceVERP)
			}
		}
	}
	subject := strings.ToLower(strings.TrimSpace(r.Subject))
	text := m.text()
	asks := hasPrefixAny(subject, unsubscribeSubjects)
	if subject == "" {
		asks = hasPrefixAny(strings.ToLower(strings.TrimSpace(text)), unsubscribeSubjects)
	}
	if !toUs && (!asks || generated) {
		return false
	}
	r.Kind, r.Format = KindUnsubscribe, "mailto"
	r.Recipient = mailbox(m.top.Get("From"))
	if id, ok := findEnvelopeID(r.Subject); ok {
		c.offerEnvelope(id, SourceSubject)
	}
	r.Reply = p.replyOf(m, text, c)
	return true
}

// parseReply recognises a person writing back: a message that answers
// another (In-Reply-To or References, RFC 5322 section 3.6.4, or a reply
// subject) and that nothing before took for a report or an automatic reply.
func (p Parser) parseReply(m *mime, r *Report, c *correlation) bool {
	subject := strings.ToLower(strings.TrimSpace(r.Subject))
	if m.top.Get("In-Reply-To") == "" && m.top.Get("References") == "" && !hasPrefixAny(subject, replyPrefixes) {
		return false
	}
	r.Kind, r.Format = KindReply, "reply"
	r.Recipient = mailbox(m.top.Get("From"))
	r.Reply = p.replyOf(m, m.text(), c)
	r.Reply.Text = stripQuoted(r.Reply.Text)
	return true
}

func (p Parser) replyOf(m *mime, text string, c *correlation) *Reply {
	rp := &Reply{
		InReplyTo:  messageIDs(m.top.Get("In-Reply-To")),
		References: messageIDs(m.top.Get("References")),
	}
	if len(rp.InReplyTo) > 0 {
		c.offerMessageID(rp.InReplyTo[0])
	}
	if len(rp.References) > 0 {
		// The first reference is the start of the thread: our mail, when a
		// recipient answers an answer.
		c.offerMessageID(rp.References[0])
	}
	if len(text) > maxReplyText {
		text = text[:maxReplyText]
	}
	rp.Text = strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n"))
	return rp
}

// attribution matches the lines mail clients put above quoted text.
var attribution = regexp.MustCompile(`(?i)^(` +
	`-+ ?(original message|ursprüngliche nachricht|message d'origine|mensaje original|messaggio originale) ?-+` +
	`|_{8,}` +
	`|(from|von|de|da|van|från): .+` +
	`|.*\b(wrote|schrieb|a écrit|escribió|ha scritto|schreef|skrev)\b.*:` +
	`)\s*$`)

// stripQuoted cuts a reply's text at the first attribution line ("On ...
// wrote:", "-----Original Message-----", Outlook's rule and From: block)
// and drops remaining lines quoted with ">". It errs on the side of keeping
// text: a person reads the result.
func stripQuoted(text string) string {
	lines := strings.Split(text, "\n")
	var out []string
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if attribution.MatchString(t) {
			break
		}
		// An attribution wrapped over two lines: "On Tue, 3 Mar 2026, Shop
		// <news@shop.example>" / "wrote:".
		if i+1 < len(lines) && strings.HasPrefix(strings.ToLower(t), "on ") &&
			attribution.MatchString(strings.TrimSpace(lines[i+1])) {
			break
		}
		if strings.HasPrefix(t, ">") {
			continue
		}
		out = append(out, strings.TrimRight(l, " \t\r"))
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

var (
	htmlDrop  = regexp.MustCompile(`(?is)<(script|style|head)\b.*?</(script|style|head)\s*>|<blockquote\b.*?</blockquote\s*>`)
	htmlBreak = regexp.MustCompile(`(?i)<\s*(br|/p|/div|/tr|/li|/h[1-6])\b[^>]*>`)
	htmlTag   = regexp.MustCompile(`<[^>]*>`)
	blankRuns = regexp.MustCompile(`\n[ \t]*(\n[ \t]*)+`)
)

// htmlToText reduces an HTML body to readable text: enough for a person to
// read a reply that came without a text/plain part. Quoted blocks
// (<blockquote>) go, as in stripQuoted.
func htmlToText(s string) string {
	if len(s) > maxReplyText*4 {
		s = s[:maxReplyText*4]
	}
	s = htmlDrop.ReplaceAllString(s, "")
	s = htmlBreak.ReplaceAllString(s, "\n")
	s = htmlTag.ReplaceAllString(s, "")
	s = html.UnescapeString(s)
	s = strings.ReplaceAll(s, "\u00a0", " ")
	return strings.TrimSpace(blankRuns.ReplaceAllString(s, "\n\n"))
}
