package main

import (
	"encoding/binary"
	"errors"
	"sync"

	"kadenz/governor/feedback/journal"
)

// durable is the durable floor's store: each message a record of Kadenz's
// own write-ahead journal (governor/feedback/journal, the events API's),
// which answers once the record is fdatasynced and writes every group of
// appends that arrive together with one write and one fdatasync, into
// segments extended with zeros ahead of the records so that a sync flushes
// data only. Nothing else is written: no index, no queue state. What is
// delivered (or given up) is only counted in memory; the journal is told
// the highest number below which every message is finished, so that it
// drops those records and deletes the segments that hold only them. A
// restart would send again what its segments still hold: at least once.
type durable struct {
	j *journal.Journal

	mu       sync.Mutex
	low      uint64          // every message numbered up to low is finished
	finished map[uint64]bool // finished above low
}

func openDurable(dir string) (*durable, error) {
	j, err := journal.Open(dir, 0, nil)
	if err != nil {
		return nil, err
	}
	if len(j.Durable()) > 0 {
		j.Close()
		return nil, errors.New("floor: the -durable directory holds messages of an earlier run; start with an empty one")
	}
	return &durable{j: j, finished: map[uint64]bool{}}, nil
}

// store returns once m is on disk, and numbers it.
func (d *durable) store(m *message) error {
	seq, err := d.j.Append(encodeMessage(*m))
	m.seq = seq
	return err
}

// finish counts m as done with; the journal lets go of every record below
// the first message not yet finished.
func (d *durable) finish(m message) {
	d.mu.Lock()
	d.finished[m.seq] = true
	advanced := false
	for d.finished[d.low+1] {
		delete(d.finished, d.low+1)
		d.low++
		advanced = true
	}
	low := d.low
	d.mu.Unlock()
	if advanced {
		d.j.Applied(low)
	}
}

func (d *durable) close() error { return d.j.Close() }

// encodeMessage is the sender, the recipients and the body, each string
// after its length.
func encodeMessage(m message) []byte {
	b := make([]byte, 0, 16+len(m.from)+len(m.body)+32*len(m.to))
	b = binary.AppendUvarint(b, uint64(len(m.from)))
	b = append(b, m.from...)
	b = binary.AppendUvarint(b, uint64(len(m.to)))
	for _, to := range m.to {
		b = binary.AppendUvarint(b, uint64(len(to)))
		b = append(b, to...)
	}
	return append(b, m.body...)
}

// decodeMessage reverses encodeMessage.
func decodeMessage(b []byte) (message, error) {
	bad := errors.New("floor: a damaged message record")
	next := func() (string, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", bad
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, nil
	}
	var m message
	var err error
	if m.from, err = next(); err != nil {
		return m, err
	}
	count, k := binary.Uvarint(b)
	if k <= 0 || count > uint64(len(b)) {
		return m, bad
	}
	b = b[k:]
	for range count {
		to, err := next()
		if err != nil {
			return m, err
		}
		m.to = append(m.to, to)
	}
	m.body = b
	return m, nil
}
