package governor

import (
	"net"

	"kadenz/config"
	"kadenz/governor/delivery"
	"kadenz/store"
)

// maxReturned caps the original returned whole in a report (RET=FULL);
// Postfix's bounce_size_limit is 50,000 too.
const maxReturned = 50_000

// queueNotice is the delivery queue's Notify hook: it composes the report
// (delivery/notice.go) and stores it as transactional mail from the null
// sender to the original sender, in the express lane, like any message a
// person waits for. It returns once the report is durable.
func (r *Relay) queueNotice(n delivery.Notice) error {
	now := r.now()
	id := newMessageID(now, r.random)
	hostname := r.config().Hostname
	body := delivery.ComposeReport(n, delivery.ReportOptions{Hostname: hostname, MessageID: id, MaxReturned: maxReturned})
	msg := store.Message{
		ID:          id,
		From:        "", // RFC 5321 4.5.5: reports go from <>, so none is ever reported on
		Received:    now,
		Size:        len(body),
		HeaderID:    id + "@" + hostname,
		Class:       config.ClassTransactional,
		ClassReason: "delivery status notification (" + n.Action + ") for message " + n.Message.ID,
		SMTPUTF8:    n.Message.SMTPUTF8,
	}
	_, err := r.db.AcceptWith(msg, body, []string{n.Message.From}, now, func(_ int, e *store.Envelope) {
		e.Express = true
	})
	if err != nil {
		return err
	}
	r.log.Info("delivery status notification queued", "message", id, "about", n.Message.ID, "action", n.Action,
		"to", n.Message.From, "recipients", len(n.Envelopes))
	r.queue.Kick()
	return nil
}

// upstreamHost is the host part of the upstream address, for Remote-MTA.
func upstreamHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
