//go:build !linux

package store

import bolt "go.etcd.io/bbolt"

// releaseMapped is a no-op where madvise's semantics were not checked.
func releaseMapped(*bolt.DB, *bolt.Tx, []byte) {}
