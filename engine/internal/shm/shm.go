// Package shm manages NAME.db-shm, the small coordination file that every
// process with the database open shares. It holds the checkpoint progress and
// one read mark per reading connection, and its bytes past the data are used
// as advisory lock ranges.
//
// Locks are Linux open-file-description (OFD) locks: they belong to the open
// file, not the process, so two handles in one process exclude each other
// exactly like two processes do, and they vanish when the holder dies.
//
// Data layout (little endian):
//
//	[0:8]    magic "SOMBRSHM"
//	[8:16]   WAL salt the backfill count refers to
//	[16:24]  frames of that WAL already copied into the database file
//	[24:32]  checkpoint epoch: incremented whenever the database file changes
//	[32:40]  pid of the current writer
//	[40:48]  pid of the exclusive holder (compaction, restore)
//	[48:56]  pid of the current checkpointer
//	[56:64]  change counter: bumped whenever the WAL changes, so readers skip
//	         re-reading the log when nothing happened
//	[64+16i] read slot i: pid, read mark (frames visible; 0 = database file
//	         only; Idle = the connection holds the slot but reads nothing)
//	[1088:1096] reader fence: high 48 bits count fenced sections begun,
//	         low 16 bits how many are in progress (see FenceBegin)
//	[2048:2328] database-wide activity counters (versioned; counters.go)
//
// The data part is memory-mapped: readers and writers of these fields use
// atomic loads and stores instead of system calls.
package shm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/procs"
	"github.com/sombradb/sombra/engine/internal/progress"
	"github.com/sombradb/sombra/engine/vfs"
)

// Lock bytes.
const (
	LockWriter = 4096 + iota
	LockCkpt
	LockGate
	LockOpen
	lockSlot0 = 4160
	// Slots is the number of read slots: at most this many connections may
	// read at once across all processes.
	Slots = 64
)

const (
	offSalt     = 8
	offBackfill = 16
	offEpoch    = 24
	OffWriter   = 32
	OffExcl     = 40
	OffCkpt     = 48
	offCounter  = 56
	offSlots    = 64
	offFence    = offSlots + 16*Slots
	dataSize    = offFence + 8
	mapSize     = 4096
)

// Idle is the read mark of a slot whose connection is not reading.
const Idle = math.MaxInt64

// File is an open coordination file, or (OpenPrivate) a private stand-in
// for one that only this connection sees.
type File struct {
	f    vfs.File // nil for a private file
	mem  []byte
	Path string
	// counting is set when the counters region has this build's layout
	// (counters.go); written once while the connection opens.
	counting bool
}

// Open opens or creates the coordination file next to the database.
//
// A new file is written whole under a temporary name and linked into
// place, so the name never refers to a file shorter than its layout: when
// the initialising write fails (a full disk) nothing is left behind, where
// a created-then-failed file would stay empty and make every later opener
// try, and fail, to initialise it again. File systems that cannot link get
// the file created in place.
func Open(fs vfs.FS, path string) (*File, error) {
	if err := common.PlatformError(); err != nil {
		return nil, err
	}
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err = publish(fs, path); err == nil {
			f, err = fs.OpenFile(path, os.O_RDWR, 0)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, unwrapPath(err))
	}
	s := &File{f: f, Path: path}
	// Initialise once: whoever finds it short writes the zeroed layout while
	// holding the gate exclusively, so two openers cannot interleave. (Only
	// a file left short by an older version, or created in place, is.)
	if err := s.lock(LockGate, true, true); err != nil {
		f.Close()
		return nil, err
	}
	defer s.Unlock(LockGate)
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size() < mapSize {
		b := make([]byte, mapSize)
		if st.Size() > 0 {
			if _, err := f.ReadAt(b[:st.Size()], 0); err != nil {
				f.Close()
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
		}
		copy(b, "SOMBRSHM")
		if _, err := f.WriteAt(b, 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("initialise %s: %w", path, err)
		}
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, mapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("map %s: %w", path, err)
	}
	s.mem = mem
	return s, nil
}

// publish creates the coordination file at path with its initial layout
// (see Open). Losing a race to another creator is success. It needs no
// fsync: the file holds no durable state (the first connection resets it).
func publish(fs vfs.FS, path string) error {
	b := make([]byte, mapSize)
	copy(b, "SOMBRSHM")
	l, ok := fs.(vfs.Linker)
	if !ok {
		return createInPlace(fs, path, b)
	}
	// The temporary name ends in "-shm" too: whatever treats coordination
	// files as volatile (vfs.CrashFS) treats it alike.
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d-%d.tmp-shm", filepath.Base(path), os.Getpid(), time.Now().UnixNano()))
	f, err := fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return unwrapPath(err)
	}
	_, err = f.WriteAt(b, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.Link(tmp, path)
		if errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) {
			err = createInPlace(fs, path, b)
		}
	}
	fs.Remove(tmp)
	removeStaleTemps(fs, path)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	return unwrapPath(err)
}

