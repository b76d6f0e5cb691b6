package pager

import (
	"errors"
	"fmt"
	"io"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/shm"
	"github.com/sombradb/sombra/engine/internal/wal"
)

// Snapshot is a consistent read view: the database file overlaid with WAL
// frames [0, mark). mark 0 means the database file alone, which is used when
// every frame has already been copied back (so the log may be restarted
// under this reader without disturbing it).
type Snapshot struct {
	p      *Pager
	ix     *wal.Index
	mark   int
	salt   uint64
	epoch  uint64
	closed bool
}

// BeginRead starts a snapshot and registers its read mark so that no
// checkpoint in any process copies frames it cannot see into the file.
//
// In the steady state (the log unchanged since this connection last looked
// and no checkpoint or restart under way) it makes no system call: the
// connection keeps its read slot for its lifetime and publishes its mark in
// the mapped -shm under the reader fence (see shm.File.FenceBegin). When the
// log changed, or a fenced section overlaps, it falls back to the gate.
func (p *Pager) BeginRead() (*Snapshot, error) { return p.BeginReadInto(nil) }

// BeginReadInto is BeginRead building the snapshot in dst (nil: a new
// one), which must not hold a live snapshot: a caller that allocates an
// object per read transaction anyway (the engine's Tx) embeds the
// snapshot in it and saves an allocation per read.
func (p *Pager) BeginReadInto(dst *Snapshot) (*Snapshot, error) {
	p.mu.Lock()
	if s := p.beginFastLocked(dst); s != nil {
		p.mu.Unlock()
		p.fastBegins.Add(1)
		return s, nil
	}
	p.mu.Unlock()
	// The gate orders "pick a mark and publish it" against a checkpointer
	// computing the minimum mark.
	if err := p.lockGate(false); err != nil {
		return nil, err
	}
	defer p.unlockGate()
	p.mu.Lock()
	defer p.mu.Unlock()
	// Refresh even when the change counter did not move: a writer bumps it
	// only after its frames are in the file, and a checkpointer (whose
	// fenced section is what usually sends us here) may already be copying
	// those frames into the database file. A reader that did not see them
	// could take mark 0 and read the file while it is being overwritten;
	// after the refresh its mark covers every frame a copy can reach.
	c := p.shm.Counter()
	if err := p.refreshLocked(); err != nil {
		return nil, err
	}
	p.seenCounter = c
	s := p.newSnapshotLocked(dst)
	if err := p.registerLocked(s); err != nil {
		return nil, err
	}
	p.slowBegins.Add(1)
	return s, nil
}

// beginFastLocked is BeginRead without the gate: it returns nil when the
// log changed since the last refresh, when this connection has no read slot
// yet, or when a fenced section (checkpoint copy, log restart) began before
// or during it; the caller then takes the gate. The caller holds p.mu.
func (p *Pager) beginFastLocked(dst *Snapshot) *Snapshot {
	if p.slot < 0 || p.ix == nil {
		return nil
	}
	f1 := p.shm.Fence()
	if !shm.FenceIdle(f1) {
		return nil
	}
	c := p.shm.Counter()
	if c != p.seenCounter {
		return nil
	}
	s := p.newSnapshotLocked(dst)
	prev := p.slotMark
	p.publishLocked(s)
	// Re-validate after publishing: a fenced section that began before
	// this load may have read the read marks before our store, and a
	// commit or restart since the first counter load makes p.ix stale.
	if p.shm.Fence() != f1 || p.shm.Counter() != c {
		if p.slotMark != prev {
			// Raising the mark back is safe without the gate (see Close).
			p.shm.SetMark(p.slot, prev)
			p.slotMark = prev
		}
		p.freeSnapshot(s)
		return nil
	}
	p.readers = append(p.readers, s)
	return s
}

// newSnapshotLocked builds a snapshot of the log as p.ix knows it. The
// caller holds p.mu, and either the gate or a valid reader-fence word.
// dst, if not nil, is where it is built (see BeginReadInto).
func (p *Pager) newSnapshotLocked(dst *Snapshot) *Snapshot {
	// Read the backfill count before the epoch. A checkpoint (which does
	// not hold the gate while it publishes) bumps the epoch first and then
	// the backfill count, so a snapshot that sees the new count, and so
	// reads the database file alone, also sees the new epoch and never
	// gets a cached image of a page from before the checkpoint.
	backfill := p.shm.Backfill(p.ix.Header.Salt)
	s := p.allocSnapshot(dst)
	s.ix, s.mark, s.salt, s.epoch = p.ix, p.ix.MaxFrame, p.ix.Header.Salt, p.shm.Epoch()
	// A snapshot whose frames are all in the database file reads the file
	// alone (mark 0), which lets the WAL be restarted under it. Not while
	// another snapshot of this connection reads WAL frames, though: the
	// connection publishes only the minimum mark of its snapshots, and a
	// published 0 would tell other connections that nobody here needs the
	// log, so they could restart it under that other snapshot.
	if s.mark > 0 && backfill >= s.mark && !p.readsWALLocked() {
		s.mark = 0
	}
	return s
}

