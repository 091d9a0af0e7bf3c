package intake

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Spooling large messages.
//
// A message is read into memory only up to SpoolThreshold bytes; a longer
// one goes to a file in SpoolDir as it arrives (line endings normalised on
// the way, as for one in memory), and Accept gets its first
// SpoolThreshold bytes plus the file. So a session holds a bounded amount
// of memory whatever the message's size, and the store can take the body
// from the file in parts.
//
// The file is scratch, not the durable copy: the 250 waits, as always, for
// Accept, which stores the message durably before returning. So it is not
// fsynced, it is removed when Data returns on every path (accepted,
// refused, failed), and whatever a crash leaves in SpoolDir was never
// acknowledged: New deletes it.
//
// The header must end within the first SpoolThreshold bytes: the relay
// reads classification, trust and X-Kadenz-* fields from there. A message
// whose header is longer is refused (552 5.3.4) rather than half-read.

var (
	errSpool          = errors.New("spool file")
	errHeaderTooLarge = errors.New("header longer than the spool threshold")
)

// clearSpool creates dir if needed and deletes what a previous run left
// in it.
func clearSpool(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("intake: spool directory: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("intake: spool directory: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("intake: clearing the spool directory: %w", err)
		}
	}
	return nil
}

// spoolWriter marks the file's own errors (a full disk, say) as errSpool,
// apart from the client's and the normaliser's.
type spoolWriter struct{ f *os.File }

func (w spoolWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = fmt.Errorf("%w: %w", errSpool, err)
	}
	return n, err
}

// spool writes first, then the rest of the message from rest, normalised,
// to a new file in SpoolDir. It returns the file (the caller closes and
// removes it, also on error), the message's length and its first limit
// bytes.
func (s *Server) spool(first []byte, rest io.Reader, limit int) (f *os.File, size int64, prefix []byte, err error) {
	f, err = os.CreateTemp(s.opts.SpoolDir, "data-*")
	if err != nil {
		return nil, 0, nil, fmt.Errorf("%w: %w", errSpool, err)
	}
	bw := bufio.NewWriterSize(spoolWriter{f}, 64<<10)
	norm := &lineNormalizer{w: bw}
	for len(first) > 0 && err == nil { // in pieces, so norm's buffer stays small
		n := min(len(first), 32<<10)
		_, err = norm.Write(first[:n])
		first = first[n:]
	}
	if err == nil {
		_, err = io.CopyBuffer(norm, rest, make([]byte, 32<<10))
	}
	if err == nil {
		err = norm.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return f, 0, nil, err
	}
	if size, err = f.Seek(0, io.SeekCurrent); err != nil {
		return f, 0, nil, fmt.Errorf("%w: %w", errSpool, err)
	}
	prefix = make([]byte, min(int64(limit), size))
	if _, err := f.ReadAt(prefix, 0); err != nil {
		return f, 0, nil, fmt.Errorf("%w: %w", errSpool, err)
	}
	// (A message that fits in the prefix, as one can whose client declared
	// more than it sent, is whole there, with or without an empty line.)
	if size > int64(limit) && !bytes.HasPrefix(prefix, []byte("\r\n")) && !bytes.Contains(prefix, []byte("\r\n\r\n")) {
		return f, 0, nil, fmt.Errorf("%w (%d bytes)", errHeaderTooLarge, limit)
	}
	return f, size, prefix, nil
}
