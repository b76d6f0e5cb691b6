package pager

import (
	"container/list"
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
}

// Cache is a byte-bounded LRU of page images.
type Cache struct {
	mu       sync.Mutex
	capacity int // pages
	ll       *list.List
	items    map[cacheKey]*list.Element
	hits     atomic.Uint64
	misses   atomic.Uint64
}

func newCache(pages int) *Cache {
	if pages < 16 {
		pages = 16
	}
	return &Cache{capacity: pages, ll: list.New(), items: make(map[cacheKey]*list.Element, pages)}
}

func (c *Cache) get(k cacheKey) ([]byte, bool) {
	c.mu.Lock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		// read the entry under the lock: put replaces data when two
		// readers missed the same page at once
		data := e.Value.(*cacheEntry).data
		c.mu.Unlock()
		c.hits.Add(1)
		return data, true
	}
	c.mu.Unlock()
	c.misses.Add(1)
	return nil, false
}

func (c *Cache) put(k cacheKey, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		e.Value.(*cacheEntry).data = data
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{key: k, data: data})
	c.evict()
}

// drop forgets k.
func (c *Cache) drop(k cacheKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.Remove(e)
		delete(c.items, k)
	}
}

func (c *Cache) capacityPages() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.capacity
}

func (c *Cache) evict() {
	for c.ll.Len() > c.capacity {
		e := c.ll.Back()
		c.ll.Remove(e)
		delete(c.items, e.Value.(*cacheEntry).key)
	}
}

func (c *Cache) resize(pages int) {
	if pages < 16 {
		pages = 16
	}
	c.mu.Lock()
	c.capacity = pages
	c.evict()
	c.mu.Unlock()
}

// CacheStats are the cache counters.
type CacheStats struct {
	Hits, Misses   uint64
	Pages, MaxPage int
}

func (c *Cache) stats() CacheStats {
	c.mu.Lock()
	n, max := c.ll.Len(), c.capacity
	c.mu.Unlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Pages: n, MaxPage: max}
}
