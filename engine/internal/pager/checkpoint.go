package pager

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/progress"
	"github.com/sombradb/sombra/engine/internal/shm"
	"github.com/sombradb/sombra/engine/internal/wal"
)

// CheckpointMode selects how hard a checkpoint tries (SQLite's four modes).
type CheckpointMode int

const (
	// Passive copies what it can without waiting for anyone.
	Passive CheckpointMode = iota
	// Full waits (up to the busy timeout) for the writer and for readers of
	// older snapshots, then copies every committed frame.
	Full
	// Restart is Full, then waits for every reader of the log to finish and
	// starts the log over from its beginning.
	Restart
	// Truncate is Restart, and also truncates the log file to zero bytes.
	Truncate
)

func (m CheckpointMode) String() string {
	return [...]string{"passive", "full", "restart", "truncate"}[m]
}

// CheckpointResult reports what a checkpoint did.
type CheckpointResult struct {
	Mode             CheckpointMode
	WALFrames        int   // committed frames in the log when it began
	Checkpointed     int   // frames now in the database file (cumulative)
	Copied           int   // pages written to the database file by this call
	WALSizeBefore    int64 // bytes
	WALSizeAfter     int64
	BlockedByReaders bool // readers of older snapshots kept frames back
	BlockedByWriter  bool // a writer held the log (full and stronger modes)
	Restarted        bool
	LSN              common.LSN // last LSN now in the database file
	Duration         time.Duration
}

// Checkpoint copies committed WAL frames back into the database file.
// Completed checkpoints, their time and the pages any checkpoint copied
// are added to the database-wide counters.
func (p *Pager) Checkpoint(mode CheckpointMode) (CheckpointResult, error) {
	return p.CheckpointContext(context.Background(), mode)
}

// CheckpointContext is Checkpoint, whose waits (for locks, the writer and
// readers) end when ctx is cancelled, with an error matching ctx.Err().
// Frames already copied stay copied: a checkpoint's partial work is
// consistent at every step.
func (p *Pager) CheckpointContext(ctx context.Context, mode CheckpointMode) (CheckpointResult, error) {
	res, err := p.checkpoint(ctx, mode)
	p.shm.Add(shm.CtrCheckpointPages, uint64(max(res.Copied, 0)))
	if err == nil {
		p.shm.Add(shm.CtrCheckpoints, 1)
		p.shm.Add(shm.CtrCheckpointNanos, uint64(max(res.Duration, 0)))
	}
	return res, err
}

