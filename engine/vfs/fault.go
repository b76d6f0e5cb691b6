package vfs

import (
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
)

// Op names an operation kind for fault injection.
type Op int

const (
	OpRead Op = iota
	OpWrite
	OpSync
	OpTruncate
)

// Fault decides, for one operation, whether it fails. Returning a nil error
// lets the operation through. For writes, Tear > 0 makes the layer write only
// the first Tear bytes and then report Err (a torn write).
type Fault struct {
	Err  error
	Tear int
}

// Rule is consulted for every operation on a file whose name contains Path.
type Rule func(op Op, name string, n int) *Fault

// FaultFS wraps an FS and injects faults chosen by a rule. It counts
// operations so tests can fail "the Nth write to the WAL".
type FaultFS struct {
	Inner FS
	mu    sync.Mutex
	rule  Rule
}

// NewFaultFS wraps inner with no faults.
func NewFaultFS(inner FS) *FaultFS { return &FaultFS{Inner: inner} }

// SetRule installs (or with nil removes) the fault rule.
func (f *FaultFS) SetRule(r Rule) {
	f.mu.Lock()
	f.rule = r
	f.mu.Unlock()
}

func (f *FaultFS) check(op Op, name string, n int) *Fault {
	f.mu.Lock()
	r := f.rule
	f.mu.Unlock()
	if r == nil {
		return nil
	}
	return r(op, name, n)
}

// ErrInjected is the default injected error.
var ErrInjected = errors.New("injected fault")

// ENOSPC is a convenience fault: the disk is full.
var ENOSPC = &os.PathError{Op: "write", Path: "", Err: syscall.ENOSPC}

// NthOp returns a rule that fails the nth (1-based) operation of kind op on
// files whose name contains substr, and every later one when sticky.
func NthOp(op Op, substr string, nth int, sticky bool, fault Fault) Rule {
	var mu sync.Mutex
	count := 0
	return func(o Op, name string, n int) *Fault {
		if o != op || !strings.Contains(name, substr) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		count++
		if count == nth || (sticky && count > nth) {
			fl := fault
			return &fl
		}
		return nil
	}
}

func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	inner, err := f.Inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: inner, fs: f}, nil
}
func (f *FaultFS) Remove(name string) error              { return f.Inner.Remove(name) }
func (f *FaultFS) Rename(oldpath, newpath string) error  { return f.Inner.Rename(oldpath, newpath) }
func (f *FaultFS) Stat(name string) (os.FileInfo, error) { return f.Inner.Stat(name) }
func (f *FaultFS) MkdirAll(path string, perm os.FileMode) error {
	return f.Inner.MkdirAll(path, perm)
}
func (f *FaultFS) ReadDir(name string) ([]os.DirEntry, error) { return f.Inner.ReadDir(name) }
func (f *FaultFS) SyncDir(dir string) error {
	if fl := f.check(OpSync, dir, 0); fl != nil && fl.Err != nil {
		return fl.Err
	}
	return f.Inner.SyncDir(dir)
}

type faultFile struct {
	File
	fs *FaultFS
}

func (ff *faultFile) ReadAt(p []byte, off int64) (int, error) {
	if fl := ff.fs.check(OpRead, ff.Name(), len(p)); fl != nil {
		if fl.Tear > 0 && fl.Tear < len(p) {
			n, _ := ff.File.ReadAt(p[:fl.Tear], off)
			return n, fl.errOr()
		}
		return 0, fl.errOr()
	}
	return ff.File.ReadAt(p, off)
}

func (ff *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if fl := ff.fs.check(OpWrite, ff.Name(), len(p)); fl != nil {
		if fl.Tear > 0 && fl.Tear < len(p) {
			n, _ := ff.File.WriteAt(p[:fl.Tear], off)
			return n, fl.errOr()
		}
		return 0, fl.errOr()
	}
	return ff.File.WriteAt(p, off)
}

func (ff *faultFile) Sync() error {
	if fl := ff.fs.check(OpSync, ff.Name(), 0); fl != nil {
		return fl.errOr()
	}
	return ff.File.Sync()
}

func (ff *faultFile) Datasync() error {
	if fl := ff.fs.check(OpSync, ff.Name(), 0); fl != nil {
		return fl.errOr()
	}
	return ff.File.Datasync()
}

func (ff *faultFile) Truncate(size int64) error {
	if fl := ff.fs.check(OpTruncate, ff.Name(), 0); fl != nil {
		return fl.errOr()
	}
	return ff.File.Truncate(size)
}

func (fl *Fault) errOr() error {
	if fl.Err != nil {
		return fl.Err
	}
	return ErrInjected
}
