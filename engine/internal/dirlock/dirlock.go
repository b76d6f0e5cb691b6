// Package dirlock serialises writers of a directory of files (a backup
// catalog, a WAL archive) across goroutines and processes with an flock on
// a lock file inside the directory.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/vfs"
)

// Name is the lock file created in the directory.
const Name = ".lock"

// Lock takes the directory's lock, waiting up to timeout, and returns the
// function that releases it. The lock belongs to the open file, so two
// callers in one process exclude each other like two processes do, and it
// vanishes if the holder dies.
func Lock(fs vfs.FS, dir string, timeout time.Duration) (func(), error) {
	path := filepath.Join(dir, Name)
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	deadline := time.Now().Add(timeout)
	sleep := time.Millisecond
	for {
		err := f.Lock()
		if err == nil {
			return func() {
				_ = f.Unlock()
				f.Close()
			}, nil
		}
		if !errors.Is(err, vfs.ErrLocked) {
			f.Close()
			return nil, err
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, &common.BusyError{Path: dir, What: common.LockDirectory}
		}
		time.Sleep(sleep)
		if sleep < 50*time.Millisecond {
			sleep *= 2
		}
	}
}
