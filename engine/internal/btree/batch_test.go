package btree

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

// TestPutSortedMatchesPut applies rounds of sorted batches (new keys,
// existing keys with larger, smaller and overflow values, sequential and
// scattered runs) to a tree that also takes single Puts, and checks the
// tree against a map and the node validator after every round.
func TestPutSortedMatchesPut(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	s := newMem()
	var root common.PageID
	model := map[string][]byte{}
	spills := 0
	before := func() error { spills++; return nil }
	next := uint64(1 << 40)
	for round := 0; round < 40; round++ {
		batch := map[string][]byte{}
		n := rng.IntN(3000)
		for i := 0; i < n; i++ {
			var k []byte
			switch rng.IntN(4) {
			case 0: // appended past every key (ids grow)
				k = key(next)
				next++
			default:
				k = key(uint64(rng.IntN(200000)))
			}
			v := bytes.Repeat([]byte{byte(i)}, rng.IntN(60))
			if rng.IntN(300) == 0 {
				v = bytes.Repeat([]byte{byte(i)}, 2000+rng.IntN(6000)) // overflow
			}
			batch[string(k)] = v
		}
		keys := make([]string, 0, len(batch))
		for k := range batch {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var err error
		root, err = PutSorted(s, root, len(keys), func(i int) ([]byte, []byte) {
			return []byte(keys[i]), batch[keys[i]]
		}, before)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range batch {
			model[k] = v
		}
		// a few single puts and deletes between batches
		for i := 0; i < 50; i++ {
			k := key(uint64(rng.IntN(200000)))
			if rng.IntN(2) == 0 {
				root, err = Put(s, root, k, []byte("x"))
				model[string(k)] = []byte("x")
			} else {
				root, _, err = Delete(s, root, k)
				delete(model, string(k))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		checkTree(t, s, root, model)
	}
	if spills == 0 {
		t.Fatal("before was never called")
	}
}

func checkTree(t *testing.T, s *memStore, root common.PageID, model map[string][]byte) {
	t.Helper()
	keys := make([]string, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	c := NewCursor(s, root)
	i := 0
	for ok := c.First(); ok; ok = c.Next() {
		if i >= len(keys) || string(c.Key()) != keys[i] {
			t.Fatalf("cursor key %x at %d, want %d keys", c.Key(), i, len(keys))
		}
		v, err := c.Value()
		if err != nil || !bytes.Equal(v, model[keys[i]]) {
			t.Fatalf("value mismatch at %x: %v", c.Key(), err)
		}
		i++
	}
	if c.Err() != nil || i != len(keys) {
		t.Fatalf("cursor saw %d keys, want %d (err %v)", i, len(keys), c.Err())
	}
	if _, err := Walk(s, root, func(common.PageID, page.Type) error { return nil }, func(p Problem) { t.Fatalf("walk: %v", p) }); err != nil {
		t.Fatal(err)
	}
}
