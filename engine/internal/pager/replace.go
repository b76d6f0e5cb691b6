package pager

import (
	"fmt"
	"os"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/shm"
	"github.com/sombradb/sombra/engine/internal/wal"
	"github.com/sombradb/sombra/engine/vfs"
)

// ReleaseExclusive returns the open lock that ExclusiveLock took to the
// shared hold every connection keeps, so other connections may open the
// database again. Converting an OFD lock is atomic: there is no moment
// without a hold in which a compaction elsewhere could take the database.
func (p *Pager) ReleaseExclusive() error {
	ok, err := p.shm.TryLock(shm.LockOpen, false)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s: release the exclusive lock: %w", p.path, common.ErrBusy)
	}
	return nil
}

// OpenSnapshots is the number of read snapshots (transactions) of this
// connection that are open.
func (p *Pager) OpenSnapshots() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.readers)
}

// ReplaceFile renames the complete, fsynced database file tmp over this
// connection's database file and carries on with it: the connection's
// later reads and commits go to the new file and to a WAL that belongs to
// it. This is how compaction keeps the handle it was given usable.
//
// The caller holds the database exclusively (ExclusiveLock), has folded
// the WAL into the old file and built tmp from it as of LSN asOf.
// ReplaceFile takes this connection's writer lock and refuses with
// ErrBusy, leaving everything as it was, when a transaction of this
// connection is open or anything was committed since asOf (that commit is
// not in tmp), be it still in the WAL or already checkpointed.
func (p *Pager) ReplaceFile(tmp string, asOf common.LSN) error {
	if p.readOnly {
		return fmt.Errorf("%s: replace: %w", p.path, common.ErrReadOnly)
	}
	if !lockLocal(&p.writeMu, p.busy) {
		return &common.BusyError{Path: p.path, What: common.LockWriter, PID: os.Getpid()}
	}
	defer p.writeMu.Unlock()
	if err := p.shm.LockTimeout(shm.LockWriter, true, p.busy, common.LockWriter, shm.OffWriter, p.path); err != nil {
		return err
	}
	defer p.shm.Unlock(shm.LockWriter)
	if err := p.lockGate(true); err != nil {
		return err
	}
	defer p.unlockGate()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.readers) > 0 {
		return fmt.Errorf("%s: %d transactions of this connection are open: %w", p.path, len(p.readers), common.ErrBusy)
	}
	if err := p.refreshLocked(); err != nil {
		return err
	}
	if p.ix.Valid && p.ix.MaxFrame > 0 {
		return fmt.Errorf("%s: %d WAL frames were committed after the file was copied: %w", p.path, p.ix.MaxFrame, common.ErrBusy)
	}
	if cur, err := ReadFileHeader(p.db, p.path); err != nil {
		return err
	} else if cur.LastLSN != asOf {
		return fmt.Errorf("%s: committed up to LSN %d since the copy as of LSN %d: %w", p.path, cur.LastLSN, asOf, common.ErrBusy)
	}
	f, err := p.fs.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", tmp, err)
	}
	meta, err := ReadFileHeader(f, tmp)
	if err == nil && (meta.PageSize != uint32(p.pageSize) || meta.Encrypted != (p.cipher != nil)) {
		err = fmt.Errorf("%s: page size %d, encrypted %v; the database has %d, %v: %w", tmp, meta.PageSize,
			meta.Encrypted, p.pageSize, p.cipher != nil, common.ErrInvalid)
	}
	if err != nil {
		f.Close()
		return err
	}
	if err := p.fs.Rename(tmp, p.path); err != nil {
		f.Close()
		return fmt.Errorf("rename %s to %s: %w", tmp, p.path, err)
	}
	old := p.db
	p.db, p.fileID = f, meta.FileID
	// The WAL holds no frame; what is left of it (a header naming the
	// old file) is emptied, so the next commit starts a log of this file.
	if p.walSize > 0 {
		if err := p.walf.Truncate(0); err != nil {
			return p.setPoison(fmt.Errorf("truncate %s: %w", p.walPath, err))
		}
	}
	p.ix = wal.NewIndex(wal.Header{CkptSeq: p.ix.Header.CkptSeq + 1}, false, p.pageSize)
	p.walSize = 0
	// Cached images of the old file's pages are keyed by the epoch: a new
	// epoch retires them all.
	_ = p.shm.BumpEpoch()
	p.shm.BumpCounter()
	if err := old.Close(); err != nil {
		p.log.Warn("close the replaced database file", "path", p.path, "err", err)
	}
	if err := vfs.SyncParent(p.fs, p.path); err != nil {
		return p.setPoison(fmt.Errorf("fsync the directory of %s: %w", p.path, err))
	}
	p.log.Info("database file replaced", "path", p.path, "file_id", fmt.Sprintf("%016x", p.fileID))
	return nil
}
