package feedback

import (
	"net/mail"
	"net/netip"
	"strings"
)

// parseARF reads a feedback-loop complaint in the Abuse Reporting Format (RFC
// 5965): a multipart/report whose second part is message/feedback-report and
// whose third is the original message or its header. Yahoo's complaint
// feedback loop and Microsoft's JMRP both send this shape today.
func (p Parser) parseARF(m *mime, r *Report, c *correlation) bool {
	fr := m.find("message/feedback-report")
	if fr == nil {
		return false
	}
	r.Format = "arf"
	cp := parseFeedbackReport(fr.body)
	r.Complaint = &cp
	r.Reporter = cp.UserAgent
	orig := m.embeddedHeaders()
	c.offerVERP(cp.OriginalMailFrom, p.VERPPrefix)
	c.offerOriginal(orig, p.VERPPrefix)
	r.Recipient = complainant(cp, orig)

	// RFC 5965 section 7.3: not-spam says the opposite of a complaint, and
	// auth-failure (RFC 6591) is a DMARC/SPF/DKIM failure report; neither is a
	// recipient complaining.
	switch cp.FeedbackType {
	case "not-spam", "auth-failure":
		r.Kind = KindUnknown
	default:
		r.Kind = KindComplaint
	}
	return true
}

// parseFeedbackReport reads the fields of a message/feedback-report part
// (RFC 5965 section 3.1).
func parseFeedbackReport(body []byte) Complaint {
	var fs fields
	for _, b := range parseBlocks(body) {
		fs = append(fs, b...)
	}
	cp := Complaint{
		FeedbackType:     strings.ToLower(firstWord(fs.get("feedback-type"))),
		UserAgent:        fs.get("user-agent"),
		OriginalMailFrom: bareAddress(fs.get("original-mail-from")),
		ReportedDomain:   strings.ToLower(fs.get("reported-domain")),
	}
	for _, v := range fs.all("original-rcpt-to") {
		if a := bareAddress(v); a != "" {
			cp.OriginalRcptTo = append(cp.OriginalRcptTo, a)
		}
	}
	// Arrival-Date (section 3.2); Received-Date is the name of the draft that
	// some feedback loops still use.
	for _, name := range []string{"arrival-date", "received-date"} {
		if v := fs.get(name); v != "" {
			if t, err := mail.ParseDate(v); err == nil {
				cp.ArrivalDate = t
				break
			}
		}
	}
	if ip, err := netip.ParseAddr(strings.Trim(firstWord(fs.get("source-ip")), "[]")); err == nil {
		cp.SourceIP = ip
	}
	return cp
}

// complainant picks the address that complained: Original-Rcpt-To when the
// feedback loop gives it, else the original's To when it names exactly one
// address. Microsoft's JMRP puts the recipient in X-HmXmrOriginalRecipient.
// Yahoo redacts both; the envelope ID still identifies the recipient then.
func complainant(cp Complaint, orig fields) string {
	if len(cp.OriginalRcptTo) > 0 {
		return cp.OriginalRcptTo[0]
	}
	if a := bareAddress(orig.get("x-hmxmroriginalrecipient")); strings.Contains(a, "@") {
		return a
	}
	if to := addressList(orig.get("to")); len(to) == 1 && !strings.Contains(to[0], "redacted") {
		return to[0]
	}
	return ""
}

// parseJMRP reads the older Microsoft Junk Mail Reporting Program shape that
// predates its ARF reports: a plain message from the feedback loop with the
// complained-about message attached as message/rfc822, the recipient in its
// X-HmXmrOriginalRecipient header.
func (p Parser) parseJMRP(m *mime, r *Report, c *correlation) bool {
	orig := m.embeddedHeaders()
	if orig.get("x-hmxmroriginalrecipient") == "" {
		return false
	}
	r.Kind, r.Format = KindComplaint, "jmrp"
	c.offerOriginal(orig, p.VERPPrefix)
	r.Recipient = complainant(Complaint{}, orig)
	r.Complaint = &Complaint{FeedbackType: "abuse", OriginalRcptTo: []string{r.Recipient}, UserAgent: "JMRP"}
	r.Reporter = "JMRP"
	return true
}
