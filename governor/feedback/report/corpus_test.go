package report

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// corpusRow is one line of testdata/corpus/manifest.tsv: what one message
// must say about one recipient.
type corpusRow struct {
	file, family, recipient string
	class                   Class
	reason                  Reason
	status                  string // "" = not checked
	line                    int
}

func readManifest(t testing.TB) []corpusRow {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "corpus", "manifest.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []corpusRow
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c := strings.Split(line, "\t")
		if len(c) != 6 {
			t.Fatalf("manifest.tsv:%d: %d columns, want 6 (file family recipient class reason status)", n, len(c))
		}
		dash := func(s string) string {
			if s == "-" {
				return ""
			}
			return s
		}
		rows = append(rows, corpusRow{file: c[0], family: c[1], recipient: dash(c[2]), class: Class(c[3]),
			reason: Reason(dash(c[4])), status: dash(c[5]), line: n})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestCorpus classifies every message of the corpus and checks each
// recipient's class, reason and status against the manifest, and that the
// message names no recipient the manifest does not.
func TestCorpus(t *testing.T) {
	rows := readManifest(t)
	byFile := map[string][]corpusRow{}
	var files []string
	families := map[string]int{}
	for _, r := range rows {
		if byFile[r.file] == nil {
			files = append(files, r.file)
			families[r.family]++
		}
		byFile[r.file] = append(byFile[r.file], r)
	}
	// Every file in the corpus is in the manifest, and the other way round.
	var onDisk []string
	filepath.WalkDir(filepath.Join("testdata", "corpus"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".eml") {
			rel, _ := filepath.Rel(filepath.Join("testdata", "corpus"), p)
			onDisk = append(onDisk, filepath.ToSlash(rel))
		}
		return nil
	})
	for _, f := range onDisk {
		if byFile[f] == nil {
			t.Errorf("%s is not in manifest.tsv", f)
		}
	}
	if len(families) < 25 {
		t.Errorf("corpus covers %d families, want at least 25", len(families))
	}
	for _, file := range files {
		want := byFile[file]
		t.Run(file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "corpus", filepath.FromSlash(file)))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Parse(raw)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := rep.Outcomes()
			byAddr := map[string]Outcome{}
			for _, o := range got {
				byAddr[o.Recipient] = o
			}
			for _, w := range want {
				o, ok := byAddr[w.recipient]
				if !ok {
					t.Errorf("manifest.tsv:%d: no outcome for %q; got %+v (kind %s, format %s)", w.line, w.recipient, got, rep.Kind, rep.Format)
					continue
				}
				if o.Class != w.class || w.reason != "" && o.Reason != w.reason || w.status != "" && o.Status != w.status {
					t.Errorf("manifest.tsv:%d: %q is %s/%s/%s, want %s/%s/%s (format %s; diagnostic %q)", w.line, w.recipient,
						o.Class, o.Reason, o.Status, w.class, w.reason, w.status, rep.Format, o.Diagnostic)
				}
				delete(byAddr, w.recipient)
			}
			for a, o := range byAddr {
				t.Errorf("extra outcome %q: %+v", a, o)
			}
		})
	}
	if testing.Verbose() {
		var names []string
		for f := range families {
			names = append(names, f)
		}
		sort.Strings(names)
		for _, f := range names {
			t.Logf("family %-22s %d messages", f, families[f])
		}
		t.Logf("%d messages, %d recipient rows, %d families", len(files), len(rows), len(families))
	}
}
