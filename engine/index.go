package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/progress"
	"github.com/sombradb/sombra/engine/internal/record"
)

// IndexStat describes one index.
type IndexStat struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"` // "label" or "property"
	Entries  uint64 `json:"entries"`
	Distinct uint64 `json:"distinct_values"`
	// Selectivity: for a property index, distinct values / entries (1 means
	// unique); for a label, the share of all nodes that carry it.
	Selectivity float64 `json:"selectivity"`
	// Estimated marks distinct values and selectivity extrapolated from a
	// sample (IndexStatisticsSampled).
	Estimated bool `json:"estimated,omitempty"`
}

// CreatePropertyIndex indexes every node's property name, filling the index
// from existing nodes in the same transaction. Under access control it runs
// as user "" (see Session.CreatePropertyIndex).
func (db *DB) CreatePropertyIndex(name string) error {
	return db.createPropertyIndex(db.cfg.User, name)
}

func (db *DB) createPropertyIndex(user, name string) (err error) {
	// Access control + audit hook (engine/access.go): needs Configure.
	done, err := db.secGuard(user, PermissionConfigure, OpIndexCreate, "property:"+name)
	if err != nil {
		return err
	}
	defer done(&err)
	if name == "" {
		return fmt.Errorf("property index name is empty: %w", ErrInvalid)
	}
	return db.UpdateAs(user, func(tx *Tx) error {
		idx, err := tx.propIndexes()
		if err != nil {
			return err
		}
		if idx[name] {
			return nil
		}
		if err := tx.put(page.RootCatalog, []byte(catIndex+name), nil); err != nil {
			return err
		}
		tx.indexes = nil
		return tx.fillPropertyIndex(name)
	})
}

// DropPropertyIndex removes a property index. Under access control it runs
// as user "" (see Session.DropPropertyIndex).
func (db *DB) DropPropertyIndex(name string) error { return db.dropPropertyIndex(db.cfg.User, name) }

func (db *DB) dropPropertyIndex(user, name string) (err error) {
	// Access control + audit hook (engine/access.go): needs Configure.
	done, err := db.secGuard(user, PermissionConfigure, OpIndexDrop, "property:"+name)
	if err != nil {
		return err
	}
	defer done(&err)
	return db.UpdateAs(user, func(tx *Tx) error {
		if err := tx.clearPropertyIndex(name); err != nil {
			return err
		}
		tx.indexes = nil
		return tx.del(page.RootCatalog, []byte(catIndex+name))
	})
}

func (tx *Tx) fillPropertyIndex(name string) error {
	var n int64
	err := tx.forEachNode(func(id NodeID, rec *record.Node) error {
		if v, ok := rec.Props[name]; ok {
			n++
			return tx.put(page.RootProps, propKey(name, v, id), nil)
		}
		return nil
	})
	if err != nil {
		return err
	}
	tx.countDelta(catIndexCount, name, n)
	return nil
}

func (tx *Tx) clearPropertyIndex(name string) error {
	prefix := binary.BigEndian.AppendUint16(nil, uint16(len(name)))
	prefix = append(prefix, name...)
	keys, err := tx.keys(page.RootProps, prefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.del(page.RootProps, k); err != nil {
			return err
		}
	}
	cur, err := tx.counter(catIndexCount + name)
	if err != nil {
		return err
	}
	tx.countDelta(catIndexCount, name, -int64(cur))
	return nil
}

// keys collects the keys under prefix (so the tree can be modified after).
func (tx *Tx) keys(root int, prefix []byte) ([][]byte, error) {
	var out [][]byte
	err := tx.scan(root, prefix, func(k, _ []byte) (bool, error) {
		out = append(out, bytes.Clone(k))
		return true, nil
	})
	return out, err
}

// forEachNode decodes every node in id order. The callback may modify
// trees other than the node tree.
func (tx *Tx) forEachNode(fn func(NodeID, *record.Node) error) error {
	if err := tx.settleAll(); err != nil {
		return err
	}
	c := btree.NewCursor(tx.reader(), tx.meta.Roots[page.RootNodes])
	for ok := c.First(); ok; ok = c.Next() {
		if err := tx.work.Add(1); err != nil {
			return err
		}
		id := NodeID(binary.BigEndian.Uint64(c.Key()))
		v, err := c.Value()
		if err != nil {
			return tx.db.annotate(err)
		}
		rec, err := record.DecodeNode(v)
		if err != nil {
			return &CorruptionError{Path: tx.db.p.Path(), Offset: -1, Reason: fmt.Sprintf("node %d: %v", id, err)}
		}
		if err := fn(id, rec); err != nil {
			return err
		}
	}
	return tx.db.annotate(c.Err())
}

