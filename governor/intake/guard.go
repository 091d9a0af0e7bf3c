package intake

import (
	"errors"
	"io"
)

// SMTP smuggling (CVE-2023-51764 and relatives) hides a second message
// inside the first behind an end-of-data marker that one server honours and
// another does not, such as <LF>.<CR><LF> or <LF>.<LF>. go-smtp ends DATA
// only on <CR><LF>.<CR><LF>, but passes bare LF and bare CR through to the
// backend unchanged, and a downstream MTA may read them differently. RFC
// 5321 section 2.3.8 says CR and LF must only occur together as CRLF, so
// the message is refused outright rather than repaired: repair is how two
// readings of one message arise.

var (
	errBareLF = errors.New("bare LF in message data")
	errBareCR = errors.New("bare CR in message data")
)

// lineEndingGuard passes r through and fails at the first CR not followed
// by LF or LF not preceded by CR.
type lineEndingGuard struct {
	r      io.Reader
	prevCR bool // the last byte read so far was CR
}

func (g *lineEndingGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	for i := 0; i < n; i++ {
		switch p[i] {
		case '\n':
			if !g.prevCR {
				return i, errBareLF
			}
			g.prevCR = false
		case '\r':
			if g.prevCR {
				return i, errBareCR
			}
			g.prevCR = true
		default:
			if g.prevCR {
				return i, errBareCR
			}
		}
	}
	if err == io.EOF && g.prevCR {
		return n, errBareCR
	}
	return n, err
}
