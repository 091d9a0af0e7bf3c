package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/klauspost/compress/s2"
)

// How a body is stored: compressed when that pays.
//
// Bodies are most of the database (a held newsletter's body is four fifths
// of what the campaign takes), and mail compresses: a newsletter's HTML and
// text in quoted-printable, its per-recipient links and tokens included,
// shrinks to 55% with S2 (github.com/klauspost/compress/s2, an extension of
// Snappy), and to 43% with DEFLATE at its fastest level, but DEFLATE takes
// twelve times the instructions to compress it (about 600,000, more than
// the rest of the store's accept) and twenty times to read it back
// (docs/benchmarks.md, "Bodies stored compressed"). Since every accepted
// message pays it on the SMTP path, S2 it is. So a body is stored as
//
//	0x00 0x01 | CRC-32C of the body (4 bytes, big-endian) | S2 block
//
// (the block starts with the body's length as a uvarint) when that is at
// least an eighth shorter than the body, and as the body's own bytes
// otherwise (already compressed attachments, tiny messages). Releases
// before this one stored every body as its own bytes, and those read as
// before: a stored message starts with a header field (Kadenz puts its
// Received field on top of every message it accepts, and its own reports
// and forwards start with a header field too), never with a NUL byte, so
// the leading 0x00 tells the two apart. A body that does start with NUL (no
// mail does; a test might) is stored as 0x00 0x00 and its bytes, so the
// rule holds for everything written from now on.
//
// The CRC makes a damaged compressed body an error, never a different
// message: an S2 block has no checksum of its own, and a body that decodes
// to other bytes would be handed to the smarthost.
//
// Compression runs in the caller's goroutine (the SMTP session's), before
// the write transaction, so it never holds up the single writer; reading
// decompresses in the reader's. Large bodies are stored in parts
// (bodies.go), each part encoded the same way on its own, so neither side
// holds more than a part.

const (
	bodyRaw = 0x00 // 0x00 0x00: the rest is the body
	bodyS2  = 0x01 // 0x00 0x01: CRC, S2 block

	// minCompress: shorter bodies are stored as they are; a few hundred
	// bytes gain little.
	minCompress = 512
	// maxCompress: longer bodies are stored as they are. Nothing this
	// large is stored whole (the relay streams a message over
	// intake.spool_threshold into 1 MiB parts), and a damaged length in a
	// block must not make the reader allocate more than this.
	maxCompress = 64 << 20

	codecHeader = 2 + 4
)

var errBodyCodec = errors.New("stored body is damaged")

// encodeBody returns what to store for body: its compressed form when
// that saves at least an eighth, otherwise the body itself (escaped if
// it starts with NUL). The result may share body's bytes.
func encodeBody(body []byte) []byte { return encodeBodyInto(nil, body) }

// encodeBodyInto is encodeBody writing a compressed form into dst's
// memory when it is large enough (reused across a large body's parts).
func encodeBodyInto(dst, body []byte) []byte {
	if len(body) >= minCompress && len(body) <= maxCompress {
		need := codecHeader + s2.MaxEncodedLen(len(body))
		if cap(dst) < need {
			dst = make([]byte, 0, need)
		}
		block := s2.Encode(dst[codecHeader:need], body)
		if n := codecHeader + len(block); n <= len(body)-len(body)/8 {
			out := dst[:n]
			out[0], out[1] = 0, bodyS2
			binary.BigEndian.PutUint32(out[2:], crc32.Checksum(body, crcTable))
			return out
		}
	}
	if len(body) > 0 && body[0] == 0 {
		return append([]byte{0, bodyRaw}, body...)
	}
	return body
}

// bodyHeader parses a stored value's header: the body's size, whether
// it is compressed, and (when it is) its CRC and where the block starts.
func bodyHeader(v []byte) (size int64, compressed bool, crc uint32, off int, err error) {
	if len(v) == 0 || v[0] != 0 {
		return int64(len(v)), false, 0, 0, nil // stored as it is (and as every earlier release stored it)
	}
	if len(v) < 2 {
		return 0, false, 0, 0, fmt.Errorf("%w: a header of %d byte", errBodyCodec, len(v))
	}
	switch v[1] {
	case bodyRaw:
		// Only a body that starts with NUL is escaped: anything else
		// after the escape is a damaged header.
		if len(v) < 3 || v[2] != 0 {
			return 0, false, 0, 0, fmt.Errorf("%w: bad header", errBodyCodec)
		}
		return int64(len(v) - 2), false, 0, 2, nil
	case bodyS2:
		if len(v) < codecHeader+1 {
			return 0, false, 0, 0, fmt.Errorf("%w: bad header", errBodyCodec)
		}
		n, err := s2.DecodedLen(v[codecHeader:])
		if err != nil || n < minCompress || n > maxCompress { // never written outside these bounds
			return 0, false, 0, 0, fmt.Errorf("%w: bad length", errBodyCodec)
		}
		return int64(n), true, binary.BigEndian.Uint32(v[2:]), codecHeader, nil
	default:
		return 0, false, 0, 0, fmt.Errorf("%w: unknown encoding %d (written by a newer kadenz?)", errBodyCodec, v[1])
	}
}

// storedBodySize is the size of the body a stored value holds.
func storedBodySize(v []byte) (int64, error) {
	size, _, _, _, err := bodyHeader(v)
	return size, err
}

// decodeBody appends the body a stored value holds to dst and returns
// it; v may be bbolt's mapped memory (it is only read).
func decodeBody(dst, v []byte) ([]byte, error) {
	size, compressed, crc, off, err := bodyHeader(v)
	if err != nil {
		return dst, err
	}
	if !compressed {
		return append(dst, v[off:]...), nil
	}
	start := len(dst)
	dst = growBy(dst, int(size))
	out, err := s2.Decode(dst[start:], v[off:])
	if err != nil || len(out) != int(size) || &out[0] != &dst[start] {
		return dst[:start], fmt.Errorf("%w: %v", errBodyCodec, err)
	}
	if crc32.Checksum(out, crcTable) != crc {
		return dst[:start], fmt.Errorf("%w: checksum mismatch", errBodyCodec)
	}
	return dst, nil
}

// growBy extends b's length by n, reallocating once if needed.
func growBy(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}
