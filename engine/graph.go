package engine

import (
	"encoding/binary"
	"fmt"
	"iter"
	"strings"

	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/record"
)

// Key layouts of the graph's trees (all big endian, so byte order is
// numeric order):
//
//	nodes:  node id (8)                          -> node record
//	edges:  edge id (8)                          -> edge record
//	adj:    see adjacency.go
//	labels: label, 0x00, node id (8)             -> ()
//	props:  name length (2), name, value key, node id (8) -> ()

func labelKey(label string, n NodeID) []byte {
	k := append([]byte(label), 0)
	return binary.BigEndian.AppendUint64(k, uint64(n))
}

func propPrefix(name string, v PropertyValue) []byte {
	k := binary.BigEndian.AppendUint16(nil, uint16(len(name)))
	k = append(k, name...)
	return record.IndexKey(k, v)
}

func propKey(name string, v PropertyValue, n NodeID) []byte {
	return binary.BigEndian.AppendUint64(propPrefix(name, v), uint64(n))
}

func validLabel(l string) error {
	if strings.IndexByte(l, 0) >= 0 || len(l) > 255 {
		return fmt.Errorf("label %q: must be at most 255 bytes without NUL: %w", l, ErrInvalid)
	}
	return nil
}

// CreateNode adds a node with one label ("" for none) and properties.
func (tx *Tx) CreateNode(label string, props Properties) (NodeID, error) {
	var labels []string
	if label != "" {
		labels = []string{label}
	}
	return tx.CreateNodeWithLabels(labels, props)
}

// CreateNodeWithLabels adds a node with any number of labels.
func (tx *Tx) CreateNodeWithLabels(labels []string, props Properties) (nid NodeID, err error) {
	if tx.sec.st != nil { // access control + audit hook (engine/access.go): needs Write
		if err := tx.secEnter(PermissionWrite, OpNodeCreate, ""); err != nil {
			return 0, err
		}
		defer func() { tx.secLeave(OpNodeCreate, createdTarget(nid), err) }()
	}
	if err := tx.check(true); err != nil {
		return 0, err
	}
	seen := make(map[string]bool, len(labels))
	uniq := make([]string, 0, len(labels))
	for _, l := range labels {
		if err := validLabel(l); err != nil {
			return 0, err
		}
		if !seen[l] { // a label is carried once, however often it is given
			seen[l] = true
			uniq = append(uniq, l)
		}
	}
	labels = uniq
	id := NodeID(tx.meta.NextNodeID)
	if err := tx.writeNode(id, &record.Node{Labels: labels, Props: props}); err != nil {
		return 0, err
	}
	tx.noteCreated(id)
	tx.meta.NextNodeID++
	tx.meta.NodeCount++
	tx.db.metrics.writes.Add(1)
	return id, nil
}

// writeNode stores a new node record and its index entries. The record
// and label entries are encoded straight into the write buffer
// (writebuf.go): no per-node key or record allocation.
func (tx *Tx) writeNode(id NodeID, n *record.Node) error {
	if n.Props == nil {
		n.Props = Properties{}
	}
	a := tx.bufSpace(page.RootNodes)
	off := len(a)
	a = binary.BigEndian.AppendUint64(a, uint64(id))
	a = record.AppendNode(a, n)
	if err := tx.bufAdded(page.RootNodes, a, off, 8); err != nil {
		return fmt.Errorf("create node %d: %w", id, err)
	}
	for _, l := range n.Labels {
		a := tx.bufSpace(page.RootLabels)
		off := len(a)
		a = append(a, l...)
		a = append(a, 0)
		a = binary.BigEndian.AppendUint64(a, uint64(id))
		if err := tx.bufAdded(page.RootLabels, a, off, len(l)+9); err != nil {
			return err
		}
		tx.countDelta(catLabelCount, l, 1)
	}
	if len(n.Props) == 0 {
		return nil
	}
	idx, err := tx.propIndexes()
	if err != nil {
		return err
	}
	for k, v := range n.Props {
		if idx[k] {
			if err := tx.put(page.RootProps, propKey(k, v, id), nil); err != nil {
				return err
			}
			tx.countDelta(catIndexCount, k, 1)
		}
	}
	return nil
}

