package report

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rcpt is the expected outcome for one recipient: address, status, bounce.
type rcpt struct {
	addr   string
	status string
	bounce Bounce
}

func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file       string
		kind       Kind
		format     string
		recipient  string
		envelope   string
		source     Source
		messageID  string
		rcpts      []rcpt // nil: not checked
		until      string // 2006-01-02, for away
		textHas    string // for replies and unsubscribes
		textHasNot string
	}{
		{file: "dsn-rfc3464-hard.eml", kind: KindBounce, format: "rfc3464", recipient: "nobody@example.net",
			envelope: "06h0hh51xwchm3pfcs2g-1", source: SourceVERP, messageID: "spring-2026.nobody@crm.shop.example",
			rcpts: []rcpt{{"nobody@example.net", "5.1.1", HardBounce}}},
		{file: "dsn-multi-recipient.eml", kind: KindBounce, format: "rfc3464", recipient: "alice@example.org",
			envelope: "06h0hh51xwchm3pfcs2g-3", source: SourceENVID, messageID: "spring-2026.multi@crm.shop.example",
			rcpts: []rcpt{
				{"alice@example.org", "5.1.1", HardBounce},
				{"bob@example.org", "4.4.1", SoftBounce},
				{"carol@example.org", "5.2.2", SoftBounce}, // mailbox full: soft whatever the digit
				{"dave@example.org", "2.0.0", NoBounce},
			}},
		{file: "postfix-dsn-hard.eml", kind: KindBounce, format: "rfc3464", recipient: "gone@example.com",
			envelope: "06h0hh51xwchm3pfcs2g-7", source: SourceVERP, messageID: "march-offers.gone@crm.shop.example",
			rcpts: []rcpt{{"gone@example.com", "5.1.1", HardBounce}}},
		{file: "postfix-delayed.eml", kind: KindBounce, format: "rfc3464", recipient: "slow@example.net",
			envelope: "06h0hh51xwchm3pfcs2g-2", source: SourceVERP, messageID: "flash.slow@crm.shop.example",
			rcpts: []rcpt{{"slow@example.net", "4.4.1", SoftBounce}}},
		{file: "postfix-plain-undeliverable.eml", kind: KindBounce, format: "postfix-text", recipient: "left@example.com",
			envelope: "06h0hh51xwchm3pfcs2g-4", source: SourceVERP, messageID: "weekend.left@crm.shop.example",
			rcpts: []rcpt{{"left@example.com", "5.1.1", HardBounce}}},
		{file: "exim-failed.eml", kind: KindBounce, format: "exim", recipient: "moved@example.co.uk",
			envelope: "06h0hh51xwchm3pfcs2g-5", source: SourceVERP, messageID: "linen.moved@crm.shop.example",
			rcpts: []rcpt{{"moved@example.co.uk", "5.1.1", HardBounce}}},
		{file: "exim-delayed.eml", kind: KindBounce, format: "exim", recipient: "busy@example.co.uk",
			envelope: "06h0hh51xwchm3pfcs2g-6", source: SourceVERP,
			rcpts: []rcpt{{"busy@example.co.uk", "4.3.0", SoftBounce}}},
		{file: "gmail-dsn.eml", kind: KindBounce, format: "rfc3464", recipient: "nosuchuser@gmail.com",
			envelope: "06h0hh5aaaaaaaaaaaaa-1", source: SourceHeader, messageID: "winter-sale.nosuch@crm.shop.example",
			rcpts: []rcpt{{"nosuchuser@gmail.com", "5.1.1", HardBounce}}},
		{file: "outlook-ndr.eml", kind: KindBounce, format: "rfc3464", recipient: "closed@hotmail.example",
			envelope: "06h0hh51xwchm3pfcs2g-8", source: SourceVERP, messageID: "spring.closed@crm.shop.example",
			rcpts: []rcpt{{"closed@hotmail.example", "5.5.0", HardBounce}}},
		{file: "exchange-ndr-legacy.eml", kind: KindBounce, format: "exchange-text", recipient: "former.employee@corp.example.com",
			envelope: "06h0hh51xwchm3pfcs2g-9", source: SourceVERP, messageID: "spring.former@crm.shop.example",
			rcpts: []rcpt{{"former.employee@corp.example.com", "5.1.10", HardBounce}}},
		{file: "yahoo-failure-notice.eml", kind: KindBounce, format: "yahoo-text", recipient: "deleted.account@yahoo.com",
			envelope: "06h0hh51xwchm3pfcs2g-10", source: SourceVERP, messageID: "spring.deleted@crm.shop.example",
			rcpts: []rcpt{{"deleted.account@yahoo.com", "5.0.0", HardBounce}}},
		{file: "arf-abuse.eml", kind: KindComplaint, format: "arf", recipient: "annoyed@isp.example",
			envelope: "06h0hh51xwchm3pfcs2g-11", source: SourceVERP, messageID: "spring.annoyed@crm.shop.example"},
		{file: "yahoo-arf.eml", kind: KindComplaint, format: "arf", recipient: "",
			envelope: "06h0hh51xwchm3pfcs2g-12", source: SourceVERP, messageID: "spring.yahoo@crm.shop.example"},
		{file: "outlook-jmrp.eml", kind: KindComplaint, format: "jmrp", recipient: "grumpy@hotmail.example",
			envelope: "06h0hh51xwchm3pfcs2g-13", source: SourceVERP, messageID: "spring.grumpy@crm.shop.example"},
		{file: "ooo-exchange.eml", kind: KindAway, format: "rfc3834", recipient: "jane.roe@corp.example.com",
			messageID: "spring.jane@crm.shop.example", until: "2026-03-23"},
		{file: "vacation-sieve.eml", kind: KindAway, format: "rfc3834", recipient: "sam@mail.example.org",
			envelope: "06h0hh51xwchm3pfcs2g-14", source: SourceVERP, messageID: "spring.sam@crm.shop.example", until: "2026-04-02"},
		{file: "ooo-german-latin1.eml", kind: KindAway, format: "autoreply-heuristic", recipient: "juergen@beispiel.example",
			messageID: "spring.juergen@crm.shop.example", until: "2026-04-03"},
		{file: "autorespond-re-subject.eml", kind: KindAway, format: "autoreply-heuristic", recipient: "help@vendor.example",
			messageID: "spring.help@crm.shop.example"},
		{file: "unsubscribe-mailto.eml", kind: KindUnsubscribe, format: "mailto", recipient: "chris@example.net",
			envelope: "06h0hh51xwchm3pfcs2g-15", source: SourceSubject, textHas: "unsubscribe"},
		{file: "unsubscribe-gmail.eml", kind: KindUnsubscribe, format: "mailto", recipient: "pat@gmail.example",
			envelope: "06h0hh51xwchm3pfcs2g-16", source: SourceVERP},
		{file: "reply-human.eml", kind: KindReply, format: "reply", recipient: "alex.smith@example.com",
			messageID: "spring.alex@crm.shop.example", textHas: "does the linen shirt come in XL? I couldn’t find it",
			textHasNot: "Spring is here"},
		{file: "reply-outlook-cp1252.eml", kind: KindReply, format: "reply", recipient: "petra.mueller@firma.example",
			messageID: "spring.petra@crm.shop.example", textHas: "keine Werbung mehr – danke.\n\nPetra Müller",
			textHasNot: "Frühling ist da"},
		{file: "unknown-newsletter.eml", kind: KindUnknown, format: ""},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		seen[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			r, err := Parse(readFixture(t, tc.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			check := func(what string, got, want any) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %q, want %q", what, got, want)
				}
			}
			check("Kind", r.Kind, tc.kind)
			check("Format", r.Format, tc.format)
			check("Recipient", r.Recipient, tc.recipient)
			check("EnvelopeID", r.EnvelopeID, tc.envelope)
			check("EnvelopeIDSource", r.EnvelopeIDSource, tc.source)
			check("MessageID", r.MessageID, tc.messageID)
			if r.Truncated {
				t.Errorf("Truncated set for a small fixture")
			}
			if tc.rcpts != nil {
				if len(r.Recipients) != len(tc.rcpts) {
					t.Fatalf("got %d recipients %+v, want %d", len(r.Recipients), r.Recipients, len(tc.rcpts))
				}
				for i, w := range tc.rcpts {
					g := r.Recipients[i]
					check("Recipients.Address", g.Address, w.addr)
					check("Recipients.Status", g.Status, w.status)
					check("Recipients.Bounce", g.Bounce, w.bounce)
				}
			}
			if tc.kind == KindAway {
				if r.Away == nil {
					t.Fatal("Away is nil")
				}
				got := ""
				if !r.Away.Until.IsZero() {
					got = r.Away.Until.Format(time.DateOnly)
				}
				check("Away.Until", got, tc.until)
			}
			if tc.kind == KindReply || tc.kind == KindUnsubscribe {
				if r.Reply == nil {
					t.Fatal("Reply is nil")
				}
				if !strings.Contains(r.Reply.Text, tc.textHas) {
					t.Errorf("Reply.Text = %q, want it to contain %q", r.Reply.Text, tc.textHas)
				}
				if tc.textHasNot != "" && strings.Contains(r.Reply.Text, tc.textHasNot) {
					t.Errorf("Reply.Text = %q, want the quoted %q gone", r.Reply.Text, tc.textHasNot)
				}
			}
		})
	}
	// Every fixture is in the table, so none goes untested.
	names, _ := filepath.Glob("testdata/*.eml")
	for _, n := range names {
		if !seen[filepath.Base(n)] {
			t.Errorf("fixture %s is not in the table", n)
		}
	}
}

