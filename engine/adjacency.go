package engine

import (
	"encoding/binary"

	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/page"
)

// Adjacency storage. This file is the only code of the engine that knows
// how a node's edges are laid out in the adjacency tree: edge creation and
// deletion, neighbour reads and repair's rebuild go through adjLink,
// adjUnlink, adjScan and adjEntries, so the write path (bulk ordering,
// spilling) does not depend on the layout, and a new layout changes this
// file (plus the integrity checker, which reads the tree independently).
//
// Layout (format version 1): one entry per edge and direction,
//
//	'o'|'i', node id (8), edge id (8) -> other node id (8)
//
// all big endian, so a node's edges in one direction are one contiguous
// run of the tree in edge id order.

// adjDir is a direction of adjacency: the node's outgoing or incoming edges.
type adjDir byte

const (
	adjOut adjDir = 'o'
	adjIn  adjDir = 'i'
)

func adjKey(dir adjDir, n NodeID, e EdgeID) []byte {
	k := make([]byte, 17)
	k[0] = byte(dir)
	binary.BigEndian.PutUint64(k[1:], uint64(n))
	binary.BigEndian.PutUint64(k[9:], uint64(e))
	return k
}

// adjEntries calls add with the tree entries edge id between from and to
// needs (repair compares them with the tree's).
func adjEntries(id EdgeID, from, to NodeID, add func(k, v []byte)) {
	add(adjKey(adjOut, from, id), be64(uint64(to)))
	add(adjKey(adjIn, to, id), be64(uint64(from)))
}

// adjLink stores edge id in the adjacency of both endpoints. The entries
// are encoded straight into the write buffer (writebuf.go), which applies
// them in key order: no per-edge key allocation, one descent per leaf.
func (tx *Tx) adjLink(id EdgeID, from, to NodeID) error {
	if err := tx.bufAdj(adjOut, from, id, to); err != nil {
		return err
	}
	return tx.bufAdj(adjIn, to, id, from)
}

// bufAdj buffers the adjacency entry adjKey(dir, n, e) -> other.
func (tx *Tx) bufAdj(dir adjDir, n NodeID, e EdgeID, other NodeID) error {
	a := tx.bufSpace(page.RootAdj)
	off := len(a)
	a = append(a, byte(dir))
	a = binary.BigEndian.AppendUint64(a, uint64(n))
	a = binary.BigEndian.AppendUint64(a, uint64(e))
	a = binary.BigEndian.AppendUint64(a, uint64(other))
	return tx.bufAdded(page.RootAdj, a, off, 17)
}

// adjUnlink removes edge id from the adjacency of both endpoints.
func (tx *Tx) adjUnlink(id EdgeID, from, to NodeID) error {
	if err := tx.del(page.RootAdj, adjKey(adjOut, from, id)); err != nil {
		return err
	}
	return tx.del(page.RootAdj, adjKey(adjIn, to, id))
}

// adjScan calls fn with the node's edges in one direction, in edge id
// order, until fn returns false; found reports whether the node has any.
// It is one descent and a walk along a leaf or two, and allocates nothing
// (the cursor comes from a pool).
func (tx *Tx) adjScan(dir adjDir, id NodeID, fn func(e EdgeID, other NodeID) bool) (found bool, err error) {
	if err := tx.settle(page.RootAdj); err != nil {
		return false, err
	}
	var prefix [9]byte
	prefix[0] = byte(dir)
	binary.BigEndian.PutUint64(prefix[1:], uint64(id))
	c := btree.GetCursor(tx.reader(), tx.meta.Roots[page.RootAdj])
	defer btree.PutCursor(c)
	for ok := c.Seek(prefix[:]); ok; ok = c.Next() {
		k := c.Key()
		if len(k) < 9 || [9]byte(k[:9]) != prefix {
			break
		}
		v, err := c.Value()
		if err != nil {
			return found, tx.db.annotate(err)
		}
		if len(k) != 17 || len(v) != 8 {
			return found, &CorruptionError{Path: tx.db.p.Path(), Offset: -1, Reason: "malformed adjacency entry"}
		}
		found = true
		if !fn(EdgeID(binary.BigEndian.Uint64(k[9:])), NodeID(binary.BigEndian.Uint64(v))) {
			return true, nil
		}
	}
	return found, tx.db.annotate(c.Err())
}
