package report

// Class is what a report means for one recipient, the vocabulary of the
// classification policy (docs/feedback.md): the bounce classes plus the
// classes that come from the kind of report.
type Class string

// The classes.
const (
	ClassHard        Class = "hard"
	ClassSoft        Class = "soft"
	ClassBlock       Class = "block"
	ClassDelivered   Class = "delivered"
	ClassComplaint   Class = "complaint"
	ClassUnsubscribe Class = "unsubscribe"
	ClassAway        Class = "away"
	ClassReply       Class = "reply"
	ClassNone        Class = "none"
)

// Outcome is one recipient's line of a report: who, what class, why.
type Outcome struct {
	// Recipient is the address (lower case); "" when the report names
	// nobody (a redacted complaint: the envelope ID or Message-ID does).
	Recipient string `json:"recipient"`
	Class     Class  `json:"class"`
	Reason    Reason `json:"reason,omitempty"`
	Status    string `json:"status,omitempty"`
	// Diagnostic is the remote server's words, for bounces.
	Diagnostic string `json:"diagnostic,omitempty"`
}

// Outcomes lists what the report means per recipient, in the report's
// order. A report of no use yields one outcome of class none.
func (r Report) Outcomes() []Outcome {
	switch r.Kind {
	case KindBounce, KindDelivered:
		out := make([]Outcome, 0, len(r.Recipients))
		for _, rc := range r.Recipients {
			o := Outcome{Recipient: rc.Address, Reason: rc.Reason, Status: rc.Status, Diagnostic: rc.Diagnostic}
			switch rc.Bounce {
			case HardBounce:
				o.Class = ClassHard
			case SoftBounce:
				o.Class = ClassSoft
			case BlockBounce:
				o.Class = ClassBlock
			default:
				o.Class = ClassDelivered
			}
			out = append(out, o)
		}
		if len(out) == 0 {
			// A bounce that names nobody: the envelope ID may still, and
			// the relay treats it as soft (never suppress on a guess).
			out = append(out, Outcome{Recipient: r.Recipient, Class: ClassSoft, Reason: ReasonOther})
		}
		return out
	case KindComplaint:
		if r.Complaint != nil && len(r.Complaint.OriginalRcptTo) > 1 {
			out := make([]Outcome, 0, len(r.Complaint.OriginalRcptTo))
			for _, a := range r.Complaint.OriginalRcptTo {
				out = append(out, Outcome{Recipient: a, Class: ClassComplaint})
			}
			return out
		}
		return []Outcome{{Recipient: r.Recipient, Class: ClassComplaint}}
	case KindUnsubscribe:
		return []Outcome{{Recipient: r.Recipient, Class: ClassUnsubscribe}}
	case KindAway:
		return []Outcome{{Recipient: r.Recipient, Class: ClassAway}}
	case KindReply:
		return []Outcome{{Recipient: r.Recipient, Class: ClassReply}}
	}
	return []Outcome{{Recipient: r.Recipient, Class: ClassNone}}
}
