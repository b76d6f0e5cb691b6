package pager

import (
	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

// PageStats is what one page adds to the header's space statistics: a
// B+tree page its used bytes, an overflow page itself; free and free-list
// pages nothing.
func PageStats(b []byte) page.SpaceStats {
	var st page.SpaceStats
	switch page.PageType(b) {
	case page.TypeLeaf, page.TypeBranch:
		// Tag: the tree's role + 1. An untagged page counts with the
		// catalog's (the tree tag is advisory, for salvage).
		t := int(b[13]) - 1
		if t < 0 || t >= page.NumRoots {
			t = page.RootCatalog
		}
		st.TreeUsed[t], st.TreePages[t] = int64(btree.PageUsage(b)), 1
		return st
	case page.TypeOverflow:
		return page.SpaceStats{OverflowPages: 1}
	}
	return page.SpaceStats{}
}

// noteBase records what page id contributed to the statistics when the
// transaction began (b: its content then; nil: it was free or did not
// exist), the first time the transaction touches it.
func (t *WriteTx) noteBase(id common.PageID, b []byte) {
	if _, ok := t.base[id]; ok {
		return
	}
	if b == nil {
		t.base[id] = page.SpaceStats{}
		return
	}
	t.base[id] = PageStats(b)
}

// applyStats updates the header's statistics by what the pages the
// transaction touched contribute now minus what they did before. Pages
// freed (and not reused) contribute nothing, whatever they still hold.
func (t *WriteTx) applyStats() error {
	if !t.Meta.Stats.Valid {
		return nil
	}
	for id, before := range t.base {
		t.Meta.Stats.Sub(before)
		if t.freed[id] {
			continue
		}
		if b, ok := t.dirty[id]; ok {
			t.Meta.Stats.Add(PageStats(b))
		} else if _, ok := t.spilled[id]; ok {
			// Spilled to the WAL (see Spill) and not changed since: its
			// newest image is the spilled frame.
			b, err := t.cleanPage(id)
			if err != nil {
				return err
			}
			t.Meta.Stats.Add(PageStats(b))
		}
	}
	return nil
}

// ResetStats sets the header's space statistics to st, counted over the
// transaction's pages as they are now (repair recounts them after
// rebuilding trees and the free list behind the accounting's back).
// Call it last: the pages touched so far no longer add their differences.
func (t *WriteTx) ResetStats(st page.SpaceStats) {
	t.Meta.Stats = st
	clear(t.base)
	clear(t.freed)
}
