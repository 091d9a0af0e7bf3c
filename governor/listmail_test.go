package governor

import (
	"bufio"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kadenz/config"
)

// listMail is what each fixture under testdata/listmail is, by tool and
// file: the mail Mailman 3 and Sympa really sent (captured by the
// produce-*.sh scripts there) and mail built from listmonk's and Mautic's
// source (testdata/listmail/README.md). An empty reason is a post or
// campaign: it must stay marketing.
var listMail = map[string]string{
	"mailman3/001.eml": "Mailman 3", // subscription confirmation (confirm+token)
	"mailman3/002.eml": "Mailman 3", // welcome
	"mailman3/003.eml": "",          // a post
	"mailman3/004.eml": "Mailman 3", // unsubscription confirmation
	"mailman3/005.eml": "Mailman 3", // goodbye
	"mailman3/006.eml": "Mailman 3", // welcome of a digest member added by the admin
	"mailman3/007.eml": "",          // a MIME digest (From: dev-request@, like the welcome)

	"sympa/001.eml": "Sympa", // subscription confirmation request
	"sympa/002.eml": "Sympa", // command report
	"sympa/003.eml": "Sympa", // welcome
	"sympa/004.eml": "Sympa", // command report
	"sympa/005.eml": "",      // a post
	"sympa/006.eml": "Sympa", // REMIND confirmation request to the owner
	"sympa/007.eml": "Sympa", // command report
	"sympa/008.eml": "Sympa", // subscription reminder
	"sympa/009.eml": "Sympa", // command report
	"sympa/010.eml": "Sympa", // unsubscription confirmation request
	"sympa/011.eml": "Sympa", // command report
	"sympa/012.eml": "Sympa", // goodbye
	"sympa/013.eml": "Sympa", // bob's subscription confirmation request
	"sympa/014.eml": "Sympa", // command report
	"sympa/015.eml": "Sympa", // welcome
	"sympa/016.eml": "Sympa", // command report
	"sympa/017.eml": "Sympa", // command report (SET dev DIGEST)
	"sympa/018.eml": "",      // a digest: Auto-Submitted and X-Mailer Sympa too, but List-Id

	"listmonk/optin.eml":    "listmonk", // double opt-in confirmation
	"listmonk/campaign.eml": "",         // a campaign

	// Mautic has no built-in rule: its opt-in mail passes only because,
	// sent as a transactional email, it carries no bulk marker.
	"mautic/doi-transactional.eml":  "default",
	"mautic/segment.eml":            "",
	"mautic/campaign-marketing.eml": "",
}

// Every fixture is classified as the table says: administrative mail as
// transactional by the named built-in rule, posts and campaigns as
// marketing by their bulk markers. A fixture the table does not know fails,
// so that none is added without being tested.
func TestClassifyListManagerMail(t *testing.T) {
	g := &config.Default().Governor
	seen := 0
	for _, tool := range []string{"mailman3", "sympa", "listmonk", "mautic"} {
		senders := readEnvelopes(t, filepath.Join("testdata", "listmail", tool, "envelopes"))
		files, _ := filepath.Glob(filepath.Join("testdata", "listmail", tool, "*.eml"))
		if len(files) == 0 {
			t.Fatalf("no fixtures for %s", tool)
		}
		for _, f := range files {
			name := tool + "/" + filepath.Base(f)
			want, known := listMail[name]
			if !known {
				t.Errorf("%s: fixture not in the table", name)
				continue
			}
			seen++
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sender, ok := senders[filepath.Base(f)]
			if !ok {
				t.Fatalf("%s: no envelope sender recorded", name)
			}
			h := readHeader(data)
			if h == nil {
				t.Fatalf("%s: header does not parse", name)
			}
			class, reason := classify(h, sender, g)
			switch want {
			case "":
				if class != config.ClassMarketing || !strings.HasPrefix(reason, "bulk marker") {
					t.Errorf("%s (a post): %s by %q, want marketing by a bulk marker", name, class, reason)
				}
			case "default":
				if class != config.ClassTransactional || !strings.Contains(reason, "default") {
					t.Errorf("%s: %s by %q, want transactional by the default class", name, class, reason)
				}
			default:
				if class != config.ClassTransactional || !strings.Contains(reason, "list administrative mail ("+want+":") {
					t.Errorf("%s: %s by %q, want transactional as %s administrative mail", name, class, reason, want)
				}
			}
			// The built-in rule does not depend on the default class: with
			// everything unmarked held, administrative mail still passes.
			if want != "" && want != "default" {
				gm := *g
				gm.DefaultClass = config.ClassMarketing
				if class, reason := classify(h, sender, &gm); class != config.ClassTransactional {
					t.Errorf("%s with default_class marketing: %s by %q", name, class, reason)
				}
			}
		}
	}
	if seen != len(listMail) {
		t.Errorf("classified %d fixtures, the table has %d", seen, len(listMail))
	}
}