func TestComplaintFields(t *testing.T) {
	r, err := Parse(readFixture(t, "arf-abuse.eml"))
	if err != nil {
		t.Fatal(err)
	}
	c := r.Complaint
	if c == nil {
		t.Fatal("Complaint is nil")
	}
	if c.FeedbackType != "abuse" || c.UserAgent != "ISPExampleFBL/1.2" ||
		c.OriginalMailFrom != "bounce+06h0hh51xwchm3pfcs2g-11@news.shop.example" ||
		len(c.OriginalRcptTo) != 1 || c.OriginalRcptTo[0] != "annoyed@isp.example" ||
		c.SourceIP.String() != "198.51.100.10" || c.ReportedDomain != "shop.example" ||
		!c.ArrivalDate.Equal(time.Date(2026, 3, 9, 13, 55, 0, 0, time.UTC)) {
		t.Errorf("Complaint = %+v", *c)
	}
	if r.Reporter != "ISPExampleFBL/1.2" {
		t.Errorf("Reporter = %q", r.Reporter)
	}
}

func TestDSNFields(t *testing.T) {
	r, err := Parse(readFixture(t, "postfix-dsn-hard.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Reporter != "smtp.shop.example" {
		t.Errorf("Reporter = %q", r.Reporter)
	}
	g := r.Recipients[0]
	if g.Action != "failed" || g.RemoteMTA != "mx1.example.com" || g.OriginalAddress != "gone@example.com" ||
		g.Diagnostic != "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown in virtual mailbox table" {
		t.Errorf("recipient = %+v", g)
	}
	if r.Subject != "Undelivered Mail Returned to Sender" || !strings.Contains(r.From, "MAILER-DAEMON") || r.Date.IsZero() {
		t.Errorf("Subject %q From %q Date %v", r.Subject, r.From, r.Date)
	}
}

// An out-of-office notice must never count as a bounce (it would suppress a
// customer who is merely on holiday) nor as a human reply (it would pause
// marketing and page the team). Vary the fixtures with the things that tempt
// a classifier: Re: subjects, In-Reply-To, bounce-like words, empty return
// paths.
func TestAwayIsNeverBounceOrReply(t *testing.T) {
	bases := []string{"ooo-exchange.eml", "vacation-sieve.eml", "ooo-german-latin1.eml", "autorespond-re-subject.eml"}
	variants := []func(string) string{
		func(s string) string { return s },
		func(s string) string { return "Return-Path: <>\n" + s },
		func(s string) string { return strings.Replace(s, "Subject: ", "Subject: Re: ", 1) },
		func(s string) string {
			return strings.Replace(s, "\n\n", "\n\nYour message could not be delivered to me in person, I am away.\n", 1)
		},
		func(s string) string { return "References: <x@crm.shop.example>\n" + s },
	}
	for _, b := range bases {
		for i, v := range variants {
			r, err := Parse([]byte(v(string(readFixture(t, b)))))
			if err != nil {
				t.Fatalf("%s variant %d: %v", b, i, err)
			}
			if r.Kind != KindAway {
				t.Errorf("%s variant %d: Kind = %q, want away", b, i, r.Kind)
			}
		}
	}
	// And a plain reply is not away.
	r, err := Parse(readFixture(t, "reply-human.eml"))
	if err != nil || r.Kind != KindReply {
		t.Fatalf("reply-human: %v %v", r.Kind, err)
	}
}

// A bounce that carries Auto-Submitted: auto-replied (Exim, Postfix, Google
// and Exchange all set it) is still a bounce.
func TestBounceWithAutoSubmittedIsBounce(t *testing.T) {
	for _, f := range []string{"exim-failed.eml", "postfix-dsn-hard.eml", "gmail-dsn.eml", "outlook-ndr.eml"} {
		r, err := Parse(readFixture(t, f))
		if err != nil || r.Kind != KindBounce {
			t.Errorf("%s: Kind %q, err %v", f, r.Kind, err)
		}
	}
}

func TestVERPPrefixOption(t *testing.T) {
	raw := strings.ReplaceAll(string(readFixture(t, "exim-failed.eml")), "bounce+", "rp+")
	raw = strings.ReplaceAll(raw, "X-Kadenz-Envelope: 06h0hh51xwchm3pfcs2g-5\n", "")
	r, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.EnvelopeID != "" {
		t.Errorf("default prefix took %q from an rp+ address", r.EnvelopeID)
	}
	r, err = Parser{VERPPrefix: "rp"}.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.EnvelopeID != "06h0hh51xwchm3pfcs2g-5" || r.EnvelopeIDSource != SourceVERP {
		t.Errorf("EnvelopeID = %q from %q", r.EnvelopeID, r.EnvelopeIDSource)
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"empty", "", "empty input"},
		{"blank", "\r\n\r\n", "empty input"},
		{"not a header", "this is not a mail message\nat all\n", "malformed MIME header"},
		{"leading space", " Subject: x\n\nbody", "malformed MIME header initial line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.raw))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want ErrMalformed mentioning %q", err, tc.want)
			}
		})
	}
}

