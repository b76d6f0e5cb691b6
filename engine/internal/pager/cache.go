package pager

import (
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/sombradb/sombra/engine/internal/common"
)

// cacheKey names one immutable version of a page: a WAL frame of one log
// generation, or the database file's copy at one checkpoint epoch. Because
// every version is immutable, cached images never need invalidating; stale
// versions simply stop being asked for and age out.
type cacheKey struct {
	pg    common.PageID
	frame uint32 // WAL frame + 1; 0 for the database file
	gen   uint64 // WAL salt, or database-file epoch when frame == 0
}

// slot is the key's position in the lookup table. Pages of the database
// file (frame 0) map to consecutive positions, so a file no larger than the
// table has no collisions among them; WAL frames are spread by a
// multiplicative hash of the frame number.
func (k cacheKey) slot() uint64 {
	return uint64(k.pg) ^ uint64(k.frame)*0x9E3779B97F4A7C15
}

// cacheEntry is immutable once published (put replaces an entry rather
// than changing it), so a reader that loaded it from the lookup table may
// use its data without a lock.
type cacheEntry struct {
	key  cacheKey
	data []byte
	ref  atomic.Bool // used since the clock hand last passed
	// spec marks a page read ahead (readahead.go) that no read has asked
	// for yet; the first read clears it and counts the read-ahead useful.
	spec atomic.Bool
}

// lookupTable is a direct-mapped index over the cached entries: one slot
// per position, each holding the last entry published there. It is a hint,
// not the authority (the map is): a slot may hold a colliding key's entry,
// or be empty, and then get falls back to the map.
type lookupTable struct {
	mask  uint64
	slots []atomic.Pointer[cacheEntry]
}

func newLookupTable(pages int) *lookupTable {
	// twice the capacity, a power of two, so the file's pages rarely share
	// a slot with each other or with WAL frames
	n := 1 << bits.Len(uint(max(pages, 16)*2-1))
	return &lookupTable{mask: uint64(n - 1), slots: make([]atomic.Pointer[cacheEntry], n)}
}

func (t *lookupTable) at(k cacheKey) *atomic.Pointer[cacheEntry] { return &t.slots[k.slot()&t.mask] }

// Cache is a page-count-bounded cache of page images with CLOCK
// (second-chance) replacement. Every page access of every read goes
// through get, so a hit takes no lock and hashes nothing: it loads one
// slot of a direct-mapped lookup table and compares the key (the map and
// its lock were a third of a warm point lookup). Misses, insertions and
// evictions take the mutex and keep the map, the clock and the table in
// step.
type Cache struct {
	tab      atomic.Pointer[lookupTable]
	mu       sync.RWMutex
	capacity int           // pages
	slots    []*cacheEntry // the clock; nil slots are free
	free     []int         // indexes of nil slots
	hand     int
	items    map[cacheKey]int // key -> index in slots
	// reserved pages of the budget are held by the connection's write
	// transaction as dirty pages: the cache keeps capacity-reserved
	// pages, so that dirty and cached pages together stay within it.
	reserved int
	hits     atomic.Uint64
	misses   atomic.Uint64
	ra       readAheadState
	// check verifies a page read ahead on its first read (see touch).
	check func(b []byte) bool
}

func newCache(pages int) *Cache {
	if pages < 16 {
		pages = 16
	}
	c := &Cache{capacity: pages, items: make(map[cacheKey]int, min(pages, 1<<16))}
	c.tab.Store(newLookupTable(pages))
	return c
}

func (c *Cache) get(k cacheKey) ([]byte, bool) {
	e := c.tab.Load().at(k).Load()
	if e == nil || e.key != k {
		if e = c.lookup(k); e == nil {
			c.misses.Add(1)
			return nil, false
		}
	}
	if !e.ref.Load() && !c.touch(e) {
		// A page read ahead that fails its checks: forget it, and let
		// the caller read it alone and report the damage.
		c.drop(k)
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return e.data, true
}

// lookup finds k through the map (the lookup table is only a hint) and
// publishes it in the table: it lost its slot to a colliding key.
func (c *Cache) lookup(k cacheKey) *cacheEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i, ok := c.items[k]
	if !ok {
		return nil
	}
	e := c.slots[i]
	c.tab.Load().at(k).Store(e)
	return e
}

