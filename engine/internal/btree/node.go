// Package btree is a B+tree of byte keys and values stored in pages.
//
// Node layout after the 16-byte page header:
//
//	[16:18] number of cells
//	[18:20] offset of the lowest cell (cells grow down from the page end)
//	[20:22] bytes of holes left by removed cells (reclaimed by defragment)
//	[22:24] reserved
//	[24:32] rightmost child (branch pages)
//	[32:]   slot array: 2-byte cell offsets in key order
//
// Leaf cell:   key length u16, value length u32 (bit 31: value in overflow
// pages), key, then the value or the first overflow page (u64).
// Branch cell: key length u16, child page u64, key. Child i holds keys below
// key i; the rightmost child holds keys from the last key up.
//
// Overflow page: [16:24] next overflow page, [24:28] bytes used, data.
package btree

import (
	"bytes"
	"encoding/binary"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

const (
	hdrEnd       = 32
	overflowFlag = 1 << 31
	ovHdr        = 28
	// MaxKey is the longest key accepted.
	MaxKey = 512
	// maxInlineCell keeps cells small enough that any split leaves both
	// halves fitting in a page.
	maxInlineCell = 1000
)

var le = binary.LittleEndian

type node []byte

func (n node) count() int               { return int(le.Uint16(n[16:])) }
func (n node) setCount(c int)           { le.PutUint16(n[16:], uint16(c)) }
func (n node) cellStart() int           { return int(le.Uint16(n[18:])) | int(n[22])<<16 }
func (n node) frag() int                { return int(le.Uint16(n[20:])) }
func (n node) setFrag(f int)            { le.PutUint16(n[20:], uint16(f)) }
func (n node) right() common.PageID     { return common.PageID(le.Uint64(n[24:])) }
func (n node) setRight(p common.PageID) { le.PutUint64(n[24:], uint64(p)) }
func (n node) isLeaf() bool             { return page.PageType(n) == page.TypeLeaf }
func (n node) slot(i int) int           { return int(le.Uint16(n[hdrEnd+2*i:])) }
func (n node) setSlot(i, off int)       { le.PutUint16(n[hdrEnd+2*i:], uint16(off)) }

// setCellStart stores offsets up to 65536 (a 64 KiB page's end) using the
// reserved byte as a 17th bit.
func (n node) setCellStart(o int) {
	le.PutUint16(n[18:], uint16(o))
	n[22] = byte(o >> 16)
}

// inlineLimit is the largest leaf cell kept inline in a page of ps bytes:
// maxInlineCell, but never more than a quarter of the page's cell space, so
// that small pages (1 and 2 KiB are valid page sizes) can always split a
// full node into two halves that fit. Larger values go to overflow pages.
func inlineLimit(ps int) int { return min(maxInlineCell, (ps-hdrEnd)/4-2) }

func initNode(b []byte, typ page.Type) node {
	clear(b[page.HeaderSize:])
	page.SetType(b, typ)
	n := node(b)
	n.setCellStart(len(b))
	return n
}

// cellSize returns the byte length of the cell at off.
func (n node) cellSize(off int) int {
	kl := int(le.Uint16(n[off:]))
	if !n.isLeaf() {
		return 10 + kl
	}
	vl := le.Uint32(n[off+2:])
	if vl&overflowFlag != 0 {
		return 6 + kl + 8
	}
	return 6 + kl + int(vl)
}

func (n node) cell(i int) []byte {
	off := n.slot(i)
	return n[off : off+n.cellSize(off)]
}

func (n node) key(i int) []byte {
	off := n.slot(i)
	kl := int(le.Uint16(n[off:]))
	if n.isLeaf() {
		return n[off+6 : off+6+kl]
	}
	return n[off+10 : off+10+kl]
}

func (n node) child(i int) common.PageID {
	if i == n.count() {
		return n.right()
	}
	return common.PageID(le.Uint64(n[n.slot(i)+2:]))
}

func (n node) setChild(i int, c common.PageID) {
	if i == n.count() {
		n.setRight(c)
		return
	}
	le.PutUint64(n[n.slot(i)+2:], uint64(c))
}

// leafValue returns the inline value, or overflow=true with the total
// length and first page.
func (n node) leafValue(i int) (v []byte, overflow bool, total int, first common.PageID) {
	off := n.slot(i)
	kl := int(le.Uint16(n[off:]))
	vl := le.Uint32(n[off+2:])
	if vl&overflowFlag != 0 {
		return nil, true, int(vl &^ overflowFlag), common.PageID(le.Uint64(n[off+6+kl:]))
	}
	return n[off+6+kl : off+6+kl+int(vl)], false, 0, 0
}

// search returns the first index whose key is >= k, and whether it is equal.
func (n node) search(k []byte) (int, bool) {
	// The page type is looked at once, not at every probe (the binary
	// search is the innermost loop of every descent).
	cell := 10
	if n.isLeaf() {
		cell = 6
	}
	keyAt := func(i int) []byte {
		off := int(le.Uint16(n[hdrEnd+2*i:]))
		kl := int(le.Uint16(n[off:]))
		return n[off+cell : off+cell+kl]
	}
	cnt := n.count()
	lo, hi := 0, cnt
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(keyAt(m), k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < cnt && bytes.Equal(keyAt(lo), k)
}

// childIndex returns which child of a branch covers key k.
func (n node) childIndex(k []byte) int {
	// Branch cells only (see search): key length u16, child u64, key.
	keyAt := func(i int) []byte {
		off := int(le.Uint16(n[hdrEnd+2*i:]))
		kl := int(le.Uint16(n[off:]))
		return n[off+10 : off+10+kl]
	}
	lo, hi := 0, n.count()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(keyAt(m), k) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (n node) gap() int { return n.cellStart() - (hdrEnd + 2*n.count()) }

// fits reports whether a cell of size sz can be inserted, possibly after
// defragmenting.
func (n node) fits(sz int) bool { return n.gap()+n.frag() >= sz+2 }

// insertCell puts c at index i; the caller checked fits.
func (n node) insertCell(i int, c []byte) {
	if n.gap() < len(c)+2 {
		n.defragment()
	}
	cnt := n.count()
	off := n.cellStart() - len(c)
	copy(n[off:], c)
	n.setCellStart(off)
	copy(n[hdrEnd+2*(i+1):hdrEnd+2*(cnt+1)], n[hdrEnd+2*i:hdrEnd+2*cnt])
	n.setSlot(i, off)
	n.setCount(cnt + 1)
}

// removeCell deletes the cell at index i, leaving a hole counted in frag.
func (n node) removeCell(i int) {
	cnt := n.count()
	off := n.slot(i)
	sz := n.cellSize(off)
	copy(n[hdrEnd+2*i:], n[hdrEnd+2*(i+1):hdrEnd+2*cnt])
	n.setCount(cnt - 1)
	if off == n.cellStart() {
		n.setCellStart(off + sz)
	} else {
		n.setFrag(n.frag() + sz)
	}
}

// defragment rewrites the cells contiguously at the page end.
func (n node) defragment() {
	cells := n.cells()
	n.rebuild(cells)
}

func (n node) cells() [][]byte {
	cnt := n.count()
	out := make([][]byte, cnt)
	for i := 0; i < cnt; i++ {
		out[i] = append([]byte(nil), n.cell(i)...)
	}
	return out
}

// cellsWith returns the node's cells with c inserted at index i, as slices
// of one copy of the page: a split costs two allocations, not one per cell.
func (n node) cellsWith(i int, c []byte) [][]byte {
	cp := make([]byte, len(n))
	copy(cp, n)
	cn := node(cp)
	cnt := n.count()
	out := make([][]byte, 0, cnt+1)
	for j := 0; j < cnt; j++ {
		if j == i {
			out = append(out, c)
		}
		out = append(out, cn.cell(j))
	}
	if i == cnt {
		out = append(out, c)
	}
	return out
}

// rebuild replaces the node's cells with cells (copies owned by caller).
func (n node) rebuild(cells [][]byte) {
	right := n.right()
	typ := page.PageType(n)
	initNode(n, typ)
	n.setRight(right)
	off := len(n)
	for i, c := range cells {
		off -= len(c)
		copy(n[off:], c)
		n.setSlot(i, off)
	}
	n.setCount(len(cells))
	n.setCellStart(off)
}

func leafCell(k, v []byte, overflowTotal int, first common.PageID) []byte {
	if first != 0 {
		c := make([]byte, 6+len(k)+8)
		le.PutUint16(c, uint16(len(k)))
		le.PutUint32(c[2:], uint32(overflowTotal)|overflowFlag)
		copy(c[6:], k)
		le.PutUint64(c[6+len(k):], uint64(first))
		return c
	}
	c := make([]byte, 6+len(k)+len(v))
	le.PutUint16(c, uint16(len(k)))
	le.PutUint32(c[2:], uint32(len(v)))
	copy(c[6:], k)
	copy(c[6+len(k):], v)
	return c
}

func branchCell(k []byte, child common.PageID) []byte {
	c := make([]byte, 10+len(k))
	le.PutUint16(c, uint16(len(k)))
	le.PutUint64(c[2:], uint64(child))
	copy(c[10:], k)
	return c
}

func cellKey(c []byte, leaf bool) []byte {
	kl := int(le.Uint16(c))
	if leaf {
		return c[6 : 6+kl]
	}
	return c[10 : 10+kl]
}

// PageUsage returns the bytes a tree page's header, slots and cells occupy
// (what a dense rewrite must keep), or 0 for a page that is not a valid
// tree page.
func PageUsage(b []byte) int {
	t := page.PageType(b)
	if (t != page.TypeLeaf && t != page.TypeBranch) || ValidateNode(b) != nil {
		return 0
	}
	return node(b).used()
}
