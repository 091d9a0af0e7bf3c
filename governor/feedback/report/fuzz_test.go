package report

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kadenz/governor/address"
)

// seedFixtures adds every fixture and every corpus message to a fuzz
// corpus.
func seedFixtures(f *testing.F) {
	f.Helper()
	names, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(names) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	corpus, _ := filepath.Glob("testdata/corpus/*/*.eml")
	for _, n := range append(names, corpus...) {
		raw, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
}

// FuzzClassify classifies whole messages as "kadenz feedback classify" and
// the IMAP reader do: never a panic, and every outcome has a known class,
// a recipient that is a valid mailbox or none, and a bounce reason only for
// bounce classes.
func FuzzClassify(f *testing.F) {
	seedFixtures(f)
	f.Add([]byte("From MAILER-DAEMON Tue Mar  3 09:40:00 2026\nFrom: MAILER-DAEMON@x.example\nSubject: failure notice\n\n<a@b.example>:\n550 5.1.1 no\n"))
	f.Add([]byte("Content-Type: multipart/report; boundary=x\n\n--y\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@b.example\nAction: failed\n"))
	f.Add([]byte("From: no-reply@sns.example\n\n{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\"bouncedRecipients\":[{\"emailAddress\":\"a@b.example\"}]}}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := Parser{MaxPartBytes: 64 << 10}.Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		outs := r.Outcomes()
		if len(outs) == 0 {
			t.Fatal("no outcome")
		}
		for _, o := range outs {
			switch o.Class {
			case ClassHard, ClassSoft, ClassBlock, ClassDelivered:
			case ClassComplaint, ClassUnsubscribe, ClassAway, ClassReply, ClassNone:
				if o.Reason != ReasonNone {
					t.Fatalf("%s outcome with bounce reason %q", o.Class, o.Reason)
				}
			default:
				t.Fatalf("class %q", o.Class)
			}
			if o.Recipient != "" && !address.Valid(o.Recipient) {
				t.Fatalf("outcome names %q, not a mailbox", o.Recipient)
			}
			if o.Recipient != strings.ToLower(o.Recipient) {
				t.Fatalf("recipient %q not lower case", o.Recipient)
			}
		}
	})
}

// FuzzPolicy: Classify gives a known class and reason for any input, and
// delivered exactly when the action or a 2.X.X status says so.
func FuzzPolicy(f *testing.F) {
	f.Add("failed", "5.2.2", "552 mailbox full")
	f.Add("", "", "550 5.1.1 user unknown")
	f.Add("delayed", "4.4.7", "retry timeout exceeded")
	f.Add("delivered", "2.0.0", "250 ok")
	f.Fuzz(func(t *testing.T, action, status, diag string) {
		b, reason := Classify(action, status, diag)
		switch b {
		case NoBounce:
			if reason != ReasonDelivered {
				t.Fatalf("no bounce with reason %q", reason)
			}
		case HardBounce, SoftBounce, BlockBounce:
			if reason == ReasonNone || reason == ReasonDelivered {
				t.Fatalf("%s with reason %q", b, reason)
			}
		default:
			t.Fatalf("class %q", b)
		}
		if strings.EqualFold(action, "delayed") && b != SoftBounce {
			t.Fatalf("delayed is %s", b)
		}
	})
}

// FuzzParse: any input gives a report or an ErrMalformed error, never a
// panic, and a report is internally consistent.
func FuzzParse(f *testing.F) {
	seedFixtures(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := Parser{MaxPartBytes: 64 << 10}.Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if r.EnvelopeID != "" && !IsEnvelopeID(r.EnvelopeID) {
			t.Fatalf("EnvelopeID %q is not an envelope ID", r.EnvelopeID)
		}
		if (r.EnvelopeID == "") != (r.EnvelopeIDSource == SourceNone) {
			t.Fatalf("EnvelopeID %q with source %q", r.EnvelopeID, r.EnvelopeIDSource)
		}
		if r.Kind == KindAway && r.Away == nil || r.Kind == KindReply && r.Reply == nil {
			t.Fatalf("kind %s without its details", r.Kind)
		}
		if r.Kind == KindBounce && r.Format == "rfc3464" && len(r.Recipients) == 0 {
			t.Fatal("DSN bounce without recipients")
		}
	})
}

