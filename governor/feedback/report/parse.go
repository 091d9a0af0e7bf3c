package report

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 text parts and RFC 2047 words
)

// ErrMalformed is wrapped by the errors Parse returns for input it cannot
// read as a message.
var ErrMalformed = errors.New("malformed message")

// Limits on the work done for one message, so that a hostile or broken
// message costs bounded memory and time.
const (
	DefaultMaxBytes     = 4 << 20   // of the raw message considered
	DefaultMaxPartBytes = 512 << 10 // of one decoded part kept
	maxHeaderBytes      = 256 << 10
	maxParts            = 64
	maxDepth            = 6
	maxReplyText        = 64 << 10
)

// Parser holds the options for reading feedback. The zero value uses the
// defaults.
type Parser struct {
	// VERPPrefix is the local-part prefix of the VERP return path
	// (prefix+ENVELOPEID@domain); DefaultVERPPrefix when empty.
	VERPPrefix string
	// UnsubscribePrefix is the local part of the mailto: unsubscribe address;
	// DefaultUnsubscribePrefix when empty.
	UnsubscribePrefix string
	// MaxBytes caps the raw bytes considered; the rest is ignored and the
	// report marked Truncated. DefaultMaxBytes when zero.
	MaxBytes int
	// MaxPartBytes caps the decoded bytes kept of each MIME part.
	// DefaultMaxPartBytes when zero.
	MaxPartBytes int

	depth int // 1 while reading a forwarded attachment
}

// Parse reads one inbound message with the default options; see
// [Parser.Parse].
func Parse(raw []byte) (Report, error) {
	return Parser{}.Parse(raw)
}

// part is one leaf of the MIME tree, decoded and capped.
type part struct {
	mediaType string
	params    map[string]string
	header    message.Header
	body      []byte
	depth     int
}

// mime is what the walk over a message found.
type mime struct {
	top       message.Header
	mediaType string
	params    map[string]string
	parts     []part // leaves, in order; embedded messages are leaves
	truncated bool
	// broken is set when the MIME structure could not be walked and the
	// body was kept as text instead.
	broken bool
}

// Parse reads one inbound message from the bounce, feedback-loop or reply
// mailbox and says what it is. An error means the input is not a readable
// message; everything readable gets a Report, KindUnknown if nothing else
// fits.
func (p Parser) Parse(raw []byte) (Report, error) {
	p = p.withDefaults()
	m, err := p.readMIME(raw)
	if err != nil {
		return Report{}, err
	}
	r := Report{Kind: KindUnknown, Truncated: m.truncated}
	r.Subject = headerText(m.top, "Subject")
	r.From = headerText(m.top, "From")
	if d := m.top.Get("Date"); d != "" {
		if t, err := mail.ParseDate(d); err == nil {
			r.Date = t
		}
	}
	var c correlation
	// RFC 5321 section 4.5.5 and RFC 3834 section 4: bounces and automatic
	// replies go to the return path, which for our mail is the VERP address;
	// these headers say which address the message was delivered to.
	for _, h := range []string{"Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To"} {
		for _, v := range m.top.Values(h) {
			c.offerVERP(v, p.VERPPrefix)
		}
	}

	switch {
	case p.parseDSN(m, &r, &c):
	case p.parseARF(m, &r, &c):
	case p.parseJMRP(m, &r, &c):
	case p.parseESP(m, &r, &c):
	case p.parseMDN(m, &r, &c):
	case p.parseTextBounce(m, &r, &c):
	case p.parseAutomatic(m, &r, &c):
	case p.parseReply(m, &r, &c):
	}
	if r.Kind == KindUnknown && r.Format == "" && p.depth == 0 {
		// A bounce or complaint forwarded as an attachment (a mailbox rule
		// or a gateway that wraps what it passes on) is read from the
		// attachment.
		if pt := m.find("message/rfc822", "message/global"); pt != nil {
			q := p
			q.depth = 1
			if inner, err := q.Parse(pt.body); err == nil && (inner.Kind == KindBounce || inner.Kind == KindComplaint) {
				inner.Format = "forwarded-" + inner.Format
				inner.Truncated = inner.Truncated || r.Truncated
				return inner, nil
			}
		}
	}
	r.EnvelopeID, r.EnvelopeIDSource = c.envelope()
	r.MessageID = c.messageID
	if r.Recipient == "" && len(r.Recipients) > 0 {
		r.Recipient = r.Recipients[0].Address
		for _, rc := range r.Recipients {
			if rc.Bounce != NoBounce {
				r.Recipient = rc.Address
				break
			}
		}
	}
	return r, nil
}

func (p Parser) withDefaults() Parser {
	if p.VERPPrefix == "" {
		p.VERPPrefix = DefaultVERPPrefix
	}
	if p.UnsubscribePrefix == "" {
		p.UnsubscribePrefix = DefaultUnsubscribePrefix
	}
	if p.MaxBytes <= 0 {
		p.MaxBytes = DefaultMaxBytes
	}
	if p.MaxPartBytes <= 0 {
		p.MaxPartBytes = DefaultMaxPartBytes
	}
	return p
}

