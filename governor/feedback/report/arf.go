package report

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
	if r.Recipient == "" {
		// Redacted (Yahoo, RFC 6590): the embedded original's
		// X-Kadenz-Envelope or Message-ID still names the message, and the
		// relay finds the recipient through it.
		cp.OriginalRcptTo = nil
		r.Complaint = &cp
	}

	switch cp.FeedbackType {
	case "not-spam":
		// RFC 5965 section 7.3: the opposite of a complaint.
		r.Kind = KindUnknown
	case "auth-failure", "dkim", "spf", "dmarc":
		// RFC 6591: a report that our mail failed DKIM/SPF/DMARC at the
		// receiver. Recorded (logged with the reporter), never a person's
		// complaint; the sender has a DNS or signing problem to fix.
		r.Kind, r.Format = KindUnknown, "arf-auth-failure"
		r.Recipient = ""
	case "opt-out", "opt-out-list":
		// RFC 6650 section 3 (from the MARF registry): the recipient asked to
		// stop receiving this mail.
		r.Kind = KindUnsubscribe
		r.Reply = &Reply{}
	default:
		r.Kind = KindComplaint
	}
	return true
}

// isRedacted reports whether an address was blanked out by a feedback loop
// (RFC 6590): "redacted@", runs of x or *, or an empty local part.
func isRedacted(a string) bool {
	local, _, _ := strings.Cut(a, "@")
	if local == "" || strings.Contains(a, "redacted") {
		return true
	}
	return strings.Trim(local, "x*#-_.") == "" || strings.Trim(local, "X*#") == ""
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
	seen := map[string]bool{}
	for _, v := range fs.all("original-rcpt-to") {
		// Some feedback loops list several in one field.
		for _, one := range strings.Split(v, ",") {
			if a := mailbox(one); a != "" && !isRedacted(a) && !seen[a] && len(cp.OriginalRcptTo) < maxRecipients {
				seen[a] = true
				cp.OriginalRcptTo = append(cp.OriginalRcptTo, a)
			}
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
	if a := mailbox(orig.get("x-hmxmroriginalrecipient")); a != "" && !isRedacted(a) {
		return a
	}
	if to := addressList(orig.get("to")); len(to) == 1 {
		if a := mailbox(to[0]); a != "" && !isRedacted(a) {
			return a
		}
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
