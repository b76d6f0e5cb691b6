package pager

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/procs"
	"github.com/sombradb/sombra/engine/internal/shm"
	"github.com/sombradb/sombra/engine/vfs"
)

// Private mode. A read-only connection that cannot create or write the
// coordination file (a directory or -shm the user may not write, a
// read-only file system, a full disk) reads the database the way SQLite
// reads a read-only WAL database: it indexes the WAL privately (the index
// is per connection anyway) and keeps the coordination state in its own
// memory (shm.OpenPrivate). That is only sound while nobody else can
// change the files, so:
//
//   - the private reader holds lockPrivate shared on the database file
//     itself (a read lock needs only read access) for as long as it is
//     open, and then checks that no connection has the database open (the
//     open byte of an existing -shm, read through a read-only descriptor);
//   - every read-write connection, after taking the open byte, checks
//     lockPrivate and refuses to start while a private reader holds it.
//
// Each takes its own lock before looking for the other's, so of a private
// reader and a writer opening at once at least one sees the other.
// Read-only connections that use the real -shm coexist with private
// readers: neither changes the files.

// lockPrivate is the byte of the database file that private readers hold
// shared. It lies far past any real data (the locks are advisory and do
// not stop reads or writes of the bytes).
const lockPrivate = 1 << 62

// openPrivate puts a read-only connection into private mode after shm.Open
// failed with cause, or fails with an error saying why it cannot.
func (p *Pager) openPrivate(cause error) error {
	fl := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: lockPrivate, Len: 1}
	if err := fcntlRetry(p.db.Fd(), common.OFDSetLk, &fl); err != nil {
		return fmt.Errorf("%s: cannot use the coordination file (%w) nor lock the database file to read without it: %v", p.path, cause, err)
	}
	path := p.path + "-shm"
	deadline := time.Now().Add(p.busy)
	sleep := time.Millisecond
	for {
		holders, inUse, err := shmInUse(p.fs, path)
		if err != nil {
			p.unlockPrivate()
			return fmt.Errorf("%s: cannot use the coordination file (%w), and cannot read it to check that no other process has the database open: %v", p.path, cause, err)
		}
		if !inUse {
			break
		}
		if time.Now().After(deadline) {
			p.unlockPrivate()
			return &inUseError{path: p.path, cause: cause,
				busy: &common.BusyError{Path: p.path, What: common.LockOpen, Holders: holders, PID: holderPID(holders)}}
		}
		time.Sleep(sleep)
		sleep = min(2*sleep, 50*time.Millisecond)
	}
	p.shm = shm.OpenPrivate(path)
	p.private = true
	p.log.Info("reading without the coordination file: no other process has the database open", "shm", path, "reason", cause.Error())
	return nil
}

// inUseError is the failure of a private read because another process
// has the database open. It is a busy error (errors.Is ErrBusy).
type inUseError struct {
	path  string
	cause error // why the coordination file cannot be used
	busy  *common.BusyError
}

func (e *inUseError) Error() string {
	who := "another process"
	if len(e.busy.Holders) > 0 {
		names := make([]string, len(e.busy.Holders))
		for i, h := range e.busy.Holders {
			names[i] = h.String()
		}
		who = strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s: database is open in %s, and this process cannot use its coordination file (%v); "+
		"it can read the database without one only while no other process has it open", e.path, who, e.cause)
}

func (e *inUseError) Unwrap() error { return e.busy }

func (p *Pager) unlockPrivate() {
	fl := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: lockPrivate, Len: 1}
	_ = fcntlRetry(p.db.Fd(), common.OFDSetLk, &fl)
}

// shmInUse reports whether any connection holds the open byte of the
// coordination file at path (absent: none) and, if so, who.
func shmInUse(fs vfs.FS, path string) ([]common.Holder, bool, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fl := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: shm.LockOpen, Len: 1}
	if err := fcntlRetry(f.Fd(), common.OFDGetLk, &fl); err != nil {
		return nil, false, fmt.Errorf("lock state of %s: %w", path, err)
	}
	if fl.Type == unix.F_UNLCK {
		return nil, false, nil
	}
	return procs.LockHolders(f, shm.LockOpen, true), true, nil
}

// waitPrivateReaders is the read-write side: called with the open byte
// held, it waits (up to the busy timeout) until no private reader holds the
// database file.
func (p *Pager) waitPrivateReaders() error {
	deadline := time.Now().Add(p.busy)
	sleep := time.Millisecond
	for {
		fl := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: lockPrivate, Len: 1}
		if err := fcntlRetry(p.db.Fd(), common.OFDGetLk, &fl); err != nil {
			return fmt.Errorf("lock state of %s: %w", p.path, err)
		}
		if fl.Type == unix.F_UNLCK {
			return nil
		}
		if time.Now().After(deadline) {
			holders := procs.LockHolders(p.db, lockPrivate, true)
			return &common.BusyError{Path: p.path, What: common.LockPrivateRead, Holders: holders, PID: holderPID(holders)}
		}
		time.Sleep(sleep)
		sleep = min(2*sleep, 50*time.Millisecond)
	}
}

// Private reports whether the connection reads without the shared
// coordination file (see openPrivate).
func (p *Pager) Private() bool { return p.private }

func holderPID(h []common.Holder) int {
	if len(h) == 0 {
		return 0
	}
	return h[0].PID
}

func fcntlRetry(fd uintptr, cmd int, fl *unix.Flock_t) error {
	for {
		err := unix.FcntlFlock(fd, cmd, fl)
		if err != unix.EINTR {
			return err
		}
	}
}
