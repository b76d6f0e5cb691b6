package pager

import (
	"golang.org/x/sys/unix"

	"github.com/sombradb/sombra/engine/vfs"
)

// fallocateKeepSize reserves [off, off+n) of f without changing its size.
func fallocateKeepSize(f vfs.File, off, n int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n)
		if err != unix.EINTR {
			return err
		}
	}
}
