package scoring

import (
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"
)

// Content-derived relevance: what a recipient engages with, learned from
// the words of the mail itself, for mail that declares no topics (no
// X-Kadenz-Topics header and no keyword rule matched). It needs no
// configuration.
//
// At intake each message keeps up to MaxContentTerms of its words
// (Features.Terms): the subject's first, then the body's most frequent,
// without stop words, numbers and words under three letters. The first
// SalientTerms of them count; each hashes to one of ContentBuckets buckets; a release records the set of
// its message's buckets (Release.Terms, 128 bits), and the profile keeps
// decayed sends, opens and clicks per bucket (Profile.Content), forgetting
// at the same half-life as topic counts. So a profile's state is bounded
// (three arrays of ContentBuckets numbers) whatever the vocabulary.
//
// Scoring a message without topics: each of its buckets has a Beta
// posterior engagement rate shrunk toward the recipient's overall rate
// (itself shrunk toward the population's), with ContentPrior pseudo-sends.
// The message's affinity is the overall rate plus ContentWeight times the
// evidence-weighted mean of the buckets' departures from it. A bucket's
// weight is n(1-n/N), n its decayed sends and N the releases counted: a
// word in every mail (a footer, the shop's name) says nothing about what
// the recipient likes, and a word never seen says nothing yet. The bucket
// that moved the estimate most is named in the explanation with its
// counts ("opened 3 and clicked 1 of 5 mails with "boots"").
//
// Declared topics and keyword rules win: where a message has topics, its
// affinity is the topic model's and content is only counted.

// ContentBuckets is the number of hashed term buckets in a profile.
const ContentBuckets = 128

// maxTermShare: a term bucket in more than this share of a recipient's
// releases is not evidence of anything.
const maxTermShare = 0.9

// MaxContentTerms bounds the terms kept per message.
const MaxContentTerms = 48

// ContentCounts are a recipient's decayed sends, opens and clicks per
// term bucket. Replies count as clicks.
type ContentCounts struct {
	// At is the time the counts are decayed to.
	At time.Time `json:"at"`
	// Releases is the decayed number of releases counted (N above).
	Releases float64   `json:"releases"`
	Sends    []float32 `json:"sends"`
	Opens    []float32 `json:"opens"`
	Clicks   []float32 `json:"clicks"`
}

// TermBits is the bucket set of terms: bit b of word b/64 is set when a
// term hashes to bucket b.
type TermBits [2]uint64

func termBucket(term string) int {
	return int(mix64(fnvString(fnvOffset64, term)) % ContentBuckets)
}

// SalientTerms is how many of a message's terms (Features.Terms, most
// salient first) content relevance uses. A message's words beyond its
// subject and its repeated words are mostly the shared vocabulary of all
// mail; counted, they drown the few that say what the mail is about in
// noise (in the structured simulator, 48 terms held about 7 topic words,
// and every bucket also held three or four filler words).
const SalientTerms = 12

func salient(terms []string) []string { return terms[:min(len(terms), SalientTerms)] }

// TermBitsOf returns the bucket set of the salient terms.
func TermBitsOf(terms []string) TermBits {
	var b TermBits
	for _, t := range salient(terms) {
		k := termBucket(t)
		b[k/64] |= 1 << uint(k%64)
	}
	return b
}

