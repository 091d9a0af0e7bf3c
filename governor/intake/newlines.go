package intake

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-smtp"
)

// Line endings in DATA, after go-smtp's reader (which ends DATA only at
// CRLF.CRLF and removes the dot-stuffing of lines that follow a CRLF):
//
//   - bare LF: with NormalizeBareLF (intake.bare_newlines: normalize, the
//     default) it ends a line and is stored as CRLF, as Postfix 3.9 does by
//     default; otherwise the message is refused (guard.go). A "." line after
//     a bare LF is content either way, never the end of DATA, and goes out
//     dot-stuffed (its own stuffing removed first, as for any line), so the
//     smuggling payloads of CVE-2023-51764/51765/51766
//     stay inside the one message they came in.
//   - bare CR: refused in both modes (554 5.6.0). Unlike LF it is no line
//     end for most MTAs but is one for some, so repair would invent a line
//     structure the sender's MTA may not have meant. Postfix passes it as
//     content; Kadenz does not send it on.
//   - NUL: refused in both modes (554 5.6.0): RFC 5321 2.3.8 and RFC 5322
//     have no place for it and MTAs disagree on it.
//   - "<CRLF>.<CR>" followed by anything but LF: go-smtp's reader drops the
//     ".<CR>" silently; what is left is ordinary content, so nothing is
//     smuggled, but those two octets are lost. We cannot see them from here.

var (
	errNULByte     = errors.New("NUL byte in message data")
	errBareCRInMsg = errors.New("bare CR in message data")
)

// normalizeLineEndings returns data with every bare LF turned into CRLF
// (data itself when there is none), or an error for a NUL or a bare CR.
func normalizeLineEndings(data []byte) ([]byte, error) {
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, errNULByte
	}
	// Every message is checked, so the scan jumps from LF to LF with
	// IndexByte instead of looking at each byte: a CR is bare exactly when
	// there are more CRs than LFs with a CR before them.
	bare, crlf := 0, 0
	for i := 0; ; i++ {
		lf := bytes.IndexByte(data[i:], '\n')
		if lf < 0 {
			break
		}
		i += lf
		if i > 0 && data[i-1] == '\r' {
			crlf++
		} else {
			bare++
		}
	}
	if bytes.Count(data, []byte{'\r'}) != crlf {
		return nil, errBareCRInMsg
	}
	if bare == 0 {
		return data, nil
	}
	out := make([]byte, 0, len(data)+bare)
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == '\n' && (i == 0 || data[i-1] != '\r') {
			out = append(out, '\r', '\n')
			// A line that starts after a bare LF is a line like any
			// other, so its dot-stuffing goes too (RFC 5321 4.5.2), as
			// Postfix does: go-smtp only unstuffs lines after a CRLF.
			if i+1 < len(data) && data[i+1] == '.' {
				i++
			}
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// lineNormalizer is normalizeLineEndings for a message written in pieces
// (a spooled one): it writes to w what normalizeLineEndings would return
// for all the pieces together, and fails as it would. Close reports a CR
// left at the very end.
type lineNormalizer struct {
	w   io.Writer
	out []byte // reused for each piece
	// cr: the last byte was a CR, whose LF is still to come.
	cr bool
	// afterBareLF: the last byte was a bare LF, so a "." now is the
	// next line's dot-stuffing, removed as normalizeLineEndings does.
	afterBareLF bool
}

func (n *lineNormalizer) Write(p []byte) (int, error) {
	out := n.out[:0]
	for _, c := range p {
		if n.cr {
			n.cr = false
			if c != '\n' {
				return 0, errBareCRInMsg
			}
			out = append(out, '\r', '\n')
			continue
		}
		if n.afterBareLF {
			n.afterBareLF = false
			if c == '.' {
				continue
			}
		}
		switch c {
		case 0:
			return 0, errNULByte
		case '\r':
			n.cr = true
		case '\n':
			out = append(out, '\r', '\n')
			n.afterBareLF = true
		default:
			out = append(out, c)
		}
	}
	n.out = out
	if _, err := n.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close reports a message that ends in a bare CR.
func (n *lineNormalizer) Close() error {
	if n.cr {
		return errBareCRInMsg
	}
	return nil
}

// errLineTooLong answers a line over the limit in DATA (RFC 5321
// 4.5.3.1.6) instead of go-smtp's internal error text.
func errLineTooLong(limit int) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: fmt.Sprintf("Line too long: lines may be at most %d octets", limit)}
}
