package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The sender: a shop whose CRM over-sends, as CRMs do. Every working
// hour it may start a campaign to a random half of the list; a quarter of
// campaigns are resent a day or two later as near-duplicates ("Reminder:
// ..."), a fifth are urgent offers that expire within a day or so. The
// CRM knows nothing of its readers' interests, and it sends in its own
// office hours (UTC), whatever the recipient's zone. Receipts and
// shipping notices go out at any hour, with no bulk markers.

const (
	campaignsPerDay = 7    // new campaigns a day
	audienceShare   = 0.5  // share of the list each campaign goes to
	resendShare     = 0.25 // campaigns resent as a near-duplicate
	urgentShare     = 0.2  // campaigns with an expiry
	// transactionalPerDay is receipts and notices per recipient a day.
	transactionalPerDay = 0.3
	// sendSpread is how long the CRM takes to send one campaign to its
	// audience: messages to different people arrive minutes apart.
	sendSpread = 10 * time.Minute
)

// campaign is one marketing send (or its resend).
type campaign struct {
	id      string
	topics  []int
	quality float64 // how appealing the offer is, 0.5 to 1.5
	// priority is what the CRM says in X-Kadenz-Priority: its own view of
	// the offer, correlated with quality but noisy.
	priority int
	at       time.Time
	expires  time.Time // zero: no expiry
	subject  string
	body     []string // words
	resend   bool
	// tool is the sending tool (structured worlds, world.go): it decides
	// which headers the mail carries. The classic world's CRM is toolCRM.
	tool int
	// targeted campaigns go to readers the CRM thinks are interested.
	targeted bool
}

// message is one recipient's copy of a campaign, or a transactional mail.
type message struct {
	index     int // position in the stream; keys the response draws
	at        time.Time
	rcpt      int
	campaign  *campaign // nil for transactional mail
	orderID   int
	marketing bool
}

// vocabulary is a fixed list of made-up words: campaign texts draw from
// it, so different campaigns share words (as real ones do) without being
// near-duplicates.
var vocabulary = func() []string {
	cons := []string{"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"}
	vow := []string{"a", "e", "i", "o", "u"}
	var words []string
	for _, a := range cons {
		for _, b := range vow {
			for _, c := range cons[:6] {
				words = append(words, a+b+c+b)
			}
		}
	}
	return words
}()

// newStream draws the campaigns and messages of days days from start, in
// order of arrival.
func newStream(rng *rand.Rand, pop []*recipient, start time.Time, days int) []message {
	var camps []*campaign
	for day := range days {
		dayStart := start.AddDate(0, 0, day)
		// Poisson-ish: campaignsPerDay on average, at least one.
		n := 0
		for range 2 * campaignsPerDay {
			if rng.Float64() < 0.5 {
				n++
			}
		}
		for range max(n, 1) {
			c := &campaign{
				id:      fmt.Sprintf("c%04d", len(camps)+1),
				quality: 0.5 + rng.Float64(),
				at:      dayStart.Add(7*time.Hour + time.Duration(rng.Int64N(int64(12*time.Hour)))),
			}
			c.topics = []int{rng.IntN(len(Topics))}
			if rng.Float64() < 0.4 {
				if t := rng.IntN(len(Topics)); t != c.topics[0] {
					c.topics = append(c.topics, t)
				}
			}
			c.priority = min(max(int(50+40*(c.quality-1)+20*rng.NormFloat64()), 0), 100)
			if rng.Float64() < urgentShare {
				c.expires = c.at.Add(6*time.Hour + time.Duration(rng.Int64N(int64(24*time.Hour))))
				c.priority = min(c.priority+20, 100)
			}
			c.body = make([]string, 60)
			for i := range c.body {
				c.body[i] = vocabulary[rng.IntN(len(vocabulary))]
			}
			c.subject = strings.Join(c.body[:4], " ")
			camps = append(camps, c)
			if rng.Float64() < resendShare {
				r := *c
				r.resend = true
				r.at = c.at.Add(24*time.Hour + time.Duration(rng.Int64N(int64(24*time.Hour))))
				if !r.expires.IsZero() {
					r.expires = r.expires.Add(r.at.Sub(c.at)) // extended: "last chance"
				}
				r.subject = "Reminder: " + c.subject
				r.body = slices.Clone(c.body)
				r.body[rng.IntN(len(r.body))] = "again"
				camps = append(camps, &r)
			}
		}
	}
	end := start.AddDate(0, 0, days)
	var msgs []message
	audiences := map[string][]int{} // a resend goes to the original audience
	for _, c := range camps {
		if c.at.After(end) {
			continue // a resend past the end of the run
		}
		aud, ok := audiences[c.id]
		if !ok {
			for i := range pop {
				if rng.Float64() < audienceShare {
					aud = append(aud, i)
				}
			}
			audiences[c.id] = aud
		}
		for k, i := range aud {
			at := c.at.Add(sendSpread * time.Duration(k) / time.Duration(len(aud)))
			msgs = append(msgs, message{at: at, rcpt: i, campaign: c, marketing: true})
		}
	}
	return transactionalAndSort(rng, pop, start, end, msgs)
}

