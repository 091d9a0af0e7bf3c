package governor

import (
	"kadenz/config"
	"kadenz/governor/feedback/report"
	"kadenz/store"
)

// Correlation on the way out: released marketing mail carries its envelope
// ID, so that what comes back — a bounce, a complaint, a reply — can be tied
// to the envelope (governor/feedback recovers it). Three ways, each added at
// delivery time, after intake stripped inbound X-Kadenz-* headers:
//   - an X-Kadenz-Envelope header on top of the message (marketing only),
//   - a VERP return path prefix+ENVELOPEID@domain when feedback.verp.domain
//     is set (marketing only: a receipt keeps the sender's return path),
//   - ENVID in MAIL FROM when the upstream offers DSN (smarthost.go), for a
//     transaction of one envelope — unless the client gave an ENVID of its
//     own, which is passed on unchanged (RFC 3461 4.4): the client's
//     correlation comes first, and the first two ways still tie the bounce
//     of released mail to its envelope.

// HeaderEnvelope names the envelope in delivered marketing mail.
const HeaderEnvelope = "X-Kadenz-Envelope"

// prepareOutgoing is the delivery queue's Prepare hook.
func (r *Relay) prepareOutgoing(e *store.Envelope, body []byte) []byte {
	if e.Express {
		return body // transactional: never marketing, nothing to look up
	}
	m, err := r.db.Message(e.MessageID)
	if err != nil || m.Class != config.ClassMarketing {
		return body
	}
	if v := r.config().Feedback.VERP; v.Domain != "" {
		e.From = report.VERPAddress(v.Prefix, e.ID, v.Domain)
	}
	out := make([]byte, 0, len(HeaderEnvelope)+len(e.ID)+4+len(body))
	out = append(out, HeaderEnvelope+": "+e.ID+"\r\n"...)
	return append(out, body...)
}
