package engine

import "github.com/sombradb/sombra/engine/internal/pager"

// Snapshot returns the page snapshot a read transaction reads from, so
// engine sub-packages (backup) can copy pages from exactly the state that
// the transaction's queries and LogicalHash see. It returns nil for a write
// transaction or a closed one. The snapshot belongs to tx: do not Close it;
// it ends with the transaction.
func (tx *Tx) Snapshot() *pager.Snapshot {
	if tx.closed || tx.w != nil {
		return nil
	}
	return tx.snap
}