func (tx *Tx) nodeRecord(id NodeID) (*record.Node, error) {
	v, ok, err := tx.get(page.RootNodes, be64(uint64(id)))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("node %d: %w", id, ErrNotFound)
	}
	n, err := record.DecodeNode(v)
	if err != nil {
		return nil, &CorruptionError{Path: tx.db.p.Path(), Page: 0, Offset: -1, Reason: fmt.Sprintf("node %d: %v", id, err)}
	}
	return n, nil
}

// GetNode returns a node.
func (tx *Tx) GetNode(id NodeID) (*Node, error) {
	if err := tx.check(false); err != nil {
		return nil, err
	}
	if tx.auditingReads() {
		defer tx.auditRead(nodeTarget(id))()
	}
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], uint64(id))
	v, ok, err := tx.get(page.RootNodes, key[:])
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("node %d: %w", id, ErrNotFound)
	}
	nd, err := decodeNode(id, v)
	if err != nil {
		return nil, &CorruptionError{Path: tx.db.p.Path(), Page: 0, Offset: -1, Reason: fmt.Sprintf("node %d: %v", id, err)}
	}
	return nd, nil
}

// decodeNode decodes node id's record with one allocation for the node,
// the decoded record and the backing array of a single label (the common
// case), besides the record's strings (one copy) and its property map.
func decodeNode(id NodeID, v []byte) (*Node, error) {
	box := new(struct {
		n   Node
		rec record.Node
		lab [1]string
	})
	if err := record.DecodeNodeInto(v, &box.rec, box.lab[:0]); err != nil {
		return nil, err
	}
	box.n = Node{ID: id, Labels: box.rec.Labels, Properties: box.rec.Props}
	return &box.n, nil
}

// NodeExists reports whether a node exists.
func (tx *Tx) NodeExists(id NodeID) (bool, error) {
	if err := tx.check(false); err != nil {
		return false, err
	}
	if tx.auditingReads() {
		defer tx.auditRead("exists " + nodeTarget(id))()
	}
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], uint64(id))
	_, ok, err := tx.get(page.RootNodes, key[:])
	return ok, err
}

// CreateEdge adds an edge between two existing nodes.
func (tx *Tx) CreateEdge(from, to NodeID, label string, props Properties) (eid EdgeID, err error) {
	if tx.sec.st != nil { // access control + audit hook (engine/access.go): needs Write
		if err := tx.secEnter(PermissionWrite, OpEdgeCreate, ""); err != nil {
			return 0, err
		}
		defer func() { tx.secLeave(OpEdgeCreate, edgeCreateTarget(eid, from, to), err) }()
	}
	if err := tx.check(true); err != nil {
		return 0, err
	}
	if err := validLabel(label); err != nil {
		return 0, err
	}
	for _, n := range [2]NodeID{from, to} {
		if tx.createdHere(n) || tx.checkedHere(n) {
			continue
		}
		ok, err := tx.NodeExists(n)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("create edge: node %d: %w", n, ErrNotFound)
		}
		tx.noteChecked(n)
	}
	id := EdgeID(tx.meta.NextEdgeID)
	if err := tx.writeEdge(id, &record.Edge{From: uint64(from), To: uint64(to), Label: label, Props: props}); err != nil {
		return 0, err
	}
	tx.meta.NextEdgeID++
	tx.meta.EdgeCount++
	tx.db.metrics.writes.Add(1)
	return id, nil
}

