package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kadenz/governor/feedback"
)

// classify over the corpus directory finds every message and says, for a
// mailbox-full DSN, soft with its reason and that the customer stays.
func TestFeedbackClassifyCorpus(t *testing.T) {
	dir := filepath.Join("..", "..", "governor", "feedback", "testdata", "corpus")
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
	if len(c.Outcomes) != 1 || c.Outcomes[0].Class != feedback.ClassSoft || c.Outcomes[0].Reason != feedback.ReasonMailboxFull ||
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
	if err != nil || c.Error == "" || c.Outcomes[0].Class != feedback.ClassNone {
		t.Fatalf("empty file: %+v, %v", c, err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
