package btree

import (
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

// Builder writes a tree bottom-up from keys supplied in ascending order,
// filling pages to the given fraction. Each page is handed to the sink
// exactly once, when complete; memory is one page plus a few bytes per leaf.
// Compaction uses it to rewrite a tree densely into a new file.
type Builder struct {
	pageSize int
	fill     int
	alloc    func() common.PageID
	sink     func(id common.PageID, b []byte) error
	tag      byte

	leaf      node
	leafID    common.PageID
	leafFirst []byte
	children  []childRef // finished leaves
}

// NewBuilder returns a builder. alloc hands out page numbers; sink stores
// a finished page (its checksum is the sink's business).
func NewBuilder(pageSize int, fillPercent int, tag byte, alloc func() common.PageID, sink func(common.PageID, []byte) error) *Builder {
	return &Builder{pageSize: pageSize, fill: pageSize * fillPercent / 100, alloc: alloc, sink: sink, tag: tag}
}

func (b *Builder) newPage(typ page.Type) (common.PageID, node) {
	buf := make([]byte, b.pageSize)
	n := initNode(buf, typ)
	buf[13] = b.tag
	return b.alloc(), n
}

// Add appends a key/value; keys must ascend. Large values go to overflow
// pages written through the sink.
func (b *Builder) Add(k, v []byte) error {
	var cell []byte
	if 6+len(k)+len(v) > inlineLimit(b.pageSize) {
		first, err := b.overflow(v)
		if err != nil {
			return err
		}
		cell = leafCell(k, nil, len(v), first)
	} else {
		cell = leafCell(k, v, 0, 0)
	}
	return b.addCell(0, k, cell)
}

func (b *Builder) overflow(v []byte) (common.PageID, error) {
	ids := make([]common.PageID, 0, len(v)/(b.pageSize-ovHdr)+1)
	for rest := len(v); rest > 0; rest -= b.pageSize - ovHdr {
		ids = append(ids, b.alloc())
	}
	for i, id := range ids {
		buf := make([]byte, b.pageSize)
		page.SetType(buf, page.TypeOverflow)
		buf[13] = b.tag
		n := copy(buf[ovHdr:], v)
		v = v[n:]
		le.PutUint32(buf[24:], uint32(n))
		if i+1 < len(ids) {
			le.PutUint64(buf[16:], uint64(ids[i+1]))
		}
		if err := b.sink(id, buf); err != nil {
			return 0, err
		}
	}
	return ids[0], nil
}

type childRef struct {
	first []byte
	id    common.PageID
}

func (b *Builder) addCell(_ int, k, cell []byte) error {
	if b.leaf == nil {
		b.leafID, b.leaf = b.newPage(page.TypeLeaf)
		b.leafFirst = append(b.leafFirst[:0], k...)
	}
	used := b.pageSize - b.leaf.gap()
	if b.leaf.count() > 0 && (used+len(cell)+2 > b.fill || !b.leaf.fits(len(cell))) {
		if err := b.sink(b.leafID, b.leaf); err != nil {
			return err
		}
		b.children = append(b.children, childRef{first: b.leafFirst, id: b.leafID})
		b.leafID, b.leaf = b.newPage(page.TypeLeaf)
		b.leafFirst = append([]byte(nil), k...)
	}
	b.leaf.insertCell(b.leaf.count(), cell)
	return nil
}

// Finish writes the last leaf and the branch levels above the leaves, and
// returns the root (0 for an empty tree). Branch levels are built from the
// list of (first key, page) of the level below: a few bytes per page.
func (b *Builder) Finish() (common.PageID, error) {
	if b.leaf == nil {
		return 0, nil
	}
	if err := b.sink(b.leafID, b.leaf); err != nil {
		return 0, err
	}
	level := append(b.children, childRef{first: b.leafFirst, id: b.leafID})
	for len(level) > 1 {
		var up []childRef
		id, n := b.newPage(page.TypeBranch)
		first := level[0].first
		n.setRight(level[0].id)
		for _, c := range level[1:] {
			cell := branchCell(c.first, n.right())
			used := b.pageSize - n.gap()
			if used+len(cell)+2 > b.fill || !n.fits(len(cell)) {
				if err := b.sink(id, n); err != nil {
					return 0, err
				}
				up = append(up, childRef{first: first, id: id})
				id, n = b.newPage(page.TypeBranch)
				first = c.first
				n.setRight(c.id)
				continue
			}
			n.insertCell(n.count(), cell)
			n.setRight(c.id)
		}
		if err := b.sink(id, n); err != nil {
			return 0, err
		}
		level = append(up, childRef{first: first, id: id})
	}
	return level[0].id, nil
}
