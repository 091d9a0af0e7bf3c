package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kadenz/governor/feedback/report"
)

// classify over the corpus directory finds every message and says, for a
// mailbox-full DSN, soft with its reason and that the customer stays.
func TestFeedbackClassifyCorpus(t *testing.T) {
	dir := filepath.Join("..", "..", "governor", "feedback", "report", "testdata", "corpus")
	files, err := messageFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 100 {
		t.Fatalf("found %d messages under %s, want the whole corpus (>= 100)", len(files), dir)
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".tsv") {
			t.Errorf("manifest taken for a message: %s", f)
		}
	}
	c, err := classifyFile(filepath.Join(dir, "gmail", "over-quota.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Outcomes) != 1 || c.Outcomes[0].Class != report.ClassSoft || c.Outcomes[0].Reason != report.ReasonMailboxFull ||
		c.Outcomes[0].Recipient != "stuffed@gmail.example" || !strings.Contains(c.Outcomes[0].Effect, "soft bounce") {
		t.Fatalf("over-quota: %+v", c)
	}
	var out bytes.Buffer
	printClassified(&out, c)
	for _, want := range []string{"stuffed@gmail.example", "soft", "mailbox-full", "5.2.2", "-> count a soft bounce"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// An unreadable file is reported, not fatal.
	bad := filepath.Join(t.TempDir(), "empty.eml")
	if err := writeFile(bad, ""); err != nil {
		t.Fatal(err)
	}
	c, err = classifyFile(bad)
	if err != nil || c.Error == "" || c.Outcomes[0].Class != report.ClassNone {
		t.Fatalf("empty file: %+v, %v", c, err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func TestSplitMbox(t *testing.T) {
	mbox := "From a@b Tue Mar  3 09:00:00 2026\nSubject: one\n\nbody\nFrom here on, prose.\n\nFrom c@d Tue Mar  3 09:01:00 2026\nSubject: two\n\nbody two\n"
	msgs := splitMbox([]byte(mbox))
	if len(msgs) != 2 || !strings.Contains(string(msgs[0]), "Subject: one") || !strings.Contains(string(msgs[0]), "From here on") ||
		!strings.HasPrefix(string(msgs[1]), "From c@d") {
		t.Fatalf("split into %d: %q", len(msgs), msgs)
	}
	if got := splitMbox([]byte("Subject: x\n\nFrom: y\n")); len(got) != 1 {
		t.Fatalf("a plain message split into %d", len(got))
	}
}
