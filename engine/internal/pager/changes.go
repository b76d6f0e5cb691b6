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
	if err := changelog.Append(p.fs, p.Path, p.fileID, lo, hi, pages); err != nil {
		p.log.Warn("change log append failed; the next incremental backup will scan", "path", p.Path, "err", err)
	}
}

// SetBeforeRestart installs the hook called before the WAL is reset (see
// Pager.BeforeRestart). Setting it through this method is safe while other
// goroutines use the connection: the field is read under p.mu.
func (p *Pager) SetBeforeRestart(fn func(ix *wal.Index, f vfs.File, pageSize int) error) {
	p.mu.Lock()
	p.BeforeRestart = fn
	p.mu.Unlock()
}
