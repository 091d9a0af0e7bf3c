package delivery

import (
	"errors"

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
