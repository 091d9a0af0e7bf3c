package feedback

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/quotedprintable"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"kadenz/config"
	"kadenz/governor/engine"
	"kadenz/governor/feedback/report"
	"kadenz/scoring"
	"kadenz/store"
)

// A person takes over when a person writes back.
//
// A human reply to marketing mail pauses marketing to its writer for
// feedback.reply_pause (profile PausedUntil, reason "human-reply"), and is
// forwarded to feedback.team_address with what a person needs to answer:
// what the recipient was sent lately, their engagement, and Kadenz's last
// decisions. The forward is stored as transactional mail to the team, so
// it is durable and leaves through the normal delivery queue (smarthost or
// outbox) like any receipt. Automatic replies (away notices) never get
// here: they are a different kind of report.
//
// The engine honours pauses and the suppression list before it asks the
// model (gate, below).

// contextReleases is how many recent releases the forward lists.
const contextReleases = 10

// forwardReply stores the forward of a human reply to the team address;
// raw, when known, is the reply as received, attached whole.
func (f *Applier) forwardReply(rep report.Report, s signal, raw []byte) error {
	team := f.config().Feedback.TeamAddress
	if team == "" {
		return nil
	}
	now := f.now()
	id := f.newMessageID(now)
	body, err := f.forwardBody(rep, s, id, now, raw)
	if err != nil {
		return err
	}
	msg := store.Message{
		ID: id, Received: now, Size: len(body), Class: config.ClassTransactional,
		ClassReason: "forward of a human reply to " + team, HeaderID: id + "@" + f.config().Hostname,
	}
	// The null return path: the forward is machine-made, and a bounce of
	// it must not start a loop (RFC 3834 section 3.3, RFC 5321 4.5.5).
	express := func(_ int, e *store.Envelope) { e.Express = true } // a person is waiting
	if _, err := f.db.AcceptWith(msg, body, []string{team}, now, express); err != nil {
		return err
	}
	f.kickDelivery()
	f.log.Info("human reply forwarded", "recipient", s.rcpt, "team", team, "message", id)
	return nil
}

// forwardBody composes the forward: the context a person needs (see
// replyContext), then the reply itself.
func (f *Applier) forwardBody(rep report.Report, s signal, id string, now time.Time, raw []byte) ([]byte, error) {
	ctx, err := f.replyContext(s)
	if err != nil {
		return nil, err
	}
	cfg := f.config()
	var msg bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&msg, "%s: %s\r\n", textproto.CanonicalMIMEHeaderKey(k), v) }
	h("From", "Kadenz <kadenz@"+cfg.Hostname+">")
	h("To", cfg.Feedback.TeamAddress)
	h("Reply-To", s.rcpt)
	h("Subject", encodeWord("Reply from "+s.rcpt+": "+rep.Subject))
	h("Date", now.Format(time.RFC1123Z))
	h("Message-Id", "<"+id+"@"+cfg.Hostname+">")
	h("Auto-Submitted", "auto-generated") // RFC 3834: no auto-reply to this
	h("X-Kadenz-Forwarded-Reply", s.rcpt)
	h("Mime-Version", "1.0")
	text := ctx.text(rep, s.rcpt, f.engine.Memory().HalfLife)
	if raw == nil {
		writeQPText(&msg, text)
		return msg.Bytes(), nil
	}
	// The context first, then the reply itself as it arrived (RFC 2046
	// section 5.2.1: message/rfc822 takes no transfer encoding but 7bit or
	// 8bit, so the original is carried unchanged, lines ending in CRLF).
	original := crlf(raw)
	boundary := "kadenz-forward-" + id
	for bytes.Contains(original, []byte("--"+boundary)) {
		boundary += "-x"
	}
	h("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	msg.WriteString("\r\nThis is a forwarded reply in MIME format.\r\n")
	msg.WriteString("\r\n--" + boundary + "\r\n")
	writeQPText(&msg, text)
	msg.WriteString("\r\n--" + boundary + "\r\n")
	cte := "7bit"
	if slices.ContainsFunc(original, func(c byte) bool { return c >= 0x80 }) {
		cte = "8bit"
	}
	fmt.Fprintf(&msg, "Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"reply.eml\"\r\nContent-Transfer-Encoding: %s\r\n\r\n", cte)
	msg.Write(original)
	if !bytes.HasSuffix(original, []byte("\r\n")) {
		msg.WriteString("\r\n")
	}
	msg.WriteString("\r\n--" + boundary + "--\r\n")
	return msg.Bytes(), nil
}

// replyContext is what the team is told about the person who replied:
// their profile, the mail they were sent lately (or have waiting), and
// Kadenz's last decisions on it.
type replyContext struct {
	profile   *scoring.Profile
	sent      []string // one line per envelope
	decisions []envelopeDecision
}

type envelopeDecision struct {
	env string
	rec engine.Record
}

