package engine

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kadenz/scoring"
)

// Reason codes are unique, non-empty and include the model's and the
// relay's own; the feedback hard stops use the model's names.
func TestReasonCodes(t *testing.T) {
	all := ReasonCodes()
	seen := map[string]bool{}
	for _, c := range all {
		if c == "" || seen[c] {
			t.Errorf("reason code %q empty or repeated", c)
		}
		seen[c] = true
	}
	for _, c := range relayReasons {
		if !seen[c] {
			t.Errorf("relay reason %q missing from ReasonCodes", c)
		}
	}
	stops := (scoring.ReasonUnsubscribed | scoring.ReasonComplained | scoring.ReasonHardBounced).Codes()
	if !slices.Equal(stops, []string{ReasonUnsubscribed, ReasonComplained, ReasonHardBounced}) {
		t.Errorf("feedback hard stops %v do not match the model's %v", []string{ReasonUnsubscribed, ReasonComplained, ReasonHardBounced}, stops)
	}
}

// Every reason code a record may carry is explained somewhere in docs/,
// written as `code`, so an operator who meets one in explain or a metric
// can look it up.
func TestReasonCodesDocumented(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs found: %v", err)
	}
	var docs strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs.Write(b)
	}
	for _, c := range ReasonCodes() {
		if !strings.Contains(docs.String(), "`"+c+"`") {
			t.Errorf("reason code %q is not documented in docs/*.md", c)
		}
	}
}
