// Package journal is an append-only log of framed, checksummed records made
// durable with one sequential write and one fdatasync for every group of
// appends that arrive together: the events API's way to answer a sender
// without waiting for a database commit (governor/feedback's EventJournal).
//
// The log is a directory of segment files named by the sequence number of
// their first record. A segment starts with an 8-byte magic; then frames of
//
//	length  uint32, big-endian: of seq and data
//	crc     uint32, big-endian: CRC-32C (Castagnoli) of seq and data
//	seq     uint64, big-endian: the record's sequence number, from 1 up
//	data    length-8 bytes
//
// Appends go to the newest segment only; a new one is started at each Open
// and when the current one outgrows SegmentSize, so an old segment is never
// written again and is deleted once its records are applied (Applied).
// Reading stops at the first frame of a segment that is short, fails its
// checksum or does not follow its predecessor: a crash in the middle of a
// write leaves such a tail, and its record was never reported durable.
//
// A segment grows in steps of zeros (Prealloc) written ahead of the
// records, and a length of 0 ends its records. An append then overwrites
// bytes the file already has, so its fdatasync flushes data only; an append
// that grows the file also commits the file system's journal (on ext4 with
// data=ordered that waits for other files' pending writes: the database's
// commit), which measured 11 ms for the median append where overwriting
// took a fraction of that (docs/benchmarks.md).
package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// magic starts every segment: the format's name and version.
var magic = []byte("KZEVJ01\n")

const (
	frameHeader = 8 // length and crc
	seqLen      = 8
	// maxRecord bounds a frame's length, so a damaged length is refused
	// instead of allocated; the events API's largest batch (4 MiB of JSON)
	// encodes to less.
	maxRecord = 64 << 20
	suffix    = ".journal"
)

// SegmentSize is the size past which appends move to a new segment.
var SegmentSize int64 = 8 << 20

// Prealloc is the step in which a segment is extended with zeros ahead of
// its records.
var Prealloc int64 = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one appended record.
type Record struct {
	Seq  uint64
	Data []byte
}

// Journal is an open log. Its methods are safe for concurrent use.
type Journal struct {
	dir string
	log *slog.Logger

	appends chan *appendReq
	stopped chan struct{}

	// closing guards closed and the send on appends (the writer never
	// takes it, so a sender blocked on a full channel holds up no one).
	closing sync.RWMutex
	closed  bool

	mu       sync.Mutex
	durable  []Record // appended (or replayed) and not yet Applied, in seq order
	segments []segment
	applied  uint64 // the highest seq Applied
	// written by the writer goroutine only
	file    *os.File
	size    int64 // where the next record goes
	zeroed  int64 // the file's size: zeros from size on
	nextSeq uint64
}

type segment struct {
	first uint64 // the seq of its first record (the next seq when it was started)
	path  string
}

type appendReq struct {
	data   []byte
	rotate bool // not a record: start a new segment (Rotate)
	seq    uint64
	done   chan error
}

