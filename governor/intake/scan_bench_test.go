package intake

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkMessageScans is the work intake does on every byte of a
// 5 KB message besides go-smtp's own reading: the session's command
// counter and the line-ending check. For instruction counts:
//
//	go test -c -o /tmp/intake.test ./governor/intake/
//	GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind /tmp/intake.test -test.run '^$' -test.bench MessageScans -test.benchtime 10000x
func BenchmarkMessageScans(b *testing.B) {
	var msg strings.Builder
	msg.WriteString("From: <a@x.test>\r\nTo: <b@y.test>\r\nSubject: Winter sale\r\n\r\n")
	for i := 0; msg.Len() < 5000; i++ {
		fmt.Fprintf(&msg, "Lorem ipsum dolor sit amet, line %04d of the benchmark newsletter.\r\n", i)
	}
	data := []byte(msg.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c := commandCounter{}
		// go-smtp's bufio.Reader hands the session 4 KB at a time.
		for p := data; len(p) > 0; {
			n := min(len(p), 4096)
			c.feed(p[:n], true)
			p = p[n:]
		}
		if _, err := normalizeLineEndings(data); err != nil {
			b.Fatal(err)
		}
	}
}