// writeEdge stores a new edge record and its two adjacency entries,
// encoded straight into the write buffer (writebuf.go).
func (tx *Tx) writeEdge(id EdgeID, e *record.Edge) error {
	if e.Props == nil {
		e.Props = Properties{}
	}
	a := tx.bufSpace(page.RootEdges)
	off := len(a)
	a = binary.BigEndian.AppendUint64(a, uint64(id))
	a = record.AppendEdge(a, e)
	if err := tx.bufAdded(page.RootEdges, a, off, 8); err != nil {
		return fmt.Errorf("create edge %d: %w", id, err)
	}
	if err := tx.adjLink(id, NodeID(e.From), NodeID(e.To)); err != nil {
		return err
	}
	tx.countDelta(catEdgeCount, e.Label, 1)
	return nil
}

// GetEdge returns an edge.
func (tx *Tx) GetEdge(id EdgeID) (*Edge, error) {
	if err := tx.check(false); err != nil {
		return nil, err
	}
	if tx.auditingReads() {
		defer tx.auditRead(edgeTarget(id))()
	}
	v, ok, err := tx.get(page.RootEdges, be64(uint64(id)))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("edge %d: %w", id, ErrNotFound)
	}
	e, err := record.DecodeEdge(v)
	if err != nil {
		return nil, &CorruptionError{Path: tx.db.p.Path(), Page: 0, Offset: -1, Reason: fmt.Sprintf("edge %d: %v", id, err)}
	}
	return &Edge{ID: id, From: NodeID(e.From), To: NodeID(e.To), Label: e.Label, Properties: e.Props}, nil
}

// DeleteEdge removes an edge.
func (tx *Tx) DeleteEdge(id EdgeID) (err error) {
	if tx.sec.st != nil { // access control + audit hook (engine/access.go): needs Delete
		if err := tx.secEnter(PermissionDelete, OpEdgeDelete, edgeTarget(id)); err != nil {
			return err
		}
		defer func() { tx.secLeave(OpEdgeDelete, edgeTarget(id), err) }()
	}
	if err := tx.check(true); err != nil {
		return err
	}
	e, err := tx.GetEdge(id)
	if err != nil {
		return err
	}
	for _, k := range [][]byte{be64(uint64(id))} {
		if err := tx.del(page.RootEdges, k); err != nil {
			return err
		}
	}
	if err := tx.adjUnlink(id, e.From, e.To); err != nil {
		return err
	}
	tx.countDelta(catEdgeCount, e.Label, -1)
	tx.meta.EdgeCount--
	tx.db.metrics.writes.Add(1)
	return nil
}

// DeleteNode removes a node and every edge that touches it.
func (tx *Tx) DeleteNode(id NodeID) (err error) {
	if tx.sec.st != nil { // access control + audit hook (engine/access.go): needs Delete
		if err := tx.secEnter(PermissionDelete, OpNodeDelete, nodeTarget(id)); err != nil {
			return err
		}
		defer func() { tx.secLeave(OpNodeDelete, nodeTarget(id), err) }()
	}
	if err := tx.check(true); err != nil {
		return err
	}
	n, err := tx.nodeRecord(id)
	if err != nil {
		return err
	}
	out, err := tx.OutgoingEdges(id)
	if err != nil {
		return err
	}
	in, err := tx.IncomingEdges(id)
	if err != nil {
		return err
	}
	seen := map[EdgeID]bool{}
	for _, e := range append(out, in...) {
		if seen[e] {
			continue // a self-loop is both outgoing and incoming
		}
		seen[e] = true
		if err := tx.DeleteEdge(e); err != nil {
			return err
		}
	}
	for _, l := range n.Labels {
		if err := tx.del(page.RootLabels, labelKey(l, id)); err != nil {
			return err
		}
		tx.countDelta(catLabelCount, l, -1)
	}
	idx, err := tx.propIndexes()
	if err != nil {
		return err
	}
	for k, v := range n.Props {
		if idx[k] {
			if err := tx.del(page.RootProps, propKey(k, v, id)); err != nil {
				return err
			}
			tx.countDelta(catIndexCount, k, -1)
		}
	}
	if err := tx.del(page.RootNodes, be64(uint64(id))); err != nil {
		return err
	}
	tx.meta.NodeCount--
	tx.db.metrics.writes.Add(1)
	return nil
}

