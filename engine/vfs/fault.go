package vfs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
)

// Op names an operation kind for fault injection.
type Op int

const (
	OpRead     Op = iota // File.ReadAt
	OpWrite              // File.WriteAt
	OpSync               // File.Sync or File.Datasync
	OpTruncate           // File.Truncate
	OpCreate             // OpenFile with O_CREATE (whether or not the file exists)
	OpOpen               // OpenFile without O_CREATE
	OpRename             // name is "OLD -> NEW" (see Rule)
	OpRemove             // FS.Remove
	OpSyncDir            // FS.SyncDir; name is the directory
	OpMkdir              // FS.MkdirAll; name is the path asked for
	OpReadDir            // FS.ReadDir
	OpLink               // Link; name is "OLD -> NEW"
	OpLock               // File.Lock
)

var opNames = [...]string{"read", "write", "sync", "truncate", "create", "open", "rename", "remove", "syncdir",
	"mkdir", "readdir", "link", "lock"}

func (op Op) String() string {
	if op >= 0 && int(op) < len(opNames) {
		return opNames[op]
	}
	return fmt.Sprintf("Op(%d)", int(op))
}

// Fault decides, for one operation, whether it fails: a rule that returns
// a Fault fails the operation with Err (ErrInjected when nil). For writes
// and reads, Tear > 0 makes the layer transfer only the first Tear bytes
// and then report the error (a torn write).
//
// Crash makes the process die at this operation, as SIGKILL would: the
// operation is not done (a torn write's prefix is), and it and every later
// operation through the FaultFS, of any kind on any file, fail with an
// error matching ErrCrashed. The files then hold what a kill at this point
// leaves; over a CrashFS, a rule can take the power cut's image (Crash)
// before it returns the Fault, for what a power cut here leaves.
type Fault struct {
	Err   error
	Tear  int
	Crash bool
}

// Rule is consulted before every operation with its kind, the file's name
// and, for reads and writes, the byte count. A rename or link is consulted
// once, with name "OLD -> NEW", so a rule matching either name by
// substring sees it once; a rule matching the target can use HasSuffix.
type Rule func(op Op, name string, n int) *Fault

// FaultFS wraps an FS and injects faults chosen by a rule. It counts
// operations so tests can fail "the Nth write to the WAL".
type FaultFS struct {
	Inner   FS
	mu      sync.Mutex
	rule    Rule
	crashed bool
}

// NewFaultFS wraps inner with no faults.
func NewFaultFS(inner FS) *FaultFS { return &FaultFS{Inner: inner} }

// SetRule installs (or with nil removes) the fault rule.
func (f *FaultFS) SetRule(r Rule) {
	f.mu.Lock()
	f.rule = r
	f.mu.Unlock()
}

// Crashed reports whether a Crash fault has fired.
func (f *FaultFS) Crashed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.crashed
}

// Revive ends the simulated death of the process (see Fault.Crash): later
// operations go through again, as a new process's would.
func (f *FaultFS) Revive() {
	f.mu.Lock()
	f.crashed = false
	f.mu.Unlock()
}

// ErrInjected is the default injected error.
var ErrInjected = errors.New("injected fault")

// ErrCrashed is matched by the errors of a FaultFS after a Crash fault.
var ErrCrashed = errors.New("simulated crash: the process is dead")

// ENOSPC is a convenience fault: the disk is full.
var ENOSPC = &os.PathError{Op: "write", Path: "", Err: syscall.ENOSPC}

var crashFault = &Fault{Err: ErrCrashed, Crash: true}

// check returns the fault for one operation, or nil to let it through.
func (f *FaultFS) check(op Op, name string, n int) *Fault {
	f.mu.Lock()
	r, dead := f.rule, f.crashed
	f.mu.Unlock()
	if dead {
		return crashFault
	}
	if r == nil {
		return nil
	}
	fl := r(op, name, n)
	if fl != nil && fl.Crash {
		f.mu.Lock()
		f.crashed = true
		f.mu.Unlock()
	}
	return fl
}

// fail is the error of an operation the fault stopped.
func (fl *Fault) fail(op Op, name string) error {
	switch {
	case fl.Crash && fl.Err == nil:
		return &os.PathError{Op: op.String(), Path: name, Err: ErrCrashed}
	case fl.Crash && !errors.Is(fl.Err, ErrCrashed):
		return &os.PathError{Op: op.String(), Path: name, Err: fmt.Errorf("%w (%w)", ErrCrashed, fl.Err)}
	case fl.Err == nil:
		return &os.PathError{Op: op.String(), Path: name, Err: ErrInjected}
	}
	var pe *os.PathError
	if errors.As(fl.Err, &pe) {
		return fl.Err
	}
	return &os.PathError{Op: op.String(), Path: name, Err: fl.Err}
}

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

