package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/record"
)

// NodesByPropertyRange returns the nodes whose property key lies between
// lo and hi (both inclusive), in value order. lo and hi must be of the
// same kind, int or float: those are the kinds whose index keys sort as
// the values do, so with a property index the query is one index range
// scan. Without an index every node is scanned and the result is in id
// order. Values of another kind than lo's never match.
func (tx *Tx) NodesByPropertyRange(key string, lo, hi PropertyValue) ([]NodeID, error) {
	if lo.Kind() != hi.Kind() || (lo.Kind() != KindInt && lo.Kind() != KindFloat) {
		return nil, fmt.Errorf("property range %s..%s: both bounds must be int or both float: %w", lo, hi, ErrInvalid)
	}
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
		loK, hiK := record.IndexKey(nil, lo), record.IndexKey(nil, hi)
		return tx.scanNodesWhere(key, func(pv PropertyValue) bool {
			vk := record.IndexKey(nil, pv)
			return pv.Kind() == lo.Kind() && bytes.Compare(vk, loK) >= 0 && bytes.Compare(vk, hiK) <= 0
		})
	}
	var out []NodeID
	// Index keys are name, value key (kind byte and 8 order-preserving
	// bytes), node id: every key of this kind shares the prefix up to
	// the kind byte, and the value part compares as the values do.
	kindPrefix := propPrefix(key, lo)
	kindPrefix = kindPrefix[:len(kindPrefix)-8]
	loK, hiK := propPrefix(key, lo), propPrefix(key, hi)
	if err := tx.settle(page.RootProps); err != nil {
		return nil, err
	}
	c := btree.NewCursor(tx.reader(), tx.meta.Roots[page.RootProps])
	for ok := c.Seek(loK); ok; ok = c.Next() {
		k := c.Key()
		if !bytes.HasPrefix(k, kindPrefix) || bytes.Compare(k[:min(len(k), len(hiK))], hiK) > 0 {
			break
		}
		if len(k) == len(loK)+8 {
			out = append(out, NodeID(binary.BigEndian.Uint64(k[len(loK):])))
		}
	}
	return out, tx.db.annotate(c.Err())
}

// scanNodesWhere returns, in id order, the nodes whose property key
// matches: the query plan when the property has no index.
func (tx *Tx) scanNodesWhere(key string, match func(PropertyValue) bool) ([]NodeID, error) {
	var out []NodeID
	err := tx.scan(page.RootNodes, nil, func(k, val []byte) (bool, error) {
		n, err := record.DecodeNode(val)
		if err != nil {
			return false, &CorruptionError{Path: tx.db.p.Path(), Offset: -1, Reason: err.Error()}
		}
		if pv, ok := n.Props[key]; ok && match(pv) {
			out = append(out, NodeID(binary.BigEndian.Uint64(k)))
		}
		return true, nil
	})
	return out, err
}

// NodesByPropertyRange is Tx.NodesByPropertyRange in a read transaction.
func (db *DB) NodesByPropertyRange(key string, lo, hi PropertyValue) ([]NodeID, error) {
	return view(db, func(tx *Tx) ([]NodeID, error) { return tx.NodesByPropertyRange(key, lo, hi) })
}
