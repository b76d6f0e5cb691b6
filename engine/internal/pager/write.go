package pager

import (
	"encoding/binary"
	"errors"
	"fmt"
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
	lsn    common.LSN // the LSN this transaction commits as

	spillLimit int // dirty pages above which MaybeSpill spills (see spillShare)
	budget     int // the cache budget in pages when the transaction began
	reserved   int // dirty pages reserved from the cache's budget (Cache.reserve)

	// Spill state: when the dirty pages outgrow the cache budget they are
	// written to the WAL as frames without a commit frame (see Spill). The
	// frames continue the log's checksum chain; Commit appends the rest and
	// the commit frame after them, so the whole run becomes one
	// transaction. Until then no index has them, so no reader sees them.
	spilled   map[common.PageID]int // page -> frame holding its newest spilled image
	spillRun  []wal.Frame           // every spilled frame, in log order
	spillBase int                   // frame number of the first spilled frame
	spillSum  uint32                // checksum chain after the last spilled frame
	spillSalt uint64

	// base and freed keep the header's space statistics (see stats.go):
	// each touched page's contribution at the start, and the pages freed.
	base  map[common.PageID]page.SpaceStats
	freed map[common.PageID]bool

	applying  bool      // a replicated transaction (BeginApply): no Replicator check
	applyTime time.Time // its commit time on the primary
}

// ErrPoisoned wraps the fsync failure that made a connection unusable
// (engine.ErrPoisoned).
var ErrPoisoned = common.ErrPoisoned

// BeginWrite takes the writer lock (waiting up to the busy timeout) and
// starts a write transaction on the latest committed state.
func (p *Pager) BeginWrite() (*WriteTx, error) {
	if p.readOnly {
		return nil, fmt.Errorf("%s: %w", p.path, common.ErrReadOnly)
	}
	if err := p.poison(); err != nil {
		return nil, err
	}
	p.writeMu.Lock()
	if err := p.shm.LockTimeout(shm.LockWriter, true, p.busy, common.LockWriter, shm.OffWriter, p.path); err != nil {
		p.writeMu.Unlock()
		return nil, err
	}
	_ = p.shm.WriteU64(shm.OffWriter, uint64(p.pid))
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
	return &WriteTx{p: p, snap: snap, Meta: meta, dirty: make(map[common.PageID][]byte), lsn: meta.LastLSN + 1,
		spillLimit: p.cache.capacityPages() * spillShare / 8, budget: p.cache.capacityPages(),
		base: make(map[common.PageID]page.SpaceStats), freed: make(map[common.PageID]bool)}, nil
}

func (p *Pager) releaseWriter() {
	p.shm.Unlock(shm.LockWriter)
	p.writeMu.Unlock()
}

