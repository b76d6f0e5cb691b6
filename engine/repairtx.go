package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/pager"
	"github.com/sombradb/sombra/engine/internal/record"
)

// RepairStats reports what a repair changed (engine/repair runs it).
type RepairStats struct {
	// DanglingEdges are the edges dropped because an endpoint is missing.
	DanglingEdges []EdgeID
	Adjacency     TreeRepair
	LabelIndex    TreeRepair
	PropertyIndex TreeRepair
	// CountersFixed counts catalog counters (per label, per index) and
	// header counts (nodes, edges) that were corrected.
	CountersFixed int
	FreeList      FreeListRepair
}

// Changed reports whether the repair changed anything.
func (s *RepairStats) Changed() bool {
	return len(s.DanglingEdges) > 0 || s.Adjacency.Changed() || s.LabelIndex.Changed() ||
		s.PropertyIndex.Changed() || s.CountersFixed > 0 || s.FreeList.Rebuilt
}

// TreeRepair reports how a derived tree (adjacency, label index, property
// index) was brought back in line with the records.
type TreeRepair struct {
	Removed int // entries that matched no record
	Added   int // entries that were missing
	// Rebuilt is set when the tree could not be walked (an unreadable page,
	// a structural defect, a page shared with another tree): it was
	// abandoned and rebuilt from the records, and its old pages reclaimed.
	Rebuilt bool
}

// Changed reports whether the tree was modified.
func (r TreeRepair) Changed() bool { return r.Removed > 0 || r.Added > 0 || r.Rebuilt }

// FreeListRepair reports a rebuilt free list.
type FreeListRepair struct {
	Rebuilt   bool
	FreePages int // pages on the free list afterwards
	Reclaimed int // pages that were neither in a tree nor free (leaked)
	Rewritten int // unused pages that failed their checksum and were rewritten
}

// repair brings everything that can be derived from the node and edge
// records back in line with them, in this write transaction:
//
//   - edges whose source or target node does not exist are dropped;
//   - the adjacency tree, the label index and the property indexes get
//     exactly the entries the records call for (a tree that cannot be
//     walked is rebuilt from scratch, never read);
//   - the catalog counters and the header's node and edge counts are
//     recomputed;
//   - the free list is rebuilt when it is damaged, disagrees with the
//     header, or misses pages no tree uses (leaked pages); unused pages
//     that fail their checksum are rewritten.
//
// The node, edge and catalog trees are the source of truth and are never
// rebuilt: if one of them cannot be walked, or a record does not decode,
// repair returns a *CorruptionError and changes nothing. Only what was
// wrong is written, so repairing a healthy database writes nothing.
func (tx *Tx) repair() (*RepairStats, error) {
	if err := tx.check(true); err != nil {
		return nil, err
	}
	if err := tx.settleAll(); err != nil {
		return nil, err
	}
	st := &RepairStats{}
	n := tx.meta.PageCount
	owner := make([]byte, n) // 0 unused, else root+1
	if n > 0 {
		owner[0] = 0xff
	}
	// The primary trees must be sound; nothing is written before this.
	for _, root := range []int{page.RootNodes, page.RootEdges, page.RootCatalog} {
		if bad := tx.claimTree(root, owner); bad != nil {
			return nil, bad
		}
	}
	// Derived trees that cannot be walked, or that share pages with
	// another tree, are abandoned: their pages are reclaimed below.
	rebuild := map[int]bool{}
	for _, root := range []int{page.RootAdj, page.RootLabels, page.RootProps} {
		if err := tx.claimTree(root, owner); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return nil, err // an I/O error says nothing about the tree
			}
			rebuild[root] = true
		}
	}
	// A free list that hands out a page a tree uses would destroy data:
	// detach one that is not exactly right before anything is allocated.
	freeOK, err := tx.freeListSound(owner)
	if err != nil {
		return nil, err
	}
	if !freeOK {
		tx.meta.FreeHead, tx.meta.FreeCount = 0, 0
	}
	for root := range rebuild {
		tx.meta.Roots[root] = 0 // before anything (dropping edges) touches it
	}

	if st.DanglingEdges, err = tx.dropDanglingEdges(); err != nil {
		return nil, err
	}
	want, edgeLabels, edges, err := tx.wantedAdjacency()
	if err != nil {
		return nil, err
	}
	if st.Adjacency, err = tx.reconcile(page.RootAdj, want, rebuild[page.RootAdj]); err != nil {
		return nil, err
	}
	labels, props, c, err := tx.wantedIndexes()
	if err != nil {
		return nil, err
	}
	if st.LabelIndex, err = tx.reconcile(page.RootLabels, labels, rebuild[page.RootLabels]); err != nil {
		return nil, err
	}
	if st.PropertyIndex, err = tx.reconcile(page.RootProps, props, rebuild[page.RootProps]); err != nil {
		return nil, err
	}
	c.edges, c.edgeLabels = edges, edgeLabels
	if st.CountersFixed, err = tx.recount(c); err != nil {
		return nil, err
	}
	if st.FreeList, err = tx.repairFreeList(!freeOK || len(rebuild) > 0); err != nil {
		return nil, err
	}
	if st.Changed() {
		if err := tx.touchHeader(); err != nil {
			return nil, err
		}
		// Trees and the free list were rebuilt around damaged pages:
		// count the space statistics afresh rather than trust deltas.
		kept := tx.meta.Stats
		tx.meta.Stats.Valid = false
		fresh, err := tx.spaceStats()
		tx.meta.Stats = kept
		if err != nil {
			return nil, err
		}
		tx.w.ResetStats(fresh)
	}
	return st, nil
}