// An admin's sender rule still comes first: it can hold what the built-in
// rule passes.
func TestSenderRuleOverridesListAdministrative(t *testing.T) {
	g := &config.Default().Governor
	g.SenderRules = []config.SenderRule{{Header: "X-Mailman-Version", Value: "3.*", Class: config.ClassMarketing}}
	data, err := os.ReadFile(filepath.Join("testdata", "listmail", "mailman3", "002.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if class, reason := classify(readHeader(data), "dev-bounces@lists.example.org", g); class != config.ClassMarketing ||
		!strings.HasPrefix(reason, "sender rule 1") {
		t.Errorf("welcome under a marketing rule: %s by %q", class, reason)
	}
}

// The rules need every part of what they match: each near miss stays
// marketing.
func TestListAdministrativeNearMisses(t *testing.T) {
	g := &config.Default().Governor
	for _, tc := range []struct{ name, header string }{
		{"Mailman 3 post (List-Post)", "X-Mailman-Version: 3.3.8\r\nList-Id: <dev.lists.example.org>\r\nList-Post: <mailto:dev@lists.example.org>\r\n"},
		{"Mailman 3 announce post (List-Post: NO)", "X-Mailman-Version: 3.3.8\r\nList-Id: <dev.lists.example.org>\r\nList-Post: NO\r\n"},
		{"Mailman 2 post without List-Post", "X-Mailman-Version: 2.1.39\r\nList-Id: <dev.lists.example.org>\r\n"},
		{"Mailman 2 administrivia: no", "X-List-Administrivia: no\r\nList-Id: <dev.lists.example.org>\r\n"},
		{"Sympa digest (List-Id)", "X-Mailer: Sympa 6.2.70\r\nAuto-Submitted: auto-generated\r\nList-Id: <dev.lists.example.org>\r\n"},
		{"Sympa-like mailer name", "X-Mailer: SympaticMail 1.0\r\nAuto-Submitted: auto-generated\r\nList-Unsubscribe: <mailto:u@example.org>\r\n"},
		{"Auto-Submitted: no", "X-Mailer: Sympa 6.2.70\r\nAuto-Submitted: no\r\nList-Unsubscribe: <mailto:u@example.org>\r\n"},
		{"listmonk campaign", "X-Listmonk-Subscriber: a\r\nX-Listmonk-Campaign: b\r\nList-Unsubscribe: <https://n.example.org/u>\r\n"},
	} {
		h := readHeader([]byte(tc.header + "Subject: x\r\n\r\nbody\r\n"))
		if class, reason := classify(h, "list@example.org", g); class != config.ClassMarketing {
			t.Errorf("%s: %s by %q, want marketing", tc.name, class, reason)
		}
	}
}

// Header names are matched as net/mail stores them, canonical: a message
// that writes them in another letter case is recognised all the same.
func TestListAdministrativeAnyLetterCase(t *testing.T) {
	g := &config.Default().Governor
	for _, header := range []string{
		"x-mailman-version: 3.3.8\r\nLIST-ID: <dev.lists.example.org>\r\nlist-unsubscribe: <mailto:dev-leave@lists.example.org>\r\n",
		"x-list-administrivia: YES\r\nlist-id: <dev.lists.example.org>\r\n",
		"AUTO-SUBMITTED: Auto-Generated\r\nx-mailer: SYMPA 6.2.70\r\n",
		"x-listmonk-subscriber: a\r\nlist-unsubscribe: <https://n.example.org/u>\r\n",
	} {
		h, _ := readHeaderTolerant([]byte(header + "Subject: x\r\n\r\nbody\r\n"))
		if class, reason := classify(h, "list@example.org", g); class != config.ClassTransactional ||
			!strings.HasPrefix(reason, "list administrative mail") {
			t.Errorf("%q: %s by %q, want transactional as list administrative mail", header, class, reason)
		}
	}
}

// BenchmarkClassifyListPost classifies a list post and a receipt, the
// common cases, which every built-in list rule must reject.
func BenchmarkClassifyListPost(b *testing.B) {
	g := &config.Default().Governor
	hs := []mail.Header{
		readHeader([]byte("From: ann@example.com\r\nTo: dev@lists.example.org\r\nMessage-ID: <a@example.com>\r\nX-Mailman-Version: 3.3.8\r\nPrecedence: list\r\nSubject: [Dev] Release notes\r\nList-Id: <dev.lists.example.org>\r\nList-Post: <mailto:dev@lists.example.org>\r\nList-Unsubscribe: <mailto:dev-leave@lists.example.org>\r\n\r\nbody\r\n")),
		readHeader([]byte("From: shop@example.com\r\nTo: ann@example.com\r\nSubject: Your receipt\r\nMessage-ID: <r@example.com>\r\n\r\nbody\r\n")),
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		classify(hs[i&1], "dev-bounces@lists.example.org", g)
	}
}

// readEnvelopes reads a fixture directory's envelopes file: per line the
// file name, MAIL FROM and the recipients.
func readEnvelopes(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 {
			m[fields[0]] = strings.Trim(fields[1], "<>")
		}
	}
	return m
}
