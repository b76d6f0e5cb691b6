// Package vfs is the file layer under the storage engine. Every read, write
// and sync, and every create, rename, remove and directory sync, goes
// through an FS so tests can swap in a layer that fails or tears writes
// (FaultFS) or one that knows what a power cut would leave on the disk
// (CrashFS) without touching the engine.
package vfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// File is the subset of *os.File the engine uses.
type File interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Sync() error
	// Datasync flushes the data and only the metadata needed to read it
	// back (fdatasync): what the WAL's durability needs, and cheaper.
	Datasync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
	Name() string
	// Fd returns the OS descriptor, used for the byte-range locks and the
	// mapping of the shared-memory file, which have no place here.
	Fd() uintptr
	// Lock takes an exclusive advisory lock on the whole file (flock)
	// without waiting: an error matching ErrLocked when another open file
	// holds it. The lock belongs to this open file, so two opens in one
	// process exclude each other as two processes do; Close releases it,
	// and so does the holder's death.
	Lock() error
	// Unlock releases the lock Lock took.
	Unlock() error
}

// FS opens and manages files.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	Rename(oldpath, newpath string) error
	Stat(name string) (os.FileInfo, error)
	// SyncDir fsyncs a directory so that a create, rename, remove or link
	// in it is durable (CrashFS loses each at a power cut until then).
	SyncDir(dir string) error
	// MkdirAll creates a directory and any missing parents. A new directory
	// is durable only once its parent is synced (see MkdirAllDurable).
	MkdirAll(path string, perm os.FileMode) error
	// ReadDir lists a directory, sorted by name.
	ReadDir(name string) ([]os.DirEntry, error)
}

// ErrLocked is matched by the error File.Lock returns when another open
// file holds the lock.
var ErrLocked = errors.New("file is locked by another open file")

// OS is the real file system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

type osFile struct{ *os.File }

func (f osFile) Datasync() error                   { return datasync(f.File) }
func (osFS) Remove(name string) error              { return os.Remove(name) }
func (osFS) Rename(oldpath, newpath string) error  { return os.Rename(oldpath, newpath) }
func (osFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }
func (osFS) SyncDir(dir string) error              { return syncDir(dir) }
func (osFS) MkdirAll(path string, perm os.FileMode) error {
	return os.MkdirAll(path, perm)
}
func (osFS) ReadDir(name string) ([]os.DirEntry, error) { return os.ReadDir(name) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// fsync of a regular file opened here would succeed and make no
	// directory entry durable: a caller naming a file is a bug to report.
	if st, err := d.Stat(); err != nil {
		return err
	} else if !st.IsDir() {
		return &os.PathError{Op: "fsync", Path: dir, Err: syscall.ENOTDIR}
	}
	return d.Sync()
}

// SyncParent fsyncs the directory holding path.
func SyncParent(fs FS, path string) error {
	return fs.SyncDir(filepath.Dir(path))
}

// MkdirAllDurable creates dir and any missing parents and fsyncs the parent
// of each directory it created, so that files later made durable in dir
// cannot vanish with a directory entry that never reached the disk.
func MkdirAllDurable(fs FS, dir string) error {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := SyncParent(fs, missing[i]); err != nil {
			return fmt.Errorf("fsync the directory holding %s: %w", missing[i], err)
		}
	}
	return nil
}