func (p *Pager) allocSnapshot(dst *Snapshot) *Snapshot {
	if dst == nil {
		return &Snapshot{p: p}
	}
	*dst = Snapshot{p: p}
	return dst
}

// freeSnapshot ends a snapshot that was never handed out or is closed.
func (p *Pager) freeSnapshot(s *Snapshot) { s.closed = true }

// readsWALLocked reports whether a live snapshot of this connection reads
// WAL frames (mark > 0). The caller holds p.mu.
func (p *Pager) readsWALLocked() bool {
	for _, r := range p.readers {
		if r.mark > 0 {
			return true
		}
	}
	return false
}

// publishLocked lowers the connection's published read mark to s's mark
// if s is its oldest snapshot. The caller holds p.mu and the slot.
func (p *Pager) publishLocked(s *Snapshot) {
	if len(p.readers) == 0 || s.mark < p.slotMark {
		p.shm.SetMark(p.slot, s.mark)
		p.slotMark = s.mark
	}
}

// registerLocked publishes s's mark in this connection's read slot, which
// holds the minimum mark of the connection's live snapshots. The slot is
// taken on first use and kept (marked Idle between reads) until Close, so a
// read costs no slot search. The caller holds the gate.
func (p *Pager) registerLocked(s *Snapshot) error {
	if p.slot < 0 {
		slot := -1
		for i := 0; i < shm.Slots; i++ {
			ok, err := p.shm.TryLock(shm.SlotLock(i), true)
			if err != nil {
				return err
			}
			if ok {
				slot = i
				break
			}
		}
		if slot < 0 {
			p.freeSnapshot(s)
			return fmt.Errorf("%s: all %d read slots are in use: %w", p.path, shm.Slots, common.ErrBusy)
		}
		p.slot, p.slotMark = slot, shm.Idle
		// The pid is written once per slot; tools read it to name readers.
		if err := p.shm.SetSlot(slot, p.pid, shm.Idle); err != nil {
			return err
		}
	}
	p.publishLocked(s)
	p.readers = append(p.readers, s)
	return nil
}

// Close ends the snapshot and lets checkpoints move past it.
func (s *Snapshot) Close() {
	if s.closed {
		return
	}
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.closed {
		return
	}
	for i, r := range p.readers {
		if r == s {
			last := len(p.readers) - 1
			p.readers[i] = p.readers[last]
			p.readers[last] = nil
			p.readers = p.readers[:last]
			break
		}
	}
	// Raise the published mark to the oldest remaining snapshot (or Idle)
	// so one long-lived connection does not pin the log. Raising is safe
	// without the gate: a checkpointer that reads the old value is merely
	// more conservative.
	m := shm.Idle
	for _, r := range p.readers {
		m = min(m, r.mark)
	}
	if m != p.slotMark {
		p.shm.SetMark(p.slot, m)
		p.slotMark = m
	}
	p.freeSnapshot(s)
}

// Mark is the number of WAL frames visible to the snapshot.
func (s *Snapshot) Mark() int { return s.mark }

// PageSize is the page size.
func (s *Snapshot) PageSize() int { return s.p.pageSize }

// Meta decodes page 0 as the snapshot sees it.
func (s *Snapshot) Meta() (*page.Meta, error) {
	b, err := s.Page(0)
	if err != nil {
		return nil, err
	}
	m, err := page.DecodeMeta(b)
	if err != nil {
		return nil, &common.CorruptionError{Path: s.p.path, Page: 0, Offset: 0, Reason: err.Error()}
	}
	return m, nil
}

// Page returns the image of page id as the snapshot sees it. The slice is
// shared and must not be modified.
func (s *Snapshot) Page(id common.PageID) ([]byte, error) {
	if s.closed {
		return nil, common.ErrTxClosed
	}
	if s.mark > 0 {
		s.p.mu.RLock()
		f, ok := s.ix.Lookup(id, s.mark)
		s.p.mu.RUnlock()
		if ok {
			return s.p.walPage(id, f, s.salt)
		}
	}
	return s.p.dbPage(id, s.epoch)
}

