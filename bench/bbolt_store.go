package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sombradb/sombra/internal/gengraph"
)

func init() { Register("bbolt", openBolt) }

// boltStore keeps the graph in four buckets:
//
//	nodes: be64(id) → uvarint(len label) label props
//	edges: be64(id) → be64(src) be64(dst) uvarint(len label) label props
//	out:   be64(src) be64(edgeid) → be64(dst)
//	in:    be64(dst) be64(edgeid) → be64(src)
//
// Commits are durable (NoSync false). The freelist is not synced and uses
// the hashmap implementation, as etcd does; neither affects durability.
type boltStore struct {
	db      *bolt.DB
	batch   int
	nextID  atomic.Int64
	seq     atomic.Int64
	grouped bool
}

var (
	bktNodes = []byte("nodes")
	bktEdges = []byte("edges")
	bktOut   = []byte("out")
	bktIn    = []byte("in")
)

// defaultBoltBatch is the number of nodes+edges per bulk-load transaction:
// bbolt gets slow with very large transactions.
const defaultBoltBatch = 100_000

func openBolt(dir string, opt Options) (Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "graph.bolt"), 0o644, &bolt.Options{
		Timeout:         time.Second,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: 1 << 30,
	})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktNodes, bktEdges, bktOut, bktIn} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &boltStore{db: db, batch: opt.BatchSize}
	if s.batch <= 0 {
		s.batch = defaultBoltBatch
	}
	err = db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bktNodes).Cursor().Last(); k != nil {
			s.nextID.Store(int64(binary.BigEndian.Uint64(k)))
		}
		return nil
	})
	return s, err
}

func be64(b []byte, x int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(x)) }

func appendNodeRecord(dst []byte, label string, props map[string]gengraph.Value) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(label)))
	dst = append(dst, label...)
	return AppendProps(dst, props)
}

// BulkLoad writes in transactions of s.batch nodes+edges. bbolt keeps the
// key and value slices passed to Put until the transaction commits, so every
// Put gets freshly allocated slices.
//
// bbolt only splits in-memory nodes at commit, so inserting many random keys
// into a small bucket in one transaction degenerates into quadratic memmoves
// (80k edges into the empty out/in buckets took 7 s). Transactions therefore
// start small at the beginning of each phase (nodes, then edges) and double
// up to s.batch: the tree has grown enough leaves by then.
func (s *boltStore) BulkLoad(src Source) error {
	const rampStart = 1024
	var (
		tx                    *bolt.Tx
		nodes, edges, out, in *bolt.Bucket
		inTx, inPhase         int
		limit                 = min(rampStart, s.batch)
		eid                   int64
	)
	begin := func() error {
		var err error
		if tx, err = s.db.Begin(true); err != nil {
			return err
		}
		nodes, edges = tx.Bucket(bktNodes), tx.Bucket(bktEdges)
		out, in = tx.Bucket(bktOut), tx.Bucket(bktIn)
		// nodes and edges are appended in key order: pack their pages.
		nodes.FillPercent, edges.FillPercent = 1.0, 1.0
		inTx = 0
		return nil
	}
	step := func() error {
		inTx++
		inPhase++
		if inTx < limit {
			return nil
		}
		limit = min(s.batch, max(rampStart, inPhase))
		if err := tx.Commit(); err != nil {
			tx = nil
			return err
		}
		return begin()
	}
	if err := begin(); err != nil {
		return err
	}
	err := src(func(i int, n gengraph.Node) error {
		if err := nodes.Put(be64(nil, int64(i)+1), appendNodeRecord(nil, n.Label, n.Props)); err != nil {
			return err
		}
		return step()
	}, func(e gengraph.Edge) error {
		if eid == 0 {
			inPhase, limit = 0, min(inTx+rampStart, s.batch)
		}
		eid++
		from, to := int64(e.From)+1, int64(e.To)+1
		// One allocation for the three index keys and values.
		kv := make([]byte, 0, 8+16+8+16+8)
		kv = be64(kv, eid)
		kv = be64(be64(kv, from), eid)
		kv = be64(kv, to)
		kv = be64(be64(kv, to), eid)
		kv = be64(kv, from)
		record := be64(be64(make([]byte, 0, 24+len(e.Label)+16*len(e.Props)), from), to)
		record = binary.AppendUvarint(record, uint64(len(e.Label)))
		record = append(record, e.Label...)
		record = AppendProps(record, e.Props)
		if err := edges.Put(kv[0:8], record); err != nil {
			return err
		}
		if err := out.Put(kv[8:24], kv[24:32]); err != nil {
			return err
		}
		if err := in.Put(kv[32:48], kv[48:56]); err != nil {
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
	var last int64
	if k, _ := nodes.Cursor().Last(); k != nil {
		last = int64(binary.BigEndian.Uint64(k))
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.nextID.Store(last)
	return nil
}

// EmptyView is DB.View with an empty body.
func (s *boltStore) EmptyView() error { return s.db.View(func(*bolt.Tx) error { return nil }) }

func (s *boltStore) GetNode(id int64) (bool, error) {
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktNodes).Get(be64(nil, id))
		if v == nil {
			return nil
		}
		n, w := binary.Uvarint(v)
		if w <= 0 || uint64(len(v)-w) < n {
			return errors.New("bbolt: bad node record")
		}
		_ = string(v[w : w+int(n)]) // the label, as a caller would read it
		if _, err := DecodeProps(v[w+int(n):]); err != nil {
			return err
		}
		found = true
		return nil
	})
	return found, err
}

func (s *boltStore) RangeScan(lo, hi int64) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktNodes).Cursor()
		end := be64(nil, hi)
		for k, _ := c.Seek(be64(nil, lo)); k != nil && bytes.Compare(k, end) <= 0; k, _ = c.Next() {
			n++
		}
		return nil
	})
	return n, err
}

