//go:build linux

package store

import (
	"syscall"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// releaseMapped tells the kernel that this process is done with the pages
// of bbolt's memory map under v, a value read in tx.
//
// Reading a value through the map faults its pages into the process's
// resident set, and they stay there (counted as RssFile) until the kernel
// wants the memory back; a delivery that streams a 24 MB body part by
// part would leave all 24 MB resident. MADV_DONTNEED on a shared,
// read-only file mapping only removes the process's mapping of those
// pages: the file's bytes stay in the page cache, and the next read of
// them maps them again. It must never reach anonymous memory (there it
// would zero it), so v must lie inside the map, which is checked; and the
// map cannot move while tx is open (bbolt remaps only with no reader).
func releaseMapped(db *bolt.DB, tx *bolt.Tx, v []byte) {
	if len(v) == 0 || tx.Writable() {
		return // a write transaction's values may be on the heap
	}
	info := db.Info()
	page := uintptr(syscall.Getpagesize())
	addr := uintptr(unsafe.Pointer(&v[0]))
	start := addr &^ (page - 1)
	end := (addr + uintptr(len(v)) + page - 1) &^ (page - 1)
	mapStart := info.Data
	mapEnd := info.Data + uintptr(tx.Size()) // the file as this transaction sees it, inside the map
	if start < mapStart || end > mapEnd {
		return
	}
	region := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(&v[0]), -int(addr-start))), int(end-start))
	syscall.Madvise(region, syscall.MADV_DONTNEED) // advice: nothing to do if refused
}