// claimTree walks the tree at root and records its pages in owner. It
// returns a CorruptionError, claiming nothing, if the tree cannot be
// walked or uses a page another tree (or the header) uses, and the error
// itself if a page could not be read at all (I/O, not damage).
func (tx *Tx) claimTree(root int, owner []byte) error {
	if err := tx.settle(root); err != nil {
		return err
	}
	var pages []common.PageID
	var first *btree.Problem
	r := &ioTrap{r: tx.w}
	_, err := btree.Walk(r, tx.meta.Roots[root], func(id common.PageID, _ page.Type) error {
		switch {
		case uint64(id) >= uint64(len(owner)):
			return &CorruptionError{Path: tx.db.p.Path(), Page: id, Offset: -1, Reason: fmt.Sprintf("the %s tree refers to page %d past the end of the database (%d pages)", rootName(root), id, len(owner))}
		case owner[id] != 0:
			return &CorruptionError{Path: tx.db.p.Path(), Page: id, Offset: -1, Reason: fmt.Sprintf("page %d is used by the %s tree and %s", id, rootName(root), ownerLabel(owner[id]))}
		}
		pages = append(pages, id)
		return nil
	}, func(p btree.Problem) {
		if first == nil {
			first = &p
		}
	})
	if err != nil {
		return err
	}
	if r.err != nil {
		return fmt.Errorf("walk the %s tree: %w", rootName(root), r.err)
	}
	if first != nil {
		reason := first.Reason
		var ce *CorruptionError
		if _, err := tx.w.Page(first.Page); errors.As(err, &ce) {
			reason = ce.Reason // without the path and offset the problem repeats
		}
		return &CorruptionError{Path: tx.db.p.Path(), Page: first.Page, Offset: -1, Reason: fmt.Sprintf("the %s tree is damaged at page %d (%s)", rootName(root), first.Page, reason)}
	}
	for _, id := range pages {
		owner[id] = byte(root) + 1
	}
	return nil
}

var repairRootNames = [page.NumRoots]string{"nodes", "edges", "adjacency", "labels", "properties", "catalog"}

func rootName(root int) string { return repairRootNames[root] }

func ownerLabel(o byte) string {
	if o == 0xff {
		return "the header"
	}
	return "the " + rootName(int(o-1)) + " tree"
}

// freeListSound reports whether the free list can be walked, lists no page
// twice, none past the end and none a tree uses, and matches the header.
// The error is for a page that could not be read at all (I/O, not damage).
func (tx *Tx) freeListSound(owner []byte) (bool, error) {
	r := &ioTrap{r: tx.w}
	free, err := pager.FreeListPages(r.Page, tx.meta.FreeHead, tx.meta.PageCount)
	if r.err != nil {
		return false, fmt.Errorf("walk the free list: %w", r.err)
	}
	if err != nil || uint64(len(free)) != tx.meta.FreeCount {
		return false, nil
	}
	seen := make(map[common.PageID]bool, len(free))
	for _, id := range free {
		if uint64(id) >= uint64(len(owner)) || owner[id] != 0 || seen[id] {
			return false, nil
		}
		seen[id] = true
	}
	return true, nil
}

