package scoring

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
)

func readMail(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "mail", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bodyWords returns the normalised body words the way ExtractFeatures
// sees them, so tests can check decoding.
func bodyWords(t testing.TB, raw []byte) string {
	t.Helper()
	var f Features
	e, err := message.Read(bytes.NewReader(raw))
	if e == nil {
		t.Fatal(err)
	}
	var b bodyText
	b.budget, b.parts, b.maxPart = defaultMaxTextBytes, defaultMaxParts, defaultMaxPartBytes
	b.walk(e, 0, &f)
	text := b.plain.String()
	if strings.TrimSpace(text) == "" {
		text = htmlText(b.html.String())
	}
	return strings.Join(appendWords(nil, text, defaultMaxWords), " ")
}

func TestExtractFeaturesRealMail(t *testing.T) {
	rules := []TopicRule{
		{Topic: "travel", Keywords: []string{"flights", "hotel"}},
		{Topic: "wine", Keywords: []string{"vins rouges"}},
		{Topic: "food", Keywords: []string{"käse"}},
		{Topic: "garden", Keywords: []string{"Garden tools"}},
		{Topic: "sale", Keywords: []string{"sale"}},
	}
	tests := []struct {
		file      string
		subject   string
		campaign  string
		topics    []string
		fromRules bool
		priority  int
		expires   time.Time
		zone      string
		value     int
		hasValue  bool
		body      []string // words that must be in the decoded text
		notBody   []string // words that must not
	}{
		{
			file: "multipart-alternative.eml", subject: "Spring sale: 30% off running shoes",
			campaign: "spring-2025", topics: []string{"running", "shoes"}, priority: 70,
			expires: time.Date(2025, 3, 9, 22, 59, 0, 0, time.UTC), zone: "Europe/Berlin", value: 80, hasValue: true,
			body:    []string{"hi ana", "until sunday don t miss it"},
			notBody: []string{"color", "https", "8812"},
		},
		{
			file: "html-only.eml", subject: "Last minute flights to Lisbon ✈", campaign: "deals.travel.example",
			topics: []string{"travel"}, fromRules: true, priority: DefaultPriority,
			body:    []string{"last minute flights to lisbon from 49", "book your trip before friday"},
			notBody: []string{"hidden", "tracking", "href", "title"},
		},
		{
			file: "base64-attachment.eml", subject: "Nouvelle collection", topics: []string{"wine"}, fromRules: true,
			priority: DefaultPriority, body: []string{"découvrez notre nouvelle collection de vins rouges"},
			notBody: []string{"jvberi0xljq"},
		},
		{
			file: "iso-8859-1.eml", subject: "Grüße aus München", topics: []string{"food"}, fromRules: true,
			priority: DefaultPriority, body: []string{"unsere neuen käse und wurstspezialitäten", "große auswahl für feinschmecker"},
		},
		{
			file: "windows-1252.eml", subject: "Weekend offer", topics: []string{"garden"}, fromRules: true,
			priority: DefaultPriority, body: []string{"smart garden tools now 20 off this weekend only"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw := readMail(t, tt.file)
			f, err := ExtractFeatures(raw, ExtractOptions{Rules: rules})
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Problems) > 0 {
				t.Errorf("problems: %q", f.Problems)
			}
			if f.Subject != tt.subject {
				t.Errorf("subject %q, want %q", f.Subject, tt.subject)
			}
			if f.Campaign != tt.campaign {
				t.Errorf("campaign %q, want %q", f.Campaign, tt.campaign)
			}
			if !slices.Equal(f.Topics, tt.topics) || f.TopicsFromRules != tt.fromRules {
				t.Errorf("topics %q (from rules %v), want %q (%v)", f.Topics, f.TopicsFromRules, tt.topics, tt.fromRules)
			}
			if f.Priority != tt.priority {
				t.Errorf("priority %d, want %d", f.Priority, tt.priority)
			}
			if !f.Expires.Equal(tt.expires) {
				t.Errorf("expires %v, want %v", f.Expires, tt.expires)
			}
			if f.Timezone != tt.zone || f.Value != tt.value || f.HasValue != tt.hasValue {
				t.Errorf("zone %q value %d/%v, want %q %d/%v", f.Timezone, f.Value, f.HasValue, tt.zone, tt.value, tt.hasValue)
			}
			if f.Fingerprint == 0 || f.Words == 0 {
				t.Errorf("no fingerprint: %x over %d words", f.Fingerprint, f.Words)
			}
			words := bodyWords(t, raw)
			for _, w := range tt.body {
				if !strings.Contains(words, w) {
					t.Errorf("decoded text lacks %q:\n%s", w, words)
				}
			}
			for _, w := range tt.notBody {
				if strings.Contains(words, w) {
					t.Errorf("decoded text has %q:\n%s", w, words)
				}
			}
		})
	}
}

