package scoring

import "math/bits"

// FNV-1a constants (64-bit). FNV is used rather than hash/fnv because the
// fingerprint hashes millions of short shingles and the standard library's
// hash.Hash64 would allocate and copy for each one; the function itself is
// the same.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// fnvString continues an FNV-1a hash over s.
func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// mix64 is a 64-bit finaliser (from SplitMix64). FNV-1a over short strings
// leaves the high bits poorly mixed, which would bias some SimHash bit
// positions; the finaliser spreads every input bit over the whole word.
func mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// simhash accumulates a 64-bit SimHash (Charikar 2002): every feature votes
// +weight or -weight on each bit position according to its own hash, and the
// fingerprint keeps the sign of each total. Similar feature sets produce
// fingerprints that differ in few bits, so the Hamming distance between two
// fingerprints estimates how different two texts are.
//
// The vote on bit i is 2*ones[i] - total, where ones[i] is the weight of the
// features whose hash has bit i set, so only those are counted. Features of
// weight one (every body word and shingle: nearly all of them) are counted
// eight bits at a time: each byte of the hash is spread to one counter byte
// per bit by a table and added to a word of eight such counters, which are
// moved into ones before a byte could overflow. A 5 KB newsletter has about
// 1,500 features; counting bit by bit with a branch per bit made this the
// most expensive step of accepting marketing mail (docs/benchmarks.md).
type simhash struct {
	ones  [64]int32 // weight of the features with each bit set
	total int32     // weight of all features
	n     int

	lanes   [8]uint64 // lanes[j] byte k: unit features with bit 8j+k set
	pending int       // unit features counted in lanes, at most 255
}

// spread[b] has byte k set to bit k of b.
var spread = func() (t [256]uint64) {
	for b := range t {
		for k := 0; k < 8; k++ {
			t[b] |= uint64(b>>k&1) << (8 * k)
		}
	}
	return t
}()

func (s *simhash) add(h uint64, weight int32) {
	h = mix64(h)
	s.total += weight
	s.n++
	if weight != 1 {
		for v := h; v != 0; v &= v - 1 {
			s.ones[bits.TrailingZeros64(v)] += weight
		}
		return
	}
	for j := range s.lanes {
		s.lanes[j] += spread[byte(h>>(8*j))]
	}
	if s.pending++; s.pending == 255 {
		s.flush()
	}
}

// flush moves the byte counters into ones.
func (s *simhash) flush() {
	for j, lane := range s.lanes {
		for k := 0; k < 8; k++ {
			s.ones[8*j+k] += int32(lane >> (8 * k) & 0xff)
		}
	}
	s.lanes = [8]uint64{}
	s.pending = 0
}

func (s *simhash) sum() uint64 {
	if s.n == 0 {
		return 0
	}
	s.flush()
	var f uint64
	for i, ones := range s.ones {
		if 2*ones > s.total {
			f |= 1 << uint(i)
		}
	}
	return f
}

// Hamming is the number of bits in which two fingerprints differ: 0 for
// identical text, around 32 for unrelated text.
func Hamming(a, b uint64) int { return bits.OnesCount64(a ^ b) }