// SetNodeProperty sets one property. The record is rewritten in place when
// it still fits its slot; the property index is updated in the same
// transaction.
func (tx *Tx) SetNodeProperty(id NodeID, key string, v PropertyValue) error {
	return tx.updateProperty(id, key, &v)
}

// RemoveNodeProperty deletes one property; removing an absent property is
// not an error.
func (tx *Tx) RemoveNodeProperty(id NodeID, key string) error {
	return tx.updateProperty(id, key, nil)
}

func (tx *Tx) updateProperty(id NodeID, key string, v *PropertyValue) (err error) {
	if tx.sec.st != nil { // access control + audit hook (engine/access.go): needs Write
		target := propTarget(id, key, v != nil)
		if err := tx.secEnter(PermissionWrite, OpNodeUpdate, target); err != nil {
			return err
		}
		defer func() { tx.secLeave(OpNodeUpdate, target, err) }()
	}
	if err := tx.check(true); err != nil {
		return err
	}
	n, err := tx.nodeRecord(id)
	if err != nil {
		return err
	}
	old, had := n.Props[key]
	if v == nil && !had {
		return nil
	}
	idx, err := tx.propIndexes()
	if err != nil {
		return err
	}
	if idx[key] && had {
		if err := tx.del(page.RootProps, propKey(key, old, id)); err != nil {
			return err
		}
		tx.countDelta(catIndexCount, key, -1)
	}
	if v == nil {
		delete(n.Props, key)
	} else {
		n.Props[key] = *v
		if idx[key] {
			if err := tx.put(page.RootProps, propKey(key, *v, id), nil); err != nil {
				return err
			}
			tx.countDelta(catIndexCount, key, 1)
		}
	}
	tx.db.metrics.writes.Add(1)
	return tx.put(page.RootNodes, be64(uint64(id)), record.EncodeNode(n))
}

func (tx *Tx) adjacent(dir adjDir, id NodeID, fn func(e EdgeID, other NodeID)) error {
	return tx.adjacentFunc(dir, id, func(e EdgeID, n NodeID) bool { fn(e, n); return true })
}

// adjacentFunc calls fn for the node's adjacency entries in one direction,
// in edge id order, until fn returns false. It allocates nothing.
func (tx *Tx) adjacentFunc(dir adjDir, id NodeID, fn func(e EdgeID, other NodeID) bool) error {
	if err := tx.check(false); err != nil {
		return err
	}
	if tx.auditingReads() {
		defer tx.auditRead("neighbors " + nodeTarget(id))()
	}
	found, err := tx.adjScan(dir, id, fn)
	if err != nil || found {
		// An adjacency entry exists only while both endpoints do, so the
		// node's existence needs no second descent.
		return err
	}
	ok, err := tx.NodeExists(id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("node %d: %w", id, ErrNotFound)
	}
	return nil
}

// NeighborsFunc calls fn with the target of each of the node's outgoing
// edges (one call per edge, in edge id order) until fn returns false. It is
// Neighbors without the slice: it allocates nothing, so a traversal can
// keep its own visited set and frontier. fn may call tx's read methods
// (NeighborsFunc again, for a second hop).
func (tx *Tx) NeighborsFunc(id NodeID, fn func(NodeID) bool) error {
	return tx.adjacentFunc(adjOut, id, func(_ EdgeID, n NodeID) bool { return fn(n) })
}

// IncomingNeighborsFunc is NeighborsFunc for incoming edges (fn gets the
// sources).
func (tx *Tx) IncomingNeighborsFunc(id NodeID, fn func(NodeID) bool) error {
	return tx.adjacentFunc(adjIn, id, func(_ EdgeID, n NodeID) bool { return fn(n) })
}

