package pager

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/shm"
)

// Read-ahead. A cache miss on the database file reads the aligned window of
// readAheadPages pages around the page in one pread and caches the
// neighbours that verify, as the kernel's fault-around does for a mapped
// file: the trees are written in key order (sorted apply, compaction), so
// a tree's leaves lie next to each other and a random lookup that misses
// once would otherwise pay one system call per leaf. (Reading the file
// through mmap instead was measured on the development VM: a first touch
// of a mapped page cost more CPU than a pread, 4.7 vs 3.2 µs, and bounding
// the mapping's resident pages with madvise cost 50–100 µs per page.)
//
// The neighbours are speculative: they enter the cache unreferenced (the
// clock evicts them first unless a read wants them) and unchecked (their
// checksum and structure are checked on their first read, Cache.touch, so
// a page never used costs a copy and no checksum), and when few of them
// are ever read (a random working set larger than the cache) read-ahead
// turns itself off but for an occasional probe (readAheadState).
//
// Correctness: a neighbour is cached under the snapshot's epoch as the
// file's image of that page, although the snapshot itself might read the
// page from the WAL. That is exactly what dbPage would cache if any
// snapshot of this epoch asked for the page at this moment, provided no
// checkpoint was writing the file meanwhile; the checkpoint's copy runs
// inside a fenced section (shm), so the neighbours are kept only when the
// fence word was idle before the read and unchanged after it. The page
// asked for needs no such check (no checkpoint writes a page that a live
// snapshot reads from the file).
const readAheadPages = 8

// readAheadState decides whether misses read ahead, from how many of the
// speculative pages were read before they left the cache.
type readAheadState struct {
	inserted atomic.Uint64 // speculative pages cached (decayed)
	used     atomic.Uint64 // of them, read at least once (decayed)
	misses   atomic.Uint64 // misses while off, to probe now and then
}

const (
	// readAheadWarmup speculative pages are cached before the ratio counts.
	readAheadWarmup = 1024
	// Read-ahead stays on while at least 1 in readAheadMinUse speculative
	// pages is read.
	readAheadMinUse = 8
	// While off, one miss in readAheadProbe still reads ahead, so a
	// workload that changes turns it back on.
	readAheadProbe = 64
	// The counts are halved past readAheadDecay so they follow the
	// current workload.
	readAheadDecay = 1 << 16
)

func (r *readAheadState) enabled() bool {
	ins, used := r.inserted.Load(), r.used.Load()
	if ins < readAheadWarmup || used*readAheadMinUse >= ins {
		return true
	}
	return r.misses.Add(1)%readAheadProbe == 0
}

func (r *readAheadState) noteInserted(n uint64) {
	if r.inserted.Add(n) > readAheadDecay {
		// Racy halving is fine: the counts only steer a heuristic.
		r.inserted.Store(r.inserted.Load() / 2)
		r.used.Store(r.used.Load() / 2)
	}
}

// readAhead serves a miss on page id of the database file at epoch by
// reading its window. It returns ok false when it did not (read-ahead off,
// the page failing its checks); the caller then reads the page alone,
// which reports any damage. A failed or short read of the page itself is
// an error, as it is for the caller's read: an I/O error is never retried
// away.
func (p *Pager) readAhead(id common.PageID, epoch uint64) (_ []byte, ok bool, _ error) {
	// Encrypted pages are opened (and authenticated) as they are read,
	// which read-ahead would pay for pages never used: read them alone.
	if p.cipher != nil || !p.cache.ra.enabled() {
		return nil, false, nil
	}
	f1 := p.shm.Fence()
	ps := int64(p.pageSize)
	first := id &^ (readAheadPages - 1)
	bp, _ := p.raBufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
		*bp = make([]byte, readAheadPages*ps)
	}
	defer p.raBufs.Put(bp)
	buf := *bp
	n, err := p.db.ReadAt(buf, int64(first)*ps)
	if int64(n) < int64(id-first+1)*ps {
		// The page itself was not read: report it as the single read does.
		off := int64(id) * ps
		if err == nil || errors.Is(err, io.EOF) {
			return nil, false, &common.CorruptionError{Path: p.path, Page: id, Offset: off, Reason: "page lies beyond the end of the file (truncated?)"}
		}
		return nil, false, fmt.Errorf("read %s page %d: %w", p.path, id, err)
	}
	// Pages past a failed part of the window are not used.
	n -= n % int(ps)
	stable := shm.FenceIdle(f1) && p.shm.Fence() == f1
	at := int64(id-first) * ps
	want, err := p.checkFilePage(id, append([]byte(nil), buf[at:at+ps]...), int64(id)*ps)
	if err != nil {
		return nil, false, nil
	}
	var spec []specPage
	for i := int64(0); stable && i < int64(n)/ps; i++ {
		pg := first + common.PageID(i)
		raw := buf[i*ps : (i+1)*ps]
		k := cacheKey{pg: pg, gen: epoch}
		// Only pages of the same kind (leaf or branch) of the same tree
		// (page header bytes 12 and 13): those are what the next misses of
		// a lookup or scan of this tree want. The unverified header is
		// only a hint.
		if pg == id || raw[12] != want[12] || raw[13] != want[13] || p.cache.has(k) {
			continue
		}
		// Each page gets its own buffer (a cached page must not keep the
		// whole window alive), checked on its first read, if any
		// (Cache.touch).
		spec = append(spec, specPage{k, append([]byte(nil), raw...)})
	}
	p.cache.put(cacheKey{pg: id, gen: epoch}, want)
	if len(spec) > 0 {
		p.cache.putSpeculative(spec)
		p.cache.ra.noteInserted(uint64(len(spec)))
	}
	return want, true, nil
}

// specPage is a page read ahead, not yet cached.
type specPage struct {
	key  cacheKey
	data []byte
}

// checkFilePage opens (decrypts), verifies and validates the image b of
// page id read from the database file at offset off.
func (p *Pager) checkFilePage(id common.PageID, b []byte, off int64) ([]byte, error) {
	b, err := p.OpenRaw(id, b, p.path, off)
	if err != nil {
		return nil, err
	}
	if !page.Verify(b) {
		return nil, &common.CorruptionError{Path: p.path, Page: id, Offset: off, Reason: "checksum mismatch"}
	}
	if err := p.Validate(b); err != nil {
		return nil, &common.CorruptionError{Path: p.path, Page: id, Offset: off, Reason: err.Error()}
	}
	return b, nil
}
