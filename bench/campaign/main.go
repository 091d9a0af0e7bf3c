// Command campaign is bench/campaign.sh's loader, not a product: it submits
// one newsletter to N distinct recipients over SMTP, one message per
// recipient (as a CRM that personalises each copy does), from S concurrent
// sessions that each reuse their connection. Every copy carries the same
// campaign, subject and List-Unsubscribe, so a relay that governs marketing
// mail holds all of them. It prints how many were accepted and how long that
// took; any refusal stops it with the server's answer.
//
// Two bodies: -body filler (the default, as before) is one plain-text line
// repeated to -size bytes, which compresses to almost nothing; -body
// newsletter is what an email service provider sends (newsletter.go), a
// multipart/alternative text and HTML message in quoted-printable with a
// greeting, links and tokens unique to each recipient, for measuring what
// storing real bodies costs.
//
//	go run ./bench/campaign -addr 127.0.0.1:2525 -n 100000 -sessions 20 -size 5000
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:2525", "relay's SMTP `address` (loopback)")
	n := flag.Int("n", 1000, "recipients, one message each")
	sessions := flag.Int("sessions", 20, "concurrent SMTP sessions")
	size := flag.Int("size", 5000, "approximate message size in `bytes`")
	campaign := flag.String("campaign", "winter-sale", "X-Kadenz-Campaign of every copy")
	kind := flag.String("body", "filler", "`kind` of body: filler (one repeated line) or newsletter (multipart HTML and text, personalised)")
	sample := flag.Int("print", -1, "print the message for recipient `i` to stdout and exit (no SMTP)")
	flag.Parse()

	var compose func(msg *bytes.Buffer, i int, rcpt string)
	switch *kind {
	case "filler":
		body := filler(*size)
		compose = func(msg *bytes.Buffer, i int, rcpt string) { fillerMessage(msg, i, rcpt, *campaign, body) }
	case "newsletter":
		k := productsFor(*size, *campaign)
		compose = func(msg *bytes.Buffer, i int, rcpt string) { newsletter(msg, i, rcpt, *campaign, k) }
	default:
		fmt.Fprintln(os.Stderr, "campaign: -body is filler or newsletter")
		os.Exit(2)
	}
	if *sample >= 0 {
		var msg bytes.Buffer
		compose(&msg, *sample, recipient(*sample))
		os.Stdout.Write(msg.Bytes())
		return
	}
	var next atomic.Int64
	var sent, bytesSent atomic.Int64
	var firstErr error
	var once sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for s := 0; s < *sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := session(*addr, *n, compose, &next, &sent, &bytesSent); err != nil {
				once.Do(func() { firstErr = err })
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	meanSize := int64(0)
	if sent.Load() > 0 {
		meanSize = bytesSent.Load() / sent.Load()
	}
	fmt.Printf("accepted=%d seconds=%.3f rate=%.0f mean_bytes=%d\n", sent.Load(), took.Seconds(), float64(sent.Load())/took.Seconds(), meanSize)
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "campaign:", firstErr)
		os.Exit(1)
	}
}

// session submits messages on one connection until the shared counter
// passes n.
func session(addr string, n int, compose func(*bytes.Buffer, int, string), next, sent, bytesSent *atomic.Int64) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("loader.test"); err != nil {
		return err
	}
	var msg bytes.Buffer
	for {
		i := int(next.Add(1)) - 1
		if i >= n {
			return c.Quit()
		}
		rcpt := recipient(i)
		msg.Reset()
		compose(&msg, i, rcpt)
		if err := c.SendMail("news@shop.test", []string{rcpt}, bytes.NewReader(msg.Bytes())); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		sent.Add(1)
		bytesSent.Add(int64(msg.Len()))
	}
}

func recipient(i int) string { return fmt.Sprintf("r%07d@example.test", i) }

// fillerMessage is the benchmark's first message: plain text, the filler
// body after a few headers.
func fillerMessage(msg *bytes.Buffer, i int, rcpt, campaign string, body []byte) {
	fmt.Fprintf(msg, "From: Shop <news@shop.test>\r\nTo: <%s>\r\nSubject: Winter sale: boots and coats\r\n"+
		"Message-ID: <%s.%d@shop.test>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n"+
		"X-Kadenz-Campaign: %s\r\nList-Unsubscribe: <mailto:unsub+%d@shop.test>\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n", rcpt, campaign, i, campaign, i)
	msg.Write(body)
}

// filler is a plain-text body of about size bytes in 76-character lines.
func filler(size int) []byte {
	line := []byte("Our winter boots and coats are here: warm, waterproof and twenty percent off.\r\n")
	var b bytes.Buffer
	for b.Len() < size {
		b.Write(line)
	}
	return b.Bytes()
}
