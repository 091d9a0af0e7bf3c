package scoring

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestContentTermsPicksSubjectAndFrequentWords(t *testing.T) {
	subject := appendWords(nil, "New hiking boots", 100)
	body := appendWords(nil, "Hello Ann, the boots are here. Boots for every trail, 2026 models, and more boots for you.", 100)
	got := contentTerms(subject, body)
	if len(got) < 3 || got[0] != "boots" || got[1] != "hiking" {
		t.Fatalf("terms %q: want boots (subject and three times in the body) first, then hiking", got)
	}
	for _, w := range got {
		if stopWords[w] || len(w) < 3 || isNumber(w) {
			t.Errorf("kept %q", w)
		}
	}
	var many []string
	for i := range 200 {
		many = append(many, fmt.Sprintf("word%c%c", 'a'+i%26, 'a'+i/26))
	}
	if n := len(contentTerms(nil, many)); n != MaxContentTerms {
		t.Errorf("%d terms kept, want at most %d", n, MaxContentTerms)
	}
}

// contentProfile gives a recipient n releases, alternating between mail
// about boots and mail about novels, and clicks on the boots mail.
func contentProfile(n int) *Profile {
	p := &Profile{}
	m := DefaultMemory()
	for i := range n {
		terms := []string{"boots", "trail", "hiking"}
		if i%2 == 1 {
			terms = []string{"novel", "author", "fiction"}
		}
		id := fmt.Sprintf("m%d", i)
		at := t0.Add(time.Duration(i) * 24 * time.Hour)
		p.RecordRelease(Release{At: at, MessageID: id, Terms: TermBitsOf(terms)}, m)
		if i%2 == 0 && i%4 == 0 {
			p.RecordEvent(Event{Kind: EventClick, At: at.Add(time.Hour), MessageID: id}, nil, m)
		}
	}
	return p
}

func TestContentAffinityLearnsWhatIsClicked(t *testing.T) {
	p := contentProfile(20)
	pop, pol := DefaultPopulation(), DefaultPolicy()
	now := t0.Add(21 * 24 * time.Hour)
	boots := &Features{Terms: []string{"boots", "trail"}, Priority: DefaultPriority}
	novel := &Features{Terms: []string{"novel", "author"}, Priority: DefaultPriority}
	rb, rn := ScoreRelevance(boots, p, &pop, pol, now), ScoreRelevance(novel, p, &pop, pol, now)
	if rb.Affinity <= rb.Overall || rn.Affinity >= rn.Overall {
		t.Fatalf("boots %.4f, novels %.4f, overall %.4f: want boots above the overall rate and novels below", rb.Affinity, rn.Affinity, rb.Overall)
	}
	if rb.Content == nil || rb.Content.Term == "" || rb.Content.Clicks < 1 {
		t.Errorf("no explanation: %+v", rb.Content)
	}
	// Declared topics win: the same words under a topic score by topic.
	withTopic := *boots
	withTopic.Topics = []string{"wine"}
	if r := ScoreRelevance(&withTopic, p, &pop, pol, now); r.Content != nil {
		t.Errorf("a message with topics was scored by content: %+v", r.Content)
	}
	// Off: the overall rate.
	pol.ContentWeight = 0
	if r := ScoreRelevance(boots, p, &pop, pol, now); r.Affinity != r.Overall {
		t.Errorf("content off: affinity %.4f, want the overall %.4f", r.Affinity, r.Overall)
	}
	// Explained in words.
	d := Decide(Input{Now: now, Profile: p, Held: []Held{{ID: "a", Features: boots, Received: now}}})
	got := d[0].Explain()
	if !containsString(got, "mails with") {
		t.Errorf("explanation does not name the term: %s", got)
	}
	// The evidence is in the plain first line, which the dashboard shows
	// unfolded, not only among the numbers below it.
	if first, _, _ := strings.Cut(got, "\n"); !containsString(first, "recent mails with “") || !containsString(first, "this recipient opened") {
		t.Errorf("the first line does not say what the content learner saw: %s", first)
	}
}

