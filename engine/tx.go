package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/pager"
	"github.com/sombradb/sombra/engine/internal/progress"
	"github.com/sombradb/sombra/engine/internal/shm"
)

// Tx is a transaction. A write transaction (BeginTransaction, Update) sees
// its own changes; a read transaction (View) sees the snapshot taken when it
// began, whatever other connections commit meanwhile.
type Tx struct {
	db   *DB
	w    *pager.WriteTx  // write transactions
	snap *pager.Snapshot // read transactions
	// snapBuf holds snap for a read transaction begun by
	// BeginReadTransaction: one allocation per read, not two.
	snapBuf pager.Snapshot
	meta    *page.Meta
	closed  bool
	begun   time.Time
	// commitLSN is the LSN Commit gave the transaction (0 before, or
	// when it wrote nothing): what a server hands back for
	// read-your-writes.
	commitLSN uint64
	sec       txSec // user, access control and audit hooks (engine/access.go)

	indexes map[string]bool    // property indexes, loaded on first use
	counts  map[countKey]int64 // catalog counter deltas, applied at commit

	wb    *writeBuf // buffered puts to the graph trees (writebuf.go); nil until the first put, so a read transaction stays small
	wbMax int       // the write buffer's byte budget, set on first use

	// newLo..newHi (exclusive) is the latest run of consecutive node ids
	// this transaction created; unless it deleted a node (nodesDeleted),
	// CreateEdge knows they exist without looking them up.
	newLo, newHi NodeID
	nodesDeleted bool
	checked      map[NodeID]struct{} // nodes CreateEdge looked up and found

	// work, during an index rebuild, counts the records visited and
	// stops the rebuild once its context is cancelled (nil: neither).
	work *progress.Tracker
}

// noteCreated records that node id was created by this transaction.
func (tx *Tx) noteCreated(id NodeID) {
	if id != tx.newHi || tx.newHi == 0 {
		tx.newLo = id
	}
	tx.newHi = id + 1
}

// maxChecked bounds the set of nodes CreateEdge found to exist (a few
// MiB at most); when full it starts over.
const maxChecked = 1 << 16

// checkedHere reports whether node id was found to exist earlier in this
// transaction, with no node deleted since.
func (tx *Tx) checkedHere(id NodeID) bool {
	_, ok := tx.checked[id]
	return ok && !tx.nodesDeleted
}

func (tx *Tx) noteChecked(id NodeID) {
	if tx.checked == nil || len(tx.checked) >= maxChecked {
		tx.checked = make(map[NodeID]struct{})
	}
	tx.checked[id] = struct{}{}
}

// createdHere reports whether node id is known to exist because this
// transaction created it and deleted no node since.
func (tx *Tx) createdHere(id NodeID) bool {
	return !tx.nodesDeleted && id >= tx.newLo && id < tx.newHi
}

// Catalog keys.
const (
	catIndex      = "idx/"    // + property name -> ()
	catLabelCount = "lcount/" // + node label -> u64
	catEdgeCount  = "ecount/" // + edge label -> u64
	catIndexCount = "icount/" // + property name -> u64 entries
	catArchive    = "wal_archive"
)

func (tx *Tx) reader() btree.Reader {
	if tx.w != nil {
		return tx.w
	}
	return tx.snap
}

func (tx *Tx) check(write bool) error {
	if tx.closed {
		return ErrTxClosed
	}
	if write && tx.w == nil {
		return fmt.Errorf("write in a read transaction: %w", ErrReadOnly)
	}
	if tx.sec.st != nil { // access control hook (engine/access.go)
		return tx.secCheck(write)
	}
	return nil
}

// Writable reports whether tx is a write transaction.
func (tx *Tx) Writable() bool { return tx.w != nil }