// removeStaleTemps removes the temporary files of publish left by
// processes killed between creating and removing them (they name the pid).
// Best effort: a leftover costs only its 4 KiB.
func removeStaleTemps(fs vfs.FS, path string) {
	dir, prefix := filepath.Dir(path), "."+filepath.Base(path)+"."
	ents, err := fs.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, ".tmp-shm") {
			continue
		}
		pid, _, ok := strings.Cut(strings.TrimPrefix(n, prefix), "-")
		if p, err := strconv.Atoi(pid); ok && err == nil && p != os.Getpid() && !procs.Alive(p) {
			fs.Remove(filepath.Join(dir, n))
		}
	}
}

// createInPlace is publish for file systems without hard links.
func createInPlace(fs vfs.FS, path string, b []byte) error {
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return unwrapPath(err)
	}
	_, err = f.WriteAt(b, 0)
	f.Close()
	// A failed write leaves the file short: every opener initialises a
	// short file under the gate (Open), so it is not mistaken for a layout.
	return unwrapPath(err)
}

// unwrapPath drops an *os.PathError's path: the caller names the
// coordination file, not the temporary one.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// OpenPrivate returns a coordination file that lives in this connection's
// memory only: its locks always succeed and nobody else sees its fields. A
// read-only connection uses it when it cannot write (or create) the real
// one, once it has made sure that no other connection has the database
// open and none can start writing (see the pager's private mode).
func OpenPrivate(path string) *File {
	s := &File{mem: make([]byte, mapSize), Path: path}
	copy(s.mem, "SOMBRSHM")
	return s
}

// Private reports whether s is a private stand-in (OpenPrivate).
func (s *File) Private() bool { return s.f == nil }

// CannotShare reports whether err, from Open, means the coordination file
// cannot be created or written by this process (permissions, a read-only
// file system, a full disk) rather than some other failure.
func CannotShare(err error) bool {
	return errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.ENOSPC) ||
		errors.Is(err, syscall.EDQUOT)
}

// Close unmaps and closes the file, dropping every lock it holds.
func (s *File) Close() error {
	if s.f == nil {
		s.mem = nil
		return nil
	}
	if s.mem != nil {
		_ = unix.Munmap(s.mem)
		s.mem = nil
	}
	return s.f.Close()
}

func (s *File) word(off int64) *uint64 { return (*uint64)(unsafe.Pointer(&s.mem[off])) }

