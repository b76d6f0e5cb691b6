package pager

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/shm"
	"github.com/sombradb/sombra/engine/internal/wal"
)

// WriteTx is a write transaction: a snapshot of the latest commit plus a
// private set of dirty pages. Nothing reaches any file until Commit.
type WriteTx struct {
	p      *Pager
	snap   *Snapshot
	Meta   *page.Meta // the transaction's copy of page 0, written at commit
	dirty  map[common.PageID][]byte
	order  []common.PageID
	closed bool
}

// ErrPoisoned wraps the fsync failure that made a connection unusable.
var ErrPoisoned = errors.New("connection unusable after a failed fsync; reopen the database")

// BeginWrite takes the writer lock (waiting up to the busy timeout) and
// starts a write transaction on the latest committed state.
func (p *Pager) BeginWrite() (*WriteTx, error) {
	if p.readOnly {
		return nil, fmt.Errorf("%s: %w", p.Path, common.ErrReadOnly)
	}
	if err := p.poison(); err != nil {
		return nil, err
	}
	p.writeMu.Lock()
	if err := p.shm.LockTimeout(shm.LockWriter, true, p.busy, "writer", shm.OffWriter, p.Path); err != nil {
		p.writeMu.Unlock()
		return nil, err
	}
	_ = p.shm.WriteU64(shm.OffWriter, uint64(os.Getpid()))
	if err := p.maybeRestart(); err != nil {
		p.releaseWriter()
		return nil, err
	}
	snap, err := p.BeginRead()
	if err != nil {
		p.releaseWriter()
		return nil, err
	}
	meta, err := snap.Meta()
	if err != nil {
		snap.Close()
		p.releaseWriter()
		return nil, err
	}
	return &WriteTx{p: p, snap: snap, Meta: meta, dirty: make(map[common.PageID][]byte)}, nil
}

func (p *Pager) releaseWriter() {
	p.shm.Unlock(shm.LockWriter)
	p.writeMu.Unlock()
}

// maybeRestart starts the WAL over from its beginning when every frame has
// been checkpointed and no reader anywhere still reads from the log. The
// writer lock is held. Without this the log would grow forever.
func (p *Pager) maybeRestart() error {
	if err := p.lockGate(true); err != nil {
		return err
	}
	defer p.unlockGate()
	// Restarting under a reader that published its mark without the gate
	// is excluded by the reader fence (shm package).
	p.shm.FenceBegin(false)
	defer p.shm.FenceEnd()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.refreshLocked(); err != nil {
		return err
	}
	ix := p.ix
	if !ix.Valid || ix.MaxFrame == 0 || p.shm.Backfill(ix.Header.Salt) < ix.MaxFrame {
		return nil
	}
	for _, r := range p.readers {
		if r.mark > 0 {
			return nil
		}
	}
	marks, err := p.shm.ActiveMarks(p.slot)
	if err != nil {
		return err
	}
	for _, m := range marks {
		if m > 0 {
			return nil
		}
	}
	// A checkpoint of this connection may be copying frames right now (the
	// shm lock alone would not tell: it is ours too).
	if !p.ckptMu.TryLock() {
		return nil
	}
	defer p.ckptMu.Unlock()
	ok, err := p.shm.TryLock(shm.LockCkpt, true)
	if err != nil || !ok {
		return err
	}
	defer p.shm.Unlock(shm.LockCkpt)
	return p.restartLocked(false)
}

// restartLocked writes a fresh WAL header (new salt, next checkpoint
// sequence), optionally truncating the file to zero first. Frames of the old
// log become invalid because their salt no longer matches.
func (p *Pager) restartLocked(truncate bool) error {
	if p.BeforeRestart != nil && p.ix.Valid && p.ix.MaxFrame > 0 {
		if err := p.BeforeRestart(p.ix, p.walf, p.pageSize); err != nil {
			return fmt.Errorf("archive WAL before restart: %w", err)
		}
	}
	seq := p.ix.Header.CkptSeq + 1
	if truncate {
		if err := p.walf.Truncate(0); err != nil {
			return fmt.Errorf("truncate %s: %w", p.WALPath, err)
		}
		if err := p.walf.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", p.WALPath, err)
		}
		p.ix = wal.NewIndex(wal.Header{CkptSeq: seq}, false, p.pageSize)
		p.walSize = 0
	} else {
		h := wal.Header{PageSize: uint32(p.pageSize), CkptSeq: seq, Salt: randU64(), FileID: p.fileID}
		hb := h.Encode()
		if _, err := p.walf.WriteAt(hb, 0); err != nil {
			return fmt.Errorf("write %s header: %w", p.WALPath, err)
		}
		p.ix = wal.NewIndex(h, true, p.pageSize)
	}
	p.shm.BumpCounter()
	return p.shm.SetBackfill(p.ix.Header.Salt, 0)
}

