package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
)

// journal is the durable floor's store: one append-only file, written by one
// goroutine that takes every record waiting, writes them with one write and,
// if any sender waits for its record, one fdatasync. A message is
// stored when store returns nil; delivered marks ride along unsynced (a
// crash before the next sync forgets a delivery, and the message would be
// sent again: the usual at-least-once).
type journal struct {
	f       *os.File
	reqs    chan journalRequest
	seq     atomic.Uint64
	stopped chan struct{}
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

func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "floor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	j := &journal{f: f, reqs: make(chan journalRequest, 4096), stopped: make(chan struct{})}
	go j.run()
	return j, nil
}

// close writes what is queued, syncs and closes the file; nothing may be
// stored or marked after it.
func (j *journal) close() error {
	close(j.reqs)
	<-j.stopped
	if err := datasync(j.f); err != nil {
		j.f.Close()
		return err
	}
	return j.f.Close()
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
		_, err := j.f.Write(buf)
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