func (s *File) lock(b int64, excl, wait bool) error {
	if s.f == nil {
		return nil // private: no other connection to exclude
	}
	typ := int16(unix.F_RDLCK)
	if excl {
		typ = unix.F_WRLCK
	}
	cmd := common.OFDSetLk
	if wait {
		cmd = common.OFDSetLkW
	}
	fl := unix.Flock_t{Type: typ, Whence: 0, Start: b, Len: 1}
	for {
		err := unix.FcntlFlock(s.f.Fd(), cmd, &fl)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}

// TryLock takes a lock without waiting; it reports false if it is held.
func (s *File) TryLock(b int64, excl bool) (bool, error) {
	err := s.lock(b, excl, false)
	if err == nil {
		return true, nil
	}
	if err == unix.EAGAIN || err == unix.EACCES {
		return false, nil
	}
	return false, fmt.Errorf("lock %s: %w", s.Path, err)
}

// LockWait takes a lock, blocking briefly-held locks (the gate) without a
// timeout.
func (s *File) LockWait(b int64, excl bool) error {
	if err := s.lock(b, excl, true); err != nil {
		return fmt.Errorf("lock %s: %w", s.Path, err)
	}
	return nil
}

// LockTimeout polls for a lock until timeout has passed, then returns a
// *common.BusyError naming the live holders of the lock (see busy).
//
// A request that finds the lock held counts as a busy wait in the
// database-wide counters (with the time waited, and whether it timed out).
func (s *File) LockTimeout(b int64, excl bool, timeout time.Duration, what common.LockKind, pidOff int64, dbPath string) error {
	return s.LockContext(context.Background(), b, excl, timeout, what, pidOff, dbPath)
}

// LockContext is LockTimeout, giving up when ctx is cancelled (between two
// attempts, at most 50 ms apart) with an error matching ctx.Err().
func (s *File) LockContext(ctx context.Context, b int64, excl bool, timeout time.Duration, what common.LockKind, pidOff int64, dbPath string) error {
	start := time.Now()
	deadline := start.Add(timeout)
	sleep := time.Millisecond
	for n := 0; ; n++ {
		ok, err := s.TryLock(b, excl)
		if err != nil {
			return err
		}
		if ok {
			if n > 0 {
				s.countWait(start, false)
			}
			return nil
		}
		if time.Now().After(deadline) {
			s.countWait(start, true)
			return s.busy(b, excl, what, pidOff, dbPath)
		}
		if err := progress.Interrupted(ctx); err != nil {
			return fmt.Errorf("%s: waiting for the %s lock: %w", dbPath, what, err)
		}
		time.Sleep(sleep)
		if sleep < 50*time.Millisecond {
			sleep *= 2
		}
	}
}

func (s *File) countWait(start time.Time, timedOut bool) {
	s.Add(CtrBusyWaits, 1)
	s.Add(CtrBusyWaitNanos, uint64(time.Since(start)))
	if timedOut {
		s.Add(CtrBusyTimeouts, 1)
	}
}

// busy builds the error for lock byte b held by others. It names the live
// processes holding the byte (procs.LockHolders); when none can be seen
// (another user's process, no /proc) it falls back to the pid recorded at
// pidOff, but only if that process still exists: a recorded pid outlives
// its process, and naming an exited one sends the operator after a ghost.
func (s *File) busy(b int64, excl bool, what common.LockKind, pidOff int64, dbPath string) error {
	e := &common.BusyError{Path: dbPath, What: what, Holders: s.Holders(b, excl)}
	if len(e.Holders) == 0 && pidOff > 0 {
		e.Holders = procs.Holder(int(s.ReadU64(pidOff)))
	}
	if len(e.Holders) > 0 {
		e.PID = e.Holders[0].PID
	}
	return e
}

// Holders lists the live processes holding lock byte b (exclusively,
// unless anyLock) through another open file than s's own.
func (s *File) Holders(b int64, anyLock bool) []common.Holder {
	if s.f == nil {
		return nil
	}
	return procs.LockHolders(s.f, b, anyLock)
}

// Unlock releases a lock.
func (s *File) Unlock(b int64) {
	if s.f == nil {
		return
	}
	fl := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: b, Len: 1}
	_ = unix.FcntlFlock(s.f.Fd(), common.OFDSetLk, &fl)
}

// ReadU64 reads a field.
func (s *File) ReadU64(off int64) uint64 { return atomic.LoadUint64(s.word(off)) }

// WriteU64 writes a field. (It cannot fail: the data part is mapped; the
// error is kept so callers need not change if that ever changes.)
func (s *File) WriteU64(off int64, v uint64) error {
	atomic.StoreUint64(s.word(off), v)
	return nil
}

// Counter returns the WAL change counter.
func (s *File) Counter() uint64 { return s.ReadU64(offCounter) }

// BumpCounter records that the WAL changed.
func (s *File) BumpCounter() { atomic.AddUint64(s.word(offCounter), 1) }

// Backfill returns how many frames of the WAL with the given salt have been
// copied into the database file.
func (s *File) Backfill(salt uint64) int {
	if s.ReadU64(offSalt) != salt {
		return 0
	}
	return int(s.ReadU64(offBackfill))
}

// SetBackfill records checkpoint progress for the WAL with salt. Every
// state between the stores understates the progress (which only makes a
// checkpoint copy frames again): a process killed between them, or a
// mapping written back to disk between them, must never leave a new salt
// beside the old log's count, which would make readers take frames of the
// new log as already in the database file and checkpoints skip them.
func (s *File) SetBackfill(salt uint64, n int) error {
	if s.ReadU64(offSalt) != salt {
		if err := s.WriteU64(offBackfill, 0); err != nil {
			return err
		}
		if err := s.WriteU64(offSalt, salt); err != nil {
			return err
		}
	}
	return s.WriteU64(offBackfill, uint64(n))
}

// ResetProgress forgets the checkpoint progress. The first connection to
// open a database calls it: what an -shm says was left by processes that
// are gone, possibly torn by a crash or a power cut that kept some of its
// pages and not others, and the log is rescanned anyway.
func (s *File) ResetProgress() error {
	if err := s.WriteU64(offBackfill, 0); err != nil {
		return err
	}
	return s.WriteU64(offSalt, 0)
}

// Epoch returns the database-file epoch (see package doc).
func (s *File) Epoch() uint64 { return s.ReadU64(offEpoch) }

