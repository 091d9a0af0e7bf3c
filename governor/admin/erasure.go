package governor

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"kadenz/store"
)

// What forget erases outside the database's records: the outbox files of
// the recipient's mail, and the freed pages of the database file (see
// store.ScrubFreePages).

// ForgetResult is the answer of POST /v1/forget.
type ForgetResult struct {
	Address string `json:"address"`
	// Erased is what the store removed or pseudonymised.
	Erased store.ForgetReport `json:"erased"`
	// OutboxFiles counts .eml files of the recipient's mail removed from
	// the outbox (delivery without an upstream).
	OutboxFiles int `json:"outbox_files"`
	// ScrubbedPages counts pages of the database file overwritten because
	// they were free but still held deleted data.
	ScrubbedPages int `json:"scrubbed_pages"`
	// Incomplete says what could not be finished; run forget again.
	Incomplete string `json:"incomplete,omitempty"`
}

// outboxDir is where delivery.Outbox writes (relay.go's transport).
func (r *Relay) outboxDir() string { return filepath.Join(r.config().DataDir, "outbox") }

// eraseOutbox removes the outbox files of the erased envelopes (named
// <envelope ID>.eml by delivery.Outbox) and any other file delivered to
// addr, which the outbox records on its second line as Delivered-To.
func (r *Relay) eraseOutbox(addr string, envelopeIDs []string) (int, error) {
	dir := r.outboxDir()
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
