package engine

import (
	"fmt"

	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/record"
)

// importNode adds a node under a given id instead of the next free one, so
// tools that copy data between databases (salvage, import) keep ids. It
// fails with ErrInvalid for id 0 and ErrExists if the id is taken. The
// next id handed out by CreateNode stays above every imported id.
func (tx *Tx) importNode(id NodeID, labels []string, props Properties) error {
	if err := tx.check(true); err != nil {
		return err
	}
	if id == 0 {
		return fmt.Errorf("import node: id 0: %w", ErrInvalid)
	}
	for _, l := range labels {
		if err := validLabel(l); err != nil {
			return err
		}
	}
	ok, err := tx.NodeExists(id)
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("import node %d: %w", id, ErrExists)
	}
	if err := tx.writeNode(id, &record.Node{Labels: labels, Props: props}); err != nil {
		return err
	}
	tx.meta.NodeCount++
	tx.meta.NextNodeID = max(tx.meta.NextNodeID, uint64(id)+1)
	tx.db.metrics.writes.Add(1)
	return nil
}

// importEdge adds an edge under a given id between two existing nodes
// (see importNode).
func (tx *Tx) importEdge(id EdgeID, from, to NodeID, label string, props Properties) error {
	if err := tx.check(true); err != nil {
		return err
	}
	if id == 0 {
		return fmt.Errorf("import edge: id 0: %w", ErrInvalid)
	}
	if err := validLabel(label); err != nil {
		return err
	}
	for _, n := range []NodeID{from, to} {
		ok, err := tx.NodeExists(n)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("import edge %d: node %d: %w", id, n, ErrNotFound)
		}
	}
	_, taken, err := tx.get(page.RootEdges, be64(uint64(id)))
	if err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("import edge %d: %w", id, ErrExists)
	}
	if err := tx.writeEdge(id, &record.Edge{From: uint64(from), To: uint64(to), Label: label, Props: props}); err != nil {
		return err
	}
	tx.meta.EdgeCount++
	tx.meta.NextEdgeID = max(tx.meta.NextEdgeID, uint64(id)+1)
	tx.db.metrics.writes.Add(1)
	return nil
}

// reserveIDs raises the next node and edge ids to at least the given
// values (it never lowers them), so ids used by deleted records of an
// imported database are not handed out again.
func (tx *Tx) reserveIDs(nextNode NodeID, nextEdge EdgeID) error {
	if err := tx.check(true); err != nil {
		return err
	}
	if uint64(nextNode) <= tx.meta.NextNodeID && uint64(nextEdge) <= tx.meta.NextEdgeID {
		return nil
	}
	tx.meta.NextNodeID = max(tx.meta.NextNodeID, uint64(nextNode))
	tx.meta.NextEdgeID = max(tx.meta.NextEdgeID, uint64(nextEdge))
	return tx.touchHeader()
}

// touchHeader marks page 0 dirty so that a transaction whose only change
// is to header fields still commits them (a commit without dirty pages
// writes nothing).
func (tx *Tx) touchHeader() error {
	_, err := tx.w.Mut(0)
	return tx.db.annotate(err)
}