// RebuildPropertyIndex drops and refills one property index. Under access
// control it runs as user "" (see Session.RebuildPropertyIndex).
func (db *DB) RebuildPropertyIndex(name string) error {
	return db.rebuildPropertyIndex(db.cfg.User, name, nil)
}

// RebuildPropertyIndexContext is RebuildPropertyIndex, stopped when ctx is
// cancelled (checked at every node; the transaction is rolled back, so the
// index is as it was, and the error matches ctx.Err()). progress, if not
// nil, gets nodes visited and the node count (throttled).
func (db *DB) RebuildPropertyIndexContext(ctx context.Context, name string, progress func(done, total int64)) error {
	return db.rebuildPropertyIndex(db.cfg.User, name, rebuildWork(ctx, progress))
}

func (db *DB) rebuildPropertyIndex(user, name string, work *progress.Tracker) (err error) {
	// Access control + audit hook (engine/access.go): needs Configure.
	done, err := db.secGuard(user, PermissionConfigure, OpIndexRebuild, "property:"+name)
	if err != nil {
		return err
	}
	defer done(&err)
	defer work.Finish()
	return db.UpdateAs(user, func(tx *Tx) error {
		tx.work = work
		work.SetTotal(int64(tx.meta.NodeCount))
		idx, err := tx.propIndexes()
		if err != nil {
			return err
		}
		if !idx[name] {
			return fmt.Errorf("property index %q: %w", name, ErrNotFound)
		}
		if err := tx.clearPropertyIndex(name); err != nil {
			return err
		}
		return tx.fillPropertyIndex(name)
	})
}

// RebuildLabelIndex rebuilds the label index entries of one label from the
// node records. Under access control it runs as user "" (see
// Session.RebuildLabelIndex).
func (db *DB) RebuildLabelIndex(label string) error {
	return db.rebuildLabelIndex(db.cfg.User, label, nil)
}

// RebuildLabelIndexContext is RebuildLabelIndex, stopped when ctx is
// cancelled (see RebuildPropertyIndexContext).
func (db *DB) RebuildLabelIndexContext(ctx context.Context, label string, progress func(done, total int64)) error {
	return db.rebuildLabelIndex(db.cfg.User, label, rebuildWork(ctx, progress))
}

