// Package handle gives the engine's maintenance packages (backup, repair,
// integrity, compact, recovery, health, replication, debug, adaptive) and
// the module's tools what they need below the public API: the page layer
// of an open database, the snapshot under a read transaction, and the
// write-side primitives of repair and salvage.
//
// It is the only door into the machinery. Being under engine/internal, it
// can be imported only from inside this module, so none of this is API:
// a program using Sombra as a library sees the transaction layer, with its
// access control and audit, and nothing under it (see TestPagerUnreachable
// in package engine for the proof).
package handle

import (
	"context"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/hook"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/pager"
)

// The accessors engine registered (engine/handle.go), with their types.
// Package engine is initialised before this one, so they are set here.
var (
	pagerOf             = hook.Pager.(func(*engine.DB) *pager.Pager)
	snapshotOf          = hook.Snapshot.(func(*engine.Tx) *pager.Snapshot)
	snapshotLogicalHash = hook.SnapshotLogicalHash.(func(context.Context, *engine.DB, *pager.Snapshot) (string, error))
	hashTrees           = hook.HashTrees.(func(context.Context, btree.Reader, [page.NumRoots]common.PageID) (string, error))
	repair              = hook.Repair.(func(*engine.Tx) (*engine.RepairStats, error))
	importNode          = hook.ImportNode.(func(*engine.Tx, engine.NodeID, []string, engine.Properties) error)
	importEdge          = hook.ImportEdge.(func(*engine.Tx, engine.EdgeID, engine.NodeID, engine.NodeID, string, engine.Properties) error)
	reserveIDs          = hook.ReserveIDs.(func(*engine.Tx, engine.NodeID, engine.EdgeID) error)
	spilledFrames       = hook.SpilledFrames.(func(*engine.Tx) int)
)

// Pager returns db's page layer. Whatever is done through it bypasses the
// transaction layer: access control, audit and the write lock's queue.
func Pager(db *engine.DB) *pager.Pager { return pagerOf(db) }

// Snapshot returns the page snapshot a read transaction reads from, so a
// backup copies pages from exactly the state that the transaction's queries
// and LogicalHash see. It returns nil for a write transaction or a closed
// one. The snapshot belongs to tx: do not Close it; it ends with tx.
func Snapshot(tx *engine.Tx) *pager.Snapshot { return snapshotOf(tx) }

// SnapshotLogicalHash is the logical hash (engine.Tx.LogicalHash) of what
// snap sees, read as the system: no access check. Compaction and
// replication use it to prove a copy holds the same graph. It stops at the
// next page read once ctx is cancelled (the error then matches ctx.Err()).
func SnapshotLogicalHash(ctx context.Context, db *engine.DB, snap *pager.Snapshot) (string, error) {
	return snapshotLogicalHash(ctx, db, snap)
}

// HashTrees is the logical hash of the trees with the given roots, read
// through r. Compaction uses it on the file it built, read back from the
// disk, before that file replaces the original.
func HashTrees(ctx context.Context, r btree.Reader, roots [page.NumRoots]common.PageID) (string, error) {
	return hashTrees(ctx, r, roots)
}

// Repair brings everything that can be derived from the node and edge
// records back in line with them, in the write transaction tx: dangling
// edges, adjacency, label and property indexes, counters and the free
// list. The node, edge and catalog trees are the source of truth: if one
// of them cannot be walked, it returns a *engine.CorruptionError and
// changes nothing. Repairing a healthy database writes nothing.
func Repair(tx *engine.Tx) (*engine.RepairStats, error) { return repair(tx) }

// ImportNode adds a node under a given id instead of the next free one, so
// salvage keeps ids. It fails with engine.ErrInvalid for id 0 and
// engine.ErrExists if the id is taken. The next id handed out by
// CreateNode stays above every imported id.
func ImportNode(tx *engine.Tx, id engine.NodeID, labels []string, props engine.Properties) error {
	return importNode(tx, id, labels, props)
}

// ImportEdge adds an edge under a given id between two existing nodes
// (see ImportNode).
func ImportEdge(tx *engine.Tx, id engine.EdgeID, from, to engine.NodeID, label string, props engine.Properties) error {
	return importEdge(tx, id, from, to, label, props)
}

// ReserveIDs raises the next node and edge ids to at least the given
// values (it never lowers them), so ids used by deleted records of a
// salvaged database are not handed out again.
func ReserveIDs(tx *engine.Tx, nextNode engine.NodeID, nextEdge engine.EdgeID) error {
	return reserveIDs(tx, nextNode, nextEdge)
}

// SpilledFrames reports how many frames a write transaction has spilled
// to the WAL so far (0 for a read transaction). Tests use it to know a
// large transaction took the spill path.
func SpilledFrames(tx *engine.Tx) int { return spilledFrames(tx) }
