package server

// graph.go: the node, edge, neighbour and query endpoints.

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/sombradb/sombra/cluster"
	"github.com/sombradb/sombra/engine"
)

func (s *Server) getNode(w http.ResponseWriter, r *http.Request, user string) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	var n *engine.Node
	lsn, err := s.view(user, func(tx *engine.Tx) (err error) {
		n, err = tx.GetNode(engine.NodeID(id))
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeLSN(w, http.StatusOK, lsn, cluster.NodeFromEngine(n))
}

func (s *Server) getEdge(w http.ResponseWriter, r *http.Request, user string) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	var e *engine.Edge
	lsn, err := s.view(user, func(tx *engine.Tx) (err error) {
		e, err = tx.GetEdge(engine.EdgeID(id))
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeLSN(w, http.StatusOK, lsn, cluster.EdgeFromEngine(e))
}

func (s *Server) createNode(w http.ResponseWriter, r *http.Request, user string) {
	var req cluster.CreateNodeRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	var id engine.NodeID
	lsn, err := s.update(user, func(tx *engine.Tx) (err error) {
		id, err = tx.CreateNodeWithLabels(req.Labels, engine.Properties(req.Properties))
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeLSN(w, http.StatusCreated, lsn, cluster.WriteResult{ID: uint64(id), LSN: lsn})
}

func (s *Server) updateProperties(w http.ResponseWriter, r *http.Request, user string) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	var req cluster.UpdatePropertiesRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	lsn, err := s.update(user, func(tx *engine.Tx) error {
		return setProperties(tx, engine.NodeID(id), req.Set, req.Remove)
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeLSN(w, http.StatusOK, lsn, cluster.WriteResult{LSN: lsn})
}

// setProperties sets, then removes; a node that does not exist is an
// error even when there is nothing to change.
func setProperties(tx *engine.Tx, id engine.NodeID, set cluster.Props, remove []string) error {
	ok, err := tx.NodeExists(id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("node %d: %w", id, engine.ErrNotFound)
	}
	for k, v := range set {
		if err := tx.SetNodeProperty(id, k, v); err != nil {
			return err
		}
	}
	for _, k := range remove {
		if err := tx.RemoveNodeProperty(id, k); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) deleteNode(w http.ResponseWriter, r *http.Request, user string) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	lsn, err := s.update(user, func(tx *engine.Tx) error { return tx.DeleteNode(engine.NodeID(id)) })
	if err != nil {
		s.fail(w, err)
		return
	}
	writeLSN(w, http.StatusOK, lsn, cluster.WriteResult{LSN: lsn})
}

func (s *Server) createEdge(w http.ResponseWriter, r *http.Request, user string) {
	var req cluster.CreateEdgeRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	var id engine.EdgeID
	lsn, err := s.update(user, func(tx *engine.Tx) (err error) {
		id, err = tx.CreateEdge(req.From, req.To, req.Label, engine.Properties(req.Properties))
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeLSN(w, http.StatusCreated, lsn, cluster.WriteResult{ID: uint64(id), LSN: lsn})
}

func (s *Server) deleteEdge(w http.ResponseWriter, r *http.Request, user string) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	lsn, err := s.update(user, func(tx *engine.Tx) error { return tx.DeleteEdge(engine.EdgeID(id)) })
	if err != nil {
		s.fail(w, err)
		return
	}
	writeLSN(w, http.StatusOK, lsn, cluster.WriteResult{LSN: lsn})
}

// neighbors lists a node's edges (direction out, in or both; label to
// filter) with the node at each edge's other end.
func (s *Server) neighbors(w http.ResponseWriter, r *http.Request, user string) {
	id, err := pathID(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	q := r.URL.Query()
	dir, label := q.Get("direction"), q.Get("label")
	if dir == "" {
		dir = "out"
	}
	if dir != "out" && dir != "in" && dir != "both" {
		s.fail(w, fmt.Errorf("direction %q: want out, in or both: %w", dir, engine.ErrInvalid))
		return
	}
	res := cluster.NeighborsResult{Neighbors: []cluster.Neighbor{}}
	res.LSN, err = s.view(user, func(tx *engine.Tx) error {
		ok, err := tx.NodeExists(engine.NodeID(id))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("node %d: %w", id, engine.ErrNotFound)
		}
		add := func(d string, edges []engine.EdgeID) error {
			for _, eid := range edges {
				e, err := tx.GetEdge(eid)
				if err != nil {
					return err
				}
				if label != "" && e.Label != label {
					continue
				}
				other := e.To
				if d == "in" {
					other = e.From
				}
				res.Neighbors = append(res.Neighbors, cluster.Neighbor{Edge: eid, Node: other, Label: e.Label, Direction: d})
			}
			return nil
		}
		if dir != "in" {
			out, err := tx.OutgoingEdges(engine.NodeID(id))
			if err != nil {
				return err
			}
			if err := add("out", out); err != nil {
				return err
			}
		}
		if dir != "out" {
			in, err := tx.IncomingEdges(engine.NodeID(id))
			if err != nil {
				return err
			}
			return add("in", in)
		}
		return nil
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeLSN(w, http.StatusOK, res.LSN, res)
}

// queryNodes answers GET /v1/nodes: by label, by property value, by a
// property range, or by an id range.
func (s *Server) queryNodes(w http.ResponseWriter, r *http.Request, user string) {
	q := r.URL.Query()
	var run func(tx *engine.Tx) ([]engine.NodeID, error)
	switch {
	case q.Has("label"):
		run = func(tx *engine.Tx) ([]engine.NodeID, error) { return tx.NodesByLabel(q.Get("label")) }
	case q.Has("property") && q.Has("value"):
		v := queryValue(q.Get("value"))
		run = func(tx *engine.Tx) ([]engine.NodeID, error) { return tx.NodesByProperty(q.Get("property"), v) }
	case q.Has("property") && q.Has("min") && q.Has("max"):
		lo, err1 := cluster.UnmarshalValue([]byte(q.Get("min")))
		hi, err2 := cluster.UnmarshalValue([]byte(q.Get("max")))
		if err1 != nil || err2 != nil {
			s.fail(w, fmt.Errorf("min %q / max %q: want numbers: %w", q.Get("min"), q.Get("max"), engine.ErrInvalid))
			return
		}
		run = func(tx *engine.Tx) ([]engine.NodeID, error) {
			return tx.NodesByPropertyRange(q.Get("property"), lo, hi)
		}
	case q.Has("from_id") && q.Has("to_id"):
		lo, err1 := strconv.ParseUint(q.Get("from_id"), 10, 64)
		hi, err2 := strconv.ParseUint(q.Get("to_id"), 10, 64)
		if err1 != nil || err2 != nil {
			s.fail(w, fmt.Errorf("from_id %q / to_id %q: want integers: %w", q.Get("from_id"), q.Get("to_id"), engine.ErrInvalid))
			return
		}
		run = func(tx *engine.Tx) ([]engine.NodeID, error) {
			return tx.NodesInRange(engine.NodeID(lo), engine.NodeID(hi))
		}
	default:
		s.fail(w, fmt.Errorf("query needs label, property and value, property with min and max, or from_id and to_id: %w", engine.ErrInvalid))
		return
	}
	res := cluster.IDsResult{}
	var err error
	res.LSN, err = s.view(user, func(tx *engine.Tx) (err error) {
		res.IDs, err = run(tx)
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	if res.IDs == nil {
		res.IDs = []engine.NodeID{}
	}
	writeLSN(w, http.StatusOK, res.LSN, res)
}

// queryValue reads a value from a query string: JSON when it parses
// (42, 1.5, true, "quoted"), otherwise the text itself as a string, so
// ?value=alice works unquoted.
func queryValue(s string) engine.PropertyValue {
	if v, err := cluster.UnmarshalValue([]byte(s)); err == nil {
		return v
	}
	return engine.StringValue(s)
}

// logicalHash answers GET /v1/hash: the logical hash and the LSN of the
// snapshot it was computed on, together, so replicas compare exactly.
func (s *Server) logicalHash(w http.ResponseWriter, r *http.Request, user string) {
	var res cluster.HashResult
	var err error
	res.LSN, err = s.view(user, func(tx *engine.Tx) (err error) {
		res.Hash, err = tx.LogicalHashContext(r.Context())
		return err
	})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeLSN(w, http.StatusOK, res.LSN, res)
}
