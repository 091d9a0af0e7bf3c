package report

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Notifications of email service providers, mailed as JSON: Amazon SES
// bounce, complaint and delivery notifications (sent by SNS to an email
// subscription, the JSON alone or wrapped in the SNS envelope), and the
// event payloads of SendGrid, Mailgun and Postmark when an operator has them
// mailed to the feedback mailbox. Each provider's own verdict (permanent or
// transient, blocked) is a hint that Classify refines: a full mailbox stays
// soft even where a provider calls it permanent.

// espHint is what the provider said about one recipient.
type espHint int

const (
	hintHard espHint = iota + 1
	hintSoft
	hintBlock
	hintDelivered
	hintComplaint
	hintUnsubscribe
	hintSuppressed // the provider refuses to send to the address (after an earlier hard bounce)
)

// espEvent is one recipient's line of a notification.
type espEvent struct {
	addr       string
	hint       espHint
	status     string
	diagnostic string
}

// maxJSONBytes bounds the JSON read from one notification.
const maxJSONBytes = 256 << 10

func (p Parser) parseESP(m *mime, r *Report, c *correlation) bool {
	body, v, ok := espJSON(m)
	if !ok {
		return false
	}
	format, events, headers := espPayload(v)
	if len(events) == 0 {
		return false
	}
	r.Format = format
	if headers != nil {
		c.offerEnvelope(headers["x-kadenz-envelope"], SourceHeader)
		c.offerVERP(headers["return-path"], p.VERPPrefix)
		c.offerMessageID(firstMessageID(headers["message-id"]))
	}
	// Providers echo custom headers and arguments in places of their own;
	// an envelope ID anywhere in the payload is ours.
	if lower := strings.ToLower(body); strings.Contains(lower, "x-kadenz-envelope") {
		if id, ok := findEnvelopeID(lower[strings.Index(lower, "x-kadenz-envelope"):]); ok {
			c.offerEnvelope(id, SourceHeader)
		}
	}
	espReport(r, format, events)
	return true
}

// espJSON finds the JSON a notification carries (a JSON part, or the text
// from its first brace or bracket within the first lines), unwrapped from
// an SNS envelope; body is the JSON text as read.
func espJSON(m *mime) (body string, v any, ok bool) {
	text := m.text()
	if pt := m.find("application/json"); pt != nil {
		text = string(pt.body)
	}
	i := strings.IndexAny(text, "{[")
	if i < 0 || i > 2048 {
		return "", nil, false // the JSON is the body, perhaps after a line or two
	}
	body = text[i:]
	if len(body) > maxJSONBytes {
		body = body[:maxJSONBytes]
	}
	if err := json.NewDecoder(strings.NewReader(body)).Decode(&v); err != nil {
		return "", nil, false
	}
	// The SNS envelope carries the notification as a string (RFC 8259 text).
	if o, ok := v.(map[string]any); ok {
		if msg, ok := o["Message"].(string); ok && strings.HasPrefix(strings.TrimSpace(msg), "{") {
			var inner any
			if json.Unmarshal([]byte(msg), &inner) == nil {
				v = inner
			}
		}
	}
	return body, v, true
}

// espPayload tells the provider by the payload's shape and reads its
// events and, where it echoes them, the original's headers.
func espPayload(v any) (format string, events []espEvent, headers map[string]string) {
	switch o := v.(type) {
	case map[string]any:
		switch {
		case str(o, "notificationType") != "" || str(o, "eventType") != "":
			return "ses-json", sesEvents(o), sesHeaders(o)
		case o["event-data"] != nil:
			ed, _ := o["event-data"].(map[string]any)
			return "mailgun-json", mailgunEvents(ed), mailgunHeaders(ed)
		case str(o, "event") != "" && str(o, "recipient") != "":
			return "mailgun-json", mailgunEvents(o), nil
		case str(o, "RecordType") != "":
			return "postmark-json", postmarkEvents(o), nil
		case str(o, "event") != "" && str(o, "email") != "":
			return "sendgrid-json", sendgridEvents([]any{o}), nil
		}
	case []any:
		return "sendgrid-json", sendgridEvents(o), nil
	}
	return "", nil, nil
}