// Source reports where the snapshot reads page id from: a WAL frame
// (frame >= 0) or the database file (frame -1).
func (s *Snapshot) Source(id common.PageID) int {
	if s.mark > 0 {
		s.p.mu.RLock()
		defer s.p.mu.RUnlock()
		if f, ok := s.ix.Lookup(id, s.mark); ok {
			return f
		}
	}
	return -1
}

func (p *Pager) walPage(id common.PageID, frame int, salt uint64) ([]byte, error) {
	k := cacheKey{pg: id, frame: uint32(frame) + 1, gen: salt}
	if b, ok := p.cache.get(k); ok {
		return b, nil
	}
	b := make([]byte, p.pageSize)
	if err := wal.ReadPage(p.walf, p.pageSize, frame, b); err != nil {
		return nil, err
	}
	b, err := p.OpenRaw(id, b, p.walPath, wal.FrameOffset(p.pageSize, frame))
	if err != nil {
		return nil, err
	}
	if !page.Verify(b) {
		return nil, &common.CorruptionError{Path: p.walPath, Page: id, Offset: wal.FrameOffset(p.pageSize, frame), Reason: fmt.Sprintf("checksum mismatch in WAL frame %d", frame)}
	}
	if err := p.Validate(b); err != nil {
		return nil, &common.CorruptionError{Path: p.walPath, Page: id, Offset: wal.FrameOffset(p.pageSize, frame), Reason: fmt.Sprintf("WAL frame %d: %v", frame, err)}
	}
	p.cache.put(k, b)
	return b, nil
}

func (p *Pager) dbPage(id common.PageID, epoch uint64) ([]byte, error) {
	k := cacheKey{pg: id, gen: epoch}
	if b, ok := p.cache.get(k); ok {
		return b, nil
	}
	if b, ok, err := p.readAhead(id, epoch); ok || err != nil {
		return b, err
	}
	b := make([]byte, p.pageSize)
	off := int64(id) * int64(p.pageSize)
	if _, err := p.db.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &common.CorruptionError{Path: p.path, Page: id, Offset: off, Reason: "page lies beyond the end of the file (truncated?)"}
		}
		return nil, fmt.Errorf("read %s page %d: %w", p.path, id, err)
	}
	b, err := p.checkFilePage(id, b, off)
	if err != nil {
		return nil, err
	}
	p.cache.put(k, b)
	return b, nil
}

// RawDBPage reads page id from the database file without the cache or
// checksum verification (for integrity tools that report damage themselves).
// On an encrypted file the image is sealed (see OpenRaw).
func (p *Pager) RawDBPage(id common.PageID, dst []byte) error {
	_, err := p.db.ReadAt(dst[:p.pageSize], int64(id)*int64(p.pageSize))
	return err
}

// RawDBPages reads consecutive pages from first into dst (a multiple of the
// page size) from the database file in one read, without the cache or
// checksum verification, for scans that copy the whole file (backup). It
// returns the bytes read: fewer than len(dst), with io.EOF, where the file
// ends (pages past it live only in the WAL).
func (p *Pager) RawDBPages(first common.PageID, dst []byte) (int, error) {
	return p.db.ReadAt(dst, int64(first)*int64(p.pageSize))
}

// ReadFrame reads the page image of WAL frame i of the snapshot's log
// (sealed on an encrypted file, see OpenRaw).
func (s *Snapshot) ReadFrame(i int, dst []byte) error {
	return wal.ReadPage(s.p.walf, s.p.pageSize, i, dst)
}

// Frames returns the frame descriptors visible to the snapshot.
func (s *Snapshot) Frames() []wal.Frame {
	s.p.mu.RLock()
	defer s.p.mu.RUnlock()
	return append([]wal.Frame(nil), s.ix.Frames[:s.mark]...)
}

// Validate runs the structural check installed by the layer above
// (Options.Validate: the B+tree's page validator) on a page just read from
// disk; without one it accepts every page. A page can carry a valid
// checksum and still be garbage (written by a bug, or forged); it is
// checked once, before it enters the cache, so the tree code that reads
// cached pages never indexes out of bounds. Compaction checks the pages it
// reads back with it too.
func (p *Pager) Validate(b []byte) error {
	if p.validatePage == nil {
		return nil
	}
	return p.validatePage(b)
}
