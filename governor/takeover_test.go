package governor

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"kadenz/governor/feedback/report"
	"kadenz/store"
)

// A human reply to marketing mail reaches the team address over SMTP with
// its context and pauses marketing; an out-of-office reply does neither.
func TestHumanReplyTakeover(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Feedback.TeamAddress = "crm-team@shop.test"
	cfg.Feedback.ReplyPause = 7 * 24 * time.Hour
	r := startRelayAt(t, cfg, c)
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test", "bob@example.test"}, marketing("Winter boots", "")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 48 && len(up.messages()) < 2; i++ {
		step(t, r, c, 15*time.Minute)
		waitCaughtUp(t, r)
	}
	waitFor(t, "both released", func() bool { return len(up.messages()) == 2 })
	annEnv := envelopeOf(t, r.DB(), "ann@example.test", 0)
	bobEnv := envelopeOf(t, r.DB(), "bob@example.test", 0)

	// Bob is on holiday: an automatic reply.
	if err := r.feedback.Apply(report.Report{Kind: report.KindAway, EnvelopeID: bobEnv.ID, Recipient: "bob@example.test",
		Away: &report.Away{Until: c.Now().Add(48 * time.Hour)}, Subject: "Out of office"}); err != nil {
		t.Fatal(err)
	}
	// Ann writes back in her own words.
	rep := report.Report{Kind: report.KindReply, EnvelopeID: annEnv.ID, Recipient: "ann@example.test",
		From: "Ann <ann@example.test>", Subject: "Re: Winter boots",
		Reply: &report.Reply{Text: "Do you have these in size 44?\nAnn"}}
	raw := []byte("From: Ann <ann@example.test>\r\nTo: news@shop.test\r\nSubject: Re: Winter boots\r\n" +
		"Message-ID: <re-1@example.test>\r\nIn-Reply-To: <winter@shop.test>\r\n\r\nDo you have these in size 44?\r\nAnn\r\n" +
		"\r\n> Winter boots, now 20% off.\r\n")
	pauseEnd := c.Now().Add(cfg.Feedback.ReplyPause)
	if err := r.feedback.ApplyRaw(rep, raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the forward", func() bool { return len(up.messages()) == 3 })
	fwd := up.messages()[2]
	if len(fwd.to) != 1 || fwd.to[0] != "crm-team@shop.test" {
		t.Fatalf("forward went to %v", fwd.to)
	}
	head, _, _ := strings.Cut(string(fwd.data), "\r\n\r\n")
	text, attached := forwardParts(t, fwd.data)
	if !bytes.Equal(attached, raw) {
		t.Errorf("the attached reply differs from the one received:\n%q\nwant\n%q", attached, raw)
	}
	for _, want := range []string{"Reply-To: ann@example.test", "Auto-Submitted: auto-generated", "Subject: Reply from ann@example.test: Re: Winter boots"} {
		if !strings.Contains(head, want) {
			t.Errorf("forward header lacks %q:\n%s", want, head)
		}
	}
	for _, want := range []string{
		"> Do you have these in size 44?", // the reply
		`delivered   "Winter boots"`,      // what she was sent
		"replies 1.0",                     // her engagement
		annEnv.ID + " release:",           // Kadenz's decision
		"until " + pauseEnd.Format(time.RFC1123) + " (reason: human reply)", // the pause
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("forward lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(string(fwd.data), "bob@example.test") {
		t.Errorf("forward mentions bob")
	}
	// The upstream has it; the queue records the delivery a moment later.
	waitFor(t, "the forward's envelope delivered", func() bool {
		return envelopeOf(t, r.DB(), "crm-team@shop.test", 0).State == store.StateDelivered
	})

	// Next marketing mail: ann's waits for the pause, bob's is decided as usual.
	c.advance(72 * time.Hour)
	if err := submit(t, dial(t, r), "news@shop.test", []string{"ann@example.test", "bob@example.test"}, marketing("Summer sandals", "")); err != nil {
		t.Fatal(err)
	}
	step(t, r, c, 5*time.Minute)
	var ann store.Envelope
	waitFor(t, "ann's decision", func() bool {
		ann = envelopeOf(t, r.DB(), "ann@example.test", 1)
		return len(decisionsOf(t, r.DB(), ann.ID)) > 0
	})
	// Read again: the first read may predate the decision's commit.
	ann = envelopeOf(t, r.DB(), "ann@example.test", 1)
	rec := decisionsOf(t, r.DB(), ann.ID)[0]
	if ann.State != store.StateHeld || rec.Action != "defer" || !slices.Contains(rec.Reasons, "human-reply") ||
		!strings.Contains(rec.Explanation, "human reply") {
		t.Errorf("ann's next marketing mail: %s due %v, %+v; want deferred for the human reply", ann.State, ann.Due, rec)
	}
	if p := profileOf(t, r.DB(), "ann@example.test"); !ann.Due.Equal(p.PausedUntil) {
		t.Errorf("deferred to %v, pause ends %v", ann.Due, p.PausedUntil)
	}
	waitFor(t, "bob's decision", func() bool {
		return len(decisionsOf(t, r.DB(), envelopeOf(t, r.DB(), "bob@example.test", 1).ID)) > 0
	})
	bob := envelopeOf(t, r.DB(), "bob@example.test", 1)
	if recs := decisionsOf(t, r.DB(), bob.ID); slices.Contains(recs[0].Reasons, "human-reply") {
		t.Errorf("bob's out-of-office paused him: %+v", recs)
	}
	if p := profileOf(t, r.DB(), "bob@example.test"); !p.PausedUntil.IsZero() || p.AwayUntil.IsZero() {
		t.Errorf("bob's profile after an out-of-office: paused %v, away %v", p.PausedUntil, p.AwayUntil)
	}
	if n := len(up.messages()); n > 3+1 {
		t.Errorf("%d messages upstream; the out-of-office must not be forwarded", n)
	}
	for _, m := range up.messages()[3:] {
		if slices.Contains(m.to, "crm-team@shop.test") {
			t.Errorf("a second forward went to the team")
		}
	}
}

// forwardParts reads a reply forward: multipart/mixed with the context as
// text/plain (quoted-printable) and the reply as message/rfc822.
func forwardParts(t *testing.T, data []byte) (text, attached []byte) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("forward is %q (%v), want multipart/mixed", mt, err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []*multipart.Part
	var bodies [][]byte
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts, bodies = append(parts, p), append(bodies, b)
	}
	if len(parts) != 2 || !strings.HasPrefix(parts[0].Header.Get("Content-Type"), "text/plain") ||
		parts[1].Header.Get("Content-Type") != "message/rfc822" {
		t.Fatalf("forward has %d parts, want text/plain then message/rfc822:\n%s", len(parts), data)
	}
	text, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(bodies[0])))
	if err != nil {
		t.Fatal(err)
	}
	return text, bodies[1]
}

// A reply read from a mailbox is forwarded with the message itself
// attached, as it arrived (lines ending in CRLF).
func TestIngestedReplyForwardCarriesTheOriginal(t *testing.T) {
	up := startUpstream(t, nil)
	c := &clock{t: monday10}
	cfg := governedConfig(t, up.addr)
	cfg.Feedback.TeamAddress = "crm-team@shop.test"
	r := startRelayAt(t, cfg, c)
	raw, err := os.ReadFile("feedback/report/testdata/reply-human.eml")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.feedback.Ingest(t.Context(), raw); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the forward", func() bool { return len(up.messages()) == 1 })
	text, attached := forwardParts(t, up.messages()[0].data)
	// As received, every line ending CRLF (the file has bare LFs).
	want := bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	if !bytes.Equal(attached, want) {
		t.Errorf("attached:\n%q\nwant\n%q", attached, want)
	}
	if !strings.Contains(string(text), "> does the linen shirt come in XL?") {
		t.Errorf("the context lacks the quoted reply:\n%s", text)
	}
}
