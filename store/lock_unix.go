//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockShared takes a shared lock on the database file, if it exists, for
// as long as the check before opening reads it. bbolt's writer holds an
// exclusive flock on the same file, so a running kadenz makes this fail at
// once instead of the check reading pages that are being rewritten.
func lockShared(path string) (unlock func(), err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("store: %s is locked by another process (is kadenz already running?)", path)
		}
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}
