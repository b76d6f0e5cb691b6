package vfs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// flock applies how (LOCK_EX|LOCK_NB or LOCK_UN) to f, retrying when a
// signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		switch {
		case err == nil:
			return nil
		case err == unix.EINTR:
			continue
		case err == unix.EWOULDBLOCK:
			return fmt.Errorf("lock %s: %w", f.Name(), ErrLocked)
		}
		return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
}

func (f osFile) Lock() error   { return flock(f.File, unix.LOCK_EX|unix.LOCK_NB) }
func (f osFile) Unlock() error { return flock(f.File, unix.LOCK_UN) }
