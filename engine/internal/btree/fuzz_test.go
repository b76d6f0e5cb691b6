package btree

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

// realPages builds a tree with a random workload and returns copies of its
// leaf and branch pages.
func realPages(t testing.TB, seed uint64, ops int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	s := newMem()
	var root common.PageID
	var err error
	for op := 0; op < ops; op++ {
		k := key(uint64(rng.IntN(3000)))
		if rng.IntN(4) == 0 {
			k = append(k, bytes.Repeat([]byte{'k'}, rng.IntN(300))...)
		}
		if rng.IntN(4) == 0 {
			root, _, err = Delete(s, root, k)
		} else {
			v := bytes.Repeat([]byte{byte(op)}, rng.IntN(60))
			if rng.IntN(50) == 0 {
				v = bytes.Repeat([]byte{1}, 900+rng.IntN(3000))
			}
			root, err = Put(s, root, k, v)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var out [][]byte
	for _, b := range s.pages {
		if typ := page.PageType(b); typ == page.TypeLeaf || typ == page.TypeBranch {
			out = append(out, bytes.Clone(b))
		}
	}
	// and pages of the bulk builder (compaction), from the same keys
	var keys [][]byte
	c := NewCursor(s, root)
	for ok := c.First(); ok; ok = c.Next() {
		keys = append(keys, bytes.Clone(c.Key()))
	}
	next := common.PageID(1)
	bld := NewBuilder(4096, 90, 1, func() common.PageID { next++; return next }, func(_ common.PageID, b []byte) error {
		if typ := page.PageType(b); typ == page.TypeLeaf || typ == page.TypeBranch {
			out = append(out, bytes.Clone(b))
		}
		return nil
	})
	for i, k := range keys {
		v := bytes.Repeat([]byte{byte(i)}, i%50)
		if i%97 == 0 {
			v = bytes.Repeat([]byte{2}, 1500)
		}
		if err := bld.Add(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bld.Finish(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Every page the tree writes passes the validator, after any mix of puts,
// in-place updates, deletes and splits.
func TestValidateRealPages(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		pages := realPages(t, seed, 20000)
		leaves, branches := 0, 0
		for _, b := range pages {
			if err := ValidateNode(b); err != nil {
				t.Fatalf("seed %d: real %s page rejected: %v", seed, page.PageType(b), err)
			}
			if node(b).isLeaf() {
				leaves++
			} else {
				branches++
			}
		}
		if leaves == 0 || branches == 0 {
			t.Fatalf("workload made %d leaves, %d branches", leaves, branches)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	var leaf, branch []byte
	for _, b := range realPages(t, 9, 5000) {
		// realPages comes from a map (random order): pick a leaf whose
		// first value is inline, or the "small value flagged as overflow"
		// case below changes nothing (its first cell is overflow already).
		if node(b).isLeaf() && node(b).count() > 3 && leaf == nil && le.Uint32(b[node(b).slot(0)+2:])&overflowFlag == 0 {
			leaf = b
		}
		if !node(b).isLeaf() && node(b).count() > 3 && branch == nil {
			branch = b
		}
	}
	cases := map[string]func(b []byte){
		"type":          func(b []byte) { page.SetType(b, page.TypeOverflow) },
		"right pointer": func(b []byte) { node(b).setRight(0); page.SetType(b, page.TypeBranch) },
		"count":         func(b []byte) { node(b).setCount(5000) },
		"cell start":    func(b []byte) { node(b).setCellStart(hdrEnd) },
		"slot past end": func(b []byte) { node(b).setSlot(0, len(b)-2) },
		"order": func(b []byte) {
			s0, s1 := node(b).slot(0), node(b).slot(1)
			node(b).setSlot(0, s1)
			node(b).setSlot(1, s0)
		},
		"key length": func(b []byte) { le.PutUint16(b[node(b).slot(1):], 0) },
		"overlap":    func(b []byte) { node(b).setSlot(2, node(b).slot(1)+1) },
		"frag":       func(b []byte) { node(b).setFrag(node(b).frag() + 7) },
	}
	for name, mut := range cases {
		for _, base := range [][]byte{leaf, branch} {
			b := bytes.Clone(base)
			mut(b)
			if err := ValidateNode(b); err == nil {
				t.Errorf("%s on %s page: accepted", name, page.PageType(base))
			}
		}
	}
	b := bytes.Clone(leaf)
	off := node(b).slot(0)
	le.PutUint32(b[off+2:], le.Uint32(b[off+2:])|overflowFlag)
	if ValidateNode(b) == nil {
		t.Error("small value flagged as overflow: accepted")
	}
}

type onePage struct {
	id common.PageID
	b  []byte
}

var errNoPage = errors.New("no such page")

func (o onePage) Page(id common.PageID) ([]byte, error) {
	if id == o.id {
		return o.b, nil
	}
	return nil, errNoPage
}

// FuzzValidateNode: the validator never panics, and when it accepts a page
// the node accessors, Get and a cursor over it never panic either.
func FuzzValidateNode(f *testing.F) {
	seen := map[page.Type]int{}
	for _, b := range realPages(f, 5, 4000) {
		typ := page.PageType(b)
		if seen[typ] < 3 {
			seen[typ]++
			f.Add(b)
		}
	}
	small := make([]byte, 256)
	initNode(small, page.TypeLeaf)
	node(small).insertCell(0, leafCell([]byte("a"), []byte("v"), 0, 0))
	node(small).insertCell(1, leafCell([]byte("b"), nil, 2000, 7))
	f.Add(small)
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		if ValidateNode(b) != nil {
			return
		}
		n := node(b)
		for i := 0; i < n.count(); i++ {
			k := n.key(i)
			_ = n.cell(i)
			if n.isLeaf() {
				n.leafValue(i)
				if j, eq := n.search(k); j != i || !eq {
					t.Fatalf("search(key %d) = %d %v", i, j, eq)
				}
			} else {
				_ = n.child(i)
				if ci := n.childIndex(k); ci != i+1 {
					t.Fatalf("childIndex(key %d) = %d", i, ci)
				}
			}
		}
		r := onePage{id: 1, b: b}
		c := NewCursor(r, 1)
		for ok := c.First(); ok; ok = c.Next() {
			_ = c.Key()
			c.Value()
		}
		for ok := c.Last(); ok; ok = c.Prev() {
			_ = c.Key()
		}
		c.Seek([]byte("m"))
		if n.count() > 0 {
			c.Seek(n.key(0))
			Get(r, 1, n.key(n.count()-1))
		}
		Get(r, 1, []byte{0})
		// mutating a copy through the tree must not panic either
		if n.isLeaf() {
			m := &memStore{pages: map[common.PageID][]byte{1: bytes.Clone(b)}, next: 2}
			Put(m, 1, []byte("zz"), []byte("v"))
			if n.count() > 0 {
				Delete(m, 1, n.key(0))
			}
		}
	})
}
