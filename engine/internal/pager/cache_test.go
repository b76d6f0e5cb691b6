package pager

import (
	"testing"

	"github.com/sombradb/sombra/engine/internal/common"
)

// The cache never holds more pages than its capacity, keeps pages that are
// used between evictions (second chance), and shrinks on resize.
func TestCacheClock(t *testing.T) {
	c := newCache(16)
	key := func(i int) cacheKey { return cacheKey{pg: common.PageID(i)} }
	hot := key(1000)
	c.put(hot, []byte{1})
	for i := 0; i < 200; i++ {
		c.put(key(i), []byte{byte(i)})
		if _, ok := c.get(hot); !ok {
			t.Fatalf("after %d puts the page used between every put was evicted", i+1)
		}
		if st := c.stats(); st.Pages > 16 {
			t.Fatalf("%d pages cached, capacity 16", st.Pages)
		}
	}
	if b, ok := c.get(key(199)); !ok || b[0] != 199 {
		t.Fatal("the newest page is missing")
	}
	c.put(key(199), []byte{7}) // replace in place
	if b, _ := c.get(key(199)); b[0] != 7 {
		t.Fatal("put did not replace the image")
	}
	c.resize(64)
	for i := 0; i < 64; i++ {
		c.put(key(500+i), []byte{0})
	}
	if st := c.stats(); st.Pages != 64 {
		t.Fatalf("%d pages after filling a cache of 64", st.Pages)
	}
	c.resize(16)
	if st := c.stats(); st.Pages != 16 || len(c.slots) != 16 {
		t.Fatalf("after shrinking to 16: %d pages in %d slots", st.Pages, len(c.slots))
	}
	for i := 0; i < 16; i++ {
		if _, ok := c.get(c.slots[i].key); !ok {
			t.Fatal("index out of step with the slots after compaction")
		}
	}
}

// The lock-free lookup table never answers for a key the cache no longer
// holds, whether it was evicted, dropped or replaced, nor with another
// key's image, including keys that share a table slot (database pages and
// WAL frames of the same page, pages a table size apart).
func TestCacheLookupTableFollowsTheMap(t *testing.T) {
	c := newCache(16) // a 32-slot table
	want := map[cacheKey]byte{}
	put := func(k cacheKey, v byte) { c.put(k, []byte{v}); want[k] = v }
	check := func(step int) {
		t.Helper()
		for k, v := range want {
			b, ok := c.get(k)
			_, inMap := c.items[k]
			if ok != inMap {
				t.Fatalf("step %d: get(%v) found=%v, but the map says %v", step, k, ok, inMap)
			}
			if ok && b[0] != v {
				t.Fatalf("step %d: get(%v) = %d, want %d", step, k, b[0], v)
			}
		}
	}
	for i := 0; i < 300; i++ {
		db := cacheKey{pg: common.PageID(i), gen: 1}
		put(db, byte(i))
		put(cacheKey{pg: common.PageID(i), frame: uint32(i) + 1, gen: 9}, byte(i+1))
		put(cacheKey{pg: common.PageID(i + 32), gen: 1}, byte(i+2))
		if i%5 == 0 {
			put(db, byte(i+3)) // replaced
		}
		if i%7 == 0 {
			c.drop(db)
			delete(want, db)
			if _, ok := c.get(db); ok {
				t.Fatalf("step %d: a dropped key is still answered", i)
			}
		}
		check(i)
	}
	c.resize(1000)
	check(1000)
	c.resize(16)
	check(16)
}

// Lock-free hits race with insertions, evictions, drops and resizes
// (run with -race).
func TestCacheConcurrentLookups(t *testing.T) {
	c := newCache(16)
	key := func(i int) cacheKey { return cacheKey{pg: common.PageID(i % 64), gen: uint64(i % 3)} }
	img := func(k cacheKey) byte { return byte(k.pg) ^ byte(k.gen<<6) }
	done := make(chan struct{})
	errs := make(chan string, 2)
	for r := 0; r < 2; r++ {
		go func() {
			defer func() { errs <- "" }()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				k := key(i * 7)
				if b, ok := c.get(k); ok && b[0] != img(k) {
					errs <- "wrong image"
					return
				}
			}
		}()
	}
	for i := 0; i < 20000; i++ {
		k := key(i)
		c.put(k, []byte{img(k)})
		switch i % 1000 {
		case 3:
			c.drop(key(i - 1))
		case 500:
			c.resize(16 + i%64)
		}
	}
	close(done)
	for r := 0; r < 2; r++ {
		if e := <-errs; e != "" {
			t.Fatal(e)
		}
	}
}
