package governor

import (
	"bytes"
	"slices"
	"testing"
)

// referenceHeaderFields is headerFields as first written, copying each
// field; the version that slices data must split the same.
func referenceHeaderFields(data []byte) [][]byte {
	header := data
	if end := bytes.Index(data, []byte("\r\n\r\n")); end >= 0 {
		header = data[:end+2]
	} else if bytes.HasPrefix(data, []byte("\r\n")) {
		return nil
	}
	var fields [][]byte
	for len(header) > 0 {
		var line []byte
		if i := bytes.Index(header, []byte("\r\n")); i >= 0 {
			line, header = header[:i+2], header[i+2:]
		} else {
			line, header = header, nil
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] = append(fields[len(fields)-1], line...)
			continue
		}
		fields = append(fields, append([]byte(nil), line...))
	}
	return fields
}

func FuzzHeaderFields(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: one\r\n two\r\n\tthree\r\nX-Kadenz-Class: marketing\r\n\r\nbody\r\n"))
	f.Add([]byte(" leading continuation\r\nA: b\r\n"))
	f.Add([]byte("\r\nno header\r\n"))
	f.Add([]byte("A: no end"))
	f.Add([]byte("A: b\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		got, want := headerFields(data), referenceHeaderFields(data)
		if !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("headerFields(%q)\n got  %q\n want %q", data, got, want)
		}
		for _, f := range got {
			_ = append(f, "appended"...) // must not write into data
		}
		if !bytes.Equal(data, orig) {
			t.Fatalf("appending to a field changed data")
		}
	})
}
