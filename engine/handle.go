package engine

import (
	"context"

	"github.com/sombradb/sombra/engine/internal/hook"
	"github.com/sombradb/sombra/engine/internal/pager"
)

// The maintenance packages reach below the public API only through
// engine/internal/handle, which code outside this module cannot import.
// Registering the accessors here, rather than exporting methods, keeps
// the page layer out of the API (issue 9 §1).
func init() {
	hook.Pager = func(db *DB) *pager.Pager { return db.p }
	hook.Snapshot = func(tx *Tx) *pager.Snapshot {
		if tx.closed || tx.w != nil {
			return nil
		}
		return tx.snap
	}
	hook.SnapshotLogicalHash = func(ctx context.Context, db *DB, snap *pager.Snapshot) (string, error) {
		return db.snapshotLogicalHash(ctx, snap)
	}
	hook.HashTrees = hashTrees
	hook.Repair = (*Tx).repair
	hook.ImportNode = (*Tx).importNode
	hook.ImportEdge = (*Tx).importEdge
	hook.ReserveIDs = (*Tx).reserveIDs
	hook.SpilledFrames = (*Tx).spilledFrames
}