// dropDanglingEdges deletes every edge whose source or target node does
// not exist, with its adjacency entries, and returns their ids.
func (tx *Tx) dropDanglingEdges() ([]EdgeID, error) {
	if err := tx.check(true); err != nil {
		return nil, err
	}
	exists := map[NodeID]bool{}
	has := func(id NodeID) (bool, error) {
		if ok, seen := exists[id]; seen {
			return ok, nil
		}
		_, ok, err := tx.get(page.RootNodes, be64(uint64(id)))
		exists[id] = ok
		return ok, err
	}
	var drop []EdgeID
	err := tx.forEachEdge(func(id EdgeID, e *record.Edge) error {
		for _, n := range []NodeID{NodeID(e.From), NodeID(e.To)} {
			ok, err := has(n)
			if err != nil {
				return err
			}
			if !ok {
				drop = append(drop, id)
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range drop {
		if err := tx.DeleteEdge(id); err != nil {
			return nil, fmt.Errorf("drop dangling edge %d: %w", id, err)
		}
	}
	return drop, nil
}

// forEachEdge decodes every edge in id order. The callback may modify
// trees other than the edge tree.
func (tx *Tx) forEachEdge(fn func(EdgeID, *record.Edge) error) error {
	if err := tx.settleAll(); err != nil {
		return err
	}
	c := btree.NewCursor(tx.reader(), tx.meta.Roots[page.RootEdges])
	for ok := c.First(); ok; ok = c.Next() {
		id := EdgeID(binary.BigEndian.Uint64(c.Key()))
		v, err := c.Value()
		if err != nil {
			return tx.db.annotate(err)
		}
		e, err := record.DecodeEdge(v)
		if err != nil {
			return &CorruptionError{Path: tx.db.p.Path(), Offset: -1, Reason: fmt.Sprintf("edge %d: %v", id, err)}
		}
		if err := fn(id, e); err != nil {
			return err
		}
	}
	return tx.db.annotate(c.Err())
}

// wantedAdjacency returns the adjacency entries the edge records call for,
// and the edge counts per label and in total.
func (tx *Tx) wantedAdjacency() (map[string]string, map[string]uint64, uint64, error) {
	want := map[string]string{}
	labels := map[string]uint64{}
	var n uint64
	err := tx.forEachEdge(func(id EdgeID, e *record.Edge) error {
		adjEntries(id, NodeID(e.From), NodeID(e.To), func(k, v []byte) { want[string(k)] = string(v) })
		labels[e.Label]++
		n++
		return nil
	})
	return want, labels, n, err
}

// counts are the counters the records call for.
type counts struct {
	nodes, edges              uint64
	labels, props, edgeLabels map[string]uint64
}

// wantedIndexes returns the label and property index entries the node
// records call for, and the node counters.
func (tx *Tx) wantedIndexes() (labels, props map[string]string, c counts, err error) {
	idx, err := tx.propIndexes()
	if err != nil {
		return nil, nil, c, err
	}
	labels, props = map[string]string{}, map[string]string{}
	c.labels, c.props = map[string]uint64{}, map[string]uint64{}
	for name := range idx {
		c.props[name] = 0
	}
	err = tx.forEachNode(func(id NodeID, rec *record.Node) error {
		c.nodes++
		for _, l := range rec.Labels {
			labels[string(labelKey(l, id))] = ""
			c.labels[l]++ // per occurrence, as writeNode counts
		}
		for name, v := range rec.Props {
			if idx[name] {
				props[string(propKey(name, v, id))] = ""
				c.props[name]++
			}
		}
		return nil
	})
	return labels, props, c, err
}

// reconcile gives the tree at root exactly the entries in want. With
// rebuild the tree was abandoned (its root is 0) and is filled from want.
func (tx *Tx) reconcile(root int, want map[string]string, rebuild bool) (TreeRepair, error) {
	r := TreeRepair{Rebuilt: rebuild}
	if err := tx.settle(root); err != nil {
		return r, err
	}
	have := map[string]bool{}
	if !rebuild {
		var stale [][]byte
		c := btree.NewCursor(tx.w, tx.meta.Roots[root])
		for ok := c.First(); ok; ok = c.Next() {
			k := string(c.Key())
			v, err := c.Value()
			if err != nil {
				return r, tx.db.annotate(err)
			}
			if w, ok := want[k]; ok && w == string(v) && !have[k] {
				have[k] = true
				continue
			}
			stale = append(stale, []byte(k))
		}
		if err := c.Err(); err != nil {
			return r, tx.db.annotate(err)
		}
		for _, k := range stale {
			if err := tx.del(root, k); err != nil {
				return r, err
			}
			r.Removed++
		}
	}
	missing := make([]string, 0, len(want)-len(have))
	for k := range want {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing) // ascending inserts fill pages predictably
	for _, k := range missing {
		if err := tx.put(root, []byte(k), []byte(want[k])); err != nil {
			return r, err
		}
		r.Added++
	}
	return r, nil
}

// recount makes the catalog counters and the header counts match c.
func (tx *Tx) recount(c counts) (int, error) {
	// Deltas recorded by the steps before (dropped edges) are applied
	// first, so the absolute values written here are final.
	if err := tx.flushCounts(); err != nil {
		return 0, err
	}
	fixed := 0
	for _, set := range []struct {
		prefix string
		want   map[string]uint64
	}{{catLabelCount, c.labels}, {catIndexCount, c.props}, {catEdgeCount, c.edgeLabels}} {
		have, err := tx.counters(set.prefix)
		if err != nil {
			return fixed, err
		}
		// Raw keys too: a counter with a malformed value is not in have.
		keys, err := tx.keys(page.RootCatalog, []byte(set.prefix))
		if err != nil {
			return fixed, err
		}
		for _, k := range keys {
			if set.want[string(k[len(set.prefix):])] > 0 {
				continue // rewritten below if wrong
			}
			if err := tx.del(page.RootCatalog, k); err != nil {
				return fixed, err
			}
			fixed++
		}
		names := make([]string, 0, len(set.want))
		for name, w := range set.want {
			if v, ok := have[name]; w > 0 && (!ok || v != w) {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			if err := tx.put(page.RootCatalog, []byte(set.prefix+name), be64(set.want[name])); err != nil {
				return fixed, err
			}
			fixed++
		}
	}
	if tx.meta.NodeCount != c.nodes {
		tx.meta.NodeCount = c.nodes
		fixed++
	}
	if tx.meta.EdgeCount != c.edges {
		tx.meta.EdgeCount = c.edges
		fixed++
	}
	return fixed, nil
}

// repairFreeList rebuilds the free list from what the trees use, when the
// list is wrong (or force is set). Every page no tree uses ends up on the
// list exactly once; unused pages that are unreadable, and old free-list
// trunk pages that become plain entries, are rewritten so that no stale
// free-list page or bad checksum remains in the file.
func (tx *Tx) repairFreeList(force bool) (FreeListRepair, error) {
	var r FreeListRepair
	// Buffered puts (the rebuilt trees) allocate pages when applied: apply
	// them before the page count is taken.
	if err := tx.settleAll(); err != nil {
		return r, err
	}
	n := tx.meta.PageCount
	owner := make([]byte, n)
	if n > 0 {
		owner[0] = 0xff
	}
	for root := 0; root < page.NumRoots; root++ {
		if err := tx.claimTree(root, owner); err != nil {
			return r, err
		}
	}
	onList := make(map[common.PageID]bool)
	fr := &ioTrap{r: tx.w}
	free, err := pager.FreeListPages(fr.Page, tx.meta.FreeHead, n)
	if fr.err != nil {
		return r, fmt.Errorf("walk the free list: %w", fr.err)
	}
	rebuild := force || err != nil || uint64(len(free)) != tx.meta.FreeCount
	for _, id := range free {
		if uint64(id) >= n || owner[id] != 0 || onList[id] {
			rebuild = true
			continue
		}
		onList[id] = true
	}
	unreadable := map[common.PageID]bool{}
	trunks := map[common.PageID]bool{}
	for id := common.PageID(1); uint64(id) < n; id++ {
		if owner[id] != 0 {
			continue
		}
		if !onList[id] {
			rebuild = true
			r.Reclaimed++
		}
		b, err := tx.w.Page(id)
		switch {
		case errors.Is(err, ErrCorrupt):
			unreadable[id] = true
			rebuild = true
		case err != nil:
			return r, err
		case page.PageType(b) == page.TypeFreeList:
			trunks[id] = true
		}
	}
	if !rebuild {
		r.FreePages = len(free)
		return r, nil
	}
	r.Rebuilt = true
	tx.meta.FreeHead, tx.meta.FreeCount = 0, 0
	// Freed from the top down, so allocation reuses low pages first.
	for id := common.PageID(n - 1); id >= 1; id-- {
		if owner[id] != 0 {
			continue
		}
		if err := tx.w.Free(id); err != nil {
			return r, err
		}
		r.FreePages++
		if !unreadable[id] && !trunks[id] {
			continue
		}
		// The page just freed is the next one allocated: allocating it
		// gives a fresh zeroed image without reading the old one, and
		// freeing it again puts it back. An old trunk that would stay
		// behind as a plain entry is cleared the same way, so no stale
		// free-list page is left for salvage to misread.
		got, _, err := tx.w.Alloc(page.TypeFree)
		if err != nil {
			return r, err
		}
		if got != id {
			return r, fmt.Errorf("rebuild free list: expected page %d back, got %d", id, got)
		}
		if err := tx.w.Free(id); err != nil {
			return r, err
		}
		if unreadable[id] {
			r.Rewritten++
		}
	}
	return r, nil
}

// ioTrap reads pages and remembers the first error that is not damage (not
// ErrCorrupt). Tree and free-list walks report every unreadable page as a
// problem; an I/O error (EIO) must not make repair rebuild a sound tree or
// give up on one as damaged.
type ioTrap struct {
	r   btree.Reader
	err error
}

func (t *ioTrap) Page(id common.PageID) ([]byte, error) {
	b, err := t.r.Page(id)
	if err != nil && t.err == nil && !errors.Is(err, ErrCorrupt) {
		t.err = err
	}
	return b, err
}