// BumpEpoch marks the database file as changed.
func (s *File) BumpEpoch() error {
	s.NextEpoch()
	return nil
}

// NextEpoch is BumpEpoch returning the new epoch, so that a checkpoint can
// tell whether anyone else changed the file's epoch meanwhile.
func (s *File) NextEpoch() uint64 { return atomic.AddUint64(s.word(offEpoch), 1) }

// The reader fence lets a reader publish its read mark with plain atomic
// operations, without the gate (a system call pair), in the common case.
// It is Dekker's pattern over sequentially consistent atomics (Go's
// sync/atomic; the word is in shared memory, so it orders across processes
// as it does across threads):
//
//	reader:          f1 = Fence(); if active(f1) -> slow path
//	                 ... choose the mark from state loaded after f1 ...
//	                 store mark;   f2 = Fence(); if f2 != f1 -> undo, slow path
//	fenced section:  FenceBegin;   load every read mark; act on the minimum
//	                 (copy frames, restart the log); publish; FenceEnd
//
// Either the section's mark loads come after the reader's store (it sees
// the mark), or its FenceBegin comes before the reader's second load (the
// reader sees the fence move and retries under the gate). A section that
// ended before f1 published everything before its FenceEnd, so the reader
// saw its results. Every section that computes the minimum read mark and
// acts on it must be fenced.
const (
	fenceActive = 1<<16 - 1
	fenceBegun  = 1 << 16
)

// Fence returns the reader fence word.
func (s *File) Fence() uint64 { return s.ReadU64(offFence) }

// FenceIdle reports whether no fenced section is in progress in fence word f.
func FenceIdle(f uint64) bool { return f&fenceActive == 0 }

// FenceBegin opens a fenced section; end it with FenceEnd. With exclusive
// the caller knows no other section can be in progress (it holds both the
// gate and the checkpoint lock exclusively), and clears an in-progress
// count left behind by a process that died inside a section, which would
// otherwise send every reader to the slow path for good.
func (s *File) FenceBegin(exclusive bool) {
	if exclusive {
		for {
			old := s.ReadU64(offFence)
			if atomic.CompareAndSwapUint64(s.word(offFence), old, (old&^fenceActive)+fenceBegun+1) {
				return
			}
		}
	}
	atomic.AddUint64(s.word(offFence), fenceBegun+1)
}

// FenceEnd closes a fenced section.
func (s *File) FenceEnd() {
	for {
		old := s.ReadU64(offFence)
		if old&fenceActive == 0 {
			return // cleared by an exclusive FenceBegin
		}
		if atomic.CompareAndSwapUint64(s.word(offFence), old, old-1) {
			return
		}
	}
}

// SetMark publishes the read mark of slot i (the caller holds its lock).
func (s *File) SetMark(i int, mark int) {
	atomic.StoreUint64(s.word(offSlots+16*int64(i)+8), uint64(mark))
}

// SlotLock is the lock byte of read slot i.
func SlotLock(i int) int64 { return lockSlot0 + int64(i) }

// SetSlot records the pid and read mark of slot i (the caller holds its lock).
func (s *File) SetSlot(i int, pid int, mark int) error {
	if err := s.WriteU64(offSlots+16*int64(i), uint64(pid)); err != nil {
		return err
	}
	return s.WriteU64(offSlots+16*int64(i)+8, uint64(mark))
}

// Slot returns the pid and read mark stored in slot i.
func (s *File) Slot(i int) (pid int, mark int) {
	return int(s.ReadU64(offSlots + 16*int64(i))), int(s.ReadU64(offSlots + 16*int64(i) + 8))
}

// ActiveMarks returns the read marks of slots held by other connections
// (every slot but skip whose lock is taken).
func (s *File) ActiveMarks(skip int) ([]int, error) {
	var marks []int
	for i := 0; i < Slots; i++ {
		if i == skip {
			continue
		}
		free, err := s.TryLock(SlotLock(i), true)
		if err != nil {
			return nil, err
		}
		if free {
			s.Unlock(SlotLock(i))
			continue
		}
		if _, m := s.Slot(i); m != Idle {
			marks = append(marks, m)
		}
	}
	return marks, nil
}

// ActiveReaders lists the pids of connections holding read slots.
func (s *File) ActiveReaders(skip int) []int {
	var pids []int
	for i := 0; i < Slots; i++ {
		if i == skip {
			continue
		}
		free, err := s.TryLock(SlotLock(i), true)
		if err != nil {
			continue
		}
		if free {
			s.Unlock(SlotLock(i))
			continue
		}
		if pid, m := s.Slot(i); m != Idle {
			pids = append(pids, pid)
		}
	}
	return pids
}