// Open opens (creating if need be) the journal in dir. Records with a seq
// above applied are returned by Durable until Applied; older ones are
// skipped, and segments that hold nothing newer are deleted. A damaged tail
// is dropped with a log line: Open refuses only what it cannot read or
// write at all (the directory).
func Open(dir string, applied uint64, log *slog.Logger) (*Journal, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	j := &Journal{dir: dir, log: log, appends: make(chan *appendReq, 64), stopped: make(chan struct{})}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	last := applied
	for _, de := range names {
		name := de.Name()
		first, err := strconv.ParseUint(strings.TrimSuffix(name, suffix), 16, 64)
		if !strings.HasSuffix(name, suffix) || err != nil {
			continue
		}
		j.segments = append(j.segments, segment{first: first, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(j.segments, func(a, b segment) int { return cmpUint(a.first, b.first) })
	for _, s := range j.segments {
		recs, err := readSegment(s.path, log)
		if err != nil {
			log.Error("event journal: a segment cannot be read; its records are skipped", "file", s.path, "error", err)
			continue
		}
		for _, r := range recs {
			if r.Seq <= last {
				if r.Seq > applied {
					log.Error("event journal: a record out of order is skipped", "file", s.path, "seq", r.Seq)
				}
				continue
			}
			j.durable = append(j.durable, r)
			last = r.Seq
		}
	}
	j.nextSeq = last + 1
	j.applied = applied
	if err := j.startSegment(); err != nil {
		return nil, err
	}
	j.release(applied)
	go j.writer()
	return j, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readSegment reads a segment's whole records, stopping (with a log line)
// at the first one that is not whole.
func readSegment(path string, log *slog.Logger) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd := bufio.NewReaderSize(f, 1<<16)
	head := make([]byte, len(magic))
	if _, err := io.ReadFull(rd, head); err != nil || string(head) != string(magic) {
		if err == io.EOF {
			return nil, nil // started, never written
		}
		log.Warn("event journal: a segment without its header is skipped (a crash while it was started)", "file", path)
		return nil, nil
	}
	var recs []Record
	off := int64(len(magic))
	var prev uint64
	var hdr [frameHeader]byte
	for {
		if _, err := io.ReadFull(rd, hdr[:]); err != nil {
			if err != io.EOF {
				log.Warn("event journal: a torn record at the end is dropped", "file", path, "offset", off, "error", "short header")
			}
			return recs, nil
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		sum := binary.BigEndian.Uint32(hdr[4:8])
		if n == 0 && sum == 0 {
			return recs, nil // the zeros ahead of the records
		}
		if n < seqLen || n > maxRecord {
			log.Warn("event journal: a torn record at the end is dropped", "file", path, "offset", off, "error", "bad length")
			return recs, nil
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(rd, body); err != nil {
			log.Warn("event journal: a torn record at the end is dropped", "file", path, "offset", off, "error", "short record")
			return recs, nil
		}
		if crc32.Checksum(body, castagnoli) != sum {
			log.Warn("event journal: a torn record at the end is dropped", "file", path, "offset", off, "error", "checksum")
			return recs, nil
		}
		seq := binary.BigEndian.Uint64(body)
		if prev != 0 && seq != prev+1 {
			log.Warn("event journal: a record that does not follow its predecessor ends the segment", "file", path, "offset", off, "seq", seq)
			return recs, nil
		}
		prev = seq
		recs = append(recs, Record{Seq: seq, Data: body[seqLen:]})
		off += frameHeader + int64(n)
	}
}

// startSegment starts a new segment for appends at nextSeq, durable with
// its directory entry before anything is appended to it.
func (j *Journal) startSegment() error {
	path := filepath.Join(j.dir, fmt.Sprintf("%016x%s", j.nextSeq, suffix))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(magic); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := syncDir(j.dir); err != nil {
		f.Close()
		return err
	}
	if j.file != nil {
		j.file.Close()
	}
	j.mu.Lock()
	// A segment of the same first seq (an earlier start to which nothing
	// was appended) was just replaced.
	j.segments = slices.DeleteFunc(j.segments, func(s segment) bool { return s.path == path })
	j.segments = append(j.segments, segment{first: j.nextSeq, path: path})
	j.mu.Unlock()
	j.file, j.size, j.zeroed = f, int64(len(magic)), int64(len(magic))
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("event journal closed")

// Append makes data a record and returns its seq once it is durable. Appends
// that arrive while another group is being written go together in the next
// write and fdatasync.
func (j *Journal) Append(data []byte) (uint64, error) {
	if len(data)+seqLen > maxRecord {
		return 0, fmt.Errorf("event journal: record of %d bytes over the %d limit", len(data), maxRecord)
	}
	r := &appendReq{data: data, done: make(chan error, 1)}
	err := j.send(r)
	return r.seq, err
}

// Rotate moves appends to a new segment, so that the one appended to so
// far is deleted once its records are applied (at once if they are): what
// an erasure needs, so that no applied record stays on disk.
func (j *Journal) Rotate() error {
	return j.send(&appendReq{rotate: true, done: make(chan error, 1)})
}

func (j *Journal) send(r *appendReq) error {
	j.closing.RLock()
	if j.closed {
		j.closing.RUnlock()
		return ErrClosed
	}
	j.appends <- r // under closing, so Close cannot close the channel meanwhile
	j.closing.RUnlock()
	return <-r.done
}

// writer writes groups of appends: all that wait, in one write and one
// fdatasync.
func (j *Journal) writer() {
	defer close(j.stopped)
	var buf []byte
	for r := range j.appends {
		group := []*appendReq{r}
	gather:
		for len(buf) < 4<<20 {
			select {
			case r, ok := <-j.appends:
				if !ok {
					break gather
				}
				group = append(group, r)
			default:
				break gather
			}
		}
		// Rotations go first, alone: the records of the group then go
		// to the new segment.
		var records []*appendReq
		for _, r := range group {
			if !r.rotate {
				records = append(records, r)
				continue
			}
			var err error
			if j.size > int64(len(magic)) {
				err = j.startSegment()
			}
			if err == nil {
				j.mu.Lock()
				applied := j.applied
				j.mu.Unlock()
				j.release(applied)
			}
			r.done <- err
		}
		if len(records) == 0 {
			continue
		}
		err := j.writeGroup(records, &buf)
		for _, r := range records {
			r.done <- err
		}
	}
	if j.file != nil {
		j.file.Close()
	}
}

func (j *Journal) writeGroup(group []*appendReq, buf *[]byte) error {
	if j.size > SegmentSize {
		if err := j.startSegment(); err != nil {
			return err
		}
	}
	b := (*buf)[:0]
	seq := j.nextSeq
	for _, r := range group {
		start := len(b)
		b = binary.BigEndian.AppendUint32(b, uint32(seqLen+len(r.data)))
		b = append(b, 0, 0, 0, 0)
		b = binary.BigEndian.AppendUint64(b, seq)
		b = append(b, r.data...)
		binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+frameHeader:], castagnoli))
		r.seq = seq
		seq++
	}
	*buf = b
	if end := j.size + int64(len(b)); end > j.zeroed {
		// Zeros ahead, so that the appends after this one overwrite.
		grow := (end - j.zeroed + Prealloc - 1) / Prealloc * Prealloc
		if _, err := j.file.WriteAt(make([]byte, grow), j.zeroed); err != nil {
			return j.undo(err)
		}
		j.zeroed += grow
	}
	if _, err := j.file.WriteAt(b, j.size); err != nil {
		return j.undo(err)
	}
	if err := fdatasync(j.file); err != nil {
		return j.undo(err)
	}
	j.size += int64(len(b))
	j.nextSeq = seq
	j.mu.Lock()
	for _, r := range group {
		j.durable = append(j.durable, Record{Seq: r.seq, Data: r.data})
	}
	j.mu.Unlock()
	return nil
}

// undo cuts a failed write off, so the next one follows the last whole
// record; if even that fails, appends continue in a new segment.
func (j *Journal) undo(err error) error {
	j.zeroed = j.size
	if terr := j.file.Truncate(j.size); terr != nil {
		if serr := j.startSegment(); serr != nil {
			j.log.Error("event journal: cannot start a new segment after a failed write", "error", serr)
		}
	}
	return fmt.Errorf("event journal: %w", err)
}

// Durable returns the records made durable (or replayed at Open) and not
// yet Applied, in seq order. The slice is the caller's; the records' data
// must not be changed.
func (j *Journal) Durable() []Record {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.durable)
}

// Pending is how many records Durable would return.
func (j *Journal) Pending() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.durable)
}

