package engine

import (
	"encoding/binary"
	"iter"
	"sort"

	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/record"
)

func sortStrings(s []string) { sort.Strings(s) }

// Nodes iterates over every node in id order without materialising them
// all. Stop early by breaking out of the loop.
func (tx *Tx) Nodes() iter.Seq2[*Node, error] {
	return func(yield func(*Node, error) bool) {
		if err := tx.check(false); err != nil {
			yield(nil, err)
			return
		}
		if tx.auditingReads() {
			tx.auditRead("scan:nodes")() // the loop body is the caller's: its reads are its own
		}
		if err := tx.settleAll(); err != nil {
			yield(nil, err)
			return
		}
		c := btree.NewCursor(tx.reader(), tx.meta.Roots[page.RootNodes])
		for ok := c.First(); ok; ok = c.Next() {
			id := NodeID(binary.BigEndian.Uint64(c.Key()))
			v, err := c.Value()
			if err != nil {
				yield(nil, tx.db.annotate(err))
				return
			}
			nd, err := decodeNode(id, v)
			if err != nil {
				yield(nil, &CorruptionError{Path: tx.db.p.Path(), Offset: -1, Reason: err.Error()})
				return
			}
			if !yield(nd, nil) {
				return
			}
		}
		if err := c.Err(); err != nil {
			yield(nil, tx.db.annotate(err))
		}
	}
}

// Edges iterates over every edge in id order.
func (tx *Tx) Edges() iter.Seq2[*Edge, error] {
	return func(yield func(*Edge, error) bool) {
		if err := tx.check(false); err != nil {
			yield(nil, err)
			return
		}
		if tx.auditingReads() {
			tx.auditRead("scan:edges")() // the loop body is the caller's: its reads are its own
		}
		if err := tx.settleAll(); err != nil {
			yield(nil, err)
			return
		}
		c := btree.NewCursor(tx.reader(), tx.meta.Roots[page.RootEdges])
		for ok := c.First(); ok; ok = c.Next() {
			id := EdgeID(binary.BigEndian.Uint64(c.Key()))
			v, err := c.Value()
			if err != nil {
				yield(nil, tx.db.annotate(err))
				return
			}
			e, err := record.DecodeEdge(v)
			if err != nil {
				yield(nil, &CorruptionError{Path: tx.db.p.Path(), Offset: -1, Reason: err.Error()})
				return
			}
			if !yield(&Edge{ID: id, From: NodeID(e.From), To: NodeID(e.To), Label: e.Label, Properties: e.Props}, nil) {
				return
			}
		}
		if err := c.Err(); err != nil {
			yield(nil, tx.db.annotate(err))
		}
	}
}

func view[T any](db *DB, fn func(*Tx) (T, error)) (T, error) {
	var out T
	err := db.View(func(tx *Tx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	return out, err
}

// GetNode reads a node in its own read transaction.
func (db *DB) GetNode(id NodeID) (*Node, error) {
	return view(db, func(tx *Tx) (*Node, error) { return tx.GetNode(id) })
}

// GetEdge reads an edge in its own read transaction.
func (db *DB) GetEdge(id EdgeID) (*Edge, error) {
	return view(db, func(tx *Tx) (*Edge, error) { return tx.GetEdge(id) })
}

// Neighbors returns a node's outgoing neighbours.
func (db *DB) Neighbors(id NodeID) ([]NodeID, error) {
	return view(db, func(tx *Tx) ([]NodeID, error) { return tx.Neighbors(id) })
}

// IncomingNeighbors returns a node's incoming neighbours.
func (db *DB) IncomingNeighbors(id NodeID) ([]NodeID, error) {
	return view(db, func(tx *Tx) ([]NodeID, error) { return tx.IncomingNeighbors(id) })
}

// NodesByLabel returns the nodes carrying label.
func (db *DB) NodesByLabel(label string) ([]NodeID, error) {
	return view(db, func(tx *Tx) ([]NodeID, error) { return tx.NodesByLabel(label) })
}

// NodesByProperty returns the nodes whose property equals v.
func (db *DB) NodesByProperty(key string, v PropertyValue) ([]NodeID, error) {
	return view(db, func(tx *Tx) ([]NodeID, error) { return tx.NodesByProperty(key, v) })
}

// NodesInRange returns node ids in [lo, hi].
func (db *DB) NodesInRange(lo, hi NodeID) ([]NodeID, error) {
	return view(db, func(tx *Tx) ([]NodeID, error) { return tx.NodesInRange(lo, hi) })
}

// NodesFrom returns node ids >= lo.
func (db *DB) NodesFrom(lo NodeID) ([]NodeID, error) {
	return view(db, func(tx *Tx) ([]NodeID, error) { return tx.NodesFrom(lo) })
}

// NodesTo returns node ids <= hi.
func (db *DB) NodesTo(hi NodeID) ([]NodeID, error) {
	return view(db, func(tx *Tx) ([]NodeID, error) { return tx.NodesTo(hi) })
}

// FirstNNodes returns the n smallest node ids.
func (db *DB) FirstNNodes(n int) ([]NodeID, error) {
	return view(db, func(tx *Tx) ([]NodeID, error) { return tx.FirstNNodes(n) })
}

// LastNNodes returns the n largest node ids, largest first.
func (db *DB) LastNNodes(n int) ([]NodeID, error) {
	return view(db, func(tx *Tx) ([]NodeID, error) { return tx.LastNNodes(n) })
}

// AllNodeIDsOrdered returns every node id, ascending.
func (db *DB) AllNodeIDsOrdered() ([]NodeID, error) {
	return view(db, func(tx *Tx) ([]NodeID, error) { return tx.AllNodeIDsOrdered() })
}

// FirstNode returns the smallest node id.
func (db *DB) FirstNode() (NodeID, bool, error) {
	ids, err := db.FirstNNodes(1)
	if err != nil || len(ids) == 0 {
		return 0, false, err
	}
	return ids[0], true, nil
}

// LastNode returns the largest node id.
func (db *DB) LastNode() (NodeID, bool, error) {
	ids, err := db.LastNNodes(1)
	if err != nil || len(ids) == 0 {
		return 0, false, err
	}
	return ids[0], true, nil
}

// SetNodeProperty sets a property in its own write transaction.
func (db *DB) SetNodeProperty(id NodeID, key string, v PropertyValue) error {
	return db.Update(func(tx *Tx) error { return tx.SetNodeProperty(id, key, v) })
}

// RemoveNodeProperty removes a property in its own write transaction.
func (db *DB) RemoveNodeProperty(id NodeID, key string) error {
	return db.Update(func(tx *Tx) error { return tx.RemoveNodeProperty(id, key) })
}
