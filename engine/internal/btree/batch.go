package btree

import (
	"bytes"
	"fmt"

	"github.com/sombradb/sombra/engine/internal/common"
)

// PutSorted stores n key/value pairs, given by kv in ascending key order
// (no key twice), and returns the new root. It is Put for each pair, but
// a pair that falls in the key range of the leaf the previous pair went
// to, and fits there, is written straight into that leaf: no descent, no
// cell allocation. Sorted input thus costs one descent per leaf touched,
// not one per key, whatever the key layout.
//
// before, when not nil, is called before every descent, when no page slice
// is held: the caller's safe point to spill dirty pages (a spill forgets
// the in-memory copies, so the leaf is looked up again after it).
func PutSorted(w Writer, root common.PageID, n int, kv func(i int) (k, v []byte), before func() error) (common.PageID, error) {
	var (
		leaf   node // the leaf the previous pair went to, writable; nil if none
		from   int  // the previous pair's index in leaf: the next goes after it
		lo, hi []byte
		hasHi  bool
		err    error
	)
	ps := 0
	// openLeaf descends to the leaf that holds k and makes it writable,
	// remembering its key range (lo, hi) for the pairs that follow.
	openLeaf := func(k []byte) error {
		var id common.PageID
		var err error
		id, lo, hi, hasHi, err = descendFences(w, root, k, lo[:0], hi[:0])
		if err != nil {
			return err
		}
		b, err := w.Mut(id)
		if err != nil {
			return err
		}
		leaf, ps, from = node(b), len(b), 0
		return nil
	}
	for i := 0; i < n; i++ {
		k, v := kv(i)
		if len(k) == 0 || len(k) > MaxKey {
			return root, fmt.Errorf("key of %d bytes (1..%d allowed): %w", len(k), MaxKey, common.ErrInvalid)
		}
		if leaf == nil && root != 0 {
			if before != nil {
				if err := before(); err != nil {
					return root, err
				}
			}
			if err := openLeaf(k); err != nil {
				return root, err
			}
		}
		if leaf != nil && bytes.Compare(k, lo) >= 0 && (!hasHi || bytes.Compare(k, hi) < 0) {
			sz := 6 + len(k) + len(v)
			if sz <= inlineLimit(ps) && leaf.fits(sz) {
				j, eq := leaf.searchFrom(k, from)
				if !eq {
					leaf.insertLeafKV(j, k, v, sz)
					from = j + 1
					continue
				}
			}
		}
		// Outside the leaf's range, full, an overflow value or an existing
		// key: the general path (which may split), then descend afresh.
		leaf = nil
		if i > 0 && before != nil {
			if err := before(); err != nil {
				return root, err
			}
		}
		if root, err = Put(w, root, k, v); err != nil {
			return root, err
		}
		if i+1 < n {
			// The next key most likely lands in the leaf this one went to.
			nk, _ := kv(i + 1)
			if err := openLeaf(nk); err != nil {
				return root, err
			}
		}
	}
	return root, nil
}

// searchFrom is search for a key known to sort after every key below
// index from (the keys of a sorted batch only move forward through a
// leaf): it tries from itself, then searches the rest.
func (n node) searchFrom(k []byte, from int) (int, bool) {
	cnt := n.count()
	if from <= 0 || from > cnt {
		return n.search(k)
	}
	if from == cnt {
		return cnt, false
	}
	if c := bytes.Compare(n.key(from), k); c >= 0 {
		return from, c == 0
	}
	lo, hi := from+1, cnt
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(n.key(m), k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < cnt && bytes.Equal(n.key(lo), k)
}

// descendFences finds the leaf covering k and the key range it covers:
// keys >= lo and, when hasHi, < hi (the separators next to the path taken;
// the deepest ones are the tightest). lo and hi are appended to the given
// buffers, so they stay valid while pages change.
func descendFences(r Reader, root common.PageID, k, lo, hi []byte) (common.PageID, []byte, []byte, bool, error) {
	id := root
	hasHi := false
	for depth := 0; ; depth++ {
		if depth > 64 {
			return 0, lo, hi, false, &common.CorruptionError{Page: id, Offset: -1, Reason: "tree deeper than 64 levels (cycle?)"}
		}
		n, err := readNode(r, id)
		if err != nil {
			return 0, lo, hi, false, err
		}
		if n.isLeaf() {
			return id, lo, hi, hasHi, nil
		}
		ci := n.childIndex(k)
		if ci > 0 {
			lo = append(lo[:0], n.key(ci-1)...)
		}
		if ci < n.count() {
			hi = append(hi[:0], n.key(ci)...)
			hasHi = true
		}
		id = n.child(ci)
	}
}

// insertLeafKV writes the cell for k, v (sz bytes, inline) at index i of
// a leaf; the caller checked fits.
func (n node) insertLeafKV(i int, k, v []byte, sz int) {
	if n.gap() < sz+2 {
		n.defragment()
	}
	cnt := n.count()
	off := n.cellStart() - sz
	le.PutUint16(n[off:], uint16(len(k)))
	le.PutUint32(n[off+2:], uint32(len(v)))
	copy(n[off+6:], k)
	copy(n[off+6+len(k):], v)
	n.setCellStart(off)
	copy(n[hdrEnd+2*(i+1):hdrEnd+2*(cnt+1)], n[hdrEnd+2*i:hdrEnd+2*cnt])
	n.setSlot(i, off)
	n.setCount(cnt + 1)
}
