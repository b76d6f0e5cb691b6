package server

import (
	"fmt"
	"net/http"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/engine"
)

// maxBatchOps bounds a batch: one transaction holds the writer lock for
// all of it.
const maxBatchOps = 100000

// batch applies every operation in one transaction: all commit or none.
func (s *Server) batch(w http.ResponseWriter, r *http.Request, user string) {
	var req cluster.BatchRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if len(req.Ops) == 0 || len(req.Ops) > maxBatchOps {
		s.fail(w, fmt.Errorf("a batch holds 1 to %d operations, got %d: %w", maxBatchOps, len(req.Ops), engine.ErrInvalid))
		return
	}
	ids := make([]uint64, len(req.Ops))
	lsn, err := s.update(user, func(tx *engine.Tx) error {
		for i, op := range req.Ops {
			id, err := applyOp(tx, op, ids[:i])
			if err != nil {
				return fmt.Errorf("operation %d (%s): %w", i, op.Op, err)
			}
			ids[i] = id
		}
		return nil
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeLSN(w, http.StatusOK, lsn, cluster.BatchResult{IDs: ids, LSN: lsn})
}

// applyOp applies one operation; created holds the ids the earlier
// operations created (for from_op and to_op).
func applyOp(tx *engine.Tx, op cluster.Op, created []uint64) (uint64, error) {
	switch op.Op {
	case cluster.OpCreateNode:
		id, err := tx.CreateNodeWithLabels(op.Labels, engine.Properties(op.Properties))
		return uint64(id), err
	case cluster.OpCreateEdge:
		from, err := endpoint(op.From, op.FromOp, created, "from")
		if err != nil {
			return 0, err
		}
		to, err := endpoint(op.To, op.ToOp, created, "to")
		if err != nil {
			return 0, err
		}
		id, err := tx.CreateEdge(from, to, op.Label, engine.Properties(op.Properties))
		return uint64(id), err
	case cluster.OpSetProperties:
		return 0, setProperties(tx, engine.NodeID(op.ID), op.Set, op.Remove)
	case cluster.OpDeleteNode:
		return 0, tx.DeleteNode(engine.NodeID(op.ID))
	case cluster.OpDeleteEdge:
		return 0, tx.DeleteEdge(engine.EdgeID(op.ID))
	}
	return 0, fmt.Errorf("unknown operation %q: want %s, %s, %s, %s or %s: %w", op.Op,
		cluster.OpCreateNode, cluster.OpCreateEdge, cluster.OpSetProperties, cluster.OpDeleteNode, cluster.OpDeleteEdge, engine.ErrInvalid)
}

func endpoint(id uint64, ref *int, created []uint64, name string) (engine.NodeID, error) {
	switch {
	case ref == nil && id == 0:
		return 0, fmt.Errorf("%s or %s_op is required: %w", name, name, engine.ErrInvalid)
	case ref == nil:
		return engine.NodeID(id), nil
	case id != 0:
		return 0, fmt.Errorf("%s and %s_op exclude each other: %w", name, name, engine.ErrInvalid)
	case *ref < 0 || *ref >= len(created) || created[*ref] == 0:
		return 0, fmt.Errorf("%s_op %d: not an earlier create_node of this batch: %w", name, *ref, engine.ErrInvalid)
	}
	return engine.NodeID(created[*ref]), nil
}
