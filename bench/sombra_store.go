package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/gengraph"
)

func init() { Register("sombra", openSombra) }

// sombraDB is the part of the engine's database handle the benchmark uses.
// Holding it as an interface keeps this file independent of the handle's
// concrete type name.
type sombraDB interface {
	BeginTransaction() (*engine.Tx, error)
	View(func(tx *engine.Tx) error) error
	EnableGroupCommit(interval time.Duration, maxTx int) error
	Close() error
}

type sombraStore struct {
	db    sombraDB
	batch int // nodes+edges per bulk-load transaction; 0 = one transaction
	seq   atomic.Int64
}

// setInt assigns v to an integer field of whatever integer type it has.
func setInt[T ~int | ~int32 | ~int64 | ~uint | ~uint32 | ~uint64](dst *T, v int64) { *dst = T(v) }

func openSombra(dir string, opt Options) (Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := engine.DefaultConfig()
	if opt.CacheBytes > 0 {
		setInt(&cfg.CacheSize, opt.CacheBytes)
	}
	db, err := engine.OpenWithConfig(filepath.Join(dir, "graph.sombra"), cfg)
	if err != nil {
		return nil, err
	}
	return &sombraStore{db: db, batch: opt.BatchSize}, nil
}

func (s *sombraStore) BulkLoad(src Source) error {
	tx, err := s.db.BeginTransaction()
	if err != nil {
		return err
	}
	inTx := 0
	step := func() error {
		inTx++
		if s.batch <= 0 || inTx < s.batch {
			return nil
		}
		inTx = 0
		if err := tx.Commit(); err != nil {
			tx = nil
			return err
		}
		var err error
		tx, err = s.db.BeginTransaction()
		return err
	}
	err = src(func(i int, n gengraph.Node) error {
		id, err := tx.CreateNode(n.Label, gengraph.EngineProps(n.Props))
		if err != nil {
			return err
		}
		if want := engine.NodeID(i + 1); id != want {
			return fmt.Errorf("sombra: node %d got id %v, want %v", i, id, want)
		}
		return step()
	}, func(e gengraph.Edge) error {
		_, err := tx.CreateEdge(engine.NodeID(e.From+1), engine.NodeID(e.To+1), e.Label, gengraph.EngineProps(e.Props))
		if err != nil {
			return err
		}
		return step()
	})
	if err != nil {
		if tx != nil {
			tx.Rollback()
		}
		return err
	}
	return tx.Commit()
}

func (s *sombraStore) GetNode(id int64) (bool, error) {
	var found bool
	err := s.db.View(func(tx *engine.Tx) error {
		n, err := tx.GetNode(engine.NodeID(id))
		if errors.Is(err, engine.ErrNotFound) {
			return nil
		}
		found = n != nil
		return err
	})
	return found, err
}

// orderedCount returns len(ids) after checking they ascend strictly.
func orderedCount(ids []engine.NodeID) (int, error) {
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			return 0, fmt.Errorf("sombra: ids out of order: %v after %v", ids[i], ids[i-1])
		}
	}
	return len(ids), nil
}

// RangeScan expects NodesInRange to be inclusive at both ends, like the
// other stores; the cross-engine check in graphbench flags it otherwise.
func (s *sombraStore) RangeScan(lo, hi int64) (int, error) {
	var n int
	err := s.db.View(func(tx *engine.Tx) error {
		ids, err := tx.NodesInRange(engine.NodeID(lo), engine.NodeID(hi))
		if err != nil {
			return err
		}
		n, err = orderedCount(ids)
		return err
	})
	return n, err
}

func (s *sombraStore) FullIterate() (int, error) {
	var n int
	err := s.db.View(func(tx *engine.Tx) error {
		ids, err := tx.AllNodeIDsOrdered()
		if err != nil {
			return err
		}
		n, err = orderedCount(ids)
		return err
	})
	return n, err
}

// Neighbors1Hop expects Neighbors to return outgoing neighbours with one
// entry per edge, like the other stores; the cross-engine check flags it
// otherwise.
func (s *sombraStore) Neighbors1Hop(id int64) (int, error) {
	var n int
	err := s.db.View(func(tx *engine.Tx) error {
		return tx.NeighborsFunc(engine.NodeID(id), func(engine.NodeID) bool { n++; return true })
	})
	return n, err
}

func (s *sombraStore) Neighbors2Hop(id int64) (int, error) {
	var n int
	err := s.db.View(func(tx *engine.Tx) error {
		var err error
		n, err = twoHop(id, func(id int64, visit func(int64)) error {
			return tx.NeighborsFunc(engine.NodeID(id), func(x engine.NodeID) bool { visit(int64(x)); return true })
		})
		return err
	})
	return n, err
}

// EmptyView is db.View with an empty body.
func (s *sombraStore) EmptyView() error { return s.db.View(func(*engine.Tx) error { return nil }) }

func (s *sombraStore) DurableSingleCommit() error {
	tx, err := s.db.BeginTransaction()
	if err != nil {
		return err
	}
	if _, err := tx.CreateNode(newNodeLabel, gengraph.EngineProps(newNodeProps(s.seq.Add(1)))); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *sombraStore) EnableGroupCommit(workers int, interval time.Duration) error {
	return s.db.EnableGroupCommit(interval, workers)
}

func (s *sombraStore) GroupCommitOne() error { return s.DurableSingleCommit() }

func (s *sombraStore) Close() error { return s.db.Close() }

// SombraHandle returns the engine handle behind a Sombra store (nil for
// another engine), for tools that read the engine's own counters.
func SombraHandle(s Store) any {
	if ss, ok := s.(*sombraStore); ok {
		return ss.db
	}
	return nil
}