// espReport turns the provider's events into the report: a complaint or
// an unsubscribe if any event is one, else the recipients' outcomes, each
// provider's verdict refined by Classify.
func espReport(r *Report, format string, events []espEvent) {
	var complained, unsubscribed []string
	for _, e := range events {
		switch e.hint {
		case hintComplaint:
			complained = append(complained, e.addr)
			continue
		case hintUnsubscribe:
			unsubscribed = append(unsubscribed, e.addr)
			continue
		}
		rc := Recipient{Address: e.addr, Status: e.status, Diagnostic: e.diagnostic, Action: "failed"}
		switch e.hint {
		case hintDelivered:
			rc.Action = "delivered"
		case hintSoft:
			rc.Action = "delayed"
		}
		rc.Bounce, rc.Reason = Classify(rc.Action, rc.Status, rc.Diagnostic)
		switch {
		case e.hint == hintSuppressed:
			rc.Bounce, rc.Reason = HardBounce, ReasonSuppressed
		case e.hint == hintBlock && rc.Bounce == HardBounce:
			rc.Bounce = BlockBounce
			if rc.Reason == ReasonUserUnknown || rc.Reason == ReasonHostUnknown || rc.Reason == ReasonOther {
				rc.Reason = ReasonPolicyBlock
			}
		}
		r.Recipients = append(r.Recipients, rc)
	}
	switch {
	case len(complained) > 0:
		r.Kind = KindComplaint
		r.Complaint = &Complaint{FeedbackType: "abuse", OriginalRcptTo: complained, UserAgent: format}
		r.Recipient = complained[0]
		r.Recipients = nil
	case len(unsubscribed) > 0:
		r.Kind, r.Recipient, r.Recipients = KindUnsubscribe, unsubscribed[0], nil
		r.Reply = &Reply{}
	default:
		r.Kind = KindDelivered
		for _, rc := range r.Recipients {
			if rc.Bounce != NoBounce {
				r.Kind = KindBounce
			}
		}
	}
}

// str returns o[key] as a string ("" if absent or not a string; numbers
// are formatted).
func str(o map[string]any, key string) string {
	switch v := o[key].(type) {
	case string:
		return v
	case float64:
		return fmt.Sprintf("%g", v)
	case bool:
		return fmt.Sprint(v)
	}
	return ""
}

func obj(o map[string]any, key string) map[string]any {
	m, _ := o[key].(map[string]any)
	return m
}

func list(o map[string]any, key string) []any {
	l, _ := o[key].([]any)
	return l
}

// sesEvents reads an Amazon SES notification (notificationType) or event
// (eventType): Bounce, Complaint or Delivery.
func sesEvents(o map[string]any) []espEvent {
	kind := strings.ToLower(str(o, "notificationType") + str(o, "eventType"))
	var out []espEvent
	switch kind {
	case "bounce":
		b := obj(o, "bounce")
		typ, sub := strings.ToLower(str(b, "bounceType")), strings.ToLower(str(b, "bounceSubType"))
		for _, x := range list(b, "bouncedRecipients") {
			br, _ := x.(map[string]any)
			e := espEvent{addr: mailbox(str(br, "emailAddress")), status: statusCode(str(br, "status")),
				diagnostic: diagnosticText(str(br, "diagnosticCode"))}
			if e.addr == "" {
				continue
			}
			switch {
			case sub == "suppressed" || sub == "onaccountsuppressionlist":
				e.hint = hintSuppressed
			case sub == "mailboxfull":
				e.hint, e.diagnostic = hintSoft, strings.TrimSpace("mailbox full "+e.diagnostic)
			case sub == "messagetoolarge":
				e.hint, e.diagnostic = hintBlock, strings.TrimSpace("message too large "+e.diagnostic)
			case sub == "contentrejected" || sub == "attachmentrejected":
				e.hint, e.diagnostic = hintBlock, strings.TrimSpace("content rejected "+e.diagnostic)
			case typ == "permanent":
				e.hint = hintHard
			default: // Transient, Undetermined
				e.hint = hintSoft
			}
			out = append(out, e)
		}
	case "complaint":
		c := obj(o, "complaint")
		if strings.EqualFold(str(c, "complaintFeedbackType"), "not-spam") {
			return nil
		}
		for _, x := range list(c, "complainedRecipients") {
			cr, _ := x.(map[string]any)
			if a := mailbox(str(cr, "emailAddress")); a != "" {
				out = append(out, espEvent{addr: a, hint: hintComplaint})
			}
		}
	case "delivery":
		for _, x := range list(obj(o, "delivery"), "recipients") {
			if s, ok := x.(string); ok {
				if a := mailbox(s); a != "" {
					out = append(out, espEvent{addr: a, hint: hintDelivered, status: "2.0.0"})
				}
			}
		}
	}
	return out
}

// sesHeaders returns the original's headers that SES includes
// (mail.headers when the identity is set to include them, else
// mail.commonHeaders).
func sesHeaders(o map[string]any) map[string]string {
	mail := obj(o, "mail")
	h := map[string]string{}
	for _, x := range list(mail, "headers") {
		f, _ := x.(map[string]any)
		if n := strings.ToLower(str(f, "name")); n != "" && h[n] == "" {
			h[n] = str(f, "value")
		}
	}
	if h["message-id"] == "" {
		h["message-id"] = str(obj(mail, "commonHeaders"), "messageId")
	}
	return h
}