// FuzzDeliveryStatus fuzzes the message/delivery-status body parser (RFC
// 3464 section 2.1) directly, without MIME around it.
func FuzzDeliveryStatus(f *testing.F) {
	f.Add([]byte("Reporting-MTA: dns; x.example\n\nFinal-Recipient: rfc822; a@b.example\nAction: failed\nStatus: 5.1.1\n"))
	f.Add([]byte("Original-Recipient: rfc822;a@b\r\nFinal-Recipient: rfc822;a@b\r\nAction: delayed\r\nStatus: 4.4.1\r\nDiagnostic-Code: smtp;\r\n 421 later\r\n"))
	for _, n := range []string{"dsn-multi-recipient.eml", "postfix-dsn-hard.eml", "gmail-dsn.eml", "outlook-ndr.eml"} {
		raw := string(readFixture(f, n))
		if i := strings.Index(raw, "Content-Type: message/delivery-status"); i >= 0 {
			f.Add([]byte(raw[i+len("Content-Type: message/delivery-status"):]))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, rcpts := parseDeliveryStatus(body)
		for _, rc := range rcpts {
			switch rc.Bounce {
			case NoBounce, SoftBounce, HardBounce, BlockBounce:
			default:
				t.Fatalf("bounce class %q", rc.Bounce)
			}
			if rc.Status != "" && rc.Status[0] != '2' && rc.Status[0] != '4' && rc.Status[0] != '5' {
				t.Fatalf("status %q", rc.Status)
			}
		}
	})
}

// FuzzFeedbackReport fuzzes the message/feedback-report parser (RFC 5965
// section 3.1).
func FuzzFeedbackReport(f *testing.F) {
	f.Add([]byte("Feedback-Type: abuse\nUser-Agent: x/1\nVersion: 1\nOriginal-Rcpt-To: <a@b.example>\nSource-IP: 192.0.2.1\nArrival-Date: Mon, 9 Mar 2026 13:55:00 +0000\n"))
	f.Add([]byte("Feedback-Type: not-spam\r\nSource-IP: [2001:db8::1]\r\nReceived-Date: 9 Mar 2026 13:55 +0100\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		cp := parseFeedbackReport(body)
		if cp.FeedbackType != strings.ToLower(cp.FeedbackType) {
			t.Fatalf("feedback type %q not lower case", cp.FeedbackType)
		}
	})
}

// FuzzEnvelopeID fuzzes VERP and free-text envelope ID recovery.
func FuzzEnvelopeID(f *testing.F) {
	f.Add("bounce+06h0hh51xwchm3pfcs2g-1@news.shop.example", "bounce")
	f.Add("Shop <BOUNCE+06h0hh51xwchm3pfcs2g-12@x>", "")
	f.Add("unsubscribe 06h0hh51xwchm3pfcs2g-15", "rp")
	f.Fuzz(func(t *testing.T, s, prefix string) {
		if id, ok := EnvelopeIDFromVERP(s, prefix); ok != IsEnvelopeID(id) || !ok && id != "" {
			t.Fatalf("EnvelopeIDFromVERP(%q) = %q, %v", s, id, ok)
		}
		if id, ok := findEnvelopeID(s); ok && !IsEnvelopeID(id) {
			t.Fatalf("findEnvelopeID(%q) = %q", s, id)
		}
	})
}

// FuzzUntilDate fuzzes the away-until date finder.
func FuzzUntilDate(f *testing.F) {
	ref := time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC)
	for _, s := range []string{"until 23 March 2026", "bis zum 3.4.", "back on 2026-04-02", "until March 31st, 2026", "till 14/03/2026", "until 31.02.2026"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u := untilDate(s, ref)
		if !u.IsZero() && (u.Year() < 1900 || u.Hour() != 0 || u.Location() != time.UTC) {
			t.Fatalf("untilDate(%q) = %v", s, u)
		}
	})
}
