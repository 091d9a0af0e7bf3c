package intake

import (
	"bytes"
	"errors"
	"testing"
)

func TestNormalizeLineEndings(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            error
	}{
		{"CRLF only: unchanged", "a\r\nb\r\n", "a\r\nb\r\n", nil},
		{"bare LF", "a\nb\n", "a\r\nb\r\n", nil},
		{"mixed", "a\r\nb\nc\r\n", "a\r\nb\r\nc\r\n", nil},
		{"leading LF", "\nx", "\r\nx", nil},
		// A line after a bare LF loses its dot-stuffing like any line.
		{"stuffed dot after LF", "a\n..\nb\r\n", "a\r\n.\r\nb\r\n", nil},
		{"lone dot after LF", "a\n.\r\nMAIL FROM:<x@y>\r\n", "a\r\n\r\nMAIL FROM:<x@y>\r\n", nil},
		{"dot after CRLF kept (go-smtp unstuffed it)", "a\r\n.b\r\n", "a\r\n.b\r\n", nil},
		{"bare CR", "a\rb\r\n", "", errBareCRInMsg},
		{"CR at end", "a\r", "", errBareCRInMsg},
		{"CR CR LF", "a\r\r\n", "", errBareCRInMsg},
		{"NUL", "a\x00b\r\n", "", errNULByte},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := normalizeLineEndings([]byte(tc.in))
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err == nil && string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzNormalizeLineEndings: whatever a client sends, what is stored has
// CR and LF only as CRLF and no NUL, and CRLF-only input is kept as is.
func FuzzNormalizeLineEndings(f *testing.F) {
	for _, s := range []string{"a\r\nb", "a\nb", "\n.\n", "a\r.\r", "\x00", "..\n..\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := normalizeLineEndings(in)
		if err != nil {
			if !bytes.ContainsAny(in, "\r\x00") {
				t.Fatalf("refused %q without a CR or NUL: %v", in, err)
			}
			return
		}
		for i, c := range out {
			if c == 0 || c == '\r' && (i+1 == len(out) || out[i+1] != '\n') || c == '\n' && (i == 0 || out[i-1] != '\r') {
				t.Fatalf("%q -> %q: bare CR/LF or NUL at %d", in, out, i)
			}
		}
		if !bytes.Contains(bytes.ReplaceAll(in, []byte("\r\n"), nil), []byte("\n")) && !bytes.Equal(in, out) {
			t.Fatalf("CRLF-only input %q changed to %q", in, out)
		}
	})
}

func TestRequote(t *testing.T) {
	for in, want := range map[string]string{
		"ann@example.com":        "ann@example.com",
		"john doe@example.com":   `"john doe"@example.com`,
		`a"b@example.com`:        `"a\"b"@example.com`,
		"a..b@example.com":       `"a..b"@example.com`,
		"no-at":                  "no-at",
		"zoë@example.com":        "zoë@example.com",
		"first.last@example.com": "first.last@example.com",
	} {
		if got := requote(in); got != want {
			t.Errorf("requote(%q) = %q, want %q", in, got, want)
		}
	}
}

// normalizeInPieces runs lineNormalizer over data cut at the given points.
func normalizeInPieces(data []byte, cuts ...int) ([]byte, error) {
	var out bytes.Buffer
	n := &lineNormalizer{w: &out}
	prev := 0
	for _, c := range append(cuts, len(data)) {
		c = min(max(c, prev), len(data))
		if _, err := n.Write(data[prev:c]); err != nil {
			return nil, err
		}
		prev = c
	}
	return out.Bytes(), n.Close()
}

// The streaming normalizer (spooled messages) gives what the whole-buffer
// one gives, wherever the pieces are cut: a CR, an LF or a stuffed dot
// split between two writes included.
func TestLineNormalizerMatchesWhole(t *testing.T) {
	inputs := []string{"a\r\nb\r\n", "a\nb\n", "a\r\nb\nc\r\n", "\nx", "a\n..\nb\r\n", "a\n.\r\nMAIL FROM:<x@y>\r\n",
		"a\r\n.b\r\n", "a\rb\r\n", "a\r", "a\r\r\n", "a\x00b\r\n", "\n.\n.\n..\r\n.", ""}
	for _, in := range inputs {
		want, wantErr := normalizeLineEndings([]byte(in))
		for cut := 0; cut <= len(in); cut++ {
			for cut2 := cut; cut2 <= len(in); cut2++ {
				got, err := normalizeInPieces([]byte(in), cut, cut2)
				if (err != nil) != (wantErr != nil) || (err == nil && !bytes.Equal(got, want)) {
					t.Errorf("%q cut at %d, %d: %q, %v; want %q, %v", in, cut, cut2, got, err, want, wantErr)
				}
			}
		}
	}
}

func FuzzLineNormalizer(f *testing.F) {
	f.Add([]byte("a\n..\nb\r\n"), uint16(2))
	f.Add([]byte("a\r\nb\rc"), uint16(3))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		want, wantErr := normalizeLineEndings(data)
		got, err := normalizeInPieces(data, int(cut))
		if (err != nil) != (wantErr != nil) || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("cut at %d: %q, %v; whole: %q, %v", cut, got, err, want, wantErr)
		}
	})
}

// referenceNormalizeCheck is normalizeLineEndings' first scan as it was
// written first, a byte at a time: the error it finds, and how many bare LFs.
func referenceNormalizeCheck(data []byte) (int, error) {
	if bytes.IndexByte(data, 0) >= 0 {
		return 0, errNULByte
	}
	bare := 0
	for i, c := range data {
		switch c {
		case '\r':
			if i+1 >= len(data) || data[i+1] != '\n' {
				return 0, errBareCRInMsg
			}
		case '\n':
			if i == 0 || data[i-1] != '\r' {
				bare++
			}
		}
	}
	return bare, nil
}

// FuzzNormalizeLineEndingsScan: the scan that jumps from LF to LF refuses
// what the byte-at-a-time one refused, with the same error, and keeps
// what it kept (data itself when there is no bare LF).
func FuzzNormalizeLineEndingsScan(f *testing.F) {
	for _, s := range []string{"a\r\nb", "a\nb", "\r\r\n", "\n\r", "a\r", "\x00\r", "\r\n\n."} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		bare, wantErr := referenceNormalizeCheck(in)
		out, err := normalizeLineEndings(in)
		if err != wantErr {
			t.Fatalf("%q: error %v, want %v", in, err, wantErr)
		}
		if err == nil && bare == 0 && (len(out) != len(in) || len(in) > 0 && &out[0] != &in[0]) {
			t.Fatalf("%q: without a bare LF the data itself must come back", in)
		}
	})
}
