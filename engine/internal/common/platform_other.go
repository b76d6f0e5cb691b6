//go:build !linux

package common

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Elsewhere the packages build (so the code is kept compiling for every
// Unix), but PlatformError refuses to open a database before any lock is
// taken: the coordination of connections relies on OFD locks, and POSIX
// record locks, the portable kind, belong to the process (a second
// connection of the same process would not be excluded, and closing any
// descriptor of the file would drop every lock the process holds on it).
// The constants below are never reached; they only let the code compile.
const (
	OFDSetLk  = unix.F_SETLK
	OFDSetLkW = unix.F_SETLKW
	OFDGetLk  = unix.F_GETLK
)

// PlatformError says the engine does not run on this operating system.
func PlatformError() error {
	return fmt.Errorf("sombra runs on Linux only (it needs open-file-description locks), not %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
