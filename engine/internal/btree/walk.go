package btree

import (
	"bytes"
	"fmt"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

// Tagged wraps a Writer so every page it allocates carries a tree tag in
// byte 13 of the page header. Salvage uses the tag to know which tree an
// orphaned page belonged to.
type Tagged struct {
	Writer
	Tag byte
}

// Alloc allocates a page and stamps the tag.
func (t Tagged) Alloc(typ page.Type) (common.PageID, []byte, error) {
	id, b, err := t.Writer.Alloc(typ)
	if err == nil {
		b[13] = t.Tag
	}
	return id, b, err
}

// Problem is one structural defect found by Walk.
type Problem struct {
	Page   common.PageID
	Reason string
}

// WalkStats counts what Walk saw.
type WalkStats struct {
	Leaves, Branches, Overflow int
	Entries                    int
	Depth                      int
}

// Walk visits every page of the tree (branches, leaves, overflow chains),
// calling visit for each, and reports structural defects to problem without
// stopping: keys out of order or outside the range the parent assigns,
// wrong page types, leaves at different depths, broken overflow chains.
func Walk(r Reader, root common.PageID, visit func(id common.PageID, typ page.Type) error, problem func(Problem)) (WalkStats, error) {
	var st WalkStats
	if root == 0 {
		return st, nil
	}
	leafDepth := -1
	var walk func(id common.PageID, lo, hi []byte, depth int) error
	walk = func(id common.PageID, lo, hi []byte, depth int) error {
		if depth > 64 {
			problem(Problem{id, "tree deeper than 64 levels (cycle?)"})
			return nil
		}
		b, err := r.Page(id)
		if err != nil {
			problem(Problem{id, err.Error()})
			return nil
		}
		typ := page.PageType(b)
		if err := visit(id, typ); err != nil {
			return err
		}
		if typ != page.TypeLeaf && typ != page.TypeBranch {
			problem(Problem{id, fmt.Sprintf("expected a tree page, found %s", typ)})
			return nil
		}
		if err := ValidateNode(b); err != nil {
			problem(Problem{id, err.Error()})
			return nil
		}
		n := node(b)
		for i := 0; i < n.count(); i++ {
			k := n.key(i)
			if i > 0 && bytes.Compare(n.key(i-1), k) >= 0 {
				problem(Problem{id, fmt.Sprintf("keys out of order at cell %d", i)})
			}
			if (lo != nil && bytes.Compare(k, lo) < 0) || (hi != nil && bytes.Compare(k, hi) >= 0) {
				problem(Problem{id, fmt.Sprintf("key at cell %d outside the range its parent assigns", i)})
			}
		}
		if n.isLeaf() {
			st.Leaves++
			st.Entries += n.count()
			if leafDepth < 0 {
				leafDepth = depth
				st.Depth = depth + 1
			} else if leafDepth != depth {
				problem(Problem{id, fmt.Sprintf("leaf at depth %d, others at %d", depth, leafDepth)})
			}
			for i := 0; i < n.count(); i++ {
				_, ov, total, first := n.leafValue(i)
				if !ov {
					continue
				}
				pages, err := overflowPages(r, first, total)
				if err != nil {
					problem(Problem{id, fmt.Sprintf("cell %d: %v", i, err)})
				}
				for _, p := range pages {
					st.Overflow++
					ob, err := r.Page(p)
					if err != nil {
						problem(Problem{p, err.Error()})
						continue
					}
					if err := visit(p, page.PageType(ob)); err != nil {
						return err
					}
				}
			}
			return nil
		}
		st.Branches++
		if n.count() == 0 {
			problem(Problem{id, "branch page without keys"})
		}
		for i := 0; i <= n.count(); i++ {
			clo, chi := lo, hi
			if i > 0 {
				clo = n.key(i - 1)
			}
			if i < n.count() {
				chi = n.key(i)
			}
			if err := walk(n.child(i), clo, chi, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return st, walk(root, nil, nil, 0)
}

// Check is ValidateNode under the name integrity and salvage use.
func Check(b []byte) error { return ValidateNode(b) }
