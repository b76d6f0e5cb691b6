package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/procs"
	"github.com/sombradb/sombra/engine/internal/shm"
	"github.com/sombradb/sombra/engine/vfs"
)

// LockHolder describes one lock of a database.
type LockHolder struct {
	// Held reports whether some connection (in any process) holds the lock
	// right now.
	Held bool `json:"held"`
	// PID is the process id recorded by the holder. When Held is false it
	// is the last holder's pid (0 if nobody ever took the lock): useful
	// history, not a live lock — locks vanish when their holder dies.
	PID int `json:"pid"`
}

// LockState is who holds a database's locks, as seen through its
// coordination file (NAME.db-shm).
type LockState struct {
	// InUse reports whether any connection has the database open.
	InUse bool `json:"in_use"`
	// Writer is the write-transaction lock (one writer at a time).
	Writer LockHolder `json:"writer"`
	// Checkpointer is the checkpoint lock.
	Checkpointer LockHolder `json:"checkpointer"`
	// Exclusive is held by compaction and restore, which need the database
	// to themselves.
	Exclusive LockHolder `json:"exclusive"`
	// ReaderPIDs lists the processes with a read transaction open (a pid
	// appears once per connection that is reading; connections between
	// reads are not listed).
	ReaderPIDs []int `json:"reader_pids"`
	// Open lists the live processes that have the database open, idle or
	// not, with their command names (from /proc: processes of other users
	// may be missing). The caller's own process is listed when it has a
	// connection open.
	Open []Process `json:"open"`
}

// Process is a live process named in a lock report or a *BusyError.
type Process = common.Holder

// LockState reports who holds the database's locks. It only inspects them
// (it takes no lock), so it is safe whatever this or any other connection
// is doing; the connection's own locks are counted like anyone else's.
func (db *DB) LockState() (LockState, error) { return ReadLockState(db.Path()) }

// Layout of the coordination file that ReadLockState reads without a
// connection: read slots start here, 16 bytes each (pid, read mark). See
// the package documentation of engine/internal/shm.
const shmSlotsOffset = 64

// ReadLockState reports who holds the locks of the database at path
// without opening it, so it works even while compaction holds the
// database exclusively. It never modifies any file. A database without a
// coordination file has no lock holders.
func ReadLockState(path string) (LockState, error) {
	st := LockState{ReaderPIDs: []int{}}
	if err := common.PlatformError(); err != nil {
		return st, err
	}
	real, err := vfs.RealPath(path) // the lock file is named after the real path
	if err != nil {
		return st, fmt.Errorf("lock state of %s: %w", path, err)
	}
	f, err := os.Open(real + "-shm")
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("lock state of %s: %w", path, err)
	}
	defer f.Close()
	// A fresh open file description owns no locks, so F_OFD_GETLK reports
	// every holder, this process's connections included.
	probe := func(b int64, excl bool) (bool, error) {
		typ := int16(unix.F_RDLCK)
		if excl {
			typ = unix.F_WRLCK
		}
		fl := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: b, Len: 1}
		for {
			err := unix.FcntlFlock(f.Fd(), common.OFDGetLk, &fl)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return false, fmt.Errorf("lock state of %s: %w", path, err)
			}
			return fl.Type != unix.F_UNLCK, nil
		}
	}
	u64 := func(off int64) int {
		var b [8]byte
		if _, err := f.ReadAt(b[:], off); err != nil {
			return 0
		}
		return int(binary.LittleEndian.Uint64(b[:]))
	}
	// Every connection holds the open byte shared: a would-be exclusive
	// lock conflicts with any of them, a shared one only with compaction.
	if st.InUse, err = probe(shm.LockOpen, true); err != nil {
		return st, err
	}
	if st.Exclusive.Held, err = probe(shm.LockOpen, false); err != nil {
		return st, err
	}
	if st.Writer.Held, err = probe(shm.LockWriter, false); err != nil {
		return st, err
	}
	if st.Checkpointer.Held, err = probe(shm.LockCkpt, false); err != nil {
		return st, err
	}
	st.Writer.PID, st.Checkpointer.PID, st.Exclusive.PID = u64(shm.OffWriter), u64(shm.OffCkpt), u64(shm.OffExcl)
	st.Open = []Process{}
	if st.InUse {
		st.Open = append(st.Open, procs.LockHolders(f, shm.LockOpen, true)...)
	}
	for i := 0; i < shm.Slots; i++ {
		held, err := probe(shm.SlotLock(i), false)
		if err != nil {
			return st, err
		}
		// A connection keeps its slot between reads, marked idle.
		if off := shmSlotsOffset + 16*int64(i); held && uint64(u64(off+8)) != shm.Idle {
			st.ReaderPIDs = append(st.ReaderPIDs, u64(off))
		}
	}
	return st, nil
}

// nameHolder fills in the pid of a *BusyError that names none from the
// lock table, which records the writer's and the checkpointer's pid and
// each reader's, so that the error says whom to wait for and callers need
// not look it up themselves.
func (db *DB) nameHolder(err error) {
	var be *BusyError
	if !errors.As(err, &be) || be.PID != 0 {
		return
	}
	ls, lerr := db.LockState()
	if lerr != nil {
		return
	}
	switch {
	case be.What == LockWriter && ls.Writer.Held:
		be.PID = ls.Writer.PID
	case be.What == LockCheckpoint && ls.Checkpointer.Held:
		be.PID = ls.Checkpointer.PID
	case be.What == LockReader && len(ls.ReaderPIDs) > 0:
		be.PID = ls.ReaderPIDs[0]
	}
}