func TestHeaderOnlyMessage(t *testing.T) {
	r, err := Parse([]byte("From: a@example.org\nSubject: hello"))
	if err != nil || r.Kind != KindUnknown {
		t.Fatalf("got %v %v", r.Kind, err)
	}
}

func TestLimits(t *testing.T) {
	raw := readFixture(t, "postfix-dsn-hard.eml")
	// Cut inside the attached original: the report before it still counts.
	cut := strings.Index(string(raw), "Hello, here are")
	r, err := Parser{MaxBytes: cut}.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || r.Kind != KindBounce || r.EnvelopeID != "06h0hh51xwchm3pfcs2g-7" {
		t.Errorf("Truncated %v Kind %q EnvelopeID %q", r.Truncated, r.Kind, r.EnvelopeID)
	}
	// A huge body costs at most MaxPartBytes.
	big := "From: x@example.org\nSubject: Re: hi\nIn-Reply-To: <a@b.example>\n\n" + strings.Repeat("word ", 1<<20)
	r, err = Parser{MaxPartBytes: 1000}.Parse([]byte(big))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || len(r.Reply.Text) > 1000 {
		t.Errorf("Truncated %v, text %d bytes", r.Truncated, len(r.Reply.Text))
	}
}

func TestEnvelopeID(t *testing.T) {
	for s, want := range map[string]bool{
		"06h0hh51xwchm3pfcs2g-1":   true,
		"06h0hh51xwchm3pfcs2g-123": true,
		"06h0hh51xwchm3pfcs2g-0":   false, // positions are 1-based
		"06h0hh51xwchm3pfcs2g-01":  false,
		"06h0hh51xwchm3pfcs2g":     false,
		"06h0hh51xwchm3pfcs2-1":    false, // 19 characters
		"06h0hh51xwchm3pfcsig-1":   false, // i is not Crockford
		"06H0HH51XWCHM3PFCS2G-1":   false, // lower case only; normalise first
		"06h0hh51xwchm3pfcs2g-1x":  false,
	} {
		if got := IsEnvelopeID(s); got != want {
			t.Errorf("IsEnvelopeID(%q) = %v", s, got)
		}
	}
	for addr, want := range map[string]string{
		"bounce+06h0hh51xwchm3pfcs2g-1@news.shop.example":         "06h0hh51xwchm3pfcs2g-1",
		"<BOUNCE+06H0HH51XWCHM3PFCS2G-2@news.shop.example>":       "06h0hh51xwchm3pfcs2g-2",
		"Shop <bounce+06h0hh51xwchm3pfcs2g-3@news.shop.example>":  "06h0hh51xwchm3pfcs2g-3",
		"rfc822; bounce+06h0hh51xwchm3pfcs2g-4@news.shop.example": "06h0hh51xwchm3pfcs2g-4",
		"bounces+06h0hh51xwchm3pfcs2g-1@news.shop.example":        "",
		"bounce+nothing@news.shop.example":                        "",
		"bounce@news.shop.example":                                "",
	} {
		got, _ := EnvelopeIDFromVERP(addr, "")
		if got != want {
			t.Errorf("EnvelopeIDFromVERP(%q) = %q, want %q", addr, got, want)
		}
	}
	if a := VERPAddress("", "06h0hh51xwchm3pfcs2g-1", "news.shop.example"); a != "bounce+06h0hh51xwchm3pfcs2g-1@news.shop.example" {
		t.Errorf("VERPAddress = %q", a)
	}
}

