package scoring

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzExtractFeatures feeds arbitrary bytes to feature extraction: it must
// never panic, must stay within its bounds and must answer quickly, because
// intake runs it on whatever a client submits.
func FuzzExtractFeatures(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "mail", "*.eml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed mail: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(""))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte("Content-Type: multipart/alternative; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>a</p>\r\n--x--\r\n"))
	f.Add([]byte("Subject: =?utf-8?b?////?=\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n"))
	f.Add([]byte("Content-Type: text/plain; charset=\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n"))

	opts := ExtractOptions{Rules: []TopicRule{{Topic: "t", Keywords: []string{"a b", "sale"}}}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		start := time.Now()
		feat, err := ExtractFeatures(raw, opts)
		if d := time.Since(start); d > 5*time.Second { // generous: the fuzzer itself pauses workers
			t.Errorf("took %v on %d bytes", d, len(raw))
		}
		if err != nil {
			return
		}
		if feat.Priority < 0 || feat.Priority > 100 || feat.Value < 0 || feat.Value > 100 {
			t.Errorf("out of range: priority %d value %d", feat.Priority, feat.Value)
		}
		if feat.Words > 2*defaultMaxWords || len(feat.Topics) > maxTopics {
			t.Errorf("unbounded: %d words, %d topics", feat.Words, len(feat.Topics))
		}
		if (feat.Words == 0) != (feat.Fingerprint == 0) && feat.Words == 0 {
			t.Errorf("fingerprint %x without words", feat.Fingerprint)
		}
	})
}