func containsString(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// Property: one more click on a release with a term never lowers the
// affinity of a message with that term, whatever else the message says
// and whatever the profile held before.
func TestContentMoreClicksNeverLower(t *testing.T) {
	pop, pol := DefaultPopulation(), DefaultPolicy()
	vocab := []string{"boots", "trail", "novel", "author", "sofa", "lamp", "coffee", "wine", "tent", "serum", "hotel", "beach"}
	checked := 0
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 7))
		p := &Profile{}
		m := DefaultMemory()
		n := 1 + r.IntN(40)
		var last string
		var lastAt time.Time
		for i := range n {
			var terms []string
			for range 1 + r.IntN(4) {
				terms = append(terms, vocab[r.IntN(len(vocab))])
			}
			if r.IntN(5) < 3 {
				terms = append(terms, "boots") // the term whose clicks grow
			}
			id := fmt.Sprintf("m%d", i)
			at := t0.Add(time.Duration(i) * 17 * time.Hour)
			p.RecordRelease(Release{At: at, MessageID: id, Terms: TermBitsOf(terms)}, m)
			switch r.IntN(4) {
			case 0:
				p.RecordEvent(Event{Kind: EventOpen, At: at.Add(time.Hour), MessageID: id}, nil, m)
			case 1:
				p.RecordEvent(Event{Kind: EventClick, At: at.Add(time.Hour), MessageID: id}, nil, m)
			}
			if r.IntN(2) == 0 || last == "" {
				last, lastAt = id, at
			}
		}
		var mt []string
		for range r.IntN(5) {
			mt = append(mt, vocab[r.IntN(len(vocab))])
		}
		msg := &Features{Terms: append(mt, "boots"), Priority: DefaultPriority}
		now := t0.Add(time.Duration(n) * 17 * time.Hour)
		before := ScoreRelevance(msg, p, &pop, pol, now).Affinity
		// One more click, on a release that has the term and was not clicked yet.
		var target string
		boots := TermBitsOf([]string{"boots"})
		for i := range p.History {
			if !p.History[i].Clicked && p.History[i].Terms[0]&boots[0] == boots[0] && p.History[i].Terms[1]&boots[1] == boots[1] {
				target = p.History[i].MessageID
			}
		}
		if target == "" {
			continue
		}
		q := cloneProfile(p)
		q.RecordEvent(Event{Kind: EventClick, At: lastAt.Add(2 * time.Hour), MessageID: target}, nil, m)
		after := ScoreRelevance(msg, q, &pop, pol, now).Affinity
		checked++
		if after < before-1e-12 {

			t.Fatalf("seed %d: a click on %q lowered the affinity from %.6f to %.6f", seed, target, before, after)
		}
	}
	if checked < 200 {
		t.Fatalf("only %d cases checked", checked)
	}
}

func cloneProfile(p *Profile) *Profile {
	raw, err := p.Encode()
	if err != nil {
		panic(err)
	}
	q, err := DecodeProfile(raw)
	if err != nil {
		panic(err)
	}
	return q
}

func TestContentStateBoundedAndSurvivesEncoding(t *testing.T) {
	p := contentProfile(300)
	if len(p.Content.Sends) != ContentBuckets {
		t.Fatalf("%d buckets", len(p.Content.Sends))
	}
	q := cloneProfile(p)
	pop, pol := DefaultPopulation(), DefaultPolicy()
	f := &Features{Terms: []string{"boots"}, Priority: DefaultPriority}
	now := t0.Add(400 * 24 * time.Hour)
	if a, b := ScoreRelevance(f, p, &pop, pol, now).Affinity, ScoreRelevance(f, q, &pop, pol, now).Affinity; a != b {
		t.Errorf("affinity %.6f before encoding, %.6f after", a, b)
	}
	// A hand-edited profile with the wrong number of buckets is ignored
	// for scoring and restarted by the next release, not a panic.
	q.Content.Sends = q.Content.Sends[:3]
	_ = ScoreRelevance(f, q, &pop, pol, now)
	q.RecordRelease(Release{At: now, MessageID: "x", Terms: TermBitsOf([]string{"boots"})}, DefaultMemory())
	if len(q.Content.Sends) != ContentBuckets {
		t.Errorf("not restarted: %d buckets", len(q.Content.Sends))
	}
}

func TestMergeContent(t *testing.T) {
	m := DefaultMemory()
	a, b := &Profile{}, &Profile{}
	boots := TermBitsOf([]string{"boots"})
	k := termBucket("boots")
	a.RecordRelease(Release{At: t0, MessageID: "a1", Terms: boots}, m)
	b.RecordRelease(Release{At: t0.Add(m.HalfLife), MessageID: "b1", Terms: boots}, m)
	b.RecordEvent(Event{Kind: EventClick, At: t0.Add(m.HalfLife), MessageID: "b1"}, nil, m)
	a.Merge(b, m)
	c := a.Content
	// a's release is a half-life older: it counts half.
	if !c.At.Equal(t0.Add(m.HalfLife)) || math.Abs(float64(c.Sends[k])-1.5) > 1e-5 || c.Clicks[k] != 1 || math.Abs(c.Releases-1.5) > 1e-9 {
		t.Errorf("merged content at %v: sends %.3f clicks %.3f releases %.3f", c.At, c.Sends[k], c.Clicks[k], c.Releases)
	}
	if b.Content.Sends[k] != 1 {
		t.Error("merge changed the other profile")
	}
	empty := &Profile{DecayedAt: t0}
	empty.Merge(b, m)
	if empty.Content == nil || &empty.Content.Sends[0] == &b.Content.Sends[0] || empty.Content.Clicks[k] != 1 {
		t.Error("a profile without content did not get a copy of the other's")
	}
}

// Only the salient terms count: a message's terms after the first
// SalientTerms (its shared vocabulary, least frequent) set no bucket.
func TestTermBitsUseSalientTermsOnly(t *testing.T) {
	var terms []string
	for i := range 40 {
		terms = append(terms, fmt.Sprintf("filler%02d", i))
	}
	if TermBitsOf(terms) != TermBitsOf(terms[:SalientTerms]) {
		t.Errorf("terms beyond the first %d set buckets", SalientTerms)
	}
}
