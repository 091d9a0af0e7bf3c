package delivery

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"
)

// Delivery errors are classified here and nowhere else. The rule (RFC 5321
// 4.2.1): a 5yz reply is permanent; a 4yz reply, a network error, a TLS
// failure or anything unknown is temporary and retried.

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err means the delivery can never succeed.
func IsPermanent(err error) bool {
	var p permanentError
	if errors.As(err, &p) {
		return true
	}
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500 && se.Code <= 599
}

// replyError is an upstream's reply to one command of a transaction. Its
// text keeps the whole reply — code, enhanced status code (RFC 3463) and
// message, "RCPT TO: 550 5.1.1 no such user" — which go-smtp's own
// SMTPError.Error drops; Unwrap still yields the *smtp.SMTPError, so
// IsPermanent and the Observe hook see the reply itself.
type replyError struct {
	stage string // "MAIL FROM", "RCPT TO", "DATA", "end of DATA"
	err   *smtp.SMTPError
}

func (e *replyError) Error() string { return e.stage + ": " + Reply(e.err) }
func (e *replyError) Unwrap() error { return e.err }

// upstreamReply wraps an error from a transaction command: an SMTP reply
// keeps its codes in the text, anything else (a broken connection) is
// wrapped as it is.
func upstreamReply(stage string, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return &replyError{stage: stage, err: se}
	}
	return fmt.Errorf("%s: %w", stage, err)
}

// Reply formats an SMTP reply as it went over the wire: "550 5.1.1 text".
func Reply(se *smtp.SMTPError) string {
	s := fmt.Sprint(se.Code)
	if c, ok := EnhancedStatus(se); ok {
		s += " " + c
	}
	if se.Message != "" {
		s += " " + strings.ReplaceAll(se.Message, "\n", " ")
	}
	return s
}

// EnhancedStatus returns the reply's enhanced status code ("5.1.1"), if
// it carried one.
func EnhancedStatus(se *smtp.SMTPError) (string, bool) {
	c := se.EnhancedCode
	if c == smtp.EnhancedCodeNotSet || c == smtp.NoEnhancedCode || c[0] < 2 || c[0] > 5 {
		return "", false
	}
	return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2]), true
}