func (db *DB) rebuildLabelIndex(user, label string, work *progress.Tracker) (err error) {
	// Access control + audit hook (engine/access.go): needs Configure.
	done, err := db.secGuard(user, PermissionConfigure, OpIndexRebuild, "label:"+label)
	if err != nil {
		return err
	}
	defer done(&err)
	defer work.Finish()
	return db.UpdateAs(user, func(tx *Tx) error {
		tx.work = work
		work.SetTotal(int64(tx.meta.NodeCount))
		prefix := append([]byte(label), 0)
		keys, err := tx.keys(page.RootLabels, prefix)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.del(page.RootLabels, k); err != nil {
				return err
			}
		}
		var n int64
		err = tx.forEachNode(func(id NodeID, rec *record.Node) error {
			for _, l := range rec.Labels {
				if l == label {
					n++
					return tx.put(page.RootLabels, labelKey(l, id), nil)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		cur, err := tx.counter(catLabelCount + label)
		if err != nil {
			return err
		}
		tx.countDelta(catLabelCount, label, n-int64(cur))
		return nil
	})
}

// RebuildAllIndexes rebuilds the label index, every property index and the
// catalog counters from the node and edge records, in one transaction.
// Under access control it runs as user "" (see Session.RebuildAllIndexes).
func (db *DB) RebuildAllIndexes() error { return db.rebuildAllIndexes(db.cfg.User, nil) }

// RebuildAllIndexesContext is RebuildAllIndexes, stopped when ctx is
// cancelled (checked at every record; the transaction is rolled back and
// the error matches ctx.Err()). progress, if not nil, gets records (nodes,
// then edges) visited and their count (throttled).
func (db *DB) RebuildAllIndexesContext(ctx context.Context, progress func(done, total int64)) error {
	return db.rebuildAllIndexes(db.cfg.User, rebuildWork(ctx, progress))
}

// progressTracker is progress.New for the engine's own long reads.
func progressTracker(ctx context.Context, fn func(done, total int64), total int64) *progress.Tracker {
	return progress.New(ctx, fn, total)
}

// rebuildWork returns the tracker of an index rebuild; its total (the
// records the rebuild visits) is set from the rebuild's transaction.
func rebuildWork(ctx context.Context, fn func(done, total int64)) *progress.Tracker {
	return progress.New(ctx, fn, 0)
}

func (db *DB) rebuildAllIndexes(user string, work *progress.Tracker) (err error) {
	// Access control + audit hook (engine/access.go): needs Configure.
	done, err := db.secGuard(user, PermissionConfigure, OpIndexRebuild, "all")
	if err != nil {
		return err
	}
	defer done(&err)
	defer work.Finish()
	return db.UpdateAs(user, func(tx *Tx) error {
		tx.work = work
		work.SetTotal(int64(tx.meta.NodeCount + tx.meta.EdgeCount))
		return tx.rebuildAll()
	})
}

func (tx *Tx) rebuildAll() error {
	if err := tx.settleAll(); err != nil {
		return err
	}
	for _, root := range []int{page.RootLabels, page.RootProps} {
		if err := btree.Drop(tx.w, tx.meta.Roots[root]); err != nil {
			return err
		}
		tx.meta.Roots[root] = 0
	}
	for _, prefix := range []string{catLabelCount, catIndexCount, catEdgeCount} {
		keys, err := tx.keys(page.RootCatalog, []byte(prefix))
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.del(page.RootCatalog, k); err != nil {
				return err
			}
		}
	}
	tx.counts = nil
	idx, err := tx.propIndexes()
	if err != nil {
		return err
	}
	var nodes uint64
	err = tx.forEachNode(func(id NodeID, rec *record.Node) error {
		nodes++
		for _, l := range rec.Labels {
			if err := tx.put(page.RootLabels, labelKey(l, id), nil); err != nil {
				return err
			}
			tx.countDelta(catLabelCount, l, 1)
		}
		for k, v := range rec.Props {
			if idx[k] {
				if err := tx.put(page.RootProps, propKey(k, v, id), nil); err != nil {
					return err
				}
				tx.countDelta(catIndexCount, k, 1)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var edges uint64
	c := btree.NewCursor(tx.w, tx.meta.Roots[page.RootEdges])
	for ok := c.First(); ok; ok = c.Next() {
		if err := tx.work.Add(1); err != nil {
			return err
		}
		v, err := c.Value()
		if err != nil {
			return err
		}
		e, err := record.DecodeEdge(v)
		if err != nil {
			return &CorruptionError{Path: tx.db.p.Path(), Offset: -1, Reason: err.Error()}
		}
		edges++
		tx.countDelta(catEdgeCount, e.Label, 1)
	}
	if err := c.Err(); err != nil {
		return err
	}
	tx.meta.NodeCount, tx.meta.EdgeCount = nodes, edges
	return nil
}

// IndexStatistics reports every label and property index exactly.
// Counting distinct property values scans each property index.
func (db *DB) IndexStatistics() ([]IndexStat, error) { return db.indexStatistics(0) }

// IndexStatisticsSampled is IndexStatistics with each property index's
// distinct values estimated from its first sample entries (in key order)
// when it holds more: entries stay exact (they are counted as the index
// changes), and the stat is marked Estimated. Its cost does not grow with
// the database, which is what a summary view needs.
func (db *DB) IndexStatisticsSampled(sample int) ([]IndexStat, error) {
	return db.indexStatistics(sample)
}

func (db *DB) indexStatistics(sample int) ([]IndexStat, error) {
	var out []IndexStat
	err := db.View(func(tx *Tx) error {
		labels, err := tx.counters(catLabelCount)
		if err != nil {
			return err
		}
		for _, lc := range sortedCounts(labels) {
			s := IndexStat{Name: "label:" + lc.Label, Kind: "label", Entries: lc.Count, Distinct: 1}
			if tx.meta.NodeCount > 0 {
				s.Selectivity = float64(lc.Count) / float64(tx.meta.NodeCount)
			}
			out = append(out, s)
		}
		idx, err := tx.propIndexes()
		if err != nil {
			return err
		}
		for _, name := range sortedKeys(idx) {
			s := IndexStat{Name: "property:" + name, Kind: "property"}
			prefix := binary.BigEndian.AppendUint16(nil, uint16(len(name)))
			prefix = append(prefix, name...)
			var last []byte
			var seen, distinct uint64
			err := tx.scan(page.RootProps, prefix, func(k, _ []byte) (bool, error) {
				if sample > 0 && seen == uint64(sample) {
					s.Estimated = true
					return false, nil
				}
				seen++
				vk := k[len(prefix) : len(k)-8]
				if !bytes.Equal(vk, last) {
					distinct++
					last = append(last[:0], vk...)
				}
				return true, nil
			})
			if err != nil {
				return err
			}
			s.Entries, s.Distinct = seen, distinct
			if s.Estimated {
				if s.Entries, err = tx.counter(catIndexCount + name); err != nil {
					return err
				}
				s.Distinct = uint64(float64(distinct) / float64(seen) * float64(s.Entries))
			}
			if s.Entries > 0 {
				s.Selectivity = float64(s.Distinct) / float64(s.Entries)
			}
			out = append(out, s)
		}
		return nil
	})
	return out, err
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