// Commit makes a write transaction durable; for a read transaction it just
// ends it.
func (tx *Tx) Commit() error {
	if tx.closed {
		return ErrTxClosed
	}
	if tx.w == nil {
		tx.Rollback()
		return nil
	}
	if err := tx.settleAll(); err != nil {
		tx.Rollback()
		return err
	}
	// The buffer's chunks are not needed during the commit's fsync and
	// checkpoint.
	tx.wb = nil
	if tx.sec.st != nil && tx.sec.st.anchor != nil { // audit log head (engine/access.go)
		tx.secAnchor()
	}
	if err := tx.flushCounts(); err != nil {
		tx.Rollback()
		return err
	}
	tx.closed = true
	start := time.Now()
	info, err := tx.w.Commit()
	d := time.Since(start)
	if tx.sec.st != nil { // audit hook (engine/access.go)
		tx.secCommitted(info.LSN, err)
	}
	tx.db.traceCommit(info, d, err) // optional tracer (engine/hooks.go)
	if err != nil {
		tx.db.metrics.failed.Add(1)
		tx.db.p.Shm().Add(shm.CtrCommitFailures, 1)
		tx.db.publishShared()
		tx.db.log.Error("commit failed", "path", tx.db.p.Path(), "err", err)
		return fmt.Errorf("commit: %w", err)
	}
	tx.commitLSN = uint64(info.LSN)
	tx.db.metrics.recordCommit(d, info.Frames)
	s := tx.db.p.Shm() // database-wide counters (engine/dbmetrics.go)
	s.Add(shm.CtrCommits, 1)
	s.ObserveCommit(d)
	tx.db.publishShared()
	tx.db.log.Debug("transaction commit", "lsn", info.LSN, "pages", info.Frames, "duration_ms", float64(d.Microseconds())/1000)
	if total := time.Since(tx.begun); total > tx.db.cfg.SlowOperation {
		tx.db.slow.note(tx.db.log, total, "op", "transaction", "lsn", info.LSN)
	}
	return nil
}

// Rollback abandons the transaction; nothing it did remains. Calling it
// after Commit is a no-op, so `defer tx.Rollback()` is safe.
func (tx *Tx) Rollback() error {
	if tx.closed {
		return nil
	}
	tx.closed = true
	tx.wb = nil
	if tx.w != nil {
		tx.w.Rollback()
		tx.db.metrics.rollbacks.Add(1)
		tx.db.p.Shm().Add(shm.CtrRollbacks, 1)
		tx.db.publishShared()
		tx.db.log.Debug("transaction rollback")
		if tx.sec.st != nil { // audit hook (engine/access.go)
			tx.secRolledBack()
		}
	} else {
		// A read transaction publishes nothing to the database-wide
		// counters: its count and cache hits go with the next commit or
		// the once-a-second tick (engine/dbmetrics.go), keeping shared
		// memory off the read path.
		tx.snap.Close()
	}
	return nil
}

// LSN returns the LSN of the last transaction visible to tx.
func (tx *Tx) LSN() uint64 { return uint64(tx.meta.LastLSN) }

// CommitLSN returns the LSN a successful Commit gave this write
// transaction: a reader that waits until a replica applied it sees the
// write. It is 0 before Commit; a transaction that changed nothing gets
// the LSN it saw.
func (tx *Tx) CommitLSN() uint64 { return tx.commitLSN }

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func (tx *Tx) get(root int, k []byte) ([]byte, bool, error) {
	if err := tx.settle(root); err != nil {
		return nil, false, err
	}
	v, ok, err := btree.Get(tx.reader(), tx.meta.Roots[root], k)
	return v, ok, tx.db.annotate(err)
}

func (tx *Tx) put(root int, k, v []byte) error {
	if bufferable(root) {
		return tx.bufPut(root, k, v)
	}
	// Between tree operations no page slice is held: a safe point to move
	// dirty pages beyond the cache budget out to the WAL.
	if err := tx.w.MaybeSpill(); err != nil {
		return err
	}
	r, err := btree.Put(btree.Tagged{Writer: tx.w, Tag: byte(root) + 1}, tx.meta.Roots[root], k, v)
	tx.meta.Roots[root] = r
	return tx.db.annotate(err)
}