// After returns a rule that consults then only once trigger has matched an
// operation: "the directory fsync after the rename", say, is
// After(isTheRename, NthOp(OpSyncDir, "", 1, false, fault)).
func After(trigger func(op Op, name string) bool, then Rule) Rule {
	var mu sync.Mutex
	armed := false
	return func(op Op, name string, n int) *Fault {
		mu.Lock()
		if !armed && trigger(op, name) {
			armed = true
		}
		on := armed
		mu.Unlock()
		if !on {
			return nil
		}
		return then(op, name, n)
	}
}

// pair is the name a rename or link is checked under.
func pair(oldpath, newpath string) string { return oldpath + " -> " + newpath }

func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	op := OpOpen
	if flag&os.O_CREATE != 0 {
		op = OpCreate
	}
	if fl := f.check(op, name, 0); fl != nil {
		return nil, fl.fail(op, name)
	}
	inner, err := f.Inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: inner, fs: f}, nil
}

func (f *FaultFS) Remove(name string) error {
	if fl := f.check(OpRemove, name, 0); fl != nil {
		return fl.fail(OpRemove, name)
	}
	return f.Inner.Remove(name)
}

func (f *FaultFS) Rename(oldpath, newpath string) error {
	if fl := f.check(OpRename, pair(oldpath, newpath), 0); fl != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: errors.Unwrap(fl.fail(OpRename, newpath))}
	}
	return f.Inner.Rename(oldpath, newpath)
}

func (f *FaultFS) Stat(name string) (os.FileInfo, error) {
	if f.Crashed() {
		return nil, crashFault.fail(OpOpen, name)
	}
	return f.Inner.Stat(name)
}

func (f *FaultFS) MkdirAll(path string, perm os.FileMode) error {
	if fl := f.check(OpMkdir, path, 0); fl != nil {
		return fl.fail(OpMkdir, path)
	}
	return f.Inner.MkdirAll(path, perm)
}

func (f *FaultFS) ReadDir(name string) ([]os.DirEntry, error) {
	if fl := f.check(OpReadDir, name, 0); fl != nil {
		return nil, fl.fail(OpReadDir, name)
	}
	return f.Inner.ReadDir(name)
}

func (f *FaultFS) SyncDir(dir string) error {
	if fl := f.check(OpSyncDir, dir, 0); fl != nil {
		return fl.fail(OpSyncDir, dir)
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
			return n, fl.fail(OpRead, ff.Name())
		}
		return 0, fl.fail(OpRead, ff.Name())
	}
	return ff.File.ReadAt(p, off)
}

func (ff *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if fl := ff.fs.check(OpWrite, ff.Name(), len(p)); fl != nil {
		if fl.Tear > 0 && fl.Tear < len(p) {
			n, _ := ff.File.WriteAt(p[:fl.Tear], off)
			return n, fl.fail(OpWrite, ff.Name())
		}
		return 0, fl.fail(OpWrite, ff.Name())
	}
	return ff.File.WriteAt(p, off)
}

func (ff *faultFile) Sync() error {
	if fl := ff.fs.check(OpSync, ff.Name(), 0); fl != nil {
		return fl.fail(OpSync, ff.Name())
	}
	return ff.File.Sync()
}

func (ff *faultFile) Datasync() error {
	if fl := ff.fs.check(OpSync, ff.Name(), 0); fl != nil {
		return fl.fail(OpSync, ff.Name())
	}
	return ff.File.Datasync()
}

func (ff *faultFile) Truncate(size int64) error {
	if fl := ff.fs.check(OpTruncate, ff.Name(), 0); fl != nil {
		return fl.fail(OpTruncate, ff.Name())
	}
	return ff.File.Truncate(size)
}

func (ff *faultFile) Lock() error {
	if fl := ff.fs.check(OpLock, ff.Name(), 0); fl != nil {
		return fl.fail(OpLock, ff.Name())
	}
	return ff.File.Lock()
}

func (ff *faultFile) Stat() (os.FileInfo, error) {
	if ff.fs.Crashed() {
		return nil, crashFault.fail(OpRead, ff.Name())
	}
	return ff.File.Stat()
}
