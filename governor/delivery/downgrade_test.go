package delivery

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message"

	"kadenz/governor/address"
)

// leaves reads msg with go-message and returns each leaf part's decoded
// body, in order.
func leaves(t *testing.T, msg []byte) []string {
	t.Helper()
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil && !message.IsUnknownCharset(err) {
		t.Fatalf("read: %v\n%s", err, msg)
	}
	var out []string
	err = e.Walk(func(_ []int, part *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) {
			return err
		}
		if part.MultipartReader() != nil {
			return nil
		}
		b, err := io.ReadAll(part.Body)
		out = append(out, string(b))
		return err
	})
	if err != nil {
		t.Fatalf("walk: %v\n%s", err, msg)
	}
	return out
}

func TestDowngrade(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"plain text", "Subject: x\r\n\r\nGr\xc3\xbc\xc3\x9fe, Zo\xc3\xab\r\n"},
		{"declared 8bit, folded", "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding:\r\n 8bit\r\n\r\nna\xc3\xafve = caf\xc3\xa9\r\n.\r\n"},
		{"multipart", "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n" +
			"preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nK\xc3\xa4se\r\n--b1\r\n" +
			"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n--b1--\r\nepilogue\r\n"},
		{"nested message", "Subject: x\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\n\xc3\xa9t\xc3\xa9\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := downgrade([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !address.IsASCII(out) {
				t.Fatalf("8-bit octets left:\n%q", out)
			}
			in := []byte(tc.in)
			if tc.name == "nested message" {
				// go-message does not descend into message/rfc822: compare
				// the inner messages.
				_, in, _ = bytes.Cut(in, []byte("\r\n\r\n"))
				_, out, _ = bytes.Cut(out, []byte("\r\n\r\n"))
			}
			want, got := leaves(t, in), leaves(t, out)
			if strings.Join(want, "|") != strings.Join(got, "|") {
				t.Errorf("decoded parts changed:\n got %q\nwant %q\n%s", got, want, out)
			}
			if n := strings.Count(string(out), "Content-Transfer-Encoding"); n > strings.Count(tc.in, "Content-Transfer-Encoding")+1 {
				t.Errorf("Content-Transfer-Encoding fields multiplied:\n%s", out)
			}
		})
	}
	ascii := "Subject: x\r\n\r\nplain\r\n"
	if out, err := downgrade([]byte(ascii)); err != nil || string(out) != ascii {
		t.Errorf("a 7-bit message changed: %q %v", out, err)
	}
	for _, bad := range []string{
		"Subject: Gr\xc3\xbc\xc3\x9fe\r\n\r\nbody\r\n",                                               // 8-bit header
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n\xc3\xa9\r\n",                   // never closed
		"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n\xc3\xa9\r\n",          // lies
		"Content-Type: multipart/mixed; boundary=b\r\n\r\npre \xc3\xa9\r\n--b\r\n\r\nx\r\n--b--\r\n", // 8-bit preamble
	} {
		if _, err := downgrade([]byte(bad)); !errors.Is(err, errCannotDowngrade) {
			t.Errorf("%q: %v, want errCannotDowngrade", bad, err)
		}
	}
}

// FuzzDowngrade: whatever the message, the result is 7-bit or an error,
// and a 7-bit message is left alone.
func FuzzDowngrade(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n\xc3\xa9\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := downgrade(in)
		if err != nil {
			return
		}
		if !address.IsASCII(out) {
			t.Fatalf("%q -> %q: 8-bit left", in, out)
		}
		if address.IsASCII(in) && !bytes.Equal(in, out) {
			t.Fatalf("7-bit %q changed to %q", in, out)
		}
	})
}
