package scoring

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The word splitter and the SimHash have fast paths (ASCII without
// decoding, unit votes counted eight bits at a time). Fingerprints are
// stored and compared with ones computed months earlier, so the fast paths
// must give exactly what the straightforward versions below give: these are
// the versions the fast ones replaced, kept as the reference.

func refAppendWords(dst []string, s string, max int) []string {
	for len(s) > 0 && len(dst) < max {
		i := 0
		for i < len(s) {
			r, size := utf8.DecodeRuneInString(s[i:])
			if unicode.IsSpace(r) {
				break
			}
			i += size
		}
		field := s[:i]
		s = s[i:]
		for len(s) > 0 {
			r, size := utf8.DecodeRuneInString(s)
			if !unicode.IsSpace(r) {
				break
			}
			s = s[size:]
		}
		if field == "" || isLinkLike(field) {
			continue
		}
		dst = appendFieldWordsUnicode(dst, field, max)
	}
	return dst
}

type refSimhash struct {
	votes [64]int32
	n     int
}

func (s *refSimhash) add(h uint64, weight int32) {
	h = mix64(h)
	for i := 0; i < 64; i++ {
		if h&(1<<uint(i)) != 0 {
			s.votes[i] += weight
		} else {
			s.votes[i] -= weight
		}
	}
	s.n++
}

func (s *refSimhash) sum() uint64 {
	if s.n == 0 {
		return 0
	}
	var f uint64
	for i, v := range s.votes {
		if v > 0 {
			f |= 1 << uint(i)
		}
	}
	return f
}

func refFingerprint(subject, body []string) uint64 {
	var s refSimhash
	for _, w := range subject {
		s.add(fnvString(fnvString(fnvOffset64, "s:"), w), subjectWeight)
	}
	for _, w := range body {
		s.add(fnvString(fnvString(fnvOffset64, "w:"), w), 1)
	}
	for i := 0; i+shingleSize <= len(body); i++ {
		h := uint64(fnvOffset64)
		for _, w := range body[i : i+shingleSize] {
			h = fnvString(h, w)
			h = fnvString(h, " ")
		}
		s.add(h, 1)
	}
	return s.sum()
}

// checkSameAsReference compares the fast and the reference versions on s,
// used as subject and as body.
func checkSameAsReference(t *testing.T, s string) {
	t.Helper()
	for _, max := range []int{3, defaultMaxWords} {
		got, want := appendWords(nil, s, max), refAppendWords(nil, s, max)
		if !slices.Equal(got, want) {
			t.Fatalf("appendWords(%q, %d) = %q, reference %q", s, max, got, want)
		}
	}
	words := refAppendWords(nil, s, defaultMaxWords)
	for _, subject := range [][]string{nil, words[:min(len(words), 7)]} {
		got, _ := fingerprint(subject, words)
		if want := refFingerprint(subject, words); got != want {
			t.Fatalf("fingerprint of %d words (subject %d) = %016x, reference %016x", len(words), len(subject), got, want)
		}
	}
}

func TestFastPathsMatchReference(t *testing.T) {
	for _, s := range []string{
		"",
		"Hello, World! 2 for 1 ENDS Tonight",
		"tabs\tand\nnew\vlines\fand\rcarriage  returns",
		"Größe Käse ÉTÉ naïve café 東京 ١٢٣",      // letters and digits outside ASCII
		"no\u00a0break\u0085next\u2003em-space", // spaces outside ASCII
		"bad \xff\xfe utf-8 \xc3 here",
		"links https://x.test/a?b=1 mail@x.test www.x.test mailto:a@x.test stay out",
		"MiXeD-CaSe_under_score...dots,commas;semi:colon",
		"don't it's O'Brien e-mail x86_64 C++ 3.14",
	} {
		checkSameAsReference(t, s)
	}
	// Long texts cross the fast SimHash's flush every 255 unit votes.
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := strings.Fields("sale Boots winter SUMMER 50% off free shipping today only für Größe 東京 naïve the a of and")
	for _, n := range []int{1, 254, 255, 256, 511, 1200, 3000} {
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteString(vocab[rng.IntN(len(vocab))])
			b.WriteString([]string{" ", "\n", ", ", "\t", "  "}[rng.IntN(5)])
		}
		checkSameAsReference(t, b.String())
	}
}

func FuzzFastPathsMatchReference(f *testing.F) {
	f.Add("Hello, World! 2 for 1")
	f.Add("Größe\u00a0Käse \xff bad")
	f.Add(strings.Repeat("word ", 300))
	f.Fuzz(func(t *testing.T, s string) { checkSameAsReference(t, s) })
}

// The same feature many times over sets the same bits every time: the
// byte counters must be moved on before they overflow, whatever the mix of
// weights.
func TestSimhashVotesMatchReference(t *testing.T) {
	for _, reps := range []int{1, 255, 256, 1000} {
		var s simhash
		var r refSimhash
		for i := 0; i < reps; i++ {
			for _, f := range []struct {
				h uint64
				w int32
			}{{0x0123456789abcdef, 1}, {^uint64(0), 1}, {42, subjectWeight}} {
				if f.w != 1 && i%7 != 0 {
					continue
				}
				s.add(f.h, f.w)
				r.add(f.h, f.w)
			}
		}
		if got, want := s.sum(), r.sum(); got != want {
			t.Fatalf("%d repetitions: fingerprint %016x, reference %016x", reps, got, want)
		}
		for i, v := range r.votes {
			if got := 2*s.ones[i] - s.total; got != v {
				t.Fatalf("%d repetitions: vote on bit %d is %d, reference %d", reps, i, got, v)
			}
		}
	}
}
