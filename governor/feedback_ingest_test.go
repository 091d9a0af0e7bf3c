package governor

import (
	"strings"
	"testing"
)

// A readable message that names nobody Kadenz knows is logged, not a
// failure ($KadenzFailed is for unreadable mail only); a message without a
// header is an error. A hard bounce with the reason reaches the decision
// record, so explain shows it.
func TestIngestFeedbackFailsOnlyUnreadable(t *testing.T) {
	c := &clock{t: monday10}
	r := drivenRelay(t, governedConfig(t, ""), c)
	redacted := "From: fbl@isp.example\nSubject: report\nContent-Type: multipart/report; report-type=feedback-report; boundary=b\n\n" +
		"--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nOriginal-Rcpt-To: redacted@isp.example\n\n--b--\n"
	if err := r.feedback.Ingest(t.Context(), []byte(redacted)); err != nil {
		t.Errorf("an unattributable complaint failed the message: %v", err)
	}
	if err := r.feedback.Ingest(t.Context(), []byte("not a mail message\nat all\n")); err == nil {
		t.Error("a message without a header was not an error")
	}
	if list, _ := r.DB().Suppressions(); len(list) != 0 {
		t.Errorf("suppressions after unattributable feedback: %+v", list)
	}

	submitDriven(t, r, c, []string{"ann@example.test"}, marketing("Winter boots", ""))
	env := envelopeOf(t, r.DB(), "ann@example.test", 0)
	dsn := "From: MAILER-DAEMON@mx.example\nSubject: Undelivered Mail Returned to Sender\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n" +
		"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\nOriginal-Envelope-Id: " + env.ID +
		"\n\nFinal-Recipient: rfc822; ann@example.test\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n\n--b--\n"
	if err := r.feedback.Ingest(t.Context(), []byte(dsn)); err != nil {
		t.Fatal(err)
	}
	rec := lastDecision(t, r.DB(), env.ID)
	if !strings.Contains(rec.Explanation, "hard bounce reported (imap: user unknown, 5.1.1)") {
		t.Errorf("decision after the DSN: %q, want the reason and status in it", rec.Explanation)
	}
}

// A text bounce that names nobody readable is still applied to the
// envelope its VERP return path names.
func TestTextBounceWithoutAddressUsesEnvelope(t *testing.T) {
	c := &clock{t: monday10}
	r := drivenRelay(t, governedConfig(t, ""), c)
	submitDriven(t, r, c, []string{"bob@example.test"}, marketing("Winter boots", ""))
	env := envelopeOf(t, r.DB(), "bob@example.test", 0)
	raw := "From: MAILER-DAEMON@mx.example\nTo: bounce+" + env.ID + "@bounces.shop.test\nSubject: failure notice\n\n" +
		"Sorry, we were unable to deliver your message. The account you wrote to does not exist.\n"
	if err := r.feedback.Ingest(t.Context(), []byte(raw)); err != nil {
		t.Fatal(err)
	}
	if s, ok, _ := r.DB().SuppressionOf("bob@example.test"); !ok || s.Reason != "hard bounce" {
		t.Errorf("bob@ after an address-less text bounce to his envelope: %+v %v", s, ok)
	}
}
