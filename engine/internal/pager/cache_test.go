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
