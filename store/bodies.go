package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/klauspost/compress/s2"
	bolt "go.etcd.io/bbolt"
)

// Large bodies, stored in parts.
//
// A body written in one piece costs, while its transaction commits, the
// caller's copy plus bbolt's dirty pages of the same size; and the group
// committer puts every waiting writer's body in one transaction, so twenty
// concurrent 24 MB messages made one commit of half a gigabyte. AcceptStream
// instead writes a body longer than BodyPartSize as numbered parts, one part
// per write (each in a group commit like any other write, durable before the
// next), and only then the message, its envelopes and the body's manifest
// in one last transaction. Until that last commit the parts belong to no
// message: a crash in between leaves parts without a manifest, which Open
// deletes (dropOrphanParts). So a body is either whole and listed or not
// there at all, and memory per message is about two parts, whatever its
// size.
//
// The manifest records the size and a CRC-32C of each part; a reader checks
// both, so a part lost or damaged in the file is an error, never a
// truncated or altered message handed to the smarthost. Each part is
// stored compressed when that pays, on its own (bodycodec.go), which the
// manifest says (enc); parts written before that are the body's bytes.
//
// Everything stays in the one bbolt file: backup, check, recover and the
// free-page scrub after erasure need nothing new. Only recover's scavenging
// of free pages does not reassemble parts.

// BodyPartSize is the size of the parts a large body is stored in.
const BodyPartSize = 1 << 20

var (
	// bucketBodyParts: message ID -> bodyManifest (JSON), for bodies
	// stored in parts (bucketBodies holds the others).
	bucketBodyParts = []byte("body_parts")
	// bucketBodyChunks: message ID + 0x00 + 4-byte big-endian part number
	// -> a bucket holding that part's bytes under partValueKey.
	//
	// A bucket per part, not a value: bbolt keeps at least two values in a
	// leaf, so writing part n as a value rewrote part n-1 beside it (read
	// back from the file, copied, written again) in the same commit, two
	// to three times the bytes. A part's own bucket has its own leaf, and
	// the leaf the parts share holds only their small bucket headers.
	bucketBodyChunks = []byte("body_chunks")
	partValueKey     = []byte("p")
)

func putPart(tx *bolt.Tx, id string, part int, data []byte) error {
	b, err := tx.Bucket(bucketBodyChunks).CreateBucketIfNotExists(partKey(id, part)) // a rerun batch finds it
	if err != nil {
		return err
	}
	return b.Put(partValueKey, data)
}

// getPart returns a part's bytes (valid only in tx), nil if it is missing.
func getPart(tx *bolt.Tx, id string, part int) []byte {
	b := tx.Bucket(bucketBodyChunks).Bucket(partKey(id, part))
	if b == nil {
		return nil
	}
	return b.Get(partValueKey)
}

// deletePartKeys deletes the parts whose keys match says to delete, going
// from the first key at or after from (nil: the first key) until match
// says to stop, and returns how many it deleted.
func deletePartKeys(tx *bolt.Tx, from []byte, match func(k []byte) (del, stop bool)) (int, error) {
	chunks := tx.Bucket(bucketBodyChunks)
	var doomed [][]byte
	c := chunks.Cursor()
	var k []byte
	if from == nil {
		k, _ = c.First()
	} else {
		k, _ = c.Seek(from)
	}
	for ; k != nil; k, _ = c.Next() {
		ok, stop := match(k)
		if stop {
			break
		}
		if ok {
			doomed = append(doomed, bytes.Clone(k))
		}
	}
	for _, k := range doomed {
		if err := chunks.DeleteBucket(k); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return 0, err
		}
	}
	return len(doomed), nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// bodyManifest lists a parted body's parts.
type bodyManifest struct {
	Size int64    `json:"size"`
	CRCs []uint32 `json:"crc32c"` // one per part (of its bytes as received), in order
	// Enc is partsEncoded when each part is stored in the body codec's
	// form (bodycodec.go); 0 (absent) when the parts are the body's bytes.
	// A part of an older manifest may start with a NUL byte (it is cut
	// from the middle of a message), so the codec's rule cannot tell.
	Enc int `json:"enc,omitempty"`
}

const partsEncoded = 1

// partSize is the size of the body's bytes a stored part holds.
func (m bodyManifest) partSize(v []byte) (int64, error) {
	if m.Enc == partsEncoded {
		return storedBodySize(v)
	}
	return int64(len(v)), nil
}

func partKey(messageID string, part int) []byte {
	k := make([]byte, len(messageID)+5)
	copy(k, messageID)
	binary.BigEndian.PutUint32(k[len(messageID)+1:], uint32(part))
	return k
}

