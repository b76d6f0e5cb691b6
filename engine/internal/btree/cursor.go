package btree

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/sombradb/sombra/engine/internal/common"
)

type frame struct {
	n   node
	idx int
}

// Cursor walks a tree in key order. It keeps the path from the root, so it
// needs no sibling pointers and works in both directions.
type Cursor struct {
	r     Reader
	root  common.PageID
	stack []frame
	err   error
}

// NewCursor returns a cursor over the tree; position it with First, Last or Seek.
func NewCursor(r Reader, root common.PageID) *Cursor {
	return &Cursor{r: r, root: root}
}

var cursorPool = sync.Pool{New: func() any { return &Cursor{stack: make([]frame, 0, 8)} }}

// GetCursor is NewCursor from a pool: with PutCursor after use, a hot path
// (engine's NeighborsFunc) walks a tree without allocating.
func GetCursor(r Reader, root common.PageID) *Cursor {
	c := cursorPool.Get().(*Cursor)
	c.r, c.root, c.err, c.stack = r, root, nil, c.stack[:0]
	return c
}

// PutCursor returns a cursor from GetCursor to the pool; it must not be
// used afterwards.
func PutCursor(c *Cursor) {
	clear(c.stack[:cap(c.stack)]) // drop page references
	c.r, c.err = nil, nil
	cursorPool.Put(c)
}

// Err returns the first error met while moving.
func (c *Cursor) Err() error { return c.err }

// Valid reports whether the cursor is on an entry.
func (c *Cursor) Valid() bool {
	if c.err != nil || len(c.stack) == 0 {
		return false
	}
	top := c.stack[len(c.stack)-1]
	return top.idx >= 0 && top.idx < top.n.count()
}

// Key returns the current key (valid until the cursor moves).
func (c *Cursor) Key() []byte {
	top := c.stack[len(c.stack)-1]
	return top.n.key(top.idx)
}

// Value returns the current value, reading overflow pages if needed.
func (c *Cursor) Value() ([]byte, error) {
	top := c.stack[len(c.stack)-1]
	return value(c.r, top.n, top.idx)
}

func (c *Cursor) push(id common.PageID, leftmost bool) bool {
	for {
		if len(c.stack) > 64 {
			c.err = &common.CorruptionError{Page: id, Offset: -1, Reason: "tree deeper than 64 levels (cycle?)"}
			return false
		}
		n, err := readNode(c.r, id)
		if err != nil {
			c.err = err
			return false
		}
		idx := 0
		if !leftmost {
			idx = n.count()
			if n.isLeaf() {
				idx = n.count() - 1
			}
		}
		c.stack = append(c.stack, frame{n: n, idx: idx})
		if n.isLeaf() {
			return true
		}
		id = n.child(idx)
	}
}

// First moves to the smallest key.
func (c *Cursor) First() bool {
	c.stack = c.stack[:0]
	if c.root == 0 {
		return false
	}
	if !c.push(c.root, true) {
		return false
	}
	return c.settleForward()
}

// Last moves to the largest key.
func (c *Cursor) Last() bool {
	c.stack = c.stack[:0]
	if c.root == 0 {
		return false
	}
	if !c.push(c.root, false) {
		return false
	}
	return c.settleBackward()
}

// Seek moves to the first key >= k.
func (c *Cursor) Seek(k []byte) bool {
	c.stack = c.stack[:0]
	if c.root == 0 {
		return false
	}
	id := c.root
	var b bounds
	for {
		if len(c.stack) > 64 {
			c.err = &common.CorruptionError{Page: id, Offset: -1, Reason: "tree deeper than 64 levels (cycle?)"}
			return false
		}
		n, err := readNode(c.r, id)
		if err != nil {
			c.err = err
			return false
		}
		if n.isLeaf() {
			i, _ := n.searchIn(k, b)
			c.stack = append(c.stack, frame{n: n, idx: i})
			return c.settleForward()
		}
		ci := n.childIndexIn(k, b)
		b = b.narrow(n, ci)
		c.stack = append(c.stack, frame{n: n, idx: ci})
		id = n.child(ci)
	}
}

