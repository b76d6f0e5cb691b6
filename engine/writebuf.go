package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

// wbEntry is one buffered put: key and value at chunks[chunk][off:], key
// first.
type wbEntry struct {
	pfx   uint64 // the key's first 8 bytes, big endian, zero padded
	pfx2  uint64 // its next 8: with pfx, nearly every comparison ends here
	chunk int32
	off   int32
	klen  int32
	vlen  int32
}

// treeBuf is one tree's buffer. Keys and values are written into chunks
// that are never moved (an entry is written into the current chunk, which
// grows past its size only for one large value), so filling the buffer
// copies nothing, and the chunks are reused after the buffer is applied.
// Chunks start small and double up to wbChunk: a one-node transaction
// must not pay for zeroing megabytes.
type treeBuf struct {
	chunks [][]byte
	cur    int // chunk being filled
	ents   []wbEntry
	bytes  int  // keys, values and entries buffered
	sorted bool // every key so far came after the previous one
}

type writeBuf struct {
	trees [page.RootCatalog]treeBuf // the catalog is never buffered
	bytes int                       // keys, values and entries buffered, all trees
}

const (
	wbEntrySize  = 32
	wbFirstChunk = 1 << 10
	wbChunk      = 1 << 20
	wbRoom       = 8 << 10 // a chunk with less room left is closed (at most a quarter of it)
)

// keyPrefix returns bytes from..from+8 of k as a big-endian number,
// zero padded: numeric order of prefixes is byte order of the keys.
func keyPrefix(k []byte, from int) uint64 {
	if len(k) >= from+8 {
		return binary.BigEndian.Uint64(k[from:])
	}
	var b [8]byte
	if len(k) > from {
		copy(b[:], k[from:])
	}
	return binary.BigEndian.Uint64(b[:])
}

// cmpEntries orders entries by key, and entries of one key by the order
// they were put in.
func (t *treeBuf) cmpEntries(a, b wbEntry) int {
	switch {
	case a.pfx != b.pfx:
		if a.pfx < b.pfx {
			return -1
		}
		return 1
	case a.pfx2 != b.pfx2:
		if a.pfx2 < b.pfx2 {
			return -1
		}
		return 1
	}
	if a.klen > 16 && b.klen > 16 {
		// the first 16 bytes are equal
		if c := bytes.Compare(t.key(a)[16:], t.key(b)[16:]); c != 0 {
			return c
		}
	} else if c := bytes.Compare(t.key(a), t.key(b)); c != 0 {
		return c
	}
	if a.chunk != b.chunk {
		return int(a.chunk - b.chunk)
	}
	return int(a.off - b.off)
}

func (t *treeBuf) key(e wbEntry) []byte {
	return t.chunks[e.chunk][e.off : e.off+e.klen]
}

func (t *treeBuf) kv(e wbEntry) ([]byte, []byte) {
	c := t.chunks[e.chunk]
	k := e.off + e.klen
	return c[e.off:k], c[k : k+e.vlen]
}

// space returns the chunk to append the next entry to (the caller appends
// key then value and passes the result to bufAdded).
func (t *treeBuf) space() []byte {
	size := wbFirstChunk
	if len(t.chunks) > 0 {
		c := t.chunks[t.cur]
		if cap(c)-len(c) >= min(wbRoom, cap(c)/4) {
			return c
		}
		if t.cur+1 < len(t.chunks) {
			t.cur++
			return t.chunks[t.cur]
		}
		t.cur++
		size = min(wbChunk, 2*cap(c))
	}
	t.chunks = append(t.chunks, make([]byte, 0, size))
	return t.chunks[t.cur]
}

// bufferable reports whether puts to root go through the write buffer.
func bufferable(root int) bool { return root >= 0 && root < page.RootCatalog }

// bufPut buffers a put of k, v to tree root (k and v are copied). A key
// the tree would refuse is refused here, by the call that made it, not
// when the buffer is applied.
func (tx *Tx) bufPut(root int, k, v []byte) error {
	if len(k) == 0 || len(k) > btree.MaxKey {
		return fmt.Errorf("key of %d bytes (1..%d allowed): %w", len(k), btree.MaxKey, ErrInvalid)
	}
	a := tx.bufSpace(root)
	off := len(a)
	a = append(a, k...)
	a = append(a, v...)
	return tx.bufAdded(root, a, off, len(k))
}