// Applied says that every record up to seq is in the database: Durable no
// longer returns them, and segments holding nothing newer are deleted.
func (j *Journal) Applied(seq uint64) {
	j.mu.Lock()
	i := 0
	for i < len(j.durable) && j.durable[i].Seq <= seq {
		i++
	}
	j.durable = slices.Delete(j.durable, 0, i)
	j.applied = max(j.applied, seq)
	j.mu.Unlock()
	j.release(seq)
}

// release deletes the segments, but the one appended to, whose records all
// have a seq up to applied.
func (j *Journal) release(applied uint64) {
	j.mu.Lock()
	var gone []string
	keep := j.segments[:0]
	for i, s := range j.segments {
		if i+1 < len(j.segments) && j.segments[i+1].first-1 <= applied {
			gone = append(gone, s.path)
			continue
		}
		keep = append(keep, s)
	}
	j.segments = keep
	j.mu.Unlock()
	for _, p := range gone {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			j.log.Warn("event journal: an applied segment could not be removed", "file", p, "error", err)
		}
	}
}

// Close stops appends, waits for those under way and closes the file.
// Records not Applied stay in the journal for the next Open.
func (j *Journal) Close() error {
	j.closing.Lock()
	if j.closed {
		j.closing.Unlock()
		return nil
	}
	j.closed = true
	close(j.appends)
	j.closing.Unlock()
	<-j.stopped
	return nil
}

// HasRecords reports whether the journal in dir holds any record, without
// changing it: after a clean stop (everything applied, the journal sealed)
// it holds none, so records mean an unclean stop whose events the next
// start applies. A missing directory holds none.
func HasRecords(dir string) (bool, error) {
	names, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	for _, de := range names {
		if !strings.HasSuffix(de.Name(), suffix) {
			continue
		}
		recs, err := readSegment(filepath.Join(dir, de.Name()), slog.New(slog.DiscardHandler))
		if err != nil {
			return false, err
		}
		if len(recs) > 0 {
			return true, nil
		}
	}
	return false, nil
}