func (tx *Tx) del(root int, k []byte) error {
	if err := tx.settle(root); err != nil {
		return err
	}
	if err := tx.w.MaybeSpill(); err != nil {
		return err
	}
	if root == page.RootNodes {
		tx.nodesDeleted = true
	}
	r, _, err := btree.Delete(btree.Tagged{Writer: tx.w, Tag: byte(root) + 1}, tx.meta.Roots[root], k)
	tx.meta.Roots[root] = r
	return tx.db.annotate(err)
}

// annotate fills in the file name of corruption errors raised below the
// pager (the tree knows pages, not paths) and logs every corruption found
// once, wherever it was raised (the pager names the file itself, so the
// path being set says nothing about whether it was logged).
func (db *DB) annotate(err error) error {
	if err == nil {
		return nil // before errors.As, whose target would escape: one allocation per call
	}
	var ce *common.CorruptionError
	if !errors.As(err, &ce) {
		return err
	}
	if ce.Path == "" {
		ce.Path = db.p.Path()
	}
	if ce.FirstReport() {
		db.log.Error("corruption detected", "path", ce.Path, "page", ce.Page, "offset", ce.Offset, "reason", ce.Reason)
	}
	return err
}

// scan calls fn for every key with the given prefix, in order.
func (tx *Tx) scan(root int, prefix []byte, fn func(k, v []byte) (bool, error)) error {
	if err := tx.settle(root); err != nil {
		return err
	}
	c := btree.NewCursor(tx.reader(), tx.meta.Roots[root])
	for ok := c.Seek(prefix); ok; ok = c.Next() {
		k := c.Key()
		if !strings.HasPrefix(string(k), string(prefix)) {
			break
		}
		v, err := c.Value()
		if err != nil {
			return tx.db.annotate(err)
		}
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return tx.db.annotate(c.Err())
}

// countKey names a catalog counter: prefix (catLabelCount, ...) + name.
// Kept apart so that counting an element builds no string.
type countKey struct{ prefix, name string }

func (tx *Tx) countDelta(prefix, name string, d int64) {
	if tx.counts == nil {
		tx.counts = map[countKey]int64{}
	}
	tx.counts[countKey{prefix, name}] += d
}

func (tx *Tx) flushCounts() error {
	deltas := make(map[string]int64, len(tx.counts))
	keys := make([]string, 0, len(tx.counts))
	for ck, d := range tx.counts {
		k := ck.prefix + ck.name
		if _, ok := deltas[k]; !ok {
			keys = append(keys, k)
		}
		deltas[k] += d
	}
	sort.Strings(keys)
	for _, k := range keys {
		d := deltas[k]
		if d == 0 {
			continue
		}
		cur, err := tx.counter(k)
		if err != nil {
			return err
		}
		n := int64(cur) + d
		if n <= 0 {
			if err := tx.del(page.RootCatalog, []byte(k)); err != nil {
				return err
			}
			continue
		}
		if err := tx.put(page.RootCatalog, []byte(k), be64(uint64(n))); err != nil {
			return err
		}
	}
	tx.counts = nil
	return nil
}

func (tx *Tx) counter(key string) (uint64, error) {
	v, ok, err := tx.get(page.RootCatalog, []byte(key))
	if err != nil || !ok || len(v) != 8 {
		return 0, err
	}
	return binary.BigEndian.Uint64(v), nil
}

// counters returns catalog counters under prefix (committed values).
func (tx *Tx) counters(prefix string) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := tx.scan(page.RootCatalog, []byte(prefix), func(k, v []byte) (bool, error) {
		if len(v) == 8 {
			out[string(k[len(prefix):])] = binary.BigEndian.Uint64(v)
		}
		return true, nil
	})
	return out, err
}

func (tx *Tx) propIndexes() (map[string]bool, error) {
	if tx.indexes != nil {
		return tx.indexes, nil
	}
	m := map[string]bool{}
	err := tx.scan(page.RootCatalog, []byte(catIndex), func(k, _ []byte) (bool, error) {
		m[string(k[len(catIndex):])] = true
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	tx.indexes = m
	return m, nil
}