func TestExtractFeaturesHeaders(t *testing.T) {
	msg := func(hdr string) []byte {
		return []byte(strings.ReplaceAll(hdr, "\n", "\r\n") + "\r\nSubject: s\r\n\r\nbody text here\r\n")
	}
	tests := []struct {
		name  string
		raw   []byte
		opts  ExtractOptions
		check func(t *testing.T, f Features)
	}{
		{"no headers at all", msg("From: a@b"), ExtractOptions{}, func(t *testing.T, f Features) {
			if f.Priority != DefaultPriority || f.HasValue || f.Campaign != "" || f.Topics != nil || !f.Expires.IsZero() {
				t.Errorf("defaults wrong: %+v", f)
			}
		}},
		{"priority clamped", msg("X-Kadenz-Priority: 150"), ExtractOptions{}, func(t *testing.T, f Features) {
			if f.Priority != 100 {
				t.Errorf("priority %d", f.Priority)
			}
		}},
		{"bad values are problems, not errors", msg("X-Kadenz-Priority: high\nX-Kadenz-Expires: tomorrow\nX-Kadenz-Value: lots"), ExtractOptions{}, func(t *testing.T, f Features) {
			if len(f.Problems) != 3 || f.Priority != DefaultPriority || !f.Expires.IsZero() || f.HasValue {
				t.Errorf("got %+v", f)
			}
		}},
		{"not-before", msg("X-Kadenz-Not-Before: 2025-03-04T08:00:00-05:00"), ExtractOptions{}, func(t *testing.T, f Features) {
			if want := time.Date(2025, 3, 4, 13, 0, 0, 0, time.UTC); !f.NotBefore.Equal(want) {
				t.Errorf("not-before %v", f.NotBefore)
			}
		}},
		{"topics split, lower-cased, de-duplicated", msg("X-Kadenz-Topics: Shoes; running ,shoes,,"), ExtractOptions{}, func(t *testing.T, f Features) {
			if !slices.Equal(f.Topics, []string{"shoes", "running"}) || f.TopicsFromRules {
				t.Errorf("topics %q", f.Topics)
			}
		}},
		{"header topics win over rules", msg("X-Kadenz-Topics: a"), ExtractOptions{Rules: []TopicRule{{Topic: "b", Keywords: []string{"body"}}}}, func(t *testing.T, f Features) {
			if !slices.Equal(f.Topics, []string{"a"}) {
				t.Errorf("topics %q", f.Topics)
			}
		}},
		{"rules match whole words only", msg("From: a@b"), ExtractOptions{Rules: []TopicRule{{Topic: "x", Keywords: []string{"bod"}}, {Topic: "y", Keywords: []string{"text here"}}}}, func(t *testing.T, f Features) {
			if !slices.Equal(f.Topics, []string{"y"}) {
				t.Errorf("topics %q", f.Topics)
			}
		}},
		{"campaign alias before List-Id", msg("X-Campaign-Id: c9\nList-Id: <list.example>"), ExtractOptions{CampaignHeaders: []string{"X-Campaign-Id"}}, func(t *testing.T, f Features) {
			if f.Campaign != "c9" || f.CampaignFromList {
				t.Errorf("campaign %q (from list %v), want c9 from the alias", f.Campaign, f.CampaignFromList)
			}
		}},
		{"List-Id without brackets", msg("List-Id: plain.example"), ExtractOptions{}, func(t *testing.T, f Features) {
			if f.Campaign != "plain.example" || !f.CampaignFromList {
				t.Errorf("campaign %q (from list %v), want plain.example from the List-Id", f.Campaign, f.CampaignFromList)
			}
		}},
		{"unknown charset still yields headers", []byte("Subject: x\r\nX-Kadenz-Priority: 9\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nqapla\r\n"), ExtractOptions{}, func(t *testing.T, f Features) {
			if f.Priority != 9 || len(f.Problems) == 0 {
				t.Errorf("got %+v", f)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ExtractFeatures(tt.raw, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, f)
		})
	}
}

func TestExtractFeaturesBadHeader(t *testing.T) {
	// A header line without a colon cannot be parsed: the one failure mode.
	if _, err := ExtractFeatures([]byte("this is not a header\r\n\r\n"), ExtractOptions{}); err == nil {
		t.Error("no error for a broken header")
	}
}

func TestExtractFeaturesBounded(t *testing.T) {
	// 8 MB of text in one part (twice the scan bound), and a deeply nested multipart: both must
	// be cut to the configured bounds.
	var b bytes.Buffer
	b.WriteString("Subject: big\r\nContent-Type: text/plain\r\n\r\n")
	b.Write(bytes.Repeat([]byte(strings.Repeat("word ", 20)+"\r\n"), 8<<20/102))
	start := time.Now()
	f, err := ExtractFeatures(b.Bytes(), ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Words > defaultMaxWords+1 {
		t.Errorf("%d words, over the bound", f.Words)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}

	var n bytes.Buffer
	n.WriteString("Subject: deep\r\n")
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&n, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	n.WriteString("Content-Type: text/plain\r\n\r\nburied\r\n")
	f, err = ExtractFeatures(n.Bytes(), ExtractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Words != 1 { // the subject only: the text is deeper than maxDepth
		t.Errorf("%d words", f.Words)
	}
}

func TestFingerprintNearDuplicates(t *testing.T) {
	a := readMail(t, "multipart-alternative.eml")
	// The same mail to another recipient: a different name and tracking id.
	b := bytes.ReplaceAll(a, []byte("Hi Ana"), []byte("Hi Bartholomew"))
	b = bytes.ReplaceAll(b, []byte("u=8812"), []byte("u=1"))
	// A resend with a new subject line prefix.
	c := bytes.ReplaceAll(a, []byte("Subject: Spring sale"), []byte("Subject: Reminder: Spring sale"))
	fa, _ := ExtractFeatures(a, ExtractOptions{})
	fb, _ := ExtractFeatures(b, ExtractOptions{})
	fc, _ := ExtractFeatures(c, ExtractOptions{})
	pol := DefaultPolicy()
	if d := Hamming(fa.Fingerprint, fb.Fingerprint); d > pol.DuplicateBits {
		t.Errorf("personalised copy is %d bits away, want <= %d", d, pol.DuplicateBits)
	}
	if d := Hamming(fa.Fingerprint, fc.Fingerprint); d >= pol.DistinctBits {
		t.Errorf("resend with new subject is %d bits away, want < %d", d, pol.DistinctBits)
	}
	for _, other := range []string{"html-only.eml", "base64-attachment.eml", "iso-8859-1.eml", "windows-1252.eml"} {
		fo, _ := ExtractFeatures(readMail(t, other), ExtractOptions{})
		if d := Hamming(fa.Fingerprint, fo.Fingerprint); d < pol.DistinctBits {
			t.Errorf("unrelated %s is only %d bits away", other, d)
		}
	}
}

func TestHTMLText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<p>a&amp;b</p>", " a&b "},
		{"x<script>if (a<b) {}</script>y", "x y"},
		{"x<STYLE type=x>p{}</style >y", "x y"},
		{"x<!-- c -->y", "x y"},
		{"x<scripty>y", "x y"},
		{"unclosed <b", "unclosed  "},
		{"<script>never closed", " "},
	}
	for _, tt := range tests {
		if got := htmlText(tt.in); got != tt.want {
			t.Errorf("htmlText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
