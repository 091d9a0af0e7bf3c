package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
)

// journal is the durable floor's store: a log in segments of segmentSize
// bytes, written by one goroutine that takes every record waiting, writes
// them with one write and, if any sender waits for its record, one
// fdatasync. A message is stored when store returns nil; delivered marks
// ride along unsynced (a crash before the next sync forgets a delivery,
// and the message would be sent again: the usual at-least-once).
//
// Each segment is filled with zeros and synced before it is used, as
// databases prepare their write-ahead log: overwriting blocks a file
// already has lets fdatasync skip the file's size and extents, which an
// append must sync too (on this project's ext4 machine, 73-77 µs of CPU a
// sync against 102-134 appending; docs/benchmarks.md). The next segment
// is prepared in the background while the current one fills. A zero byte
// where a record's kind would be marks a segment's end.
type journal struct {
	dir     string
	f       *os.File // the segment being written
	off     int64    // where its next record goes
	spare   chan spareSegment
	number  int // the segment f is
	reqs    chan journalRequest
	seq     atomic.Uint64
	stopped chan struct{}
}

type spareSegment struct {
	f   *os.File
	err error
}

type journalRequest struct {
	rec  []byte
	done chan error // nil for a mark nobody waits on
}

// Record kinds.
const (
	recMessage   = 'M'
	recDelivered = 'D'
)

// segmentSize is the size of each prepared segment. A group larger than
// what is left moves to the next segment; one larger than a whole segment
// (a group of very large messages) grows the file past it. A variable so
// that the test can make segments small.
var segmentSize int64 = 64 << 20

func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	f, err := prepareSegment(dir, 0)
	if err != nil {
		return nil, err
	}
	j := &journal{dir: dir, f: f, spare: make(chan spareSegment, 1), reqs: make(chan journalRequest, 4096),
		stopped: make(chan struct{})}
	j.prepareNext()
	go j.run()
	return j, nil
}

func segmentPath(dir string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("floor-%06d.log", n))
}

// prepareSegment creates segment n full of zeros, synced, and its name
// synced into the directory.
func prepareSegment(dir string, n int) (*os.File, error) {
	f, err := os.OpenFile(segmentPath(dir, n), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	zeros := make([]byte, min(1<<20, segmentSize))
	for off := int64(0); off < segmentSize && err == nil; off += int64(len(zeros)) {
		_, err = f.WriteAt(zeros[:min(int64(len(zeros)), segmentSize-off)], off)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// prepareNext starts preparing the segment after the current one.
func (j *journal) prepareNext() {
	go func(n int) {
		f, err := prepareSegment(j.dir, n)
		j.spare <- spareSegment{f, err}
	}(j.number + 1)
}

// close writes what is queued, syncs and closes the segments; nothing may
// be stored or marked after it.
func (j *journal) close() error {
	close(j.reqs)
	<-j.stopped
	err := datasync(j.f)
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	if s := <-j.spare; s.f != nil {
		s.f.Close()
	}
	return err
}

// store appends m and returns once it is on disk; it numbers m for its mark.
// The record is built in one buffer, header first, so the body is copied
// once.
func (j *journal) store(m *message) error {
	m.seq = j.seq.Add(1)
	rec := make([]byte, headerSize, headerSize+len(m.from)+len(m.body)+64)
	rec = binary.AppendUvarint(rec, uint64(len(m.from)))
	rec = append(rec, m.from...)
	rec = binary.AppendUvarint(rec, uint64(len(m.to)))
	for _, to := range m.to {
		rec = binary.AppendUvarint(rec, uint64(len(to)))
		rec = append(rec, to...)
	}
	rec = append(rec, m.body...)
	putHeader(rec, recMessage, m.seq)
	done := make(chan error, 1)
	j.reqs <- journalRequest{rec: rec, done: done}
	return <-done
}

// delivered appends m's mark without waiting for it.
func (j *journal) delivered(m message) {
	rec := make([]byte, headerSize)
	putHeader(rec, recDelivered, m.seq)
	j.reqs <- journalRequest{rec: rec}
}

// A record is a header (kind, sequence number, payload length: 13 bytes,
// big-endian) and its payload.
const headerSize = 1 + 8 + 4

// putHeader fills the header of rec, whose payload follows it.
func putHeader(rec []byte, kind byte, seq uint64) {
	rec[0] = kind
	binary.BigEndian.PutUint64(rec[1:9], seq)
	binary.BigEndian.PutUint32(rec[9:headerSize], uint32(len(rec)-headerSize))
}

func (j *journal) run() {
	defer close(j.stopped)
	var buf []byte
	var waiting []chan error
	for first := range j.reqs {
		buf, waiting = buf[:0], waiting[:0]
		for r, more := first, true; more; {
			buf = append(buf, r.rec...)
			if r.done != nil {
				waiting = append(waiting, r.done)
			}
			select {
			case r, more = <-j.reqs:
			default:
				more = false
			}
		}
		err := j.write(buf)
		if err == nil && len(waiting) > 0 {
			err = datasync(j.f)
		}
		if err != nil {
			err = fmt.Errorf("floor: journal: %w", err)
		}
		for _, done := range waiting {
			done <- err
		}
	}
}

// write puts buf at the end of the log, in the next segment if it does not
// fit in this one.
func (j *journal) write(buf []byte) error {
	if j.off > 0 && j.off+int64(len(buf)) > segmentSize {
		// What is left of this segment stays zero: its end. Its records
		// are synced already, but for unsynced marks: sync them too.
		if err := datasync(j.f); err != nil {
			return err
		}
		s := <-j.spare
		if s.err != nil {
			j.spare <- s // the next write tries again, and fails the same way
			return s.err
		}
		j.f.Close()
		j.f, j.off = s.f, 0
		j.number++
		j.prepareNext()
	}
	n, err := j.f.WriteAt(buf, j.off)
	j.off += int64(n)
	return err
}