// touch sets e's reference bit (the caller saw it clear). A speculative
// entry (a page read ahead, readahead.go) starts unreferenced, so its first
// read always comes through here: the page is checked now, not when it
// was read ahead, so pages read ahead and never used cost no checksum, and
// its first read counts for read-ahead. Readers racing on the same entry
// may each check it; the checks are pure.
func (c *Cache) touch(e *cacheEntry) bool {
	if e.spec.Load() {
		if c.check != nil && !c.check(e.data) {
			return false
		}
		if e.spec.CompareAndSwap(true, false) {
			c.ra.used.Add(1)
		}
	}
	e.ref.Store(true)
	return true
}

// has reports whether k is cached.
func (c *Cache) has(k cacheKey) bool {
	if e := c.tab.Load().at(k).Load(); e != nil && e.key == k {
		return true
	}
	c.mu.RLock()
	_, ok := c.items[k]
	c.mu.RUnlock()
	return ok
}

// putSpeculative caches pages read ahead (readahead.go): unreferenced and
// marked speculative, and never in place of an entry already cached.
func (c *Cache) putSpeculative(pages []specPage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sp := range pages {
		if _, ok := c.items[sp.key]; ok {
			continue
		}
		c.insertLocked(sp.key, sp.data).spec.Store(true)
	}
}

func (c *Cache) put(k cacheKey, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.items[k]; ok {
		t := c.tab.Load()
		// A new entry, not a changed one: readers hold entries without
		// the lock.
		old := c.slots[i]
		e := &cacheEntry{key: k, data: data}
		e.ref.Store(true)
		c.slots[i] = e
		if !t.at(k).CompareAndSwap(old, e) {
			t.at(k).Store(e)
		}
		return
	}
	c.insertLocked(k, data)
}

// insertLocked adds an entry for k, which the cache does not hold. The
// caller holds the write lock.
func (c *Cache) insertLocked(k cacheKey, data []byte) *cacheEntry {
	if len(c.items) >= c.limit() {
		c.evictTo(c.limit() - 1)
	}
	// A new entry starts unreferenced: it earns its second chance by being
	// read again, so one scan over many pages does not push out the pages
	// every lookup uses (the upper levels of the trees).
	e := &cacheEntry{key: k, data: data}
	var i int
	if n := len(c.free); n > 0 {
		i = c.free[n-1]
		c.free = c.free[:n-1]
		c.slots[i] = e
	} else {
		i = len(c.slots)
		c.slots = append(c.slots, e)
	}
	c.items[k] = i
	c.tab.Load().at(k).Store(e)
	return e
}