// NeighborSeq is NeighborsFunc as an iterator: for n, err := range
// tx.NeighborSeq(id). An error is yielded once, last.
func (tx *Tx) NeighborSeq(id NodeID) iter.Seq2[NodeID, error] {
	return func(yield func(NodeID, error) bool) {
		stopped := false
		err := tx.NeighborsFunc(id, func(n NodeID) bool {
			if !yield(n, nil) {
				stopped = true
				return false
			}
			return true
		})
		if err != nil && !stopped {
			yield(0, err)
		}
	}
}

// Neighbors returns the targets of a node's outgoing edges (one entry per
// edge, in edge id order).
func (tx *Tx) Neighbors(id NodeID) ([]NodeID, error) {
	var out []NodeID
	err := tx.adjacent(adjOut, id, func(_ EdgeID, n NodeID) { out = append(out, n) })
	return out, err
}

// IncomingNeighbors returns the sources of a node's incoming edges.
func (tx *Tx) IncomingNeighbors(id NodeID) ([]NodeID, error) {
	var out []NodeID
	err := tx.adjacent(adjIn, id, func(_ EdgeID, n NodeID) { out = append(out, n) })
	return out, err
}

// OutgoingEdges returns the ids of a node's outgoing edges.
func (tx *Tx) OutgoingEdges(id NodeID) ([]EdgeID, error) {
	var out []EdgeID
	err := tx.adjacent(adjOut, id, func(e EdgeID, _ NodeID) { out = append(out, e) })
	return out, err
}

// IncomingEdges returns the ids of a node's incoming edges.
func (tx *Tx) IncomingEdges(id NodeID) ([]EdgeID, error) {
	var out []EdgeID
	err := tx.adjacent(adjIn, id, func(e EdgeID, _ NodeID) { out = append(out, e) })
	return out, err
}

// NodesByLabel returns the nodes carrying label, in id order.
func (tx *Tx) NodesByLabel(label string) ([]NodeID, error) {
	if err := tx.check(false); err != nil {
		return nil, err
	}
	if tx.auditingReads() {
		defer tx.auditRead("label:" + label)()
	}
	var out []NodeID
	prefix := append([]byte(label), 0)
	err := tx.scan(page.RootLabels, prefix, func(k, _ []byte) (bool, error) {
		if len(k) == len(prefix)+8 {
			out = append(out, NodeID(binary.BigEndian.Uint64(k[len(prefix):])))
		}
		return true, nil
	})
	return out, err
}

// NodesByProperty returns the nodes whose property key equals v, using the
// property index when one exists and a scan of all nodes otherwise.
func (tx *Tx) NodesByProperty(key string, v PropertyValue) ([]NodeID, error) {
	if err := tx.check(false); err != nil {
		return nil, err
	}
	if tx.auditingReads() {
		defer tx.auditRead("property:" + key)()
	}
	idx, err := tx.propIndexes()
	if err != nil {
		return nil, err
	}
	if !idx[key] {
		return tx.scanNodesWhere(key, v.Equal)
	}
	var out []NodeID
	prefix := propPrefix(key, v)
	err = tx.scan(page.RootProps, prefix, func(k, _ []byte) (bool, error) {
		if len(k) == len(prefix)+8 {
			out = append(out, NodeID(binary.BigEndian.Uint64(k[len(prefix):])))
		}
		return true, nil
	})
	if err != nil || !record.Hashed(v) {
		return out, err
	}
	// Long values are indexed by digest: confirm each candidate.
	confirmed := out[:0]
	for _, id := range out {
		n, err := tx.nodeRecord(id)
		if err != nil {
			return nil, err
		}
		if pv, ok := n.Props[key]; ok && pv.Equal(v) {
			confirmed = append(confirmed, id)
		}
	}
	return confirmed, nil
}