// mailgunEvents reads a Mailgun event (the "event-data" of a webhook, or
// the flat form of its events API).
func mailgunEvents(o map[string]any) []espEvent {
	addr := mailbox(str(o, "recipient"))
	if addr == "" {
		return nil
	}
	e := espEvent{addr: addr}
	ds := obj(o, "delivery-status")
	e.diagnostic = strings.TrimSpace(str(ds, "message") + " " + str(ds, "description"))
	e.status = statusCode(str(ds, "enhanced-code"))
	if e.status == "" {
		e.status = statusCode(str(ds, "code") + " " + e.diagnostic)
	}
	switch strings.ToLower(str(o, "event")) {
	case "failed", "bounced", "dropped":
		switch {
		case strings.HasPrefix(strings.ToLower(str(o, "reason")), "suppress-"):
			e.hint = hintSuppressed
		case strings.EqualFold(str(o, "severity"), "temporary"):
			e.hint = hintSoft
		default:
			e.hint = hintHard
		}
	case "complained":
		e.hint = hintComplaint
	case "unsubscribed":
		e.hint = hintUnsubscribe
	case "delivered":
		e.hint, e.status = hintDelivered, "2.0.0"
	default:
		return nil
	}
	return []espEvent{e}
}

func mailgunHeaders(o map[string]any) map[string]string {
	h := map[string]string{}
	for k, v := range obj(obj(o, "message"), "headers") {
		if s, ok := v.(string); ok {
			h[strings.ToLower(k)] = s
		}
	}
	return h
}

// postmarkEvents reads a Postmark bounce, spam complaint or subscription
// change webhook.
func postmarkEvents(o map[string]any) []espEvent {
	rt := strings.ToLower(str(o, "RecordType"))
	addr := mailbox(str(o, "Email"))
	if addr == "" {
		addr = mailbox(str(o, "Recipient"))
	}
	if addr == "" {
		return nil
	}
	e := espEvent{addr: addr, diagnostic: diagnosticText(strings.TrimSpace(str(o, "Details") + " " + str(o, "Description")))}
	e.status = statusCode(e.diagnostic)
	switch rt {
	case "spamcomplaint":
		e.hint = hintComplaint
		return []espEvent{e}
	case "subscriptionchange":
		if str(o, "SuppressSending") != "true" {
			return nil
		}
		switch strings.ToLower(str(o, "SuppressionReason")) {
		case "spamcomplaint":
			e.hint = hintComplaint
		case "hardbounce":
			e.hint = hintSuppressed
		default:
			e.hint = hintUnsubscribe
		}
		return []espEvent{e}
	case "delivery":
		e.hint, e.status = hintDelivered, "2.0.0"
		return []espEvent{e}
	case "bounce":
	default:
		return nil
	}
	switch strings.ToLower(str(o, "Type")) {
	case "hardbounce", "bademailaddress", "manuallydeactivated", "unknown":
		e.hint = hintHard
	case "spamcomplaint":
		e.hint = hintComplaint
	case "unsubscribe":
		e.hint = hintUnsubscribe
	case "spamnotification", "blocked", "virusnotification", "contentrelated":
		e.hint = hintBlock
	case "autoresponder", "openrelaytest", "challengeverification", "addresschange", "subscribe":
		return nil // not a delivery failure
	case "dnserror":
		e.hint = hintSoft
		if e.diagnostic == "" {
			e.diagnostic = "dns error"
		}
	default: // SoftBounce, Transient, DMARCPolicy, ...
		e.hint = hintSoft
		if strings.EqualFold(str(o, "Type"), "dmarcpolicy") {
			e.hint = hintBlock
		}
	}
	return []espEvent{e}
}

// sendgridEvents reads SendGrid event webhook objects.
func sendgridEvents(l []any) []espEvent {
	var out []espEvent
	for _, x := range l {
		o, ok := x.(map[string]any)
		if !ok {
			continue
		}
		addr := mailbox(str(o, "email"))
		if addr == "" {
			continue
		}
		e := espEvent{addr: addr, status: statusCode(str(o, "status")), diagnostic: str(o, "reason")}
		if e.status == "" {
			e.status = statusCode(e.diagnostic)
		}
		switch strings.ToLower(str(o, "event")) {
		case "bounce":
			e.hint = hintHard
			if strings.EqualFold(str(o, "type"), "blocked") {
				e.hint = hintBlock
			}
		case "blocked":
			e.hint = hintBlock
		case "deferred":
			e.hint = hintSoft
		case "dropped":
			r := strings.ToLower(e.diagnostic)
			switch {
			case strings.Contains(r, "unsubscribe"):
				e.hint = hintUnsubscribe
			case strings.Contains(r, "spam report"):
				e.hint = hintComplaint
			case strings.Contains(r, "bounced address"):
				e.hint = hintSuppressed
			case strings.Contains(r, "invalid"):
				e.hint, e.diagnostic = hintHard, "invalid address "+e.diagnostic
			default:
				continue // dropped for reasons of the sender's account
			}
		case "spamreport":
			e.hint = hintComplaint
		case "unsubscribe", "group_unsubscribe":
			e.hint = hintUnsubscribe
		case "delivered":
			e.hint, e.status = hintDelivered, "2.0.0"
		default:
			continue // open, click, processed
		}
		out = append(out, e)
		if len(out) >= maxRecipients {
			break
		}
	}
	return out
}
