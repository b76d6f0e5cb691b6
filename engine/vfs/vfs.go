// Package vfs is the file layer under the storage engine. Every read, write
// and sync goes through an FS so tests can swap in a layer that fails or tears
// writes (see FaultFS) without touching the engine.
package vfs

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
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
	// Fd returns the OS descriptor, used for advisory locks.
	Fd() uintptr
}

// FS opens and manages files.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	Rename(oldpath, newpath string) error
	Stat(name string) (os.FileInfo, error)
	// SyncDir fsyncs a directory so that a create or rename in it is durable.
	SyncDir(dir string) error
}

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

func (f osFile) Datasync() error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
func (osFS) Remove(name string) error              { return os.Remove(name) }
func (osFS) Rename(oldpath, newpath string) error  { return os.Rename(oldpath, newpath) }
func (osFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }
func (osFS) SyncDir(dir string) error              { return syncDir(dir) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SyncParent fsyncs the directory holding path.
func SyncParent(fs FS, path string) error {
	return fs.SyncDir(filepath.Dir(path))
}