// transactionalAndSort adds every recipient's transactional mail to msgs
// and puts the stream in order of arrival.
func transactionalAndSort(rng *rand.Rand, pop []*recipient, start, end time.Time, msgs []message) []message {
	order := 1000
	for i := range pop {
		// Exponential gaps: transactional mail comes at any hour.
		for t := start; ; {
			t = t.Add(time.Duration(rng.ExpFloat64() / transactionalPerDay * float64(24*time.Hour)))
			if !t.Before(end) {
				break
			}
			order++
			msgs = append(msgs, message{at: t.Truncate(time.Millisecond), rcpt: i, orderID: order})
		}
	}
	// Arrival order; ties (none expected) by recipient for determinism.
	slices.SortStableFunc(msgs, func(a, b message) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.rcpt - b.rcpt
	})
	for i := range msgs {
		msgs[i].index = i
	}
	return msgs
}

// bytes renders the message as the CRM would submit it (RFC 5322, CRLF).
func (m *message) bytes(r *recipient) []byte {
	var b strings.Builder
	h := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	mid := fmt.Sprintf("<m%d.%s>", m.index, strings.Replace(r.addr, "@", ".", 1))
	if !m.marketing {
		h("From", `"Shop orders" <orders@shop.example>`)
		h("To", "<"+r.addr+">")
		h("Subject", fmt.Sprintf("Your order #%d has shipped", m.orderID))
		h("Date", m.at.Format(time.RFC1123Z))
		h("Message-ID", mid+"@shop.example")
		h("MIME-Version", "1.0")
		h("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(&b, "\r\nHello,\r\n\r\nyour order #%d is on its way.\r\n", m.orderID)
		return []byte(b.String())
	}
	c := m.campaign
	h("From", `"Shop" <news@shop.example>`)
	h("To", "<"+r.addr+">")
	h("Subject", c.subject)
	h("Date", m.at.Format(time.RFC1123Z))
	h("Message-ID", mid+"@shop.example")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("List-Unsubscribe", fmt.Sprintf("<mailto:unsubscribe+%s@shop.example>, <https://shop.example/u/%s>", strings.Split(r.addr, "@")[0], c.id))
	h("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
	if c.tool == toolList {
		// A list manager: its own markers, none of Kadenz's headers.
		h("List-Id", "Shop news <news.shop.example>")
		h("Precedence", "bulk")
	} else {
		h("X-Kadenz-Campaign", c.id)
		h("X-Kadenz-Timezone", r.zone)
	}
	if c.tool == toolCRM || c.tool == toolShop {
		names := make([]string, len(c.topics))
		for i, t := range c.topics {
			names[i] = Topics[t]
		}
		h("X-Kadenz-Topics", strings.Join(names, ", "))
	}
	if c.tool == toolCRM || c.tool == toolESP {
		h("X-Kadenz-Priority", fmt.Sprint(c.priority))
	}
	if !c.expires.IsZero() {
		h("X-Kadenz-Expires", c.expires.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "\r\nHi %s,\r\n\r\n", strings.Split(r.addr, "@")[0])
	for i := 0; i < len(c.body); i += 12 {
		b.WriteString(strings.Join(c.body[i:min(i+12, len(c.body))], " "))
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "\r\nShop now: https://shop.example/%s?u=%s\r\n", c.id, strings.Split(r.addr, "@")[0])
	return []byte(b.String())
}
