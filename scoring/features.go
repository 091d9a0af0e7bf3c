package scoring

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message"
	// The charset package registers decoders for the legacy character sets
	// CRMs still send (ISO-8859-*, windows-125x, Shift_JIS, ...) with
	// go-message. It does so by setting go-message's CharsetReader once at
	// start-up; scoring keeps no state of its own.
	_ "github.com/emersion/go-message/charset"
)

// Header fields of the header contract (docs/scoring.md, DESIGN.md).
const (
	HeaderTopics    = "X-Kadenz-Topics"
	HeaderCampaign  = "X-Kadenz-Campaign"
	HeaderPriority  = "X-Kadenz-Priority"
	HeaderExpires   = "X-Kadenz-Expires"
	HeaderNotBefore = "X-Kadenz-Not-Before"
	HeaderTimezone  = "X-Kadenz-Timezone"
	HeaderValue     = "X-Kadenz-Value"
)

// DefaultPriority is the sender's weight of a message that does not say:
// the middle of the 0-100 scale, so it neither gains nor loses.
const DefaultPriority = 50

// Features is what scoring needs to know about one message, independent of
// who receives it. It is extracted once per message at intake and stored
// beside it.
type Features struct {
	// MessageID is the Message-ID without angle brackets, if any.
	MessageID string `json:"message_id,omitempty"`
	// Subject is the decoded subject, for explanations.
	Subject string `json:"subject,omitempty"`
	// Campaign groups messages that are versions or parts of one send:
	// X-Kadenz-Campaign, a configured alias header, else List-Id.
	Campaign string `json:"campaign,omitempty"`
	// CampaignFromList is true when Campaign is the List-Id: the message
	// is one post of a list's stream, not a version of one send, so a
	// newer post does not supersede it.
	CampaignFromList bool `json:"campaign_from_list,omitempty"`
	// Topics are lower-cased topic names, from X-Kadenz-Topics or, when the
	// header is absent, from the keyword rules.
	Topics []string `json:"topics,omitempty"`
	// TopicsFromRules is true when Topics came from keyword rules rather
	// than the sender.
	TopicsFromRules bool `json:"topics_from_rules,omitempty"`
	// Priority is the sender's own weight, 0-100; DefaultPriority if unset.
	Priority int `json:"priority"`
	// Expires is when the message becomes worthless; zero if never.
	Expires time.Time `json:"expires,omitzero"`
	// NotBefore is the earliest release the sender allows; zero if any.
	NotBefore time.Time `json:"not_before,omitzero"`
	// Timezone is the recipient's IANA zone name as the sender gave it. It
	// is not resolved here: loading the zone database is I/O.
	Timezone string `json:"timezone,omitempty"`
	// Value is how much the recipient matters to the sender, 0-100, valid
	// only if HasValue.
	Value    int  `json:"value,omitempty"`
	HasValue bool `json:"has_value,omitempty"`
	// Fingerprint is a 64-bit SimHash of the normalised subject and body
	// text; zero when the message has no words.
	Fingerprint uint64 `json:"fingerprint,omitempty"`
	// Words is how many words went into the fingerprint.
	Words int `json:"words,omitempty"`
	// Terms are up to MaxContentTerms of the subject's and body's words,
	// for content-derived relevance (content.go).
	Terms []string `json:"terms,omitempty"`
	// Problems lists header values that were present but unusable and
	// parts that could not be decoded; extraction carries on without them.
	Problems []string `json:"problems,omitempty"`
}

// TopicRule assigns Topic to a message whose subject or text contains any
// of Keywords. A keyword of several words matches that phrase; matching is
// on whole, lower-cased words, so "sale" does not match "wholesale".
type TopicRule struct {
	Topic    string   `json:"topic"`
	Keywords []string `json:"keywords"`
}

// ExtractOptions tunes feature extraction. The zero value uses the defaults.
type ExtractOptions struct {
	// Rules infer topics when a message has no X-Kadenz-Topics header.
	Rules []TopicRule
	// CampaignHeaders are header fields to read the campaign from when
	// X-Kadenz-Campaign is absent, before List-Id (e.g. a tool's own
	// "X-Campaign-Id").
	CampaignHeaders []string
	// MaxScanBytes caps how much of the raw message is looked at (default
	// 4 MiB): text parts come first in real mail; what follows is
	// attachments.
	MaxScanBytes int
	// MaxPartBytes caps the decoded text read from one part (default 256 KiB).
	MaxPartBytes int
	// MaxTextBytes caps the decoded text read from all parts (default 1 MiB).
	MaxTextBytes int
	// MaxParts caps the number of MIME parts visited (default 64).
	MaxParts int
	// MaxWords caps the words fingerprinted and matched (default 5000).
	MaxWords int
}