func partPrefix(messageID string) []byte { return append([]byte(messageID), 0) }

// AcceptStream is AcceptWith for a body read from a reader: one that fits
// in BodyPartSize is stored as AcceptWith stores it; a longer one in parts
// (see above), so that neither the caller nor the store holds it whole.
// The reader is read to its end before the message is stored; an error
// from it stores nothing.
func (db *DB) AcceptStream(msg Message, body io.Reader, rcpts []string, now time.Time, prepare func(i int, e *Envelope)) ([]Envelope, error) {
	if len(rcpts) == 0 {
		return nil, errors.New("store: message without recipients")
	}
	if prepare == nil {
		prepare = func(int, *Envelope) {}
	}
	buf := make([]byte, BodyPartSize)
	n, err := io.ReadFull(body, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return db.AcceptWith(msg, buf[:n], rcpts, now, prepare)
	}
	if err != nil {
		return nil, fmt.Errorf("store: reading body: %w", err)
	}
	id := msg.ID
	man := bodyManifest{Enc: partsEncoded}
	if err = db.writeParts(id, buf, body, &man); err == nil {
		var envs []Envelope
		envs, err = db.acceptTx(msg, rcpts, now, prepare, func(tx *bolt.Tx) error {
			v, err := json.Marshal(man)
			if err != nil {
				return err
			}
			return tx.Bucket(bucketBodyParts).Put([]byte(id), v)
		})
		if err == nil {
			return envs, nil
		}
	}
	if len(man.CRCs) == 0 {
		return nil, err // no part written: the ID was taken, the parts are another's
	}
	// Nothing refers to the parts written: take them back now rather than
	// at the next start.
	if derr := db.update(func(tx *bolt.Tx) error { return deleteParts(tx, id) }); derr != nil {
		err = errors.Join(err, derr)
	}
	return nil, err
}

// writeParts writes first, then the rest of body, as parts of message id,
// one durable write each, reusing buf (bbolt copies a value by the time
// its commit returns).
func (db *DB) writeParts(id string, first []byte, body io.Reader, man *bodyManifest) error {
	chunk := first
	enc := make([]byte, 0, codecHeader+s2.MaxEncodedLen(BodyPartSize)) // a compressed part's memory, reused likewise
	for part := 0; ; part++ {
		stored := encodeBodyInto(enc, chunk) // before the transaction, as AcceptWith does
		err := db.update(func(tx *bolt.Tx) error {
			if part == 0 {
				if tx.Bucket(bucketMessages).Get([]byte(id)) != nil || tx.Bucket(bucketBodyParts).Get([]byte(id)) != nil {
					return fmt.Errorf("store: message ID %s already exists", id)
				}
			}
			return putPart(tx, id, part, stored)
		})
		if err != nil {
			return err
		}
		man.Size += int64(len(chunk))
		man.CRCs = append(man.CRCs, crc32.Checksum(chunk, crcTable))
		n, err := io.ReadFull(body, first[:cap(first)])
		switch {
		case n == 0 && errors.Is(err, io.EOF):
			return nil
		case err != nil && !errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("store: reading body: %w", err)
		}
		chunk = first[:n]
	}
}

// deleteParts deletes every part of a message's body and its manifest.
func deleteParts(tx *bolt.Tx, id string) error {
	prefix := partPrefix(id)
	if _, err := deletePartKeys(tx, prefix, func(k []byte) (bool, bool) {
		in := bytes.HasPrefix(k, prefix)
		return in, !in
	}); err != nil {
		return err
	}
	return tx.Bucket(bucketBodyParts).Delete([]byte(id))
}

// hasBody reports whether a message's body is stored, in one piece or in
// parts (all of them present, of the size the manifest says).
func hasBody(tx *bolt.Tx, id string) bool {
	if tx.Bucket(bucketBodies).Get([]byte(id)) != nil {
		return true
	}
	_, err := manifestOf(tx, id)
	return err == nil
}

// deleteBody deletes a message's body however it is stored, and reports
// whether there was one.
func deleteBody(tx *bolt.Tx, id string) (bool, error) {
	had := tx.Bucket(bucketBodies).Get([]byte(id)) != nil || tx.Bucket(bucketBodyParts).Get([]byte(id)) != nil
	if err := tx.Bucket(bucketBodies).Delete([]byte(id)); err != nil {
		return false, err
	}
	return had, deleteParts(tx, id)
}