// maybeRestart starts the WAL over from its beginning when every frame has
// been checkpointed and no reader anywhere still reads from the log. The
// writer lock is held. Without this the log would grow forever.
func (p *Pager) maybeRestart() error {
	// Fast path: when no connection touched the log since this one last
	// brought its index up to date (typically: this connection wrote the
	// last frame), the index is current and a restart is only possible
	// once every frame has been checkpointed. Skip the gate, the stat, the
	// header read and the scan.
	p.mu.Lock()
	if p.ix != nil && p.shm.Counter() == p.seenCounter && p.ix.Valid && p.shm.Backfill(p.ix.Header.Salt) < p.ix.MaxFrame {
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
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
	c := p.shm.Counter()
	if err := p.refreshLocked(); err != nil {
		return err
	}
	p.seenCounter = c
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
	if err := p.restartLocked(false); err != nil {
		return err
	}
	p.seenCounter = p.shm.Counter()
	return nil
}

// restartLocked writes a fresh WAL header (new salt, next checkpoint
// sequence), optionally truncating the file to zero first. Frames of the old
// log become invalid because their salt no longer matches.
func (p *Pager) restartLocked(truncate bool) error {
	if p.beforeRestart != nil && p.ix.Valid && p.ix.MaxFrame > 0 {
		if err := p.beforeRestart(p.ix, p.walf, p.pageSize); err != nil {
			return fmt.Errorf("archive WAL before restart: %w", err)
		}
	}
	seq := p.ix.Header.CkptSeq + 1
	if truncate {
		if err := p.walf.Truncate(0); err != nil {
			return fmt.Errorf("truncate %s: %w", p.walPath, err)
		}
		if err := p.walf.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", p.walPath, err)
		}
		p.ix = wal.NewIndex(wal.Header{CkptSeq: seq}, false, p.pageSize)
		p.walSize, p.walAlloc = 0, 0
	} else {
		h := wal.Header{PageSize: uint32(p.pageSize), CkptSeq: seq, Salt: randU64(), FileID: p.fileID}
		hb := h.Encode()
		if _, err := p.walf.WriteAt(hb, 0); err != nil {
			return fmt.Errorf("write %s header: %w", p.walPath, err)
		}
		// The new header must be on disk before any frame of the new log:
		// frames are written over the old log's, and if a power loss kept
		// a new frame but the old header, the old log's first frames
		// (already in the database file, and older than it) would scan as
		// committed again. One fdatasync per log cycle, as SQLite does.
		if err := p.walf.Datasync(); err != nil {
			return p.setPoison(fmt.Errorf("fsync %s header: %w: %w", p.walPath, err, ErrPoisoned))
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
	return t.cleanPage(id)
}

// cleanPage returns the transaction's newest image of a page that is not
// dirty: its spilled frame, or the snapshot's version.
func (t *WriteTx) cleanPage(id common.PageID) ([]byte, error) {
	if f, ok := t.spilled[id]; ok {
		return t.p.walPage(id, f, t.spillSalt)
	}
	return t.snap.Page(id)
}

// Mut returns a writable copy of page id, registered as dirty.
func (t *WriteTx) Mut(id common.PageID) ([]byte, error) {
	if b, ok := t.dirty[id]; ok {
		return b, nil
	}
	src, err := t.cleanPage(id)
	if err != nil {
		return nil, err
	}
	t.noteBase(id, src)
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
	t.noteBase(id, nil) // free or new at the start, unless touched before
	delete(t.freed, id)
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
		return 0, &common.CorruptionError{Path: t.p.path, Page: head, Offset: -1, Reason: "free-list head is not a free-list page"}
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
	if _, ok := t.base[id]; !ok {
		// An unreadable page (repair frees damaged ones) counts as
		// nothing; repair recounts the statistics (ResetStats).
		src, err := t.snap.Page(id)
		if err != nil {
			src = nil
		}
		t.noteBase(id, src)
	}
	t.freed[id] = true
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
	t.dropSpilled()
	t.unreserve()
	t.snap.Close()
	t.p.releaseWriter()
}

// spillShare is the share, in eighths, of the cache budget a write
// transaction's dirty pages may take before they spill. The engine's write
// buffer takes another eighth (see BudgetBytes), and the cache keeps the
// budget less the dirty pages: together they stay within about the budget.
const spillShare = 6

// BudgetBytes is the cache budget in bytes, as it was when the transaction
// began.
func (t *WriteTx) BudgetBytes() int { return t.budget * t.p.pageSize }

// reserve brings the cache's reservation up to date with the dirty pages.
func (t *WriteTx) reserve() {
	if d := len(t.dirty); d != t.reserved {
		t.p.cache.reserve(d - t.reserved)
		t.reserved = d
	}
}

// unreserve gives the transaction's reservation back to the cache.
func (t *WriteTx) unreserve() {
	if t.reserved != 0 {
		t.p.cache.reserve(-t.reserved)
		t.reserved = 0
	}
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
	// The dirty pages go to the cache as committed images (appendFrames):
	// the pages they reserved are the cache's again.
	t.unreserve()
	if len(t.dirty) == 0 && len(t.spillRun) == 0 {
		p.releaseWriter()
		return CommitInfo{LSN: t.Meta.LastLSN}, nil
	}
	if p.repl != nil && !t.applying {
		// Replication decides before anything is written: a replica or a
		// fenced primary must not commit even locally.
		if err := p.repl.BeforeCommit(); err != nil {
			t.dropSpilled()
			p.releaseWriter()
			return CommitInfo{}, err
		}
	}
	now := time.Now()
	if t.applying {
		// A replica keeps the primary's commit time.
		now = t.applyTime
	}
	lsn := t.lsn
	t.Meta.LastLSN = lsn
	if err := t.applyStats(); err != nil {
		t.dropSpilled()
		p.releaseWriter()
		return CommitInfo{}, err
	}
	m0, err := t.Mut(0)
	if err != nil {
		t.dropSpilled()
		p.releaseWriter()
		return CommitInfo{}, err
	}
	t.Meta.Encode(m0)

	seq, info, err := p.appendFrames(t, lsn, now)
	if err != nil {
		t.dropSpilled()
	}
	var done func(error) error
	if err == nil && p.repl != nil && !t.applying {
		// Under the writer lock: the replicator sees commits in LSN order.
		var img TxImage
		if img, err = t.image(info); err != nil {
			// The frames are written; without an image the stream would
			// miss this transaction. Poison: reopening resynchronises.
			err = p.setPoison(fmt.Errorf("collect the replicated image of LSN %d: %w: %w", lsn, err, ErrPoisoned))
		} else {
			done = p.repl.Committed(img)
		}
	}
	// (After the replicated image is taken.) The dirty pages are the cache's now (or lost with the commit): let
	// the cache's budget decide what stays in memory during the fsync and
	// the checkpoint that may follow, not the finished transaction.
	t.dirty, t.order, t.spilled, t.spillRun, t.base, t.freed = nil, nil, nil, nil, nil, nil
	p.releaseWriter()
	if err != nil {
		return CommitInfo{}, err
	}
	serr := p.sync(seq)
	if done != nil {
		if err := done(serr); err != nil && serr == nil {
			return info, err
		}
	}
	if serr != nil {
		return CommitInfo{}, serr
	}
	// Release our own read mark before the auto-checkpoint, or it would
	// hold the checkpoint one transaction behind forever.
	t.snap.Close()
	if p.afterCommit != nil {
		p.afterCommit(p.pendingFrames())
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
	first, sum := ix.MaxFrame, ix.LastSum
	if len(t.spillRun) > 0 {
		first, sum = t.spillBase+len(t.spillRun), t.spillSum
	}
	fsz := int(wal.FrameSize(p.pageSize))
	// The frames are encoded and written commitBatch at a time, in log
	// order with the commit frame last: a large transaction's frames are
	// never all in memory twice (dirty pages and their frames). A crash
	// between two writes leaves frames without a commit frame, which no
	// scan takes for a transaction (as a spill's).
	nb := min(len(t.order), commitBatch)
	// One spare frame header past the commit: see invalidateAfter.
	buf := make([]byte, fsz*nb, fsz*nb+wal.FrameHeaderSize)
	frames := make([]wal.Frame, len(t.order))
	// The change counter is bumped before the write and again after it.
	// Before: a process killed after writing would otherwise leave frames
	// (even a commit frame) that a connection trusting the unchanged
	// counter does not know about and would write over, under a reader
	// of another process that scanned them. After: a connection that
	// scanned while the write was under way sees the counter move again
	// and scans once more.
	p.shm.BumpCounter()
	for start := 0; start < len(t.order); start += nb {
		ids := t.order[start:min(start+nb, len(t.order))]
		b := buf[:fsz*len(ids)]
		for j, id := range ids {
			i := start + j
			f := wal.Frame{Page: id, LSN: lsn, TxID: common.TxID(lsn)}
			if i == len(t.order)-1 {
				f.Commit, f.CommitTS = true, now.UnixNano()
			}
			sum = p.encodeFrame(b[j*fsz:(j+1)*fsz], t.dirty[id], f, ix.Header.Salt, sum)
			frames[i] = f
		}
		off := wal.FrameOffset(p.pageSize, first+start)
		if start+len(ids) == len(t.order) {
			b = p.invalidateAfter(b, off)
		}
		p.preallocate(off + int64(len(b)))
		if _, err := p.walf.WriteAt(b, off); err != nil {
			return 0, CommitInfo{}, fmt.Errorf("write %s: %w", p.walPath, err)
		}
		if end := off + int64(len(b)); end > p.walSize {
			p.walSize = end
		}
	}
	p.shm.Add(shm.CtrWALFrames, uint64(len(frames)))
	p.shm.Add(shm.CtrWALBytes, uint64(len(buf)))
	all := frames
	if len(t.spillRun) > 0 {
		all = append(t.spillRun, frames...)
	}
	ix.Append(all, sum)
	p.shm.BumpCounter()
	// The writer lock is held, so nobody else changed the log since this
	// connection's index was current: the next BeginWrite of this
	// connection need not look at the file (see maybeRestart).
	p.seenCounter = p.shm.Counter()
	p.commitSeq++
	for i, id := range t.order {
		p.cache.put(cacheKey{pg: id, frame: uint32(first+i) + 1, gen: ix.Header.Salt}, t.dirty[id])
	}
	return p.commitSeq, CommitInfo{LSN: lsn, Frames: len(all), Time: now}, nil
}

// commitBatch is how many frames a commit encodes and writes at a time.
const commitBatch = 256

// encodeFrame stamps and checksums page b, then fills fb (one frame) with
// frame f and b's on-disk image, continuing the checksum chain from sum.
func (p *Pager) encodeFrame(fb, b []byte, f wal.Frame, salt uint64, sum uint32) uint32 {
	page.SetLSN(b, f.LSN)
	page.Seal(b)
	copy(fb[wal.FrameHeaderSize:], p.SealRaw(f.Page, b))
	return wal.EncodeFrame(fb, f, salt, sum)
}

// invalidateAfter extends buf, the frames to be written at off, with a
// zeroed frame header when the file holds bytes past them. Those bytes
// may be frames of this log's generation that never committed (a spill
// that was rolled back or killed, a torn commit): their salt matches but
// their checksums chain from frames that were overwritten, so a scan would
// take them for damage. A zero salt ends every scan cleanly there instead.
// The header lies in the block the last frame ends in (or the next), so
// the same fdatasync covers it. The caller holds p.mu.
func (p *Pager) invalidateAfter(buf []byte, off int64) []byte {
	end := off + int64(len(buf))
	if end >= p.walSize {
		return buf
	}
	n := len(buf)
	buf = buf[:n+wal.FrameHeaderSize]
	clear(buf[n:])
	return buf
}

// walChunk is the step by which the WAL's disk space is reserved ahead of
// the frames written into it.
const walChunk = 4 << 20

// preallocate reserves disk space for the log up to end (rounded up to
// walChunk) without changing the file's size (FALLOC_FL_KEEP_SIZE), so
// that appending frames does not allocate blocks under the fdatasync of
// every commit. Space is only ever a hint: file systems without fallocate
// simply allocate on write. The caller holds p.mu.
func (p *Pager) preallocate(end int64) {
	if end <= p.walAlloc {
		return
	}
	to := (end + walChunk - 1) / walChunk * walChunk
	if err := fallocateKeepSize(p.walf, p.walAlloc, to-p.walAlloc); err != nil {
		p.walAlloc = end // do not retry for every commit
		return
	}
	p.walAlloc = to
}

// MaybeSpill spills the dirty pages to the WAL (see Spill) when they
// exceed the cache budget (as it was when the transaction began). Callers
// invoke it between operations, never while they hold a page slice they
// are still going to modify.
func (t *WriteTx) MaybeSpill() error {
	if len(t.dirty) <= t.spillLimit {
		if len(t.dirty) > t.reserved+64 || len(t.dirty) < t.reserved {
			t.reserve() // in steps, not a lock per page
		}
		return nil
	}
	defer t.reserve()
	// Spill the older half (in order of first change) and keep the pages
	// changed last: random inserts then find more of their leaves still
	// dirty, and fewer pages are written to the log again and again.
	return t.spill(len(t.order) / 2)
}

// Spill writes every dirty page but page 0 to the WAL as frames of this
// transaction without a commit frame, and forgets the in-memory copies
// (their images stay in the page cache, where they can be evicted). The
// transaction reads them back from the log; Commit appends the commit
// frame after them. Nothing makes them visible before that: a scan stops
// at the last commit frame, so after a crash or a rollback nothing of the
// transaction survives, and the next commit writes over the frames.
// Nothing is fsynced here.
func (t *WriteTx) Spill() error { return t.spill(len(t.order)) }

// spill spills the first n pages of t.order (page 0 stays dirty).
func (t *WriteTx) spill(n int) error {
	if t.closed {
		return common.ErrTxClosed
	}
	p := t.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(t.spillRun) == 0 {
		if !p.ix.Valid {
			if err := p.restartLocked(false); err != nil {
				return err
			}
		}
		t.spillBase, t.spillSum, t.spillSalt = p.ix.MaxFrame, p.ix.LastSum, p.ix.Header.Salt
		t.spilled = make(map[common.PageID]int)
	}
	// Another connection that finds the counter unchanged would not
	// re-read the file's size and would not know these frames exist (see
	// invalidateAfter). Bump it before writing anything.
	p.shm.BumpCounter()
	p.seenCounter = p.shm.Counter()
	ids := make([]common.PageID, 0, n)
	keep := make([]common.PageID, 0, len(t.order)-n+1)
	for i, id := range t.order {
		if i < n && id != 0 {
			ids = append(ids, id)
		} else {
			keep = append(keep, id)
		}
	}
	fsz := int(wal.FrameSize(p.pageSize))
	const batch = 256
	buf := make([]byte, fsz*batch, fsz*batch+wal.FrameHeaderSize)
	for len(ids) > 0 {
		n := min(batch, len(ids))
		first := t.spillBase + len(t.spillRun)
		sum := t.spillSum
		frames := make([]wal.Frame, n)
		for i, id := range ids[:n] {
			frames[i] = wal.Frame{Page: id, LSN: t.lsn, TxID: common.TxID(t.lsn)}
			sum = p.encodeFrame(buf[i*fsz:(i+1)*fsz], t.dirty[id], frames[i], t.spillSalt, sum)
		}
		off := wal.FrameOffset(p.pageSize, first)
		out := p.invalidateAfter(buf[:n*fsz], off)
		p.preallocate(off + int64(len(out)))
		if _, err := p.walf.WriteAt(out, off); err != nil {
			return fmt.Errorf("spill to %s: %w", p.walPath, err)
		}
		p.shm.Add(shm.CtrWALFrames, uint64(n))
		p.shm.Add(shm.CtrWALBytes, uint64(len(out)))
		if end := off + int64(len(out)); end > p.walSize {
			p.walSize = end
		}
		for i, id := range ids[:n] {
			t.spilled[id] = first + i
			p.cache.put(cacheKey{pg: id, frame: uint32(first+i) + 1, gen: t.spillSalt}, t.dirty[id])
			delete(t.dirty, id)
		}
		t.spillRun = append(t.spillRun, frames...)
		t.spillSum = sum
		ids = ids[n:]
	}
	t.order = keep
	return nil
}

// Spilled reports how many frames the transaction has spilled to the WAL.
func (t *WriteTx) Spilled() int { return len(t.spillRun) }

// dropSpilled removes the cached images of the transaction's spilled
// frames when it ends without committing them. The next commit writes
// other pages into those frame numbers under the same salt, and the cache
// must never answer for a frame with an image the log no longer holds.
func (t *WriteTx) dropSpilled() {
	for i, f := range t.spillRun {
		t.p.cache.drop(cacheKey{pg: f.Page, frame: uint32(t.spillBase+i) + 1, gen: t.spillSalt})
	}
	t.spillRun, t.spilled = nil, nil
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
		return p.setPoison(fmt.Errorf("fsync %s: %w: %w", p.walPath, err, ErrPoisoned))
	}
	return nil
}

func (p *Pager) poison() error {
	p.poisonMu.Lock()
	defer p.poisonMu.Unlock()
	return p.poisoned
}

// setPoison records the first fsync failure and returns it, wrapping
// ErrPoisoned so that every caller can tell why the connection refuses.
func (p *Pager) setPoison(err error) error {
	if !errors.Is(err, ErrPoisoned) {
		err = fmt.Errorf("%w: %w", err, ErrPoisoned)
	}
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
