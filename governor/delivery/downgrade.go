package delivery

import (
	"bufio"
	"bytes"
	"errors"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"strings"

	"kadenz/governor/address"
)

// An upstream that does not offer 8BITMIME (RFC 6152) must not get 8-bit
// octets. As Postfix does, Kadenz converts such a message to 7 bits: every
// MIME leaf part whose body holds 8-bit octets and is not already base64
// or quoted-printable is re-encoded as quoted-printable (RFC 2045 6.7), and
// its Content-Transfer-Encoding says so; multipart and message/rfc822
// structures are walked. The rest of the message stays byte for byte. A
// DKIM signature over a converted body no longer verifies; that is why
// senders that sign should send 7-bit bodies. What cannot be converted
// this way — 8-bit octets in a header, or in a multipart preamble — fails
// the delivery with 5.6.3 and a report to the sender.

var errCannotDowngrade = errors.New("8-bit octets outside a convertible body part")

// downgrade returns msg converted to 7 bits, or errCannotDowngrade.
func downgrade(msg []byte) ([]byte, error) {
	if address.IsASCII(msg) {
		return msg, nil
	}
	var out bytes.Buffer
	if err := downgradeEntity(&out, msg, 0); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// maxDepth bounds nesting, against a message built to exhaust the stack.
const maxDepth = 20

// downgradeEntity writes one MIME entity (header, blank line, body)
// converted to out.
func downgradeEntity(out *bytes.Buffer, entity []byte, depth int) error {
	if depth > maxDepth {
		return errCannotDowngrade
	}
	header, body, hasBody := bytes.Cut(entity, []byte("\r\n\r\n"))
	if bytes.HasPrefix(entity, []byte("\r\n")) { // no header fields at all
		header, body, hasBody = nil, entity[2:], true
	}
	if !hasBody {
		if address.IsASCII(entity) {
			out.Write(entity)
			return nil
		}
		return errCannotDowngrade
	}
	header = append(header[:len(header):len(header)], "\r\n"...) // a copy: entity stays as it is
	if len(header) == 2 {
		header = nil
	}
	if !address.IsASCII(header) {
		return errCannotDowngrade
	}
	fields, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(bytes.Clone(header), "\r\n"...)))).ReadMIMEHeader()
	if err != nil {
		return errCannotDowngrade
	}
	if address.IsASCII(body) {
		out.Write(entity)
		return nil
	}
	mediaType, params, err := mime.ParseMediaType(fields.Get("Content-Type"))
	if err != nil {
		mediaType = "text/plain" // RFC 2045 5.2: the default
	}
	cte := strings.ToLower(strings.TrimSpace(fields.Get("Content-Transfer-Encoding")))
	switch {
	case strings.HasPrefix(mediaType, "multipart/") && params["boundary"] != "":
		out.Write(header)
		out.WriteString("\r\n")
		return downgradeMultipart(out, body, params["boundary"], depth)
	case mediaType == "message/rfc822":
		out.Write(header)
		out.WriteString("\r\n")
		return downgradeEntity(out, body, depth+1)
	case cte == "base64" || cte == "quoted-printable":
		return errCannotDowngrade // encoded already, yet 8-bit: not MIME we can trust
	}
	out.Write(withoutField(header, "Content-Transfer-Encoding"))
	out.WriteString("Content-Transfer-Encoding: quoted-printable\r\n\r\n")
	w := quotedprintable.NewWriter(out)
	w.Write(body)
	w.Close()
	return nil
}

// downgradeMultipart converts each part of a multipart body (RFC 2046
// 5.1.1), keeping the delimiter lines as they are.
func downgradeMultipart(out *bytes.Buffer, body []byte, boundary string, depth int) error {
	delim := "--" + boundary
	lines := strings.Split(string(body), "\r\n")
	var part []string
	inPart, closed := false, false
	flush := func() error {
		if !inPart {
			// The preamble: ignored by readers, but still sent.
			p := strings.Join(part, "\r\n")
			if !address.IsASCII(p) {
				return errCannotDowngrade
			}
			out.WriteString(p)
			return nil
		}
		return downgradeEntity(out, []byte(strings.Join(part, "\r\n")), depth+1)
	}
	for i, line := range lines {
		trimmed := strings.TrimRight(line, " \t")
		if closed {
			if !address.IsASCII(line) {
				return errCannotDowngrade // the epilogue
			}
			out.WriteString(line)
			if i < len(lines)-1 {
				out.WriteString("\r\n")
			}
			continue
		}
		if trimmed == delim || trimmed == delim+"--" {
			if err := flush(); err != nil {
				return err
			}
			if inPart || len(part) > 0 {
				out.WriteString("\r\n") // the CRLF that belongs to the delimiter
			}
			out.WriteString(line)
			out.WriteString("\r\n")
			part, inPart, closed = nil, true, trimmed == delim+"--"
			continue
		}
		part = append(part, line)
	}
	if !closed {
		return errCannotDowngrade // no close delimiter: not a body to rewrite
	}
	return nil
}

// withoutField returns header (CRLF lines) without the named field and
// its continuation lines.
func withoutField(header []byte, name string) []byte {
	var out []byte
	skipping := false
	for _, line := range bytes.SplitAfter(header, []byte("\r\n")) {
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !skipping {
				out = append(out, line...)
			}
			continue
		}
		colon := bytes.IndexByte(line, ':')
		skipping = colon > 0 && strings.EqualFold(strings.TrimSpace(string(line[:colon])), name)
		if !skipping {
			out = append(out, line...)
		}
	}
	return out
}
