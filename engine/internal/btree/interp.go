package btree

import (
	"bytes"
	"encoding/binary"
)

// Interpolated search within a node. A descent knows the separator keys of
// the parent that bound the child it enters (low <= every key < high), and
// they are still in the CPU cache. Interpolating k's position between them
// from the first 8 bytes after their common prefix puts the first probe at,
// or within a few slots of, the answer when keys are spread evenly (node
// and edge ids are dense: the guess is exact), where a binary search makes
// log2(cells) probes, each a cache miss on a cell elsewhere in the page.
// A poor guess costs a few probes more than the binary search: the search
// gallops from the guess to bracket the answer, then bisects.

// bounds are the separator keys around a child; nil when unknown.
type bounds struct{ low, high []byte }

// narrow returns the bounds of child ci of branch n within b.
func (b bounds) narrow(n node, ci int) bounds {
	if ci > 0 {
		b.low = n.branchKey(ci - 1)
	}
	if ci < n.count() {
		b.high = n.branchKey(ci)
	}
	return b
}

func (n node) branchKey(i int) []byte {
	off := int(le.Uint16(n[hdrEnd+2*i:]))
	kl := int(le.Uint16(n[off:]))
	return n[off+10 : off+10+kl]
}

// guess returns where k is expected among cnt keys bounded by b, or -1.
func (b bounds) guess(k []byte, cnt int) int {
	if b.low == nil || b.high == nil || cnt < 8 {
		return -1
	}
	p := 0
	for p < len(b.low) && p < len(b.high) && b.low[p] == b.high[p] {
		p++
	}
	if !bytes.HasPrefix(k, b.low[:p]) {
		return -1
	}
	lo, hi, x := word(b.low, p), word(b.high, p), word(k, p)
	if hi <= lo || x < lo {
		return -1
	}
	g := int(float64(x-lo) / float64(hi-lo) * float64(cnt))
	return min(max(g, 0), cnt-1)
}

// word is the 8 bytes of k from p on, big endian, zero padded.
func word(k []byte, p int) uint64 {
	var w [8]byte
	if p < len(k) {
		copy(w[:], k[p:])
	}
	return binary.BigEndian.Uint64(w[:])
}

// gallop returns the first index in [lo, hi) for which before is false
// (hi if none), where before is true up to some index and false after it,
// probing g first.
func gallop(lo, hi, g int, before func(int) bool) int {
	if g >= lo && g < hi {
		if before(g) {
			lo = g + 1
			for step := 1; ; step *= 2 {
				p := lo + step - 1
				if p >= hi {
					break
				}
				if !before(p) {
					hi = p
					break
				}
				lo = p + 1
			}
		} else {
			hi = g
			for step := 1; ; step *= 2 {
				p := hi - step
				if p < lo {
					break
				}
				if before(p) {
					lo = p + 1
					break
				}
				hi = p
			}
		}
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if before(m) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// searchIn is search with the bounds of the node: the first index whose
// key is >= k, and whether it is equal.
func (n node) searchIn(k []byte, b bounds) (int, bool) {
	cnt := n.count()
	g := b.guess(k, cnt)
	if g < 0 {
		return n.search(k)
	}
	cell := 10
	if n.isLeaf() {
		cell = 6
	}
	keyAt := func(i int) []byte {
		off := int(le.Uint16(n[hdrEnd+2*i:]))
		kl := int(le.Uint16(n[off:]))
		return n[off+cell : off+cell+kl]
	}
	if bytes.Equal(keyAt(g), k) { // keys are unique: g is the answer
		return g, true
	}
	i := gallop(0, cnt, g, func(i int) bool { return bytes.Compare(keyAt(i), k) < 0 })
	return i, i < cnt && bytes.Equal(keyAt(i), k)
}

// childIndexIn is childIndex with the bounds of the branch.
func (n node) childIndexIn(k []byte, b bounds) int {
	cnt := n.count()
	g := b.guess(k, cnt)
	if g < 0 {
		return n.childIndex(k)
	}
	return gallop(0, cnt, g, func(i int) bool { return bytes.Compare(n.branchKey(i), k) <= 0 })
}