// stopWords are common English function words and the words every
// marketing mail has; they carry no subject matter.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`the and for you your our with this that from are was were will have has
		had not but all any can its out off now new get got just more most only own also into over than then
		them they their there here what when where which who whom why how too very about after again before
		being below between both during each few further once other same should some such under until while
		would could his her hers him she one two may might must shall yours ours these those does did doing
		hello dear regards thanks thank please click unsubscribe view browser email mail online today
		newsletter update preferences privacy policy rights reserved copyright`) {
		m[w] = true
	}
	return m
}()

// contentTerms picks a message's terms from its normalised words: subject
// words first (each counts as three occurrences), then by frequency, ties
// by first appearance; at most MaxContentTerms.
func contentTerms(subject, body []string) []string {
	type term struct {
		w     string
		score int
		first int
	}
	var ts []term
	idx := map[string]int{}
	add := func(w string, weight, pos int) {
		if len(w) < 3 || stopWords[w] || isNumber(w) {
			return
		}
		if i, ok := idx[w]; ok {
			ts[i].score += weight
			return
		}
		idx[w] = len(ts)
		ts = append(ts, term{w, weight, pos})
	}
	for i, w := range subject {
		add(w, subjectWeight, i)
	}
	for i, w := range body {
		add(w, 1, len(subject)+i)
	}
	slices.SortStableFunc(ts, func(a, b term) int {
		if a.score != b.score {
			return b.score - a.score
		}
		return a.first - b.first
	})
	out := make([]string, 0, min(len(ts), MaxContentTerms))
	for i := 0; i < len(ts) && i < MaxContentTerms; i++ {
		out = append(out, ts[i].w)
	}
	return out
}

func isNumber(w string) bool {
	for i := 0; i < len(w); i++ {
		if w[i] < '0' || w[i] > '9' {
			return false
		}
	}
	return true
}

// recordContent adds to the content counts of the buckets in b, decaying
// them first (to at, or weighting a late event by its age).
func (p *Profile) recordContent(b TermBits, at time.Time, m Memory, release bool, sends, opens, clicks float64) {
	if b == (TermBits{}) {
		return
	}
	c := p.Content
	if c == nil {
		c = &ContentCounts{At: at, Sends: make([]float32, ContentBuckets),
			Opens: make([]float32, ContentBuckets), Clicks: make([]float32, ContentBuckets)}
		p.Content = c
	}
	if len(c.Sends) != ContentBuckets || len(c.Opens) != ContentBuckets || len(c.Clicks) != ContentBuckets {
		// A profile edited by hand: start the content counts again.
		*c = ContentCounts{At: at, Sends: make([]float32, ContentBuckets),
			Opens: make([]float32, ContentBuckets), Clicks: make([]float32, ContentBuckets)}
	}
	w := 1.0
	switch {
	case at.After(c.At):
		f := float32(decay(at.Sub(c.At), m.HalfLife))
		for i := range c.Sends {
			c.Sends[i] *= f
			c.Opens[i] *= f
			c.Clicks[i] *= f
		}
		c.Releases *= float64(f)
		c.At = at
	case at.Before(c.At):
		w = decay(c.At.Sub(at), m.HalfLife)
	}
	if release {
		c.Releases += w
	}
	for j, word := range b {
		for v := word; v != 0; v &= v - 1 {
			k := 64*j + bits.TrailingZeros64(v)
			c.Sends[k] += float32(w * sends)
			c.Opens[k] += float32(w * opens)
			c.Clicks[k] += float32(w * clicks)
		}
	}
}

// ContentNote explains content affinity: the term that moved the estimate
// most, with the recipient's decayed counts for its bucket.
type ContentNote struct {
	Term                 string
	Sends, Opens, Clicks float64
}

// contentAffinity is the affinity of a message without topics from the
// population's term lifts and the recipient's content counts; ok is false
// when there is nothing to go on (no terms, the learner off).
func contentAffinity(f *Features, p *Profile, pop *Population, pol *Policy, overall float64, now time.Time) (aff float64, note ContentNote, ok bool) {
	if pol.ContentWeight <= 0 || len(f.Terms) == 0 {
		return overall, note, false
	}
	terms := salient(f.Terms)
	termLift := pop.TermLift
	if len(termLift) != ContentBuckets {
		termLift = nil
	}
	c := p.Content
	if c != nil && (c.Releases <= 0 || len(c.Sends) != ContentBuckets || len(c.Opens) != ContentBuckets || len(c.Clicks) != ContentBuckets) {
		c = nil
	}
	d, total := 1.0, 0.0
	if c != nil {
		if now.After(c.At) {
			d = decay(now.Sub(c.At), pol.Memory.HalfLife)
		}
		total = c.Releases * d
	}
	// The population's view of the message: the mean lift of its buckets.
	// The recipient's own: each bucket's rate, shrunk toward the overall
	// rate times the bucket's lift, weighed by how much it says.
	var seen TermBits
	var sumLift, buckets, sumW, sumDev, best float64
	bestTerm := -1
	for i, t := range terms {
		k := termBucket(t)
		if seen[k/64]&(1<<uint(k%64)) != 0 {
			continue
		}
		seen[k/64] |= 1 << uint(k%64)
		tl := 1.0
		if termLift != nil {
			tl = termLift[k]
		}
		sumLift += tl
		buckets++
		if c == nil {
			continue
		}
		n := float64(c.Sends[k]) * d
		if n <= 0 {
			continue
		}
		share := n / total
		if share > maxTermShare {
			continue // in (nearly) every mail: says nothing about what they like
		}
		mu := clamp(overall*tl, 0, 0.95)
		eng := (pol.OpenWeight*float64(c.Opens[k]) + (pol.ClickWeight+pol.ReplyWeight)*float64(c.Clicks[k])) * d
		est := betaMean(eng, n, mu, pol.ContentPrior)
		w := n * (1 - share)
		sumW += w
		sumDev += w * (est - mu)
		if x := math.Abs(w * (est - mu)); x > best {
			best, bestTerm = x, i
		}
	}
	base := overall * sumLift / buckets
	if sumW <= 0 {
		return clamp(base, overall/4, 0.95), note, termLift != nil
	}
	if bestTerm >= 0 {
		k := termBucket(terms[bestTerm])
		note = ContentNote{Term: terms[bestTerm], Sends: float64(c.Sends[k]) * d, Opens: float64(c.Opens[k]) * d, Clicks: float64(c.Clicks[k]) * d}
	}
	aff = clamp(base+pol.ContentWeight*sumDev/sumW, overall/4, 0.95)
	return aff, note, true
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// mergeContent adds another profile's content counts to p's (Merge),
// both decayed to the later of their times.
func (p *Profile) mergeContent(o *ContentCounts, m Memory) {
	if o == nil || len(o.Sends) != ContentBuckets || len(o.Opens) != ContentBuckets || len(o.Clicks) != ContentBuckets {
		return
	}
	c := p.Content
	if c == nil || len(c.Sends) != ContentBuckets || len(c.Opens) != ContentBuckets || len(c.Clicks) != ContentBuckets {
		p.Content = &ContentCounts{At: o.At, Releases: o.Releases, Sends: slices.Clone(o.Sends),
			Opens: slices.Clone(o.Opens), Clicks: slices.Clone(o.Clicks)}
		return
	}
	wp, wo := 1.0, 1.0
	switch {
	case o.At.After(c.At):
		wp = decay(o.At.Sub(c.At), m.HalfLife)
		c.At = o.At
	case c.At.After(o.At):
		wo = decay(c.At.Sub(o.At), m.HalfLife)
	}
	c.Releases = wp*c.Releases + wo*o.Releases
	for i := range c.Sends {
		c.Sends[i] = float32(wp*float64(c.Sends[i]) + wo*float64(o.Sends[i]))
		c.Opens[i] = float32(wp*float64(c.Opens[i]) + wo*float64(o.Opens[i]))
		c.Clicks[i] = float32(wp*float64(c.Clicks[i]) + wo*float64(o.Clicks[i]))
	}
}
