package btree

import (
	"fmt"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

// LeafPages calls fn with the id of every leaf of the tree, in key order,
// reading only the branch pages (and one leaf, to learn the depth). A scan
// that reads the file front to back (a backup) uses it to know which pages
// hold the tree's records, at the cost of the branch pages, about one page
// in a hundred. Memory is one path from the root.
func LeafPages(r Reader, root common.PageID, fn func(id common.PageID) error) error {
	if root == 0 {
		return nil
	}
	depth := 0
	for id := root; ; depth++ {
		if depth > 64 {
			return &common.CorruptionError{Page: id, Offset: -1, Reason: "tree deeper than 64 levels (cycle?)"}
		}
		n, err := readNode(r, id)
		if err != nil {
			return err
		}
		if n.isLeaf() {
			break
		}
		id = n.child(0)
	}
	if depth == 0 {
		return fn(root)
	}
	var walk func(id common.PageID, d int) error
	walk = func(id common.PageID, d int) error {
		n, err := readNode(r, id)
		if err != nil {
			return err
		}
		if n.isLeaf() {
			return &common.CorruptionError{Page: id, Offset: -1, Reason: fmt.Sprintf("leaf at depth %d, others at %d", d, depth)}
		}
		for i := 0; i <= n.count(); i++ {
			c := n.child(i)
			if d+1 == depth {
				if err := fn(c); err != nil {
					return err
				}
				continue
			}
			if err := walk(c, d+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root, 0)
}

// LeafEntries calls fn with every key and value of leaf page b (an image
// read outside the cache, so it is validated here first), reading overflow
// values through r. The slices are valid only during the call.
func LeafEntries(r Reader, id common.PageID, b []byte, fn func(k, v []byte) error) error {
	if page.PageType(b) != page.TypeLeaf {
		return &common.CorruptionError{Page: id, Offset: -1, Reason: fmt.Sprintf("expected a leaf page, found %s", page.PageType(b))}
	}
	if err := ValidateNode(b); err != nil {
		return &common.CorruptionError{Page: id, Offset: -1, Reason: err.Error()}
	}
	n := node(b)
	for i := 0; i < n.count(); i++ {
		v, err := value(r, n, i)
		if err != nil {
			return err
		}
		if err := fn(n.key(i), v); err != nil {
			return err
		}
	}
	return nil
}