func (p *Pager) checkpoint(ctx context.Context, mode CheckpointMode) (CheckpointResult, error) {
	start := time.Now()
	interrupted := func(what string) error {
		return fmt.Errorf("%s: checkpoint (%s) waiting for %s: %w", p.path, mode, what, progress.Interrupted(ctx))
	}
	res := CheckpointResult{Mode: mode}
	if p.readOnly {
		return res, fmt.Errorf("%s: checkpoint: %w", p.path, common.ErrReadOnly)
	}
	if err := p.poison(); err != nil {
		return res, err
	}
	wait := p.busy
	if mode == Passive {
		wait = 0
	}
	// Another goroutine of this connection may be checkpointing: two
	// backfills at once could write an older copy of a page over a newer
	// one after the newer backfill count was published.
	if !lockLocal(&p.ckptMu, wait) {
		return res, &common.BusyError{Path: p.path, What: common.LockCheckpoint, PID: os.Getpid()}
	}
	defer p.ckptMu.Unlock()
	if err := p.shm.LockContext(ctx, shm.LockCkpt, true, wait, common.LockCheckpoint, shm.OffCkpt, p.path); err != nil {
		return res, err
	}
	defer p.shm.Unlock(shm.LockCkpt)
	_ = p.shm.WriteU64(shm.OffCkpt, uint64(os.Getpid()))
	if mode >= Full {
		// Holding the writer lock means no frame is appended while we copy,
		// so "every frame" is well defined.
		if !p.writeMu.TryLock() {
			// Our own connection is writing; wait for it like any writer.
			deadline := time.Now().Add(p.busy)
			for !p.writeMu.TryLock() {
				if time.Now().After(deadline) {
					res.BlockedByWriter = true
					return res, &common.BusyError{Path: p.path, What: common.LockWriter, PID: os.Getpid()}
				}
				if ctx.Err() != nil {
					return res, interrupted("the writer")
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		defer p.writeMu.Unlock()
		if err := p.shm.LockContext(ctx, shm.LockWriter, true, p.busy, common.LockWriter, shm.OffWriter, p.path); err != nil {
			res.BlockedByWriter = true
			return res, err
		}
		defer p.shm.Unlock(shm.LockWriter)
	}
	deadline := time.Now().Add(wait)
	for {
		done, err := p.backfill(&res)
		if err != nil {
			return res, err
		}
		if done || mode == Passive {
			break
		}
		if time.Now().After(deadline) {
			res.Duration = time.Since(start)
			return res, &common.BusyError{Path: p.path, What: common.LockReader, PID: firstPID(p.otherReaders())}
		}
		if ctx.Err() != nil {
			res.Duration = time.Since(start)
			return res, interrupted("readers")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if mode >= Restart {
		for {
			ok, err := p.tryRestart(mode == Truncate)
			if err != nil {
				return res, err
			}
			if ok {
				res.Restarted = true
				break
			}
			if time.Now().After(deadline) {
				res.BlockedByReaders = true
				res.Duration = time.Since(start)
				return res, &common.BusyError{Path: p.path, What: common.LockReader, PID: firstPID(p.otherReaders())}
			}
			if ctx.Err() != nil {
				res.Duration = time.Since(start)
				return res, interrupted("readers")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	p.mu.RLock()
	res.WALSizeAfter = p.walSize
	p.mu.RUnlock()
	res.Duration = time.Since(start)
	return res, nil
}

// lockLocal takes mu, polling until wait has passed.
func lockLocal(mu *sync.Mutex, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for !mu.TryLock() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

func firstPID(pids []int) int {
	if len(pids) > 0 {
		return pids[0]
	}
	return 0
}

// backfill copies frames [backfilled, bound) into the database file, where
// bound is the oldest read mark of any live reader (or the end of the log).
// It reports whether every committed frame is now in the file.
func (p *Pager) backfill(res *CheckpointResult) (bool, error) {
	if err := p.lockGate(true); err != nil {
		return false, err
	}
	// The fence spans the mark loads, the copy and the publication of the
	// new backfill count and epoch, so a reader that publishes its mark
	// without the gate either is seen here or sees all of it (shm package).
	// The caller holds the checkpoint lock, so no other section can be open.
	p.shm.FenceBegin(true)
	defer p.shm.FenceEnd()
	p.mu.Lock()
	err := p.refreshLocked()
	ix := p.ix
	if res.WALSizeBefore == 0 {
		res.WALSizeBefore = p.walSize
		res.WALFrames = ix.MaxFrame
	}
	bound := ix.MaxFrame
	for _, r := range p.readers {
		bound = min(bound, r.mark)
	}
	var marks []int
	if err == nil {
		marks, err = p.shm.ActiveMarks(p.slot)
	}
	for _, m := range marks {
		bound = min(bound, m)
	}
	from := 0
	if ix.Valid {
		from = min(p.shm.Backfill(ix.Header.Salt), ix.MaxFrame)
	}
	// Everything needed from the index is taken while p.mu is held: other
	// goroutines of this connection append to it (Scan, appendFrames)
	// concurrently, and its page map must not be read while it is written.
	maxFrame, valid, salt := ix.MaxFrame, ix.Valid, ix.Header.Salt
	// The epoch the cached file images of this connection were read at
	// (the checkpoint lock keeps every other checkpoint out until ours
	// has published the next one).
	oldEpoch := p.shm.Epoch()
	type copyOp struct {
		pg    common.PageID
		frame int
	}
	var pages []common.PageID
	var copies []copyOp
	var lastLSN common.LSN
	if err == nil && valid && bound > from {
		pages = ix.PagesIn(from, bound)
		for _, pg := range pages {
			if f, ok := ix.Lookup(pg, bound); ok {
				copies = append(copies, copyOp{pg, f})
			}
		}
		for i := bound - 1; i >= 0; i-- {
			if ix.Frames[i].Commit {
				lastLSN = ix.Frames[i].LSN
				break
			}
		}
	}
	p.mu.Unlock()
	p.unlockGate()
	if err != nil {
		return false, err
	}
	res.Checkpointed = max(from, bound)
	if bound < maxFrame {
		res.BlockedByReaders = true
	} else {
		res.BlockedByReaders = false
	}
	if !valid || bound <= from {
		return from >= maxFrame, nil
	}
	// Readers that could see the database file's old copy of these pages
	// all have marks >= bound, so they read the frames instead; no reader
	// is looking at the bytes we are about to overwrite.
	// The frames must be durable before the database file changes: a commit
	// releases the writer lock before its fsync (and group commit delays
	// it), and after a power loss a database file holding some pages of a
	// transaction whose frames never reached the disk could not be repaired
	// from the log. (SQLite syncs the WAL before backfilling for the same
	// reason.)
	if len(copies) > 0 {
		if err := p.walf.Datasync(); err != nil {
			return false, fmt.Errorf("checkpoint: fsync %s: %w", p.walPath, err)
		}
	}
	buf := make([]byte, p.pageSize)
	var meta *page.Meta
	var header []byte // page 0's stamped image, written last
	for _, c := range copies {
		pg, f := c.pg, c.frame
		if err := p.readFrameChecked(pg, f, salt, buf); err != nil {
			return false, err
		}
		if pg == 0 {
			// Stamp checkpoint progress into the file's own header.
			m, err := page.DecodeMeta(buf)
			if err != nil {
				return false, &common.CorruptionError{Path: p.walPath, Page: 0, Offset: -1, Reason: err.Error()}
			}
			m.CheckpointLSN = lastLSN
			m.CheckpointTime = time.Now().UnixNano()
			m.Encode(buf)
			page.Seal(buf)
			meta = m
			header = append([]byte(nil), buf...)
			continue
		}
		if _, err := p.db.WriteAt(buf, int64(pg)*int64(p.pageSize)); err != nil {
			return false, fmt.Errorf("checkpoint: write %s page %d: %w", p.path, pg, err)
		}
		res.Copied++
	}
	if header != nil {
		// The stamp says "the log up to lastLSN is in this file" (a first
		// connection trusts it, see restoreProgress): it must not reach the
		// disk before the pages it covers.
		if err := p.db.Sync(); err != nil {
			return false, fmt.Errorf("checkpoint: fsync %s: %w", p.path, err)
		}
		if _, err := p.db.WriteAt(header, 0); err != nil {
			return false, fmt.Errorf("checkpoint: write %s page 0: %w", p.path, err)
		}
		res.Copied++
	}
	if meta != nil {
		// Compaction can shrink the logical file; drop pages past its end.
		if sz, err := p.DBFileSize(); err == nil && sz > int64(meta.PageCount)*int64(p.pageSize) {
			if err := p.db.Truncate(int64(meta.PageCount) * int64(p.pageSize)); err != nil {
				return false, fmt.Errorf("checkpoint: truncate %s: %w", p.path, err)
			}
		}
	}
	if err := p.db.Sync(); err != nil {
		return false, fmt.Errorf("checkpoint: fsync %s: %w", p.path, err)
	}
	p.noteBackfill(ix, from, bound, pages)
	// Publish progress; bump the epoch so cached database-file pages of
	// earlier epochs are never served to new snapshots.
	newEpoch := p.shm.NextEpoch()
	if newEpoch == oldEpoch+1 {
		// Nobody else changed the file meanwhile, and we know exactly
		// what we changed: carry this connection's cached images over to
		// the new epoch instead of letting every read after a checkpoint
		// go back to the disk.
		limit := common.PageID(math.MaxUint64)
		if meta != nil {
			limit = common.PageID(meta.PageCount)
		}
		frames := make([]cacheKey, 0, len(copies))
		for _, c := range copies {
			if c.pg != 0 { // the file's header is stamped: not the frame's image
				frames = append(frames, cacheKey{pg: c.pg, frame: uint32(c.frame) + 1, gen: salt})
			}
		}
		p.cache.carryOver(oldEpoch, newEpoch, limit, pages, frames, bound >= maxFrame)
	}
	if err := p.shm.SetBackfill(salt, bound); err != nil {
		return false, err
	}
	res.Checkpointed = bound
	res.LSN = lastLSN
	return bound >= maxFrame, nil
}

func (p *Pager) readFrameChecked(pg common.PageID, f int, salt uint64, buf []byte) error {
	b, err := p.walPage(pg, f, salt)
	if err != nil {
		return err
	}
	if p.cipher != nil && pg != 0 {
		// An encrypted frame is copied as sealed (opened and verified
		// just above); page 0 is plaintext and gets patched by the caller.
		return wal.ReadPage(p.walf, p.pageSize, f, buf)
	}
	copy(buf, b)
	return nil
}

// tryRestart resets the log if no reader uses it. The caller holds the
// writer and checkpoint locks.
func (p *Pager) tryRestart(truncate bool) (bool, error) {
	if err := p.lockGate(true); err != nil {
		return false, err
	}
	defer p.unlockGate()
	p.shm.FenceBegin(true) // the caller holds the checkpoint lock
	defer p.shm.FenceEnd()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.refreshLocked(); err != nil {
		return false, err
	}
	if p.ix.Valid && p.shm.Backfill(p.ix.Header.Salt) < p.ix.MaxFrame {
		return false, nil
	}
	for _, r := range p.readers {
		if r.mark > 0 {
			return false, nil
		}
	}
	marks, err := p.shm.ActiveMarks(p.slot)
	if err != nil {
		return false, err
	}
	for _, m := range marks {
		if m > 0 {
			return false, nil
		}
	}
	if !p.ix.Valid && !truncate {
		return true, nil
	}
	if err := p.restartLocked(truncate); err != nil {
		return false, err
	}
	return true, nil
}

// Status describes the log without changing anything.
type Status struct {
	WALSize           int64
	Frames            int
	Backfilled        int
	CheckpointPending bool
}

// CheckpointStatus reports the log's state.
func (p *Pager) CheckpointStatus() (Status, error) {
	st, err := p.WAL()
	if err != nil {
		return Status{}, err
	}
	return Status{WALSize: st.Size, Frames: st.Frames, Backfilled: st.Backfilled, CheckpointPending: st.Backfilled < st.Frames}, nil
}
