package admin

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// What forget erases outside the database's records: the outbox files of
// the recipient's mail, and the freed pages of the database file (see
// store.ScrubFreePages).

// outboxDir is where delivery.Outbox writes (relay.go's transport).
func (a *Server) outboxDir() string { return filepath.Join(a.config().DataDir, "outbox") }

// eraseOutbox removes the outbox files of the erased envelopes (named
// <envelope ID>.eml by delivery.Outbox) and any other file delivered to
// addr, which the outbox records on its second line as Delivered-To.
func (a *Server) eraseOutbox(addr string, envelopeIDs []string) (int, error) {
	dir := a.outboxDir()
	n := 0
	var errs []error
	for _, id := range envelopeIDs {
		err := os.Remove(filepath.Join(dir, id+".eml"))
		switch {
		case err == nil:
			n++
		case !errors.Is(err, fs.ErrNotExist):
			errs = append(errs, err)
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		return n, err
	}
	for _, path := range files {
		if deliveredTo(path, addr) {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

// deliveredTo reads the envelope lines the outbox writes on top of each
// file (Return-Path, Delivered-To) and reports whether it went to addr.
func deliveredTo(path, addr string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 0; i < 2 && sc.Scan(); i++ {
		if to, ok := strings.CutPrefix(sc.Text(), "Delivered-To: "); ok {
			return strings.EqualFold(strings.TrimSpace(to), addr)
		}
	}
	return false
}
