package engine

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/lhash"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/pager"
	"github.com/sombradb/sombra/engine/internal/progress"
)

// LogicalHash returns a canonical hash (64 hex digits) of every node and
// edge: ids, labels, properties and endpoints. Two databases with the same
// graph have the same hash whatever their page layout, so it proves a
// backup, a restore or a compaction kept the data. It does not depend on
// the order records are visited in (see engine/internal/lhash), so a
// backup computes the same value in its pass over the file's pages.
func (tx *Tx) LogicalHash() (string, error) {
	return tx.LogicalHashContext(context.Background())
}

// snapshotLogicalHash is the logical hash of what snap sees, read as the
// system: no access check (handle.SnapshotLogicalHash). It stops at the
// next page read once ctx is cancelled (the error then matches ctx.Err()).
func (db *DB) snapshotLogicalHash(ctx context.Context, snap *pager.Snapshot) (string, error) {
	m, err := snap.Meta()
	if err != nil {
		return "", db.annotate(err)
	}
	h, err := logicalHash(progress.New(ctx, nil, 0).Reader(snap), m)
	return h, db.annotate(err)
}

// LogicalHashContext is LogicalHash, stopped at the next page read once
// ctx is cancelled (the error then matches ctx.Err()).
func (tx *Tx) LogicalHashContext(ctx context.Context) (string, error) {
	if err := tx.check(false); err != nil {
		return "", err
	}
	if tx.auditingReads() {
		defer tx.auditRead("logical_hash")()
	}
	if err := tx.settleAll(); err != nil {
		return "", err
	}
	h, err := logicalHash(progress.New(ctx, nil, 0).Reader(tx.reader()), tx.meta)
	return h, tx.db.annotate(err)
}

func logicalHash(r btree.Reader, meta *page.Meta) (string, error) {
	var h lhash.Hasher
	for t, root := range []int{page.RootNodes, page.RootEdges} {
		c := btree.NewCursor(r, meta.Roots[root])
		for ok := c.First(); ok; ok = c.Next() {
			v, err := c.Value()
			if err != nil {
				return "", err
			}
			h.Add(t, c.Key(), v) // records encode properties sorted, so bytes are canonical
		}
		if err := c.Err(); err != nil {
			return "", err
		}
	}
	return h.Sum(), nil
}

// LegacyLogicalHash returns the logical hash as it was defined before
// LogicalHash became order-independent: a SHA-256 over the records in key
// order. Backups taken by earlier versions recorded it; verifying one
// compares against this.
func (tx *Tx) LegacyLogicalHash() (string, error) {
	if err := tx.check(false); err != nil {
		return "", err
	}
	if err := tx.settleAll(); err != nil {
		return "", err
	}
	h := sha256.New()
	var lb [8]byte
	for _, root := range []int{page.RootNodes, page.RootEdges} {
		c := btree.NewCursor(tx.reader(), tx.meta.Roots[root])
		n := uint64(0)
		for ok := c.First(); ok; ok = c.Next() {
			v, err := c.Value()
			if err != nil {
				return "", tx.db.annotate(err)
			}
			h.Write(c.Key())
			binary.BigEndian.PutUint64(lb[:], uint64(len(v)))
			h.Write(lb[:])
			h.Write(v)
			n++
		}
		if err := c.Err(); err != nil {
			return "", tx.db.annotate(err)
		}
		binary.BigEndian.PutUint64(lb[:], n)
		h.Write(lb[:])
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// LegacyLogicalHash computes the legacy logical hash in a read transaction.
func (db *DB) LegacyLogicalHash() (string, error) {
	return view(db, func(tx *Tx) (string, error) { return tx.LegacyLogicalHash() })
}

// LogicalHash computes the logical hash in a read transaction.
func (db *DB) LogicalHash() (string, error) {
	return view(db, func(tx *Tx) (string, error) { return tx.LogicalHash() })
}

// LogicalHashContext is LogicalHash, stopped at the next page read once
// ctx is cancelled.
func (db *DB) LogicalHashContext(ctx context.Context) (string, error) {
	return view(db, func(tx *Tx) (string, error) { return tx.LogicalHashContext(ctx) })
}

// spilledFrames reports how many frames a write transaction has spilled
// to the WAL so far (0 for a read transaction; handle.SpilledFrames).
func (tx *Tx) spilledFrames() int {
	if tx.w == nil {
		return 0
	}
	return tx.w.Spilled()
}

// hashTrees is the logical hash of the trees with the given roots, read
// through r (handle.HashTrees), stopped at the next page read once ctx is
// cancelled.
func hashTrees(ctx context.Context, r btree.Reader, roots [page.NumRoots]common.PageID) (string, error) {
	return logicalHash(progress.New(ctx, nil, 0).Reader(r), &page.Meta{Roots: roots})
}