// carryOver moves cached database-file images from epoch old to epoch
// new after a checkpoint that changed exactly the pages in written: an
// image of any other page below limit (the file's length afterwards) is
// still what the file holds, so its entry is re-keyed in place; a written
// page's new content is the image of the WAL frame it was copied from (in
// frames), cached under the new epoch as well when this connection has it.
// Without this, a checkpoint emptied the cache of the file's pages.
//
// With moveFrames (the checkpoint copied the whole log) the frame's entry
// itself becomes the file's, instead of a second entry sharing its image:
// the next write restarts the log, and until then only a snapshot that
// began before the checkpoint reads those frames (a miss costs it a read
// of the log). Two entries per page image halved the cache after a large
// transaction: after a 200K-node bulk load most node leaves had been
// pushed out of a 256 MiB cache by the duplicates.
func (c *Cache) carryOver(old, new uint64, limit common.PageID, written []common.PageID, frames []cacheKey, moveFrames bool) {
	skip := make(map[common.PageID]bool, len(written))
	for _, pg := range written {
		skip[pg] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tab.Load()
	for i, e := range c.slots {
		if e == nil || e.key.frame != 0 || e.key.gen != old || e.key.pg >= limit || skip[e.key.pg] {
			continue
		}
		nk := cacheKey{pg: e.key.pg, gen: new}
		if _, dup := c.items[nk]; dup {
			continue
		}
		ne := &cacheEntry{key: nk, data: e.data}
		ne.ref.Store(e.ref.Load())
		c.unpublish(e)
		delete(c.items, e.key)
		c.items[nk] = i
		c.slots[i] = ne
		t.at(nk).Store(ne)
	}
	for _, fk := range frames {
		i, ok := c.items[fk]
		if !ok || fk.pg >= limit {
			continue
		}
		nk := cacheKey{pg: fk.pg, gen: new}
		if _, dup := c.items[nk]; dup {
			continue
		}
		if !moveFrames {
			c.insertLocked(nk, c.slots[i].data)
			continue
		}
		e := c.slots[i]
		ne := &cacheEntry{key: nk, data: e.data}
		ne.ref.Store(e.ref.Load())
		c.unpublish(e)
		delete(c.items, fk)
		c.items[nk] = i
		c.slots[i] = ne
		t.at(nk).Store(ne)
	}
}

// unpublish clears e's table slot if it still holds e. The caller holds
// the write lock. A reader that loaded e just before may still return its
// image, which is correct: images are immutable.
func (c *Cache) unpublish(e *cacheEntry) {
	c.tab.Load().at(e.key).CompareAndSwap(e, nil)
}

// drop forgets k.
func (c *Cache) drop(k cacheKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.items[k]; ok {
		c.unpublish(c.slots[i])
		delete(c.items, k)
		c.slots[i] = nil
		c.free = append(c.free, i)
	}
}

// limit is the number of pages the cache keeps: the budget less the
// pages a write transaction reserved, but never fewer than 16 (the upper
// levels of the trees). The caller holds the lock.
func (c *Cache) limit() int { return max(16, c.capacity-c.reserved) }

// reserve moves n pages of the budget to (n < 0: back from) the write
// transaction's dirty pages, evicting what no longer fits.
func (c *Cache) reserve(n int) {
	c.mu.Lock()
	c.reserved = max(0, c.reserved+n)
	if len(c.items) > c.limit() {
		c.evictTo(c.limit())
	}
	c.mu.Unlock()
}

func (c *Cache) capacityPages() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.capacity
}

// evictTo removes entries until at most n remain: the clock hand sweeps
// the slots, clearing reference bits, and evicts the first entry whose bit
// is already clear. The caller holds the write lock.
func (c *Cache) evictTo(n int) {
	for len(c.items) > n {
		if c.hand >= len(c.slots) {
			c.hand = 0
		}
		e := c.slots[c.hand]
		switch {
		case e == nil:
		case e.ref.Load():
			e.ref.Store(false)
		default:
			c.unpublish(e)
			delete(c.items, e.key)
			c.slots[c.hand] = nil
			c.free = append(c.free, c.hand)
		}
		c.hand++
	}
	if len(c.items) == 0 {
		c.slots, c.free, c.hand = c.slots[:0], c.free[:0], 0
	}
}

func (c *Cache) resize(pages int) {
	if pages < 16 {
		pages = 16
	}
	c.mu.Lock()
	c.capacity = pages
	c.evictTo(c.limit())
	if len(c.slots) > 2*pages {
		// compact the clock after a large shrink so it does not keep
		// sweeping (and holding) mostly free slots
		live := make([]*cacheEntry, 0, len(c.items))
		for _, e := range c.slots {
			if e != nil {
				c.items[e.key] = len(live)
				live = append(live, e)
			}
		}
		c.slots, c.free, c.hand = live, nil, 0
	}
	// A table sized for the new capacity, filled with the live entries.
	// Readers still on the old table find entries that may have been
	// evicted since; their images are still correct.
	t := newLookupTable(pages)
	for _, e := range c.slots {
		if e != nil {
			t.at(e.key).Store(e)
		}
	}
	c.tab.Store(t)
	c.mu.Unlock()
}

// CacheStats are the cache counters.
type CacheStats struct {
	Hits, Misses   uint64
	Pages, MaxPage int
}

func (c *Cache) stats() CacheStats {
	c.mu.RLock()
	n, max := len(c.items), c.capacity
	c.mu.RUnlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Pages: n, MaxPage: max}
}