func (f *Applier) replyContext(s signal) (*replyContext, error) {
	stored, err := f.db.Profile(s.rcpt)
	if err != nil {
		return nil, err
	}
	p, err := scoring.DecodeProfile(stored)
	if err != nil {
		return nil, err
	}
	c := &replyContext{profile: p}
	var ids []string
	for i := len(p.History) - 1; i >= 0 && len(ids) < contextReleases; i-- {
		ids = append(ids, p.History[i].MessageID)
	}
	if len(ids) == 0 && s.envelopeID != "" {
		ids = append(ids, s.envelopeID)
	}
	if held, err := f.db.LoadRecipient(s.rcpt); err == nil {
		for _, e := range held.Held {
			if !slices.Contains(ids, e.ID) {
				ids = append(ids, e.ID)
			}
		}
	}
	for _, eid := range ids {
		e, err := f.db.Envelope(eid)
		if err != nil {
			continue
		}
		c.sent = append(c.sent, fmt.Sprintf("%s  %-10s  %q  (envelope %s)",
			e.Created.UTC().Format("2006-01-02 15:04"), e.State, f.subjectOf(e.MessageID), e.ID))
		var recs []engine.Record
		if raw, _ := f.db.Decisions(e.ID); raw != nil {
			json.Unmarshal(raw, &recs)
		}
		for _, rec := range recs {
			c.decisions = append(c.decisions, envelopeDecision{e.ID, rec})
		}
	}
	slices.SortStableFunc(c.decisions, func(a, b envelopeDecision) int { return b.rec.DecidedAt.Compare(a.rec.DecidedAt) })
	if len(c.decisions) > contextReleases {
		c.decisions = c.decisions[:contextReleases]
	}
	return c, nil
}

// text is the forward's readable part: who wrote, their reply quoted, and
// the context.
func (c *replyContext) text(rep report.Report, rcpt string, halfLife time.Duration) string {
	var text strings.Builder
	p := c.profile
	fmt.Fprintf(&text, "%s wrote back to marketing mail in their own words.\n", rcpt)
	if !p.PausedUntil.IsZero() {
		fmt.Fprintf(&text, "Kadenz pauses marketing mail to them until %s (reason: human reply) so that a person answers first.\n",
			p.PausedUntil.UTC().Format(time.RFC1123))
	}
	fmt.Fprintf(&text, "Answering this message answers them (Reply-To).\n\n")

	fmt.Fprintf(&text, "----- Their reply -----\n")
	fmt.Fprintf(&text, "From: %s\nSubject: %s\n", rep.From, rep.Subject)
	if !rep.Date.IsZero() {
		fmt.Fprintf(&text, "Date: %s\n", rep.Date.Format(time.RFC1123Z))
	}
	text.WriteString("\n")
	replyText := "(no text)"
	if rep.Reply != nil && strings.TrimSpace(rep.Reply.Text) != "" {
		replyText = rep.Reply.Text
	}
	for _, line := range strings.Split(strings.TrimRight(replyText, "\n"), "\n") {
		text.WriteString("> " + line + "\n")
	}

	fmt.Fprintf(&text, "\n----- What they were sent lately -----\n")
	if len(c.sent) == 0 {
		text.WriteString("(nothing Kadenz still knows of)\n")
	}
	for _, line := range c.sent {
		text.WriteString(line + "\n")
	}

	fmt.Fprintf(&text, "\n----- Engagement (decayed counts, half-life %d days) -----\n", int(halfLife.Hours()/24))
	fmt.Fprintf(&text, "sends %.1f, opens %.1f, clicks %.1f, replies %.1f\n", p.All.Sends, p.All.Opens, p.All.Clicks, p.All.Replies)
	for _, stop := range []struct {
		name string
		at   time.Time
	}{{"unsubscribed", p.Unsubscribed}, {"complained", p.Complained}, {"hard bounce", p.HardBounced}, {"away until", p.AwayUntil}} {
		if !stop.at.IsZero() {
			fmt.Fprintf(&text, "%s: %s\n", stop.name, stop.at.UTC().Format(time.RFC3339))
		}
	}
	if p.SoftBounces > 0 {
		fmt.Fprintf(&text, "soft bounces: %d since %s\n", p.SoftBounces, p.SoftBounceSince.UTC().Format(time.RFC3339))
	}

	fmt.Fprintf(&text, "\n----- Kadenz's last decisions -----\n")
	if len(c.decisions) == 0 {
		text.WriteString("(none)\n")
	}
	for _, d := range c.decisions {
		fmt.Fprintf(&text, "%s  %s %s: %s\n", d.rec.DecidedAt.UTC().Format("2006-01-02 15:04"), d.env, d.rec.Action, d.rec.Explanation)
	}
	return text.String()
}

// writeQPText writes a text/plain part's header fields and its body,
// quoted-printable.
func writeQPText(msg *bytes.Buffer, text string) {
	msg.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(msg)
	qp.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n")))
	qp.Close()
}

// crlf returns p with every line ending CRLF (a bare LF or CR becomes CRLF).
func crlf(p []byte) []byte {
	out := make([]byte, 0, len(p)+len(p)/50)
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\r':
			out = append(out, '\r', '\n')
			if i+1 < len(p) && p[i+1] == '\n' {
				i++
			}
		case c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// encodeWord makes a header value safe: RFC 2047 Q-encoding when it holds
// anything but printable ASCII.
func encodeWord(s string) string {
	s = strings.Map(func(c rune) rune {
		if c == '\r' || c == '\n' {
			return ' '
		}
		return c
	}, s)
	for _, c := range s {
		if c >= 0x80 || c < ' ' {
			return mimeQ(s)
		}
	}
	return s
}

func mimeQ(s string) string {
	var b strings.Builder
	b.WriteString("=?utf-8?q?")
	for _, c := range []byte(s) {
		switch {
		case c == ' ':
			b.WriteByte('_')
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == ',' || c == ':' || c == '@' || c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	b.WriteString("?=")
	return b.String()
}

// subjectOf returns a message's subject, as the engine extracted it.
func (f *Applier) subjectOf(messageID string) string {
	m, err := f.db.Message(messageID)
	if err != nil || len(m.Features) == 0 {
		return ""
	}
	var feat scoring.Features
	json.Unmarshal(m.Features, &feat)
	return feat.Subject
}