// manifestOf reads a parted body's manifest and checks that every part it
// lists is there with a plausible size.
func manifestOf(tx *bolt.Tx, id string) (bodyManifest, error) {
	var man bodyManifest
	v := tx.Bucket(bucketBodyParts).Get([]byte(id))
	if v == nil {
		return man, fmt.Errorf("body of message %s: %w", id, ErrNotFound)
	}
	if err := json.Unmarshal(v, &man); err != nil {
		return man, fmt.Errorf("body of message %s: manifest: %w", id, err)
	}
	var total int64
	for i := range man.CRCs {
		p := getPart(tx, id, i)
		if p == nil {
			return man, fmt.Errorf("body of message %s: part %d of %d is missing", id, i+1, len(man.CRCs))
		}
		n, err := man.partSize(p)
		if err != nil {
			return man, fmt.Errorf("body of message %s: part %d of %d: %w", id, i+1, len(man.CRCs), err)
		}
		total += n
	}
	if total != man.Size {
		return man, fmt.Errorf("body of message %s: parts hold %d bytes, the manifest says %d", id, total, man.Size)
	}
	return man, nil
}

// OpenBody streams a message's body as stored: from memory when it was
// stored in one piece, part by part (each read in a short transaction of
// its own, and checked) when in parts. The caller closes it.
func (db *DB) OpenBody(messageID string) (io.ReadCloser, error) {
	var whole []byte
	var man bodyManifest
	err := db.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBodies).Get([]byte(messageID)); v != nil {
			var err error
			if whole, err = decodeBody([]byte{}, v); err != nil { // a copy (non-nil even if empty): v is valid only in tx
				return fmt.Errorf("body of message %s: %w", messageID, err)
			}
			return nil
		}
		var err error
		man, err = manifestOf(tx, messageID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if whole != nil {
		return io.NopCloser(bytes.NewReader(whole)), nil
	}
	return newPartReader(db, messageID, man), nil
}

func newPartReader(db *DB, id string, man bodyManifest) *partReader {
	return &partReader{db: db, id: id, man: man}
}

// BodySize is the length of a message's stored body.
func (db *DB) BodySize(messageID string) (int64, error) {
	var size int64
	err := db.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBodies).Get([]byte(messageID)); v != nil {
			var err error
			size, err = storedBodySize(v)
			return err
		}
		man, err := manifestOf(tx, messageID)
		size = man.Size
		return err
	})
	return size, err
}

// partReader reads a parted body, one part at a time.
type partReader struct {
	db   *DB
	id   string
	man  bodyManifest
	next int    // the next part to read
	buf  []byte // the unread rest of the current part
	part []byte // the current part, its buffer reused for the next
	read int64
	err  error
}

func (r *partReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 && r.err == nil {
		r.err = r.fill()
	}
	if len(r.buf) == 0 {
		return 0, r.err
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *partReader) fill() error {
	if r.next == len(r.man.CRCs) {
		if r.read != r.man.Size {
			return fmt.Errorf("body of message %s: read %d bytes, the manifest says %d", r.id, r.read, r.man.Size)
		}
		return io.EOF
	}
	part := r.part[:0]
	err := r.db.view(func(tx *bolt.Tx) error {
		v := getPart(tx, r.id, r.next)
		if v == nil {
			return fmt.Errorf("body of message %s: part %d of %d is missing: %w", r.id, r.next+1, len(r.man.CRCs), ErrNotFound)
		}
		var err error
		if r.man.Enc == partsEncoded {
			part, err = decodeBody(part, v) // a copy: v is valid only inside the transaction
		} else {
			part = append(part, v...)
		}
		releaseMapped(r.db.bolt, tx, v)
		if err != nil {
			return fmt.Errorf("body of message %s: part %d of %d: %w", r.id, r.next+1, len(r.man.CRCs), err)
		}
		return nil
	})
	r.part = part
	if err != nil {
		return err
	}
	if crc32.Checksum(part, crcTable) != r.man.CRCs[r.next] {
		return fmt.Errorf("body of message %s: part %d of %d is damaged (checksum mismatch)", r.id, r.next+1, len(r.man.CRCs))
	}
	r.next++
	r.read += int64(len(part))
	r.buf = part
	return nil
}

func (r *partReader) Close() error {
	r.buf, r.err = nil, errors.New("store: body reader closed")
	return nil
}

// dropOrphanParts deletes parts that no manifest lists: those of a
// message whose accept was cut off (a crash, a refused write) before its
// last commit. Only Open calls it, before anyone writes.
func dropOrphanParts(tx *bolt.Tx) (int, error) {
	manifests := tx.Bucket(bucketBodyParts)
	return deletePartKeys(tx, nil, func(k []byte) (bool, bool) {
		i := bytes.IndexByte(k, 0)
		return i < 0 || manifests.Get(k[:i]) == nil, false
	})
}