// Next moves to the following key.
func (c *Cursor) Next() bool {
	if len(c.stack) == 0 {
		return false
	}
	c.stack[len(c.stack)-1].idx++
	return c.settleForward()
}

// Prev moves to the preceding key.
func (c *Cursor) Prev() bool {
	if len(c.stack) == 0 {
		return false
	}
	c.stack[len(c.stack)-1].idx--
	return c.settleBackward()
}

// settleForward climbs out of exhausted pages and descends into the next
// subtree until the cursor rests on an entry or runs off the end.
func (c *Cursor) settleForward() bool {
	for {
		top := &c.stack[len(c.stack)-1]
		if top.idx < top.n.count() {
			return true
		}
		// exhausted leaf: climb to a branch with another child
		for {
			c.stack = c.stack[:len(c.stack)-1]
			if len(c.stack) == 0 {
				return false
			}
			b := &c.stack[len(c.stack)-1]
			if b.idx < b.n.count() {
				b.idx++
				if !c.push(b.n.child(b.idx), true) {
					return false
				}
				break
			}
		}
	}
}

func (c *Cursor) settleBackward() bool {
	for {
		top := &c.stack[len(c.stack)-1]
		if top.idx >= 0 && top.idx < top.n.count() {
			return true
		}
		for {
			c.stack = c.stack[:len(c.stack)-1]
			if len(c.stack) == 0 {
				return false
			}
			b := &c.stack[len(c.stack)-1]
			if b.idx > 0 {
				b.idx--
				if !c.push(b.n.child(b.idx), false) {
					return false
				}
				break
			}
		}
	}
}

// ScanKeys calls fn with every key >= from, in order, until fn returns
// false. It walks each leaf's cells in a tight loop and uses the cursor's
// path only to move between leaves, so an ordered scan costs little more
// than reading the keys.
func ScanKeys(r Reader, root common.PageID, from []byte, fn func(k []byte) bool) error {
	c := NewCursor(r, root)
	ok := c.Seek(from)
	for ok {
		top := &c.stack[len(c.stack)-1]
		n := top.n
		// Leaf cells: key length u16, value length u32, key (see node.go);
		// read them here directly rather than through n.key, which
		// re-checks the page type for every cell.
		for i, cnt := top.idx, n.count(); i < cnt; i++ {
			off := int(le.Uint16(n[hdrEnd+2*i:]))
			kl := int(le.Uint16(n[off:]))
			if !fn(n[off+6 : off+6+kl]) {
				return nil
			}
		}
		top.idx = n.count() - 1
		ok = c.Next()
	}
	return c.Err()
}

// AppendUint64Keys appends every key of a tree whose keys are 8-byte big
// endian integers (the node and edge trees) to dst, in order. It is
// ScanKeys without a call per key: an ordered id scan is a loop over each
// leaf's slot array. A key of another length is corruption.
func AppendUint64Keys[T ~uint64](r Reader, root common.PageID, dst []T) ([]T, error) {
	c := NewCursor(r, root)
	ok := c.First()
	for ok {
		top := &c.stack[len(c.stack)-1]
		n := top.n
		cnt := n.count()
		slots := n[hdrEnd : hdrEnd+2*cnt] // ValidateNode checked the slots and cells lie in the page
		for i := top.idx; i < cnt; i++ {
			off := int(le.Uint16(slots[2*i:]))
			if kl := le.Uint16(n[off:]); kl != 8 {
				return dst, &common.CorruptionError{Offset: -1, Reason: fmt.Sprintf("key of %d bytes in a tree of 8-byte keys", kl)}
			}
			dst = append(dst, T(binary.BigEndian.Uint64(n[off+6:])))
		}
		top.idx = cnt - 1
		ok = c.Next()
	}
	return dst, c.Err()
}
