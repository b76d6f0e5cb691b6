package common

import "golang.org/x/sys/unix"

// Lock commands of Linux open-file-description (OFD) locks: they belong to
// the open file, not the process, so two connections of one process
// exclude each other like two processes do (engine/internal/shm).
const (
	OFDSetLk  = unix.F_OFD_SETLK
	OFDSetLkW = unix.F_OFD_SETLKW
	OFDGetLk  = unix.F_OFD_GETLK
)

// PlatformError is nil where the engine runs (Linux): see platform_other.go.
func PlatformError() error { return nil }
