package pager

import (
	"github.com/sombradb/sombra/engine/internal/changelog"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/wal"
	"github.com/sombradb/sombra/engine/vfs"
)

// noteBackfill records in the change log (NAME.db-changes, when it exists)
// that frames [from, bound) of ix, i.e. the transactions with LSNs in
// (first LSN - 1, last LSN], were copied into the database file as pages.
// Incremental backups read it to find pages changed since their parent
// without scanning the file. It is called by backfill after the database
// file was fsynced and while the checkpoint lock is held, so appends from
// different processes never interleave. Failure is only logged: a missing
// record leaves a hole that the reader detects, and it then scans instead.
func (p *Pager) noteBackfill(ix *wal.Index, from, bound int, pages []common.PageID) {
	if from >= bound || len(pages) == 0 {
		return
	}
	p.mu.RLock()
	if bound > len(ix.Frames) {
		p.mu.RUnlock()
		return
	}
	lo := ix.Frames[from].LSN - 1
	hi := ix.Frames[bound-1].LSN
	p.mu.RUnlock()
	if err := changelog.Append(p.fs, p.path, p.fileID, lo, hi, pages); err != nil {
		p.log.Warn("change log append failed; the next incremental backup will scan", "path", p.path, "err", err)
	}
}

// SetBeforeRestart installs the hook called while a WAL is about to be
// reset, with the frames of the old log still readable (WAL archiving).
// Setting it through this method is safe while other goroutines use the
// connection: the field is read under p.mu.
func (p *Pager) SetBeforeRestart(fn func(ix *wal.Index, f vfs.File, pageSize int) error) {
	p.mu.Lock()
	p.beforeRestart = fn
	p.mu.Unlock()
}

// SetAfterCommit installs the hook called after every durable commit of
// this connection with the number of WAL frames not yet checkpointed (the
// auto-checkpoint). Set it before the connection is shared: commits read
// it without a lock.
func (p *Pager) SetAfterCommit(fn func(pending int)) { p.afterCommit = fn }