// Page returns page id for reading: the dirty copy if the transaction
// changed it, else the snapshot's version.
func (t *WriteTx) Page(id common.PageID) ([]byte, error) {
	if b, ok := t.dirty[id]; ok {
		return b, nil
	}
	return t.snap.Page(id)
}

// Mut returns a writable copy of page id, registered as dirty.
func (t *WriteTx) Mut(id common.PageID) ([]byte, error) {
	if b, ok := t.dirty[id]; ok {
		return b, nil
	}
	src, err := t.snap.Page(id)
	if err != nil {
		return nil, err
	}
	b := make([]byte, len(src))
	copy(b, src)
	t.dirty[id] = b
	t.order = append(t.order, id)
	return b, nil
}

// Alloc returns a new zeroed dirty page, reusing a free page if there is one.
func (t *WriteTx) Alloc(typ page.Type) (common.PageID, []byte, error) {
	id, err := t.popFree()
	if err != nil {
		return 0, nil, err
	}
	if id == 0 {
		id = common.PageID(t.Meta.PageCount)
		t.Meta.PageCount++
	}
	b := make([]byte, t.p.usable)
	page.SetType(b, typ)
	if _, ok := t.dirty[id]; !ok {
		t.order = append(t.order, id)
	}
	t.dirty[id] = b
	return id, b, nil
}

// Free-list trunk page layout: [16:24] next trunk, [24:28] count, then
// count page numbers (8 bytes each).
const trunkHdr = 28

func (t *WriteTx) trunkCap() int { return (t.p.usable - trunkHdr) / 8 }

func (t *WriteTx) popFree() (common.PageID, error) {
	head := t.Meta.FreeHead
	if head == 0 {
		return 0, nil
	}
	b, err := t.Mut(head)
	if err != nil {
		return 0, err
	}
	if page.PageType(b) != page.TypeFreeList {
		return 0, &common.CorruptionError{Path: t.p.Path, Page: head, Offset: -1, Reason: "free-list head is not a free-list page"}
	}
	n := int(binary.LittleEndian.Uint32(b[24:]))
	t.Meta.FreeCount--
	if n == 0 {
		// The trunk itself is the last free page it describes.
		t.Meta.FreeHead = common.PageID(binary.LittleEndian.Uint64(b[16:]))
		clear(b)
		return head, nil
	}
	off := trunkHdr + 8*(n-1)
	id := common.PageID(binary.LittleEndian.Uint64(b[off:]))
	binary.LittleEndian.PutUint32(b[24:], uint32(n-1))
	if _, ok := t.dirty[id]; ok {
		clear(t.dirty[id])
	}
	return id, nil
}

// Free releases page id to the free list.
func (t *WriteTx) Free(id common.PageID) error {
	if id == 0 {
		return fmt.Errorf("free page 0: %w", common.ErrInvalid)
	}
	t.Meta.FreeCount++
	head := t.Meta.FreeHead
	if head != 0 {
		b, err := t.Mut(head)
		if err != nil {
			return err
		}
		n := int(binary.LittleEndian.Uint32(b[24:]))
		if n < t.trunkCap() {
			binary.LittleEndian.PutUint64(b[trunkHdr+8*n:], uint64(id))
			binary.LittleEndian.PutUint32(b[24:], uint32(n+1))
			return nil
		}
	}
	// The freed page becomes the new trunk.
	b := make([]byte, t.p.usable)
	page.SetType(b, page.TypeFreeList)
	binary.LittleEndian.PutUint64(b[16:], uint64(head))
	if _, ok := t.dirty[id]; !ok {
		t.order = append(t.order, id)
	}
	t.dirty[id] = b
	t.Meta.FreeHead = id
	return nil
}

// FreeListPages walks a free list from head and returns every free page
// (trunks included). Used by integrity checks and statistics.
func FreeListPages(get func(common.PageID) ([]byte, error), head common.PageID, limit uint64) ([]common.PageID, error) {
	var out []common.PageID
	seen := map[common.PageID]bool{}
	for head != 0 {
		if seen[head] || uint64(len(out)) > limit {
			return out, fmt.Errorf("free list loops at page %d", head)
		}
		seen[head] = true
		b, err := get(head)
		if err != nil {
			return out, err
		}
		if page.PageType(b) != page.TypeFreeList {
			return out, fmt.Errorf("free-list page %d has type %s", head, page.PageType(b))
		}
		out = append(out, head)
		n := int(binary.LittleEndian.Uint32(b[24:]))
		if trunkHdr+8*n > len(b) {
			return out, fmt.Errorf("free-list page %d claims %d entries", head, n)
		}
		for i := 0; i < n; i++ {
			out = append(out, common.PageID(binary.LittleEndian.Uint64(b[trunkHdr+8*i:])))
		}
		head = common.PageID(binary.LittleEndian.Uint64(b[16:]))
	}
	return out, nil
}