func TestStatusCode(t *testing.T) {
	for in, want := range map[string]string{
		"550 5.1.1 user unknown":                       "5.1.1",
		"smtp; 550-5.1.1 The email account":            "5.1.1",
		"#550 5.1.10 RESOLVER.ADR.RecipientNotFound":   "5.1.10",
		"554: delivery error: dd Not a valid":          "5.0.0",
		"connect to mx[192.0.2.80]:25: timed out":      "",
		"421 try again later":                          "4.0.0",
		"version 4.96 said 5.7.1":                      "5.7.1",
		"at 2026-03-07 host 10.5.1.1 gave 451 4.3.0 x": "4.3.0",
	} {
		if got := statusCode(in); got != want {
			t.Errorf("statusCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStripQuoted(t *testing.T) {
	in := "Yes please!\n\n-----Original Message-----\nFrom: Shop\nSubject: offer\n\nBuy now"
	if got := stripQuoted(in); got != "Yes please!" {
		t.Errorf("stripQuoted = %q", got)
	}
	in = "Thanks\n> quoted\nmore\nAm 15.03.2026 um 09:00 schrieb Shop News <news@shop.example>:\n> alt"
	if got := stripQuoted(in); got != "Thanks\nmore" {
		t.Errorf("stripQuoted = %q", got)
	}
}

func TestUntilDate(t *testing.T) {
	ref := time.Date(2026, 12, 20, 9, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"I am away until Monday, 5 January.":      "2027-01-05", // the next 5 January after ref
		"back on January 7th, 2027":               "2027-01-07",
		"bis zum 03.01.2027 nicht erreichbar":     "2027-01-03",
		"until 12/01/2027 (ambiguous)":            "",
		"until 13/01/2027":                        "2027-01-13",
		"till 31.02.2027":                         "",
		"absent jusqu'au 4 janvier 2027":          "2027-01-04",
		"until further notice":                    "",
		"until! 000":                              "",
		"Thank you. Untill then.":                 "",
		"returning on 2027-01-02, then read mail": "2027-01-02",
	} {
		got := ""
		if u := untilDate(in, ref); !u.IsZero() {
			got = u.Format(time.DateOnly)
		}
		if got != want {
			t.Errorf("untilDate(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNotSpamIsNotComplaint(t *testing.T) {
	raw := strings.Replace(string(readFixture(t, "arf-abuse.eml")), "Feedback-Type: abuse", "Feedback-Type: not-spam", 1)
	r, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != KindUnknown || r.Complaint == nil || r.Complaint.FeedbackType != "not-spam" {
		t.Errorf("Kind %q Complaint %+v", r.Kind, r.Complaint)
	}
}

// A text bounce needs two signals: a person who writes "undeliverable" in a
// reply is still a person.
func TestTextBounceNeedsTwoSignals(t *testing.T) {
	raw := "From: Kim <kim@example.org>\nSubject: Re: Undeliverable parcel?\nIn-Reply-To: <a@crm.shop.example>\n\nMy parcel was undeliverable, can you help?\n"
	r, err := Parse([]byte(raw))
	if err != nil || r.Kind != KindReply {
		t.Fatalf("Kind %q, err %v", r.Kind, err)
	}
}

// A person asking to stop in a reply is a reply: a person should read it.
func TestPleaseStopInReplyIsReply(t *testing.T) {
	raw := "From: Kim <kim@example.org>\nSubject: Re: Spring collection\nIn-Reply-To: <a@crm.shop.example>\n\nPlease stop sending me these. Unsubscribe me.\n"
	r, err := Parse([]byte(raw))
	if err != nil || r.Kind != KindReply {
		t.Fatalf("Kind %q, err %v", r.Kind, err)
	}
}

// Broken input degrades to what can still be read; it never fails a
// message that has a header.
func TestDegrades(t *testing.T) {
	dsnBody := "Reporting-MTA: dns; x.example\n\nFinal-Recipient: rfc822; a@b.example\nAction: failed\nStatus: 5.1.1\n"
	tests := []struct {
		name, raw string
		kind      Kind
		rcpt      string
		bounce    Bounce
	}{
		{"mbox separator line", "From MAILER-DAEMON  Tue Mar  3 09:40:00 2026\nFrom: MAILER-DAEMON@x.example\nSubject: failure notice\n\n<a@b.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n",
			KindBounce, "a@b.example", HardBounce},
		{"multipart without boundary parameter", "From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail Returned to Sender\nContent-Type: multipart/report; report-type=delivery-status\n\n<a@b.example>: host x said: 550 5.1.1 user unknown\n",
			KindBounce, "a@b.example", HardBounce},
		{"boundary never occurs", "From: MAILER-DAEMON@x.example\nContent-Type: multipart/report; report-type=delivery-status; boundary=AAA\n\n--BBB\nContent-Type: message/delivery-status\n\n" + dsnBody + "--BBB--\n",
			KindBounce, "a@b.example", HardBounce},
		{"no closing boundary", "From: MAILER-DAEMON@x.example\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\n" + dsnBody,
			KindBounce, "a@b.example", HardBounce},
		{"delivery-status without a recipient block", "From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail Returned to Sender\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: text/plain\n\n<a@b.example>: 552 5.2.2 mailbox full\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x.example\n\n--b--\n",
			KindBounce, "a@b.example", SoftBounce},
		{"malformed final recipient", "From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail Returned to Sender\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: text/plain\n\nfailed.\n\n--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x.example\n\nFinal-Recipient: rfc822; @mx.example.org\nAction: failed\nStatus: 5.1.1\n\n--b--\n",
			KindBounce, "", ""},
		{"source route and a host name", "From: MAILER-DAEMON@x.example\nX-Failed-Recipients: @smtp.example.net:user@server\nSubject: Mail delivery failed\n\nThe following address(es) failed:\n\n  user@server\n",
			KindBounce, "", ""},
		{"trailing CJK punctuation", "From: MAILER-DAEMON@x.example\nSubject: Mail System Error - Returned Mail\n\n次のアドレスにはメールを送信できませんでした。\n<taro@example.jp>。\n宛先不明\n",
			KindBounce, "taro@example.jp", HardBounce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.raw))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.Kind != tc.kind {
				t.Fatalf("Kind %q, want %q", r.Kind, tc.kind)
			}
			if tc.rcpt == "" {
				for _, rc := range r.Recipients {
					if rc.Address != "" {
						t.Errorf("recipient %q taken from a malformed address", rc.Address)
					}
				}
				return
			}
			if len(r.Recipients) != 1 || r.Recipients[0].Address != tc.rcpt || r.Recipients[0].Bounce != tc.bounce {
				t.Fatalf("recipients %+v, want %s %s", r.Recipients, tc.rcpt, tc.bounce)
			}
		})
	}
}

// Generated mail that is not an answer on a person's behalf is neither a
// reply nor an away notice: each marker alone is enough.
func TestGeneratedIsNeverAReply(t *testing.T) {
	base := "From: list-owner@lists.example.org\nTo: bounce+06h0hh51xwchm3pfcs2g-1@news.shop.example\nSubject: Re: Spring collection\nIn-Reply-To: <m1@crm.shop.example>\n"
	body := "\nYour message is held for moderation.\n"
	for _, marker := range []string{"Auto-Submitted: auto-generated\n", "Precedence: list\n", "Precedence: junk\n", "Precedence: bulk\n",
		"List-Id: <news.lists.example.org>\n", "List-Unsubscribe: <mailto:leave@lists.example.org>\n", "X-Auto-Response-Suppress: All\n",
		"Return-Path: <>\n", "X-Mailman-Version: 3.3.8\n", "Mailing-List: contact help@lists.example.org\n"} {
		r, err := Parse([]byte(base + marker + body))
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind != KindUnknown || r.Format != "auto-generated" {
			t.Errorf("with %q: Kind %q Format %q, want unknown auto-generated", strings.TrimSpace(marker), r.Kind, r.Format)
		}
	}
	// Without a marker the same message is a reply.
	if r, _ := Parse([]byte(base + body)); r.Kind != KindReply {
		t.Errorf("without a marker: %q, want reply", r.Kind)
	}
}

func TestClassifyPolicy(t *testing.T) {
	tests := []struct {
		action, status, diag string
		bounce               Bounce
		reason               Reason
	}{
		{"failed", "5.2.2", "552 5.2.2 Mailbox full", SoftBounce, ReasonMailboxFull},
		{"failed", "5.0.0", "550 user is over quota", SoftBounce, ReasonMailboxFull},
		{"failed", "5.4.7", "message expired", SoftBounce, ReasonExpired},
		{"failed", "", "retry time exceeded", SoftBounce, ReasonExpired},
		{"failed", "5.0.0", "550 too many connections from your IP", SoftBounce, ReasonRateLimited},
		{"failed", "", "452 4.2.2 over quota", SoftBounce, ReasonMailboxFull},
		{"failed", "", "421 4.4.2 lost connection", SoftBounce, ReasonNetwork},
		{"failed", "5.1.1", "550 5.1.1 user unknown", HardBounce, ReasonUserUnknown},
		{"failed", "5.1.2", "", HardBounce, ReasonHostUnknown},
		{"failed", "5.7.1", "554 5.7.1 rejected as spam", BlockBounce, ReasonSpamBlock},
		{"failed", "5.7.1", "550 5.7.1 client host blocked using zen.example", BlockBounce, ReasonReputation},
		{"failed", "5.7.26", "unauthenticated mail", BlockBounce, ReasonAuthFailure},
		{"failed", "5.3.4", "message too big", BlockBounce, ReasonTooLarge},
		{"failed", "5.7.1", "550 5.7.1 Recipient address rejected: user unknown", HardBounce, ReasonUserUnknown},
		{"failed", "5.1.1", "550 5.1.1 <a@b>: Recipient address rejected: Access denied", HardBounce, ReasonUserUnknown},
		{"failed", "5.0.0", "550 rejected", BlockBounce, ReasonPolicyBlock},
		{"failed", "5.1.8", "553 5.1.8 <news@shop.example>: Sender address rejected: Domain not found", BlockBounce, ReasonSenderRejected},
		{"failed", "5.7.1", "550 5.7.1 sender verify failed", BlockBounce, ReasonSenderRejected},
		{"failed", "5.0.0", "550 something odd", HardBounce, ReasonOther},
		{"failed", "", "", HardBounce, ReasonOther},
		{"delayed", "5.1.1", "user unknown", SoftBounce, ReasonUserUnknown},
		{"delivered", "", "", NoBounce, ReasonDelivered},
		{"", "2.0.0", "250 ok", NoBounce, ReasonDelivered},
	}
	for _, tc := range tests {
		b, r := Classify(tc.action, tc.status, tc.diag)
		if b != tc.bounce || r != tc.reason {
			t.Errorf("Classify(%q, %q, %q) = %s %s, want %s %s", tc.action, tc.status, tc.diag, b, r, tc.bounce, tc.reason)
		}
	}
}

// A delivery-status part mislabelled text/plain is still read as one.
func TestDeliveryStatusLabelledText(t *testing.T) {
	raw := "From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail Returned to Sender\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n" +
		"--b\nContent-Type: text/plain\n\nYour message could not be delivered.\n\n" +
		"--b\nContent-Type: text/plain\n\nReporting-MTA: dns; x.example\n\nFinal-Recipient: rfc822; a@b.example\nAction: failed\nStatus: 5.2.2\n\n--b--\n"
	r, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if r.Format != "rfc3464-text" || len(r.Recipients) != 1 || r.Recipients[0].Address != "a@b.example" || r.Recipients[0].Bounce != SoftBounce {
		t.Fatalf("format %q recipients %+v", r.Format, r.Recipients)
	}
}