// readMIME reads the header and walks the MIME tree, keeping leaves.
func (p Parser) readMIME(raw []byte) (*mime, error) {
	m := &mime{}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrMalformed)
	}
	if len(raw) > p.MaxBytes {
		raw = raw[:p.MaxBytes]
		m.truncated = true
	}
	raw = skipMboxSeparator(raw)
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrMalformed)
	}
	if headerEnd(raw) < 0 {
		// A message that is all header and no blank line; go-message wants
		// the header section terminated.
		raw = append(bytes.Clone(raw), "\r\n\r\n"...)
	}
	e, err := message.ReadWithOptions(bytes.NewReader(raw), &message.ReadOptions{MaxHeaderBytes: maxHeaderBytes})
	if err != nil && e == nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if e.Header.Len() == 0 {
		return nil, fmt.Errorf("%w: no header fields", ErrMalformed)
	}
	m.top = e.Header
	m.mediaType, m.params, _ = e.Header.ContentType()
	if m.mediaType == "" {
		m.mediaType = "text/plain" // RFC 2045 section 5.2
	}
	if strings.HasPrefix(m.mediaType, "multipart/") && m.params["boundary"] == "" {
		// RFC 2046 section 5.1.1 requires the parameter; without it the
		// body can still be read as text.
		m.broken = true
		m.parts = append(m.parts, p.rawBody(raw, m))
		return m, nil
	}
	if err := p.walk(m, e, 0); err != nil {
		m.truncated = true // keep what came before the damage
	}
	if len(m.parts) == 0 || strings.HasPrefix(m.mediaType, "multipart/") && m.find("text/plain", "text/html", "message/delivery-status", "message/feedback-report", "message/global-delivery-status") == nil {
		// A multipart whose boundary never occurs, or one broken before
		// its first part: what the sender meant is still in the text.
		m.broken = true
		m.parts = append(m.parts, p.rawBody(raw, m))
	}
	return m, nil
}

// rawBody is the undecoded body after the top header, as a text/plain
// part: the fallback for MIME that cannot be walked.
func (p Parser) rawBody(raw []byte, m *mime) part {
	body := raw
	if i := headerEnd(raw); i >= 0 {
		body = raw[i:]
	}
	if len(body) > p.MaxPartBytes {
		body = body[:p.MaxPartBytes]
		m.truncated = true
	}
	return part{mediaType: "text/plain", params: map[string]string{}, body: body}
}

// skipMboxSeparator drops the "From sender date" line an mbox file puts
// before each message (RFC 4155), which mail stores sometimes keep.
func skipMboxSeparator(raw []byte) []byte {
	if !bytes.HasPrefix(raw, []byte("From ")) {
		return raw
	}
	if i := bytes.IndexByte(raw, '\n'); i >= 0 {
		return raw[i+1:]
	}
	return nil
}

func (p Parser) walk(m *mime, e *message.Entity, depth int) error {
	mr := e.MultipartReader()
	if mr == nil {
		return p.keep(m, e, depth)
	}
	if depth >= maxDepth {
		m.truncated = true
		return nil
	}
	for {
		if len(m.parts) >= maxParts {
			m.truncated = true
			return nil
		}
		child, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil && child == nil {
			return fmt.Errorf("multipart: %v", err)
		}
		// An unknown charset or transfer encoding still yields a readable
		// entity (undecoded); use it.
		if err := p.walk(m, child, depth+1); err != nil {
			return err
		}
	}
}

func (p Parser) keep(m *mime, e *message.Entity, depth int) error {
	mt, params, _ := e.Header.ContentType()
	if mt == "" {
		mt = "text/plain"
	}
	body, err := io.ReadAll(io.LimitReader(e.Body, int64(p.MaxPartBytes)+1))
	if len(body) > p.MaxPartBytes {
		body = body[:p.MaxPartBytes]
		m.truncated = true
	}
	m.parts = append(m.parts, part{mediaType: mt, params: params, header: e.Header, body: body, depth: depth})
	if err != nil {
		if len(body) > 0 {
			m.truncated = true
			return nil
		}
		return fmt.Errorf("%s part: %v", mt, err)
	}
	return nil
}

// headerText returns a header value with RFC 2047 encoded words decoded, or
// the raw value if decoding fails.
func headerText(h message.Header, name string) string {
	if t, err := h.Text(name); err == nil {
		return strings.TrimSpace(t)
	}
	return strings.TrimSpace(h.Get(name))
}

// find returns the first part of one of the media types, or nil.
func (m *mime) find(types ...string) *part {
	for i := range m.parts {
		for _, t := range types {
			if m.parts[i].mediaType == t {
				return &m.parts[i]
			}
		}
	}
	return nil
}

// embeddedHeaders returns the header fields of the original message attached
// to a report, as message/rfc822 (RFC 2046 section 5.2.1) or
// text/rfc822-headers (RFC 6522 section 4), or their RFC 6532 and RFC 6533
// global variants.
func (m *mime) embeddedHeaders() fields {
	pt := m.find("message/rfc822", "text/rfc822-headers", "message/rfc822-headers", "message/global", "message/global-headers")
	if pt == nil {
		return nil
	}
	return parseHeaderBlock(pt.body)
}

// text returns the first text/plain part that is not an attachment, else the
// first text/html part reduced to text, else "".
func (m *mime) text() string {
	for _, pt := range m.parts {
		if pt.mediaType == "text/plain" && !isAttachment(pt) {
			return string(pt.body)
		}
	}
	for _, pt := range m.parts {
		if pt.mediaType == "text/html" && !isAttachment(pt) {
			return htmlToText(string(pt.body))
		}
	}
	return ""
}

func isAttachment(pt part) bool {
	d, _, _ := pt.header.ContentDisposition()
	return strings.EqualFold(d, "attachment")
}

// lineReader returns a scanner over text that tolerates long lines.
func lineReader(s string) *bufio.Scanner {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	return sc
}
