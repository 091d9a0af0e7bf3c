package feedback

import (
	"errors"
	"fmt"
	"testing"

	"github.com/emersion/go-smtp"

	"kadenz/governor/feedback/report"
)

func TestRefusalClassification(t *testing.T) {
	se := func(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
	}
	none := smtp.EnhancedCode{0, 0, 0}
	tests := []struct {
		name   string
		err    error
		ok     bool
		bounce report.Bounce
		reason report.Reason
		status string
	}{
		{"rcpt 5.1.1", fmt.Errorf("RCPT TO: %w", se(550, smtp.EnhancedCode{5, 1, 1}, "no such user")), true, report.HardBounce, report.ReasonUserUnknown, "5.1.1"},
		{"data 5.2.2", fmt.Errorf("end of DATA: %w", se(552, smtp.EnhancedCode{5, 2, 2}, "mailbox full")), true, report.SoftBounce, report.ReasonMailboxFull, "5.2.2"},
		{"code in text only", fmt.Errorf("RCPT TO: %w", se(550, none, "5.1.1 <a@b.example>: user unknown")), true, report.HardBounce, report.ReasonUserUnknown, "5.1.1"},
		{"basic code only", fmt.Errorf("RCPT TO: %w", se(550, none, "mailbox unavailable")), true, report.HardBounce, report.ReasonUserUnknown, "5.0.0"},
		{"spam", fmt.Errorf("end of DATA: %w", se(554, smtp.EnhancedCode{5, 7, 1}, "rejected as spam")), true, report.BlockBounce, report.ReasonSpamBlock, "5.7.1"},
		{"mail from", fmt.Errorf("MAIL FROM: %w", se(550, smtp.EnhancedCode{5, 1, 1}, "sender unknown")), false, "", "", ""},
		{"sender code", fmt.Errorf("RCPT TO: %w", se(553, smtp.EnhancedCode{5, 1, 8}, "bad sender domain")), false, "", "", ""},
		{"network", errors.New("connecting to upstream: connection refused"), false, "", "", ""},
	}
	for _, tc := range tests {
		rc, ok := refusal(tc.err)
		if ok != tc.ok || ok && (rc.Bounce != tc.bounce || rc.Reason != tc.reason || rc.Status != tc.status) {
			t.Errorf("%s: %v %+v, want %v %s %s %s", tc.name, ok, rc, tc.ok, tc.bounce, tc.reason, tc.status)
		}
	}
}