// Rollback discards the transaction.
func (t *WriteTx) Rollback() {
	if t.closed {
		return
	}
	t.closed = true
	t.snap.Close()
	t.p.releaseWriter()
}

// Dirty reports how many pages the transaction has changed.
func (t *WriteTx) Dirty() int { return len(t.dirty) }

// CommitInfo describes a durable commit.
type CommitInfo struct {
	LSN    common.LSN
	Frames int
	Time   time.Time
}

// Commit appends the transaction's pages to the WAL as one run of frames
// whose last frame is the commit frame, then makes it durable (fsync, or
// the group-commit syncer). The writer lock is released as soon as the
// frames are written so the next writer can proceed while we wait for the
// fsync under group commit.
func (t *WriteTx) Commit() (CommitInfo, error) {
	if t.closed {
		return CommitInfo{}, common.ErrTxClosed
	}
	t.closed = true
	p := t.p
	defer t.snap.Close()
	if len(t.dirty) == 0 {
		p.releaseWriter()
		return CommitInfo{LSN: t.Meta.LastLSN}, nil
	}
	now := time.Now()
	lsn := t.Meta.LastLSN + 1
	t.Meta.LastLSN = lsn
	m0, err := t.Mut(0)
	if err != nil {
		p.releaseWriter()
		return CommitInfo{}, err
	}
	t.Meta.Encode(m0)

	seq, info, err := p.appendFrames(t, lsn, now)
	p.releaseWriter()
	if err != nil {
		return CommitInfo{}, err
	}
	if err := p.sync(seq); err != nil {
		return CommitInfo{}, err
	}
	// Release our own read mark before the auto-checkpoint, or it would
	// hold the checkpoint one transaction behind forever.
	t.snap.Close()
	if p.AfterCommit != nil {
		st := p.pendingFrames()
		p.AfterCommit(st)
	}
	return info, nil
}

func (p *Pager) appendFrames(t *WriteTx, lsn common.LSN, now time.Time) (int64, CommitInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ix.Valid {
		if err := p.restartLocked(false); err != nil {
			return 0, CommitInfo{}, err
		}
	}
	ix := p.ix
	fsz := int(wal.FrameSize(p.pageSize))
	buf := make([]byte, fsz*len(t.order))
	frames := make([]wal.Frame, len(t.order))
	sum := ix.LastSum
	for i, id := range t.order {
		b := t.dirty[id]
		page.SetLSN(b, lsn)
		page.Seal(b)
		f := wal.Frame{Page: id, LSN: lsn, TxID: common.TxID(lsn)}
		if i == len(t.order)-1 {
			f.Commit, f.CommitTS = true, now.UnixNano()
		}
		fb := buf[i*fsz : (i+1)*fsz]
		copy(fb[wal.FrameHeaderSize:], p.SealRaw(id, b))
		sum = wal.EncodeFrame(fb, f, ix.Header.Salt, sum)
		frames[i] = f
	}
	off := wal.FrameOffset(p.pageSize, ix.MaxFrame)
	if _, err := p.walf.WriteAt(buf, off); err != nil {
		return 0, CommitInfo{}, fmt.Errorf("write %s: %w", p.WALPath, err)
	}
	first := ix.MaxFrame
	ix.Append(frames, sum)
	p.shm.BumpCounter()
	if end := off + int64(len(buf)); end > p.walSize {
		p.walSize = end
	}
	p.commitSeq++
	for i, id := range t.order {
		p.cache.put(cacheKey{pg: id, frame: uint32(first+i) + 1, gen: ix.Header.Salt}, t.dirty[id])
	}
	return p.commitSeq, CommitInfo{LSN: lsn, Frames: len(frames), Time: now}, nil
}

// sync makes the WAL durable up to commit number seq, directly or via
// group commit.
func (p *Pager) sync(seq int64) error {
	if g := p.group.Load(); g != nil {
		return g.wait(seq)
	}
	return p.fsyncWAL()
}

func (p *Pager) fsyncWAL() error {
	if err := p.walf.Datasync(); err != nil {
		// After a failed fsync the kernel may have dropped the dirty pages;
		// retrying could report success for lost data (the PostgreSQL
		// "fsyncgate" lesson). Refuse further writes on this connection.
		return p.setPoison(fmt.Errorf("fsync %s: %w: %w", p.WALPath, err, ErrPoisoned))
	}
	return nil
}

func (p *Pager) poison() error {
	p.poisonMu.Lock()
	defer p.poisonMu.Unlock()
	return p.poisoned
}

// setPoison records the first fsync failure and returns it.
func (p *Pager) setPoison(err error) error {
	p.poisonMu.Lock()
	defer p.poisonMu.Unlock()
	if p.poisoned == nil {
		p.poisoned = err
	}
	return err
}

func (p *Pager) pendingFrames() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.ix.Valid {
		return 0
	}
	return p.ix.MaxFrame - min(p.shm.Backfill(p.ix.Header.Salt), p.ix.MaxFrame)
}