// bufSpace returns the chunk of tree root's buffer to append an entry to.
func (tx *Tx) bufSpace(root int) []byte {
	if tx.wb == nil {
		tx.wb = &writeBuf{}
	}
	return tx.wb.trees[root].space()
}

// bufAdded records the entry the caller appended to a (from bufSpace) at
// off: a key of kl bytes, then its value. It applies the buffers when they
// outgrow their budget.
func (tx *Tx) bufAdded(root int, a []byte, off, kl int) error {
	t := &tx.wb.trees[root]
	t.chunks[t.cur] = a
	k := a[off : off+kl]
	vl := len(a) - off - kl
	e := wbEntry{pfx: keyPrefix(k, 0), pfx2: keyPrefix(k, 8), chunk: int32(t.cur), off: int32(off), klen: int32(kl), vlen: int32(vl)}
	if n := len(t.ents); n == 0 {
		t.sorted = true
	} else if t.sorted {
		last := t.ents[n-1]
		if t.cmpEntries(last, e) > 0 || bytes.Equal(t.key(last), k) {
			t.sorted = false
		}
	}
	t.ents = append(t.ents, e)
	t.bytes += len(a) - off + wbEntrySize
	tx.wb.bytes += len(a) - off + wbEntrySize
	if tx.wb.bytes > tx.wbLimit() {
		return tx.settleAll()
	}
	return nil
}

// wbLimit is the write buffer's share of the cache budget: an eighth (the
// dirty pages may take six, see pager.spillShare), so that buffer, dirty
// pages and clean cache together stay near the budget.
func (tx *Tx) wbLimit() int {
	if tx.wbMax == 0 {
		tx.wbMax = max(1<<20, tx.w.BudgetBytes()/8)
	}
	return tx.wbMax
}

// settle applies tree root's buffered puts.
func (tx *Tx) settle(root int) error {
	if tx.w == nil || tx.wb == nil || !bufferable(root) {
		return nil
	}
	t := &tx.wb.trees[root]
	if len(t.ents) == 0 {
		return nil
	}
	ents := t.ents
	if !t.sorted {
		slices.SortFunc(ents, t.cmpEntries)
		// Of equal keys keep the last put.
		w := 0
		for i := range ents {
			if i+1 < len(ents) && ents[i+1].pfx == ents[i].pfx && ents[i+1].pfx2 == ents[i].pfx2 && bytes.Equal(t.key(ents[i+1]), t.key(ents[i])) {
				continue
			}
			ents[w] = ents[i]
			w++
		}
		ents = ents[:w]
	}
	tw := btree.Tagged{Writer: tx.w, Tag: byte(root) + 1}
	r, err := btree.PutSorted(tw, tx.meta.Roots[root], len(ents), func(i int) ([]byte, []byte) {
		return t.kv(ents[i])
	}, tx.w.MaybeSpill)
	tx.meta.Roots[root] = r
	// The chunks and the entry slice are kept for the next puts; a chunk
	// a large value grew is let go.
	for i, c := range t.chunks {
		if cap(c) > wbChunk {
			c = make([]byte, 0, wbChunk)
		}
		t.chunks[i] = c[:0]
	}
	// A chunk grown by a large value is kept at its size; the doubling
	// continues from the last chunk's capacity.
	tx.wb.bytes -= t.bytes
	t.cur, t.ents, t.bytes = 0, t.ents[:0], 0
	return tx.db.annotate(err)
}

// settleAll applies every tree's buffered puts.
func (tx *Tx) settleAll() error {
	if tx.w == nil || tx.wb == nil {
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
func (tx *Tx) pending() bool {
	if tx.wb == nil {
		return false
	}
	for i := range tx.wb.trees {
		if len(tx.wb.trees[i].ents) > 0 {
			return true
		}
	}
	return false
}
