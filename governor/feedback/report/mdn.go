package report

import (
	"strings"
)

// parseMDN reads a message disposition notification (RFC 8098): a
// multipart/report whose machine-readable part is
// message/disposition-notification. Two kinds reach a bounce mailbox:
//
//   - a Sieve "reject" (RFC 5429 section 2.2), or any automatic action
//     that deleted or refused our message on the recipient's own rule:
//     the person's mailbox exists and has decided to refuse our mail, so
//     it is a hard bounce with reason recipient-rejected;
//   - a read receipt or other disposition (displayed, dispatched,
//     processed): nothing about deliverability, class none. Never a reply.
func (p Parser) parseMDN(m *mime, r *Report, c *correlation) bool {
	dn := m.find("message/disposition-notification", "message/global-disposition-notification")
	if dn == nil {
		return false
	}
	var fs fields
	for _, b := range parseBlocks(dn.body) {
		fs = append(fs, b...)
	}
	c.offerOriginal(m.embeddedHeaders(), p.VERPPrefix)
	c.offerMessageID(firstMessageID(fs.get("original-message-id")))
	r.Format = "mdn"
	r.Reporter = fs.get("reporting-ua")
	disp := strings.ToLower(fs.get("disposition"))
	mode, typ, _ := strings.Cut(disp, ";")
	typ = strings.TrimSpace(typ)
	if i := strings.IndexAny(typ, "/ "); i >= 0 {
		typ = typ[:i] // "deleted/error" style modifiers of older MDNs
	}
	addr := mailbox(fs.get("final-recipient"))
	if addr == "" {
		addr = mailbox(fs.get("original-recipient"))
	}
	if !strings.Contains(mode, "automatic-action") || (typ != "deleted" && typ != "denied" && typ != "failed") {
		r.Kind = KindUnknown
		r.Recipient = addr
		return true
	}
	text := m.text()
	if len(text) > 2048 {
		text = text[:2048]
	}
	rc := Recipient{Address: addr, Action: "failed", Diagnostic: firstLines(text, 300)}
	rc.Status = statusCode(text)
	rc.Bounce, rc.Reason = Classify(rc.Action, rc.Status, rc.Diagnostic)
	if rc.Bounce == HardBounce && (rc.Reason == ReasonOther || rc.Reason == ReasonUserUnknown) || rc.Bounce == BlockBounce && rc.Reason == ReasonPolicyBlock {
		// The recipient's own rule refused it (RFC 5429): deliberate.
		rc.Bounce, rc.Reason = HardBounce, ReasonRecipientRejected
	}
	r.Kind = KindBounce
	r.Recipients = []Recipient{rc}
	return true
}
