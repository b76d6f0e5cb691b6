package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// WriteFileAtomic replaces path with data, atomically and durably: data is
// written to PATH.tmp-PID-N beside it, fsynced, renamed over path, and the
// directory fsynced. A failure before the rename removes the temporary file
// and leaves path as it was; a failure of the directory fsync is reported,
// with the new contents in place but perhaps not surviving a power cut.
// (The temporary name is the one stale-file cleanups know: see
// engine/backup's stale.go.)
func WriteFileAtomic(fs FS, path string, data []byte, perm os.FileMode) error {
	tmp := fmt.Sprintf("%s.tmp-%d-%d", path, os.Getpid(), time.Now().UnixNano())
	f, err := fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	fail := func(what string, err error) error {
		f.Close()
		fs.Remove(tmp)
		return fmt.Errorf("%s %s: %w", what, tmp, err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return fail("write", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := f.Close(); err != nil {
		fs.Remove(tmp)
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, path); err != nil {
		fs.Remove(tmp)
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := SyncParent(fs, path); err != nil {
		return fmt.Errorf("fsync the directory of %s: %w", path, err)
	}
	return nil
}

// ReadFile reads the whole of a small file through fs; a file of more
// than limit bytes is refused (it cannot be what the caller expects, and
// would only be read into memory).
func ReadFile(fs FS, path string, limit int64) ([]byte, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: implausibly large (%d bytes)", path, st.Size())
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}
