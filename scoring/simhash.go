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
type simhash struct {
	votes [64]int32
	n     int
}

func (s *simhash) add(h uint64, weight int32) {
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

func (s *simhash) sum() uint64 {
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

// Hamming is the number of bits in which two fingerprints differ: 0 for
// identical text, around 32 for unrelated text.
func Hamming(a, b uint64) int { return bits.OnesCount64(a ^ b) }