const (
	defaultMaxScanBytes = 4 << 20
	defaultMaxPartBytes = 256 << 10
	defaultMaxTextBytes = 1 << 20
	defaultMaxParts     = 64
	defaultMaxWords     = 5000
	// maxDepth bounds multipart nesting: real mail nests three or four
	// levels (mixed > related > alternative); a deeper tree is hostile.
	maxDepth = 8
	// subjectWeight makes the subject count more than a body shingle: it
	// is short, and it is what the recipient sees first.
	subjectWeight = 3
	shingleSize   = 3
)

func (o ExtractOptions) withDefaults() ExtractOptions {
	if o.MaxScanBytes <= 0 {
		o.MaxScanBytes = defaultMaxScanBytes
	}
	if o.MaxPartBytes <= 0 {
		o.MaxPartBytes = defaultMaxPartBytes
	}
	if o.MaxTextBytes <= 0 {
		o.MaxTextBytes = defaultMaxTextBytes
	}
	if o.MaxParts <= 0 {
		o.MaxParts = defaultMaxParts
	}
	if o.MaxWords <= 0 {
		o.MaxWords = defaultMaxWords
	}
	return o
}

// ExtractFeatures reads the features of one RFC 5322 message. It fails only
// when the header cannot be parsed at all; an unreadable body part, an
// unknown charset or a malformed X-Kadenz header value is noted in
// Features.Problems and skipped, because a CRM's sloppy MIME must not stop
// its mail. The work is bounded by opts whatever the input.
func ExtractFeatures(raw []byte, opts ExtractOptions) (Features, error) {
	opts = opts.withDefaults()
	if len(raw) > opts.MaxScanBytes {
		raw = raw[:opts.MaxScanBytes]
	}
	f := Features{Priority: DefaultPriority}
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		return f, fmt.Errorf("reading message header: %w", err)
	}
	if err != nil {
		f.Problems = append(f.Problems, err.Error())
	}
	h := e.Header
	f.MessageID = strings.Trim(strings.TrimSpace(h.Get("Message-Id")), "<>")
	f.Subject = headerText(&h, "Subject", &f)
	f.readContract(&h, opts)

	var body bodyText
	body.budget = opts.MaxTextBytes
	body.parts = opts.MaxParts
	body.maxPart = opts.MaxPartBytes
	body.walk(e, 0, &f)

	text := body.plain.String()
	if strings.TrimSpace(text) == "" {
		text = htmlText(body.html.String())
	}
	subjectWords := appendWords(nil, f.Subject, opts.MaxWords)
	words := appendWords(nil, text, opts.MaxWords)
	f.Fingerprint, f.Words = fingerprint(subjectWords, words)
	f.Terms = contentTerms(subjectWords, words)
	if f.Topics == nil {
		f.Topics = matchRules(opts.Rules, subjectWords, words)
		f.TopicsFromRules = len(f.Topics) > 0
	}
	return f, nil
}

// readContract reads the X-Kadenz header fields and their fallbacks.
func (f *Features) readContract(h *message.Header, opts ExtractOptions) {
	if v := headerText(h, HeaderTopics, f); v != "" {
		f.Topics = splitTopics(v)
	}
	f.Campaign = headerText(h, HeaderCampaign, f)
	for _, k := range opts.CampaignHeaders {
		if f.Campaign != "" {
			break
		}
		f.Campaign = headerText(h, k, f)
	}
	if f.Campaign == "" {
		f.Campaign = listID(headerText(h, "List-Id", f))
		f.CampaignFromList = f.Campaign != ""
	}
	if v := h.Get(HeaderPriority); v != "" {
		if n, ok := percent(v); ok {
			f.Priority = n
		} else {
			f.Problems = append(f.Problems, HeaderPriority+": not a number 0-100: "+clip(v))
		}
	}
	if v := h.Get(HeaderValue); v != "" {
		if n, ok := percent(v); ok {
			f.Value, f.HasValue = n, true
		} else {
			f.Problems = append(f.Problems, HeaderValue+": not a number 0-100: "+clip(v))
		}
	}
	f.Expires = headerTime(h, HeaderExpires, f)
	f.NotBefore = headerTime(h, HeaderNotBefore, f)
	f.Timezone = strings.TrimSpace(h.Get(HeaderTimezone))
}

func headerText(h *message.Header, k string, f *Features) string {
	v, err := h.Text(k)
	if err != nil {
		f.Problems = append(f.Problems, k+": "+err.Error())
	}
	return strings.TrimSpace(v)
}

