package intake

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// referenceCheck is the rule stated as simply as possible: every CR is
// followed by LF and every LF preceded by CR.
func referenceCheck(b []byte) bool {
	for i, c := range b {
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			return false
		}
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return false
		}
	}
	return true
}

func guardAccepts(t testing.TB, data []byte, oneByte bool) bool {
	var r io.Reader = bytes.NewReader(data)
	if oneByte {
		r = iotest.OneByteReader(r) // state must carry across reads
	}
	out, err := io.ReadAll(&lineEndingGuard{r: r})
	if err != nil {
		if !errors.Is(err, errBareLF) && !errors.Is(err, errBareCR) {
			t.Fatalf("unexpected error %v", err)
		}
		return false
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("guard changed the data: %q -> %q", data, out)
	}
	return true
}

func TestLineEndingGuard(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", true},
		{"a\r\nb\r\n", true},
		{"\r\n\r\n", true},
		{"a\nb", false},
		{"a\rb", false},
		{"a\r", false},
		{"\n", false},
		{"a\r\r\n", false},
		{"a\n.\r\n", false},
		{"a\r\n.\n", false},
	} {
		for _, oneByte := range []bool{false, true} {
			if got := guardAccepts(t, []byte(tc.in), oneByte); got != tc.want {
				t.Errorf("%q (one byte at a time: %v): accepted %v, want %v", tc.in, oneByte, got, tc.want)
			}
		}
	}
}

func FuzzLineEndingGuard(f *testing.F) {
	for _, s := range []string{"a\r\n", "a\n.\r\n", "x\r.\r", "\r\r\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want := referenceCheck(data)
		for _, oneByte := range []bool{false, true} {
			if got := guardAccepts(t, data, oneByte); got != want {
				t.Fatalf("%q: guard says %v, rule says %v", data, got, want)
			}
		}
	})
}
