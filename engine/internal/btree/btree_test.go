package btree

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

// memStore is an in-memory page store with a free list, enough to drive the
// tree without a pager.
type memStore struct {
	pages map[common.PageID][]byte
	next  common.PageID
	free  []common.PageID
}

func newMem() *memStore { return &memStore{pages: map[common.PageID][]byte{}, next: 1} }

func (m *memStore) Page(id common.PageID) ([]byte, error) {
	b, ok := m.pages[id]
	if !ok {
		return nil, fmt.Errorf("page %d missing", id)
	}
	return b, nil
}
func (m *memStore) Mut(id common.PageID) ([]byte, error) { return m.Page(id) }
func (m *memStore) Alloc(t page.Type) (common.PageID, []byte, error) {
	var id common.PageID
	if len(m.free) > 0 {
		id, m.free = m.free[len(m.free)-1], m.free[:len(m.free)-1]
	} else {
		id = m.next
		m.next++
	}
	b := make([]byte, 4096)
	page.SetType(b, t)
	m.pages[id] = b
	return id, b, nil
}
func (m *memStore) Free(id common.PageID) error {
	delete(m.pages, id)
	m.free = append(m.free, id)
	return nil
}

func key(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }

func TestTreeAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	s := newMem()
	var root common.PageID
	model := map[string][]byte{}
	var err error
	for op := 0; op < 60000; op++ {
		k := key(uint64(rng.IntN(5000)))
		switch rng.IntN(10) {
		case 0, 1, 2:
			root, _, err = Delete(s, root, k)
			delete(model, string(k))
		default:
			v := bytes.Repeat([]byte{byte(op)}, rng.IntN(40))
			if rng.IntN(200) == 0 {
				v = bytes.Repeat([]byte{byte(op)}, 3000+rng.IntN(9000)) // overflow
			}
			root, err = Put(s, root, k, v)
			model[string(k)] = v
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func() {
		keys := make([]string, 0, len(model))
		for k := range model {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		c := NewCursor(s, root)
		i := 0
		for ok := c.First(); ok; ok = c.Next() {
			if string(c.Key()) != keys[i] {
				t.Fatalf("cursor key %x, want %x", c.Key(), keys[i])
			}
			v, err := c.Value()
			if err != nil || !bytes.Equal(v, model[keys[i]]) {
				t.Fatalf("value mismatch at %x: %v", c.Key(), err)
			}
			i++
		}
		if i != len(keys) {
			t.Fatalf("cursor saw %d keys, want %d", i, len(keys))
		}
		i = len(keys) - 1
		for ok := c.Last(); ok; ok = c.Prev() {
			if string(c.Key()) != keys[i] {
				t.Fatalf("reverse cursor key %x, want %x", c.Key(), keys[i])
			}
			i--
		}
		if i != -1 {
			t.Fatalf("reverse cursor stopped at %d", i)
		}
		for _, k := range keys {
			v, ok, err := Get(s, root, []byte(k))
			if err != nil || !ok || !bytes.Equal(v, model[k]) {
				t.Fatalf("get %x: ok=%v err=%v", k, ok, err)
			}
		}
	}
	check()
	for k := range model {
		root, _, err = Delete(s, root, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(s.pages) != 1 {
		t.Fatalf("after deleting everything %d pages remain", len(s.pages))
	}
}

func TestSeek(t *testing.T) {
	s := newMem()
	var root common.PageID
	var err error
	for i := uint64(0); i < 3000; i += 2 {
		if root, err = Put(s, root, key(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	c := NewCursor(s, root)
	if !c.Seek(key(101)) || !bytes.Equal(c.Key(), key(102)) {
		t.Fatalf("seek 101 -> %x", c.Key())
	}
	if c.Seek(key(5000)) {
		t.Fatal("seek past end should be invalid")
	}
}

// AppendUint64Keys lists what ScanKeys lists, over many leaves and after
// deletions, and refuses a key that is not 8 bytes.
func TestAppendUint64Keys(t *testing.T) {
	s := newMem()
	var root common.PageID
	var err error
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 20000; i++ {
		if root, err = Put(s, root, key(rng.Uint64()>>20), bytes.Repeat([]byte{1}, rng.IntN(40))); err != nil {
			t.Fatal(err)
		}
	}
	var want []uint64
	if err := ScanKeys(s, root, nil, func(k []byte) bool { want = append(want, binary.BigEndian.Uint64(k)); return true }); err != nil {
		t.Fatal(err)
	}
	for _, k := range want[:len(want)/3] {
		if root, _, err = Delete(s, root, key(k)); err != nil {
			t.Fatal(err)
		}
	}
	want = want[len(want)/3:]
	got, err := AppendUint64Keys(s, root, []uint64{42})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want)+1 || got[0] != 42 {
		t.Fatalf("got %d keys after the prefix %v, want %d", len(got)-1, got[:1], len(want))
	}
	for i, k := range want {
		if got[i+1] != k {
			t.Fatalf("key %d: %d, want %d", i, got[i+1], k)
		}
	}
	if got, err := AppendUint64Keys[uint64](s, 0, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty tree: %v, %v", got, err)
	}
	if root, err = Put(s, root, []byte("short"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := AppendUint64Keys[uint64](s, root, nil); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}