// nodeIDs walks node ids from lo (inclusive) upwards while fn returns true.
func (tx *Tx) nodeIDs(lo NodeID, fn func(NodeID) bool) error {
	if err := tx.check(false); err != nil {
		return err
	}
	if tx.auditingReads() {
		defer tx.auditRead("node_ids from " + nodeTarget(lo))()
	}
	if err := tx.settle(page.RootNodes); err != nil {
		return err
	}
	err := btree.ScanKeys(tx.reader(), tx.meta.Roots[page.RootNodes], be64(uint64(lo)), func(k []byte) bool {
		return fn(NodeID(binary.BigEndian.Uint64(k)))
	})
	return tx.db.annotate(err)
}

// NodesInRange returns node ids in [lo, hi], ascending.
func (tx *Tx) NodesInRange(lo, hi NodeID) ([]NodeID, error) {
	var out []NodeID
	err := tx.nodeIDs(lo, func(id NodeID) bool {
		if id > hi {
			return false
		}
		out = append(out, id)
		return true
	})
	return out, err
}

// NodesFrom returns node ids >= lo, ascending.
func (tx *Tx) NodesFrom(lo NodeID) ([]NodeID, error) {
	var out []NodeID
	err := tx.nodeIDs(lo, func(id NodeID) bool { out = append(out, id); return true })
	return out, err
}

// NodesTo returns node ids <= hi, ascending.
func (tx *Tx) NodesTo(hi NodeID) ([]NodeID, error) { return tx.NodesInRange(0, hi) }

// AllNodeIDsOrdered returns every node id, ascending.
func (tx *Tx) AllNodeIDsOrdered() ([]NodeID, error) {
	if err := tx.check(false); err != nil {
		return nil, err
	}
	if err := tx.settle(page.RootNodes); err != nil {
		return nil, err
	}
	out, err := btree.AppendUint64Keys(tx.reader(), tx.meta.Roots[page.RootNodes], make([]NodeID, 0, tx.meta.NodeCount))
	return out, tx.db.annotate(err)
}

// FirstNNodes returns the n smallest node ids, ascending.
func (tx *Tx) FirstNNodes(n int) ([]NodeID, error) {
	var out []NodeID
	if n <= 0 {
		return out, tx.check(false)
	}
	err := tx.nodeIDs(0, func(id NodeID) bool { out = append(out, id); return len(out) < n })
	return out, err
}

// LastNNodes returns the n largest node ids, largest first.
func (tx *Tx) LastNNodes(n int) ([]NodeID, error) {
	if err := tx.check(false); err != nil {
		return nil, err
	}
	var out []NodeID
	if n <= 0 {
		return out, nil
	}
	if err := tx.settle(page.RootNodes); err != nil {
		return nil, err
	}
	c := btree.NewCursor(tx.reader(), tx.meta.Roots[page.RootNodes])
	for ok := c.Last(); ok && len(out) < n; ok = c.Prev() {
		out = append(out, NodeID(binary.BigEndian.Uint64(c.Key())))
	}
	return out, tx.db.annotate(c.Err())
}

// FirstNode returns the smallest node id; ok is false for an empty graph.
func (tx *Tx) FirstNode() (NodeID, bool, error) {
	ids, err := tx.FirstNNodes(1)
	if err != nil || len(ids) == 0 {
		return 0, false, err
	}
	return ids[0], true, nil
}

// LastNode returns the largest node id; ok is false for an empty graph.
func (tx *Tx) LastNode() (NodeID, bool, error) {
	ids, err := tx.LastNNodes(1)
	if err != nil || len(ids) == 0 {
		return 0, false, err
	}
	return ids[0], true, nil
}

// NodeCount returns the number of nodes.
func (tx *Tx) NodeCount() uint64 { return tx.meta.NodeCount }

// EdgeCount returns the number of edges.
func (tx *Tx) EdgeCount() uint64 { return tx.meta.EdgeCount }
