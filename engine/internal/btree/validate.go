package btree

import (
	"bytes"
	"fmt"

	"github.com/sombradb/sombra/engine/internal/page"
)

// ValidateNode checks the structure of one B+tree page on its own (it does
// not follow child or overflow pointers and does not verify the checksum):
//
//   - the page type is leaf or branch and the page size is sane;
//   - the cell count, the start of the cell area and the fragmented-byte
//     count are within bounds, and the slot array ends before the cell area;
//   - every slot points into the cell area, every cell lies entirely inside
//     the page, and no two cells overlap;
//   - the bytes of the cell area are exactly the live cells plus the
//     recorded holes;
//   - key lengths are 1..MaxKey and keys are strictly ascending;
//   - leaf values: the overflow flag is set exactly when the cell would not
//     fit inline, overflow cells name a first page, and leaves have no
//     right pointer; branch children (the rightmost one included) are
//     non-zero.
//
// A page that passes can be read with the node accessors without any
// out-of-range access.
func ValidateNode(b []byte) error {
	if len(b) < hdrEnd+2 || len(b) > 1<<16 {
		return fmt.Errorf("page of %d bytes", len(b))
	}
	n := node(b)
	leaf := false
	switch page.PageType(b) {
	case page.TypeLeaf:
		leaf = true
	case page.TypeBranch:
	default:
		return fmt.Errorf("page type %s is not a B+tree page", page.PageType(b))
	}
	if b[23] != 0 || b[22] > 1 {
		return fmt.Errorf("reserved header bytes are set (%#x %#x)", b[22], b[23])
	}
	cnt := n.count()
	start := n.cellStart()
	slotEnd := hdrEnd + 2*cnt
	if slotEnd > len(b) {
		return fmt.Errorf("%d cells: slot array runs past the page end", cnt)
	}
	if start < slotEnd || start > len(b) {
		return fmt.Errorf("cell area starts at %d, outside [%d, %d]", start, slotEnd, len(b))
	}
	if n.frag() > len(b)-start {
		return fmt.Errorf("%d fragmented bytes exceed the cell area of %d", n.frag(), len(b)-start)
	}
	if leaf && n.right() != 0 {
		return fmt.Errorf("leaf has a right pointer %d", n.right())
	}
	// A branch may have no keys at all (the bulk builder can end a level
	// with a page holding only its rightmost child), but it needs that child.
	if !leaf && n.right() == 0 {
		return fmt.Errorf("branch has no rightmost child")
	}
	// one bit per byte of the page marks the cells seen so far, to find
	// overlaps in linear time (this runs on every page read from disk; the
	// stack buffer covers pages up to 8 KiB)
	var bmBuf [128]uint64
	var bm []uint64
	if words := len(b)/64 + 1; words <= len(bmBuf) {
		bm = bmBuf[:words]
	} else {
		bm = make([]uint64, words)
	}
	used := 0
	var prev []byte
	for i := 0; i < cnt; i++ {
		off := n.slot(i)
		hdr := 6
		if !leaf {
			hdr = 10
		}
		if off < start || off+hdr > len(b) {
			return fmt.Errorf("slot %d: cell offset %d outside the cell area [%d, %d)", i, off, start, len(b))
		}
		kl := int(le.Uint16(b[off:]))
		if kl == 0 || kl > MaxKey {
			return fmt.Errorf("slot %d: key length %d", i, kl)
		}
		var size int
		if leaf {
			vl := le.Uint32(b[off+2:])
			if vl&overflowFlag != 0 {
				total := int(vl &^ overflowFlag)
				size = 6 + kl + 8
				if off+size > len(b) {
					return fmt.Errorf("slot %d: overflow cell runs past the page end", i)
				}
				if 6+kl+total <= inlineLimit(len(b)) {
					return fmt.Errorf("slot %d: value of %d bytes stored in overflow pages but fits inline", i, total)
				}
				if le.Uint64(b[off+6+kl:]) == 0 {
					return fmt.Errorf("slot %d: overflow value without a first page", i)
				}
			} else {
				if int64(vl) > int64(len(b)) {
					return fmt.Errorf("slot %d: inline value of %d bytes", i, vl)
				}
				size = 6 + kl + int(vl)
				if size > inlineLimit(len(b)) {
					return fmt.Errorf("slot %d: inline cell of %d bytes exceeds the inline limit", i, size)
				}
			}
		} else {
			size = 10 + kl
			if le.Uint64(b[off+2:]) == 0 {
				return fmt.Errorf("slot %d: child page 0", i)
			}
		}
		if off+size > len(b) {
			return fmt.Errorf("slot %d: cell [%d, %d) runs past the page end", i, off, off+size)
		}
		k := n.key(i)
		if i > 0 && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("slot %d: keys out of order (%x then %x)", i, prev, k)
		}
		prev = k
		if markRange(bm, off, off+size) {
			return fmt.Errorf("slot %d: cell [%d, %d) overlaps another cell", i, off, off+size)
		}
		used += size
	}
	if used+n.frag() != len(b)-start {
		return fmt.Errorf("cell area of %d bytes holds %d bytes of cells and %d recorded holes", len(b)-start, used, n.frag())
	}
	return nil
}

// markRange sets bits [lo, hi) of bm and reports whether any was set.
func markRange(bm []uint64, lo, hi int) bool {
	for lo < hi {
		w, bit := lo>>6, lo&63
		n := min(64-bit, hi-lo)
		mask := ^uint64(0)
		if n < 64 {
			mask = (uint64(1)<<n - 1) << bit
		}
		if bm[w]&mask != 0 {
			return true
		}
		bm[w] |= mask
		lo += n
	}
	return false
}
