package bench

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver

	"github.com/sombradb/sombra/internal/gengraph"
)

func init() { Register("sqlite", openSQLite) }

// sqliteStore keeps the graph in two rowid tables:
//
//	nodes(id INTEGER PRIMARY KEY, label TEXT, props BLOB)
//	edges(id INTEGER PRIMARY KEY, src INT, dst INT, label TEXT, props BLOB)
//
// with indexes on edges(src), edges(dst) and nodes(label). It runs in WAL
// mode with synchronous=FULL, so every commit fsyncs the WAL.
//
// The pool is limited to one connection: SQLite has a single writer anyway,
// and several connections would turn write contention into busy-retry
// sleeps instead of queueing.
type sqliteStore struct {
	db   *sql.DB
	seq  atomic.Int64
	get  *sql.Stmt
	rng  *sql.Stmt
	all  *sql.Stmt
	hop1 *sql.Stmt
	hop2 *sql.Stmt
	ins  *sql.Stmt
}

func openSQLite(dir string, opt Options) (Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "graph.sqlite")
	cacheKiB := opt.CacheBytes / 1024
	if cacheKiB <= 0 {
		cacheKiB = 2000
	}
	dsn := fmt.Sprintf("file:%s?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=10000&_txlock=immediate&_cache_size=-%d",
		path, cacheKiB)
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	s := &sqliteStore{db: db}
	if _, err := db.Exec(`
		CREATE TABLE IF NOT EXISTS nodes(id INTEGER PRIMARY KEY, label TEXT, props BLOB);
		CREATE TABLE IF NOT EXISTS edges(id INTEGER PRIMARY KEY, src INT, dst INT, label TEXT, props BLOB);`); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.prepare(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// prepare prepares the statements of the workloads. SQLite re-prepares
// them by itself once BulkLoad has created the indexes.
func (s *sqliteStore) prepare() error {
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = s.db.Prepare(q)
		return st
	}
	s.get = prep(`SELECT label, props FROM nodes WHERE id = ?`)
	s.rng = prep(`SELECT id FROM nodes WHERE id BETWEEN ? AND ? ORDER BY id`)
	s.all = prep(`SELECT id FROM nodes ORDER BY id`)
	s.hop1 = prep(`SELECT dst FROM edges WHERE src = ?`)
	s.hop2 = prep(`SELECT COUNT(DISTINCT e2.dst) FROM edges e1 JOIN edges e2 ON e2.src = e1.dst WHERE e1.src = ?`)
	s.ins = prep(`INSERT INTO nodes(label, props) VALUES(?, ?)`)
	return err
}

// BulkLoad inserts everything in one transaction with prepared statements
// and builds the indexes at the end of that transaction (cheaper than
// maintaining them row by row).
func (s *sqliteStore) BulkLoad(src Source) error {
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	insNode, err := tx.Prepare(`INSERT INTO nodes(id, label, props) VALUES(?, ?, ?)`)
	if err != nil {
		return err
	}
	insEdge, err := tx.Prepare(`INSERT INTO edges(id, src, dst, label, props) VALUES(?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	var buf []byte
	var eid int64
	err = src(func(i int, n gengraph.Node) error {
		buf = AppendProps(buf[:0], n.Props)
		_, err := insNode.Exec(int64(i)+1, n.Label, buf)
		return err
	}, func(e gengraph.Edge) error {
		eid++
		buf = AppendProps(buf[:0], e.Props)
		_, err := insEdge.Exec(eid, int64(e.From)+1, int64(e.To)+1, e.Label, buf)
		return err
	})
	if err != nil {
		return err
	}
	if _, err := tx.Exec(`
		CREATE INDEX IF NOT EXISTS edges_src ON edges(src);
		CREATE INDEX IF NOT EXISTS edges_dst ON edges(dst);
		CREATE INDEX IF NOT EXISTS nodes_label ON nodes(label);`); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	// Fold the WAL back into the main file so reads start from a clean
	// state, as they would after any idle period.
	if _, err := s.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return err
	}
	return nil
}

// EmptyView runs the cheapest statement that opens a read transaction on
// the database (SQLite defers it to the first statement that reads a
// table): a lookup of node 0, which does not exist, so one root-to-leaf
// descent of the primary key is included.
func (s *sqliteStore) EmptyView() error {
	var label string
	var props []byte
	if err := s.get.QueryRow(int64(0)).Scan(&label, &props); err != nil && err != sql.ErrNoRows {
		return err
	}
	return nil
}

func (s *sqliteStore) GetNode(id int64) (bool, error) {
	var label string
	var props []byte
	err := s.get.QueryRow(id).Scan(&label, &props)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := DecodeProps(props); err != nil {
		return false, err
	}
	return true, nil
}

func (s *sqliteStore) scanIDs(st *sql.Stmt, args ...any) (int, error) {
	rows, err := st.Query(args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	prev := int64(-1 << 63)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return n, err
		}
		if id <= prev {
			return n, fmt.Errorf("sqlite: ids out of order: %d after %d", id, prev)
		}
		prev = id
		n++
	}
	return n, rows.Err()
}

func (s *sqliteStore) RangeScan(lo, hi int64) (int, error) { return s.scanIDs(s.rng, lo, hi) }
func (s *sqliteStore) FullIterate() (int, error)           { return s.scanIDs(s.all) }

func (s *sqliteStore) Neighbors1Hop(id int64) (int, error) {
	rows, err := s.hop1.Query(id)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var dst int64
		if err := rows.Scan(&dst); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

func (s *sqliteStore) Neighbors2Hop(id int64) (int, error) {
	var n int
	err := s.hop2.QueryRow(id).Scan(&n)
	return n, err
}

func (s *sqliteStore) DurableSingleCommit() error {
	buf := AppendProps(nil, newNodeProps(s.seq.Add(1)))
	_, err := s.ins.Exec(newNodeLabel, buf) // autocommit: one durable transaction
	return err
}

// EnableGroupCommit is a no-op: SQLite has no group commit, concurrent
// committers queue on the single connection and each commit fsyncs.
func (s *sqliteStore) EnableGroupCommit(workers int, interval time.Duration) error { return nil }

func (s *sqliteStore) GroupCommitOne() error { return s.DurableSingleCommit() }

func (s *sqliteStore) Close() error {
	for _, st := range []*sql.Stmt{s.get, s.rng, s.all, s.hop1, s.hop2, s.ins} {
		if st != nil {
			st.Close()
		}
	}
	return s.db.Close()
}
