package pager

import (
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

type cacheEntry struct {
	key  cacheKey
	data []byte
	ref  atomic.Bool // used since the clock hand last passed
}

// Cache is a page-count-bounded cache of page images with CLOCK
// (second-chance) replacement. A hit takes only the read lock and sets the
// entry's reference bit: every page access of every read goes through
// here, and an LRU list would need the write lock to move the entry.
type Cache struct {
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
}

func newCache(pages int) *Cache {
	if pages < 16 {
		pages = 16
	}
	return &Cache{capacity: pages, items: make(map[cacheKey]int, min(pages, 1<<16))}
}

func (c *Cache) get(k cacheKey) ([]byte, bool) {
	c.mu.RLock()
	if i, ok := c.items[k]; ok {
		e := c.slots[i]
		// read the entry under the lock: put replaces data when two
		// readers missed the same page at once
		data := e.data
		if !e.ref.Load() {
			e.ref.Store(true)
		}
		c.mu.RUnlock()
		c.hits.Add(1)
		return data, true
	}
	c.mu.RUnlock()
	c.misses.Add(1)
	return nil, false
}

func (c *Cache) put(k cacheKey, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.items[k]; ok {
		e := c.slots[i]
		e.data = data
		e.ref.Store(true)
		return
	}
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
}

// drop forgets k.
func (c *Cache) drop(k cacheKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i, ok := c.items[k]; ok {
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
