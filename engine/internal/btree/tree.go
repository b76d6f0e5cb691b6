package btree

import (
	"fmt"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

// Reader gives read access to pages.
type Reader interface {
	Page(id common.PageID) ([]byte, error)
}

// Writer gives a write transaction's page operations.
type Writer interface {
	Reader
	Mut(id common.PageID) ([]byte, error)
	Alloc(typ page.Type) (common.PageID, []byte, error)
	Free(id common.PageID) error
}

func readNode(r Reader, id common.PageID) (node, error) {
	b, err := r.Page(id)
	if err != nil {
		return nil, err
	}
	t := page.PageType(b)
	if t != page.TypeLeaf && t != page.TypeBranch {
		return nil, &common.CorruptionError{Page: id, Offset: -1, Reason: fmt.Sprintf("expected a B+tree page, found %s", t)}
	}
	return node(b), nil
}

// Get returns the value stored under k in the tree rooted at root.
func Get(r Reader, root common.PageID, k []byte) ([]byte, bool, error) {
	if root == 0 {
		return nil, false, nil
	}
	id := root
	var b bounds
	for depth := 0; ; depth++ {
		if depth > 64 {
			return nil, false, &common.CorruptionError{Page: id, Offset: -1, Reason: "tree deeper than 64 levels (cycle?)"}
		}
		n, err := readNode(r, id)
		if err != nil {
			return nil, false, err
		}
		if n.isLeaf() {
			i, eq := n.searchIn(k, b)
			if !eq {
				return nil, false, nil
			}
			v, err := value(r, n, i)
			return v, err == nil, err
		}
		ci := n.childIndexIn(k, b)
		b = b.narrow(n, ci)
		id = n.child(ci)
	}
}

func value(r Reader, n node, i int) ([]byte, error) {
	v, ov, total, first := n.leafValue(i)
	if !ov {
		return v, nil
	}
	// Grow as pages arrive rather than trusting the stored length up front:
	// a damaged cell could otherwise make us allocate up to 2 GiB.
	out := make([]byte, 0, min(total, 1<<20))
	for id := first; len(out) < total; {
		if id == 0 {
			return nil, &common.CorruptionError{Page: id, Offset: -1, Reason: "overflow chain ends early"}
		}
		b, err := r.Page(id)
		if err != nil {
			return nil, err
		}
		if page.PageType(b) != page.TypeOverflow {
			return nil, &common.CorruptionError{Page: id, Offset: -1, Reason: "expected an overflow page"}
		}
		used := int(le.Uint32(b[24:]))
		if used > len(b)-ovHdr || used == 0 {
			return nil, &common.CorruptionError{Page: id, Offset: -1, Reason: "bad overflow length"}
		}
		out = append(out, b[ovHdr:ovHdr+used]...)
		id = common.PageID(le.Uint64(b[16:]))
	}
	if len(out) != total {
		return nil, &common.CorruptionError{Page: first, Offset: -1, Reason: "overflow chain longer than value"}
	}
	return out, nil
}

// OverflowPages lists the overflow chain of leaf cell i (for integrity checks).
func overflowPages(r Reader, first common.PageID, total int) ([]common.PageID, error) {
	var out []common.PageID
	for id, got := first, 0; got < total; {
		if id == 0 || len(out) > total {
			return out, fmt.Errorf("overflow chain from page %d is broken", first)
		}
		b, err := r.Page(id)
		if err != nil {
			return out, err
		}
		out = append(out, id)
		got += int(le.Uint32(b[24:]))
		id = common.PageID(le.Uint64(b[16:]))
	}
	return out, nil
}

func writeOverflow(w Writer, v []byte) (common.PageID, error) {
	var first, prev common.PageID
	var prevBuf []byte
	for len(v) > 0 {
		id, b, err := w.Alloc(page.TypeOverflow)
		if err != nil {
			return 0, err
		}
		n := copy(b[ovHdr:], v)
		le.PutUint32(b[24:], uint32(n))
		v = v[n:]
		if prev == 0 {
			first = id
		} else {
			le.PutUint64(prevBuf[16:], uint64(id))
		}
		prev, prevBuf = id, b
	}
	return first, nil
}

func freeOverflow(w Writer, n node, i int) error {
	_, ov, total, first := n.leafValue(i)
	if !ov {
		return nil
	}
	pages, err := overflowPages(w, first, total)
	if err != nil {
		return err
	}
	for _, id := range pages {
		if err := w.Free(id); err != nil {
			return err
		}
	}
	return nil
}

type step struct {
	id  common.PageID
	idx int // child index taken
}

// Put stores v under k and returns the (possibly new) root.
func Put(w Writer, root common.PageID, k, v []byte) (common.PageID, error) {
	if len(k) == 0 || len(k) > MaxKey {
		return root, fmt.Errorf("key of %d bytes (1..%d allowed): %w", len(k), MaxKey, common.ErrInvalid)
	}
	if root == 0 {
		id, b, err := w.Alloc(page.TypeLeaf)
		if err != nil {
			return 0, err
		}
		initNode(b, page.TypeLeaf)
		root = id
	}
	rb, err := w.Page(root)
	if err != nil {
		return root, err
	}
	var cell []byte
	if 6+len(k)+len(v) > inlineLimit(len(rb)) {
		first, err := writeOverflow(w, v)
		if err != nil {
			return root, err
		}
		cell = leafCell(k, nil, len(v), first)
	} else {
		cell = leafCell(k, v, 0, 0)
	}
	path, err := descend(w, root, k)
	if err != nil {
		return root, err
	}
	leafID := path[len(path)-1].id
	b, err := w.Mut(leafID)
	if err != nil {
		return root, err
	}
	n := node(b)
	i, eq := n.search(k)
	if eq {
		// In place when the new cell is no larger than the old one.
		off := n.slot(i)
		old := n.cellSize(off)
		if err := freeOverflow(w, n, i); err != nil {
			return root, err
		}
		if len(cell) <= old {
			copy(n[off:], cell)
			n.setFrag(n.frag() + old - len(cell))
			return root, nil
		}
		n.removeCell(i)
	}
	return insert(w, root, path, len(path)-1, i, cell)
}

func descend(r Reader, root common.PageID, k []byte) ([]step, error) {
	var path []step
	id := root
	for {
		if len(path) > 64 {
			return nil, &common.CorruptionError{Page: id, Offset: -1, Reason: "tree deeper than 64 levels (cycle?)"}
		}
		n, err := readNode(r, id)
		if err != nil {
			return nil, err
		}
		if n.isLeaf() {
			return append(path, step{id: id}), nil
		}
		ci := n.childIndex(k)
		path = append(path, step{id: id, idx: ci})
		id = n.child(ci)
	}
}

// insert puts cell at index i of path[level], splitting upwards as needed.
func insert(w Writer, root common.PageID, path []step, level, i int, cell []byte) (common.PageID, error) {
	id := path[level].id
	b, err := w.Mut(id)
	if err != nil {
		return root, err
	}
	n := node(b)
	if n.fits(len(cell)) {
		n.insertCell(i, cell)
		return root, nil
	}
	cells := n.cellsWith(i, cell)
	leaf := n.isLeaf()
	m := splitPoint(cells)
	if i == len(cells)-1 && len(cells) >= 3 {
		// Appending past the last key (ids grow): keep this page full and
		// start the next one, instead of leaving two half-empty pages
		// behind every sequential insert.
		m = len(cells) - 1
		if !leaf {
			m = len(cells) - 2
		}
	}
	rid, rb, err := w.Alloc(page.PageType(n))
	if err != nil {
		return root, err
	}
	rn := initNode(rb, page.PageType(n))
	var sep []byte
	if leaf {
		n.rebuild(cells[:m])
		rn.rebuild(cells[m:])
		sep = append([]byte(nil), cellKey(cells[m], true)...)
	} else {
		mid := cells[m]
		sep = append([]byte(nil), cellKey(mid, false)...)
		rn.setRight(n.right())
		rn.rebuild(cells[m+1:])
		n.setRight(common.PageID(le.Uint64(mid[2:])))
		n.rebuild(cells[:m])
	}
	if level == 0 {
		nid, nb, err := w.Alloc(page.TypeBranch)
		if err != nil {
			return root, err
		}
		nr := initNode(nb, page.TypeBranch)
		nr.insertCell(0, branchCell(sep, id))
		nr.setRight(rid)
		return nid, nil
	}
	// The parent pointed at id for this key range; now id covers keys
	// below sep and rid the rest.
	parent := path[level-1]
	pb, err := w.Mut(parent.id)
	if err != nil {
		return root, err
	}
	node(pb).setChild(parent.idx, rid)
	return insert(w, root, path, level-1, parent.idx, branchCell(sep, id))
}

// splitPoint picks the index where the right half starts, balancing bytes.
func splitPoint(cells [][]byte) int {
	total := 0
	for _, c := range cells {
		total += len(c) + 2
	}
	acc := 0
	for i, c := range cells {
		acc += len(c) + 2
		if acc*2 >= total {
			if i+1 >= len(cells) {
				return len(cells) - 1
			}
			return max(i+1, 1)
		}
	}
	return len(cells) / 2
}

// Delete removes k; it reports whether k was present. Empty leaves are
// released to the free list and unlinked from their parent.
func Delete(w Writer, root common.PageID, k []byte) (common.PageID, bool, error) {
	if root == 0 {
		return 0, false, nil
	}
	path, err := descend(w, root, k)
	if err != nil {
		return root, false, err
	}
	leafID := path[len(path)-1].id
	ln, err := readNode(w, leafID)
	if err != nil {
		return root, false, err
	}
	i, eq := ln.search(k)
	if !eq {
		return root, false, nil
	}
	b, err := w.Mut(leafID)
	if err != nil {
		return root, false, err
	}
	n := node(b)
	if err := freeOverflow(w, n, i); err != nil {
		return root, false, err
	}
	n.removeCell(i)
	if len(path) == 1 {
		return root, true, nil
	}
	if n.count() == 0 {
		root, err = unlink(w, root, path, len(path)-1)
		return root, true, err
	}
	if n.used() < len(n)/4 {
		root, err = mergeLeaf(w, root, path)
	}
	return root, true, err
}

// used is the number of bytes a node's header, slots and cells occupy.
func (n node) used() int { return hdrEnd + 2*n.count() + len(n) - n.cellStart() - n.frag() }

// mergeLeaf folds an underfull leaf together with a sibling under the same
// parent when both fit in one page, so deletes give pages back to the free
// list instead of leaving many sparse leaves.
func mergeLeaf(w Writer, root common.PageID, path []step) (common.PageID, error) {
	level := len(path) - 1
	parent := path[level-1]
	pn, err := readNode(w, parent.id)
	if err != nil {
		return root, err
	}
	// Merge child i+1 into child i.
	i := parent.idx
	if i == pn.count() {
		i--
	}
	if i < 0 {
		return root, nil
	}
	leftID, rightID := pn.child(i), pn.child(i+1)
	ln, err := readNode(w, leftID)
	if err != nil {
		return root, err
	}
	rn, err := readNode(w, rightID)
	if err != nil {
		return root, err
	}
	if !ln.isLeaf() || !rn.isLeaf() || ln.used()+rn.used()-hdrEnd > len(ln)*9/10 {
		return root, nil
	}
	lb, err := w.Mut(leftID)
	if err != nil {
		return root, err
	}
	cells := append(node(lb).cells(), rn.cells()...)
	node(lb).rebuild(cells)
	pb, err := w.Mut(parent.id)
	if err != nil {
		return root, err
	}
	p := node(pb)
	p.setChild(i+1, leftID)
	p.removeCell(i)
	if err := w.Free(rightID); err != nil {
		return root, err
	}
	if p.count() > 0 {
		return root, nil
	}
	only := p.right()
	if err := w.Free(parent.id); err != nil {
		return root, err
	}
	if level-1 == 0 {
		return only, nil
	}
	gp := path[level-2]
	gb, err := w.Mut(gp.id)
	if err != nil {
		return root, err
	}
	node(gb).setChild(gp.idx, only)
	return root, nil
}

// unlink removes the empty page path[level] from its parent.
func unlink(w Writer, root common.PageID, path []step, level int) (common.PageID, error) {
	if err := w.Free(path[level].id); err != nil {
		return root, err
	}
	parent := path[level-1]
	pb, err := w.Mut(parent.id)
	if err != nil {
		return root, err
	}
	p := node(pb)
	ci := parent.idx
	if ci == p.count() {
		p.setRight(p.child(ci - 1))
		p.removeCell(ci - 1)
	} else {
		p.removeCell(ci)
	}
	if p.count() > 0 {
		return root, nil
	}
	// The parent now has a single child: splice it out.
	only := p.right()
	if level-1 == 0 {
		if err := w.Free(parent.id); err != nil {
			return root, err
		}
		return only, nil
	}
	if err := w.Free(parent.id); err != nil {
		return root, err
	}
	gp := path[level-2]
	gb, err := w.Mut(gp.id)
	if err != nil {
		return root, err
	}
	node(gb).setChild(gp.idx, only)
	return root, nil
}

// Drop frees every page of the tree.
func Drop(w Writer, root common.PageID) error {
	if root == 0 {
		return nil
	}
	n, err := readNode(w, root)
	if err != nil {
		return err
	}
	if n.isLeaf() {
		for i := 0; i < n.count(); i++ {
			if err := freeOverflow(w, n, i); err != nil {
				return err
			}
		}
	} else {
		for i := 0; i <= n.count(); i++ {
			if err := Drop(w, n.child(i)); err != nil {
				return err
			}
		}
	}
	return w.Free(root)
}