func headerTime(h *message.Header, k string, f *Features) time.Time {
	v := strings.TrimSpace(h.Get(k))
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		f.Problems = append(f.Problems, k+": not an RFC 3339 time: "+clip(v))
		return time.Time{}
	}
	return t.UTC()
}

// percent parses an integer 0-100; values outside are clamped because a CRM
// writing 150 plainly means "very".
func percent(v string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, false
	}
	return min(max(n, 0), 100), true
}

// splitTopics splits a comma- or semicolon-separated topic list into
// lower-cased, de-duplicated names.
func splitTopics(v string) []string {
	var out []string
	for _, t := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" || len(out) >= maxTopics {
			continue
		}
		dup := false
		for _, o := range out {
			dup = dup || o == t
		}
		if !dup {
			out = append(out, t)
		}
	}
	return out
}

// maxTopics bounds the topics of one message: a message "about everything"
// is about nothing, and the bound keeps scoring cheap.
const maxTopics = 8

// listID extracts the identifier from a List-Id field (RFC 2919): the part
// between angle brackets, or the whole value if there are none.
func listID(v string) string {
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
	}
	return v
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// bodyText collects the decoded text of a message's text/plain and text/html
// parts within the budgets.
type bodyText struct {
	plain, html strings.Builder
	budget      int // text bytes left for all parts
	parts       int // parts left to visit
	maxPart     int
}

func (b *bodyText) walk(e *message.Entity, depth int, f *Features) {
	if b.parts <= 0 || b.budget <= 0 {
		return
	}
	b.parts--
	if mr := e.MultipartReader(); mr != nil {
		if depth >= maxDepth {
			return
		}
		for b.parts > 0 && b.budget > 0 {
			p, err := mr.NextPart()
			if err == io.EOF {
				return
			}
			if p == nil {
				if err != nil {
					f.Problems = append(f.Problems, "multipart: "+err.Error())
				}
				return
			}
			if err != nil {
				f.Problems = append(f.Problems, "part: "+err.Error())
			}
			b.walk(p, depth+1, f)
		}
		return
	}
	if disp, _, _ := e.Header.ContentDisposition(); disp == "attachment" {
		return
	}
	mediaType, _, err := e.Header.ContentType()
	if err != nil && e.Header.Get("Content-Type") != "" {
		// An unparseable Content-Type is treated as text/plain (RFC 2045
		// section 5.2), which is also what mediaType is then.
		mediaType = "text/plain"
	}
	var dst *strings.Builder
	switch mediaType {
	case "", "text/plain":
		dst = &b.plain
	case "text/html":
		dst = &b.html
	default:
		return
	}
	n := min(b.maxPart, b.budget)
	data, err := io.ReadAll(io.LimitReader(e.Body, int64(n)))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		f.Problems = append(f.Problems, "reading "+mediaType+" part: "+err.Error())
	}
	b.budget -= len(data)
	dst.Write(data)
	dst.WriteByte('\n')
}

// fingerprint computes the SimHash of the subject's words, the body's words
// and the body's word 3-shingles. The single words make the fingerprint
// robust to the small per-recipient edits of a CRM (a name, a greeting);
// the shingles make word order count, so two mails built from the same
// vocabulary are not taken for duplicates.
func fingerprint(subject, body []string) (uint64, int) {
	var s simhash
	for _, w := range subject {
		s.add(fnvString(fnvString(fnvOffset64, "s:"), w), subjectWeight)
	}
	for _, w := range body {
		s.add(fnvString(fnvString(fnvOffset64, "w:"), w), 1)
	}
	for i := 0; i+shingleSize <= len(body); i++ {
		h := uint64(fnvOffset64)
		for _, w := range body[i : i+shingleSize] {
			h = fnvString(h, w)
			h = fnvString(h, " ")
		}
		s.add(h, 1)
	}
	return s.sum(), len(subject) + len(body)
}

// matchRules returns the topics whose keywords occur in the subject or body
// words, in rule order.
func matchRules(rules []TopicRule, subject, body []string) []string {
	if len(rules) == 0 {
		return nil
	}
	text := " " + strings.Join(subject, " ") + " \n " + strings.Join(body, " ") + " "
	var out []string
	for _, r := range rules {
		topic := strings.ToLower(strings.TrimSpace(r.Topic))
		if topic == "" || len(out) >= maxTopics {
			continue
		}
		for _, k := range r.Keywords {
			kw := appendWords(nil, k, 16)
			if len(kw) == 0 {
				continue
			}
			if strings.Contains(text, " "+strings.Join(kw, " ")+" ") {
				if !contains(out, topic) {
					out = append(out, topic)
				}
				break
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