func (s *boltStore) FullIterate() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktNodes).Cursor()
		prev := int64(0)
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			id := int64(binary.BigEndian.Uint64(k))
			if id <= prev {
				return fmt.Errorf("bbolt: ids out of order: %d after %d", id, prev)
			}
			prev = id
			n++
		}
		return nil
	})
	return n, err
}

// outNeighbors calls visit for each outgoing neighbour of id within tx.
func outNeighbors(tx *bolt.Tx, id int64, visit func(int64)) {
	c := tx.Bucket(bktOut).Cursor()
	var prefix [8]byte
	binary.BigEndian.PutUint64(prefix[:], uint64(id))
	for k, v := c.Seek(prefix[:]); k != nil && bytes.HasPrefix(k, prefix[:]); k, v = c.Next() {
		visit(int64(binary.BigEndian.Uint64(v)))
	}
}

func (s *boltStore) Neighbors1Hop(id int64) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		outNeighbors(tx, id, func(int64) { n++ })
		return nil
	})
	return n, err
}

func (s *boltStore) Neighbors2Hop(id int64) (int, error) {
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = twoHop(id, func(id int64, visit func(int64)) error {
			outNeighbors(tx, id, visit)
			return nil
		})
		return err
	})
	return n, err
}

func (s *boltStore) insertNode(tx *bolt.Tx) error {
	id := s.nextID.Add(1)
	return tx.Bucket(bktNodes).Put(be64(nil, id), appendNodeRecord(nil, newNodeLabel, newNodeProps(s.seq.Add(1))))
}

func (s *boltStore) DurableSingleCommit() error { return s.db.Update(s.insertNode) }

// EnableGroupCommit switches GroupCommitOne to bbolt's own group commit,
// DB.Batch, sized so that a batch closes as soon as every worker has joined
// or after interval.
func (s *boltStore) EnableGroupCommit(workers int, interval time.Duration) error {
	s.db.MaxBatchSize = workers
	s.db.MaxBatchDelay = interval
	s.grouped = true
	return nil
}

func (s *boltStore) GroupCommitOne() error {
	if s.grouped {
		// Batch may run the function twice if the batch fails; insertNode
		// takes a fresh id each time, which is fine for a benchmark.
		return s.db.Batch(s.insertNode)
	}
	return s.db.Update(s.insertNode)
}

func (s *boltStore) Close() error { return s.db.Close() }
