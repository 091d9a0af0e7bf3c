package journal

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data and the size it grew to, not its times: one
// sequential append costs one device flush.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
