package engine

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/page"
)

// A write transaction does not put graph entries (node and edge records,
// adjacency, label and property index entries) into their trees one by
// one: random keys would cost a full descent each, over trees far larger
// than the cache. It collects them per tree and applies each tree's
// entries in key order (btree.PutSorted: one descent per leaf touched) when
// the transaction commits, when it reads or deletes in that tree, or when
// the buffer outgrows its share of the cache budget. Only puts are
// buffered, and every other operation on a tree applies its buffer first,
// so the result is the same as applying them in the order they were made:
// puts of different keys commute, and of one key the last wins. The
// ordering is by tree key alone, so it holds whatever a tree's key layout.

// wbEntry is one buffered put: key and value at arena[off:], key first.
type wbEntry struct {
	pfx  uint64 // the key's first 8 bytes, big endian: most comparisons end here
	off  int
	klen int32
	vlen int32
}

type treeBuf struct {
	arena  []byte
	ents   []wbEntry
	sorted bool // every key so far came after the previous one
}

type writeBuf struct {
	trees [page.RootCatalog]treeBuf // the catalog is never buffered
	bytes int                       // arena bytes plus entries, all trees
}

const wbEntrySize = 24

func keyPrefix(k []byte) uint64 {
	if len(k) >= 8 {
		return binary.BigEndian.Uint64(k)
	}
	var b [8]byte
	copy(b[:], k)
	return binary.BigEndian.Uint64(b[:])
}

func (t *treeBuf) key(e wbEntry) []byte { return t.arena[e.off : e.off+int(e.klen)] }

// bufferable reports whether puts to root go through the write buffer.
func bufferable(root int) bool { return root >= 0 && root < page.RootCatalog }

// bufPut buffers a put of k, v to tree root (k and v are copied).
func (tx *Tx) bufPut(root int, k, v []byte) error {
	t := &tx.wb.trees[root]
	off := len(t.arena)
	t.arena = append(t.arena, k...)
	t.arena = append(t.arena, v...)
	return tx.bufAdded(root, off, len(k), len(v))
}

// bufAdded records the entry whose key (kl bytes) and value (vl bytes)
// the caller appended to tree root's arena at off, and applies the buffers
// when they outgrow their budget.
func (tx *Tx) bufAdded(root, off, kl, vl int) error {
	t := &tx.wb.trees[root]
	k := t.arena[off : off+kl]
	e := wbEntry{pfx: keyPrefix(k), off: off, klen: int32(kl), vlen: int32(vl)}
	if n := len(t.ents); n == 0 {
		t.sorted = true
	} else if t.sorted {
		last := t.ents[n-1]
		if last.pfx > e.pfx || (last.pfx == e.pfx && bytes.Compare(t.key(last), k) >= 0) {
			t.sorted = false
		}
	}
	t.ents = append(t.ents, e)
	tx.wb.bytes += kl + vl + wbEntrySize
	if tx.wb.bytes > tx.wbLimit() {
		return tx.settleAll()
	}
	return nil
}

// wbLimit is the write buffer's share of the cache budget: a quarter, so
// that buffer, dirty pages and clean cache together stay near the budget.
func (tx *Tx) wbLimit() int {
	if tx.wbMax == 0 {
		tx.wbMax = max(1<<20, tx.w.BudgetBytes()/4)
	}
	return tx.wbMax
}

// settle applies tree root's buffered puts.
func (tx *Tx) settle(root int) error {
	if tx.w == nil || !bufferable(root) {
		return nil
	}
	t := &tx.wb.trees[root]
	if len(t.ents) == 0 {
		return nil
	}
	ents := t.ents
	if !t.sorted {
		slices.SortFunc(ents, func(a, b wbEntry) int {
			if a.pfx != b.pfx {
				if a.pfx < b.pfx {
					return -1
				}
				return 1
			}
			if c := bytes.Compare(t.key(a), t.key(b)); c != 0 {
				return c
			}
			return a.off - b.off // the later put of a key sorts last
		})
		// Of equal keys keep the last put.
		w := 0
		for i := range ents {
			if i+1 < len(ents) && ents[i+1].pfx == ents[i].pfx && bytes.Equal(t.key(ents[i+1]), t.key(ents[i])) {
				continue
			}
			ents[w] = ents[i]
			w++
		}
		ents = ents[:w]
	}
	tw := btree.Tagged{Writer: tx.w, Tag: byte(root) + 1}
	r, err := btree.PutSorted(tw, tx.meta.Roots[root], len(ents), func(i int) ([]byte, []byte) {
		e := ents[i]
		k := e.off + int(e.klen)
		return t.arena[e.off:k], t.arena[k : k+int(e.vlen)]
	}, tx.w.MaybeSpill)
	tx.meta.Roots[root] = r
	tx.wb.bytes -= len(t.arena) + wbEntrySize*len(t.ents)
	if cap(t.arena) > tx.wbLimit() {
		// do not keep an arena grown past the budget's share
		t.arena, t.ents = nil, nil
	} else {
		t.arena, t.ents = t.arena[:0], t.ents[:0]
	}
	return tx.db.annotate(err)
}

// settleAll applies every tree's buffered puts.
func (tx *Tx) settleAll() error {
	if tx.w == nil || tx.wb.bytes == 0 {
		return nil
	}
	for root := range tx.wb.trees {
		if err := tx.settle(root); err != nil {
			return err
		}
	}
	return nil
}

// pending reports whether puts are buffered (the transaction changed
// something even when no page is dirty yet).
func (tx *Tx) pending() bool { return tx.wb.bytes > 0 }
