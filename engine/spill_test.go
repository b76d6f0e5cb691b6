package engine

// Tests of the write path that bounds a transaction's memory (dirty pages
// spilled to the WAL as uncommitted frames) and of the WAL's reuse from its
// start after a complete checkpoint.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine/internal/wal"
	"github.com/sombradb/sombra/engine/vfs"
)

// tinyCache is a cache budget of 16 pages (the minimum): any transaction
// that touches more pages spills.
const tinyCache = 1

var bigProp = StringValue(strings.Repeat("spill", 40))

// spillUntil creates nodes of label in tx until the transaction has
// spilled at least frames frames, and returns how many it created.
func spillUntil(t testing.TB, tx *Tx, label string, frames int) int {
	t.Helper()
	n := 0
	for tx.w.Spilled() < frames {
		if _, err := tx.CreateNode(label, Properties{"pad": bigProp, "i": IntValue(int64(n))}); err != nil {
			t.Fatal(err)
		}
		n++
		if n > 200_000 {
			t.Fatalf("no spill after %d nodes", n)
		}
	}
	return n
}

func countLabel(t testing.TB, db *DB, label string) int {
	t.Helper()
	ids, err := db.NodesByLabel(label)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids)
}

// walClean fails if a scan of the log finds a damaged frame.
func walClean(t testing.TB, db *DB) {
	t.Helper()
	st, err := db.p.WAL()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Scan.CorruptFrames) > 0 {
		t.Fatalf("WAL scan reports damaged frames %v (state %+v)", st.Scan.CorruptFrames, st)
	}
}

// A transaction larger than the cache spills; it reads its own spilled
// pages back, and a rollback leaves nothing of it: not in this connection,
// not in another one, not after later commits, checkpoints and a reopen,
// and the log scans clean (no leftover frame of the rolled-back run is
// taken for damage after a shorter commit overwrote its start).
func TestSpillRollback(t *testing.T) {
	path := tempDB(t)
	db := mustOpen(t, path, Config{CacheSize: tinyCache, WALAutoCheckpoint: -1})
	defer func() { db.Close() }()
	if err := db.Update(func(tx *Tx) error {
		for i := 0; i < 20; i++ {
			if _, err := tx.CreateNode("Base", Properties{"i": IntValue(int64(i))}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	n := spillUntil(t, tx, "Doomed", 200)
	// read-your-writes across the spill
	ids, err := tx.NodesByLabel("Doomed")
	if err != nil || len(ids) != n {
		t.Fatalf("inside the spilled tx: %d Doomed nodes (%v), want %d", len(ids), err, n)
	}
	for _, id := range []NodeID{ids[0], ids[len(ids)/2], ids[len(ids)-1]} {
		nd, err := tx.GetNode(id)
		if err != nil || nd.Properties["pad"] != bigProp {
			t.Fatalf("node %d inside the spilled tx: %v %v", id, nd, err)
		}
	}
	// Another connection meanwhile sees only the committed state. (Read
	// only: closing it must not checkpoint, or the next commit would
	// restart the log and write under a new salt.)
	db2 := mustOpen(t, path, Config{ReadOnly: true})
	if got := countLabel(t, db2, "Doomed"); got != 0 {
		t.Fatalf("another connection sees %d nodes of an uncommitted spilled tx", got)
	}
	db2.Close()
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := countLabel(t, db, "Doomed"); got != 0 {
		t.Fatalf("%d Doomed nodes after rollback", got)
	}
	// A short commit writes over the start of the rolled-back run.
	if err := db.Update(func(tx *Tx) error {
		_, err := tx.CreateNode("After", nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	walClean(t, db)
	if st, _ := db.p.WAL(); st.CkptSeq != 1 {
		t.Fatalf("log was restarted (%+v): the commit did not write over the rolled-back frames", st)
	}
	db2 = mustOpen(t, path, Config{WALAutoCheckpoint: -1})
	walClean(t, db2)
	if b, d, a := countLabel(t, db2, "Base"), countLabel(t, db2, "Doomed"), countLabel(t, db2, "After"); b != 20 || d != 0 || a != 1 {
		t.Fatalf("second connection: Base %d Doomed %d After %d, want 20 0 1", b, d, a)
	}
	db2.Close()
	if _, err := db.CheckpointWithMode(CheckpointFull); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, path, Config{WALAutoCheckpoint: -1})
	walClean(t, db)
	if b, d, a := countLabel(t, db, "Base"), countLabel(t, db, "Doomed"), countLabel(t, db, "After"); b != 20 || d != 0 || a != 1 {
		t.Fatalf("after reopen: Base %d Doomed %d After %d, want 20 0 1", b, d, a)
	}
	treesValid(t, db)
}

// A spilled transaction that commits is whole: every node and edge, in
// this connection, in another one and after a checkpoint and reopen.
func TestSpillCommit(t *testing.T) {
	path := tempDB(t)
	db := mustOpen(t, path, Config{CacheSize: tinyCache, WALAutoCheckpoint: -1})
	defer func() { db.Close() }()
	tx, err := db.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	n := spillUntil(t, tx, "Big", 300)
	ids, err := tx.NodesByLabel("Big")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(ids); i++ {
		if _, err := tx.CreateEdge(ids[i-1], ids[i], "NEXT", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	check := func(db *DB, where string) {
		t.Helper()
		walClean(t, db)
		if got := countLabel(t, db, "Big"); got != n {
			t.Fatalf("%s: %d Big nodes, want %d", where, got, n)
		}
		nb, err := db.Neighbors(ids[n/2])
		if err != nil || len(nb) != 1 || nb[0] != ids[n/2+1] {
			t.Fatalf("%s: out-neighbours of node %d: %v %v, want [%d]", where, ids[n/2], nb, err, ids[n/2+1])
		}
	}
	check(db, "same connection")
	db2 := mustOpen(t, path, Config{WALAutoCheckpoint: -1})
	check(db2, "second connection")
	db2.Close()
	if _, err := db.CheckpointWithMode(CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, path, Config{})
	check(db, "after truncate and reopen")
	treesValid(t, db)
}

// The model test with a 16-page cache and transactions large enough to
// spill, so that reads of spilled pages, rollbacks after spills and
// commits of spilled runs meet checkpoints, held snapshots and reopens.
func TestModelSpill(t *testing.T) {
	var spills atomic.Int64
	modelSpillHook = func(tx *Tx) { spills.Add(int64(tx.w.Spilled())) }
	defer func() { modelSpillHook = nil }()
	for _, seed := range modelSeeds(t)[:2] {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runModelOps(t, seed, Config{CacheSize: tinyCache, WALAutoCheckpoint: 30, BusyTimeout: 20 * time.Millisecond}, 60, 80)
		})
	}
	if spills.Load() == 0 {
		t.Fatal("no transaction spilled: the test does not test spilling")
	}
}

// TestSpillKillChild is the child process of TestSpillKill: it commits a
// base, then spills a large transaction and waits to be killed.
func TestSpillKillChild(t *testing.T) {
	if !childMode(t, "spill") {
		return
	}
	db, err := OpenWithConfig(os.Getenv("SOMBRA_CHILD_DB"), Config{CacheSize: tinyCache, WALAutoCheckpoint: -1})
	if err != nil {
		childFail("open: %v", err)
	}
	if err := db.Update(func(tx *Tx) error {
		for i := 0; i < 30; i++ {
			if _, err := tx.CreateNode("Base", Properties{"i": IntValue(int64(i))}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		childFail("base: %v", err)
	}
	tx, err := db.BeginTransaction()
	if err != nil {
		childFail("begin: %v", err)
	}
	n := spillUntil(t, tx, "Doomed", 500)
	childSay("SPILLED %d %d", n, tx.w.Spilled())
	childReadLine() // killed here
	os.Exit(0)
}

// SIGKILL of a process in the middle of a spilled transaction: its frames
// are in the WAL file, but nothing of it survives; earlier commits do, and
// the log stays usable for later commits and checkpoints.
func TestSpillKill(t *testing.T) {
	path := tempDB(t)
	c := startChild(t, "TestSpillKillChild", "spill", "SOMBRA_CHILD_DB="+path)
	c.expect("SPILLED", 2*time.Minute)
	c.kill()
	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	db := mustOpen(t, path, Config{WALAutoCheckpoint: -1})
	defer func() { db.Close() }()
	ws, err := db.p.WAL()
	if err != nil {
		t.Fatal(err)
	}
	// The spilled frames reached the file (the test tests a spill), and
	// the scan stopped before them.
	if ws.Scan.Uncommitted < 500 || st.Size() < wal.FrameOffset(db.p.PageSize(), ws.Frames+500) {
		t.Fatalf("WAL after the kill: %d bytes, state %+v; want >= 500 uncommitted frames", st.Size(), ws)
	}
	walClean(t, db)
	if b, d := countLabel(t, db, "Base"), countLabel(t, db, "Doomed"); b != 30 || d != 0 {
		t.Fatalf("after SIGKILL in a spilled tx: Base %d Doomed %d, want 30 0", b, d)
	}
	if err := db.Update(func(tx *Tx) error {
		_, err := tx.CreateNode("After", nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	walClean(t, db)
	if _, err := db.CheckpointWithMode(CheckpointRestart); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, path, Config{WALAutoCheckpoint: -1})
	if b, d, a := countLabel(t, db, "Base"), countLabel(t, db, "Doomed"), countLabel(t, db, "After"); b != 30 || d != 0 || a != 1 {
		t.Fatalf("after reopen: Base %d Doomed %d After %d, want 30 0 1", b, d, a)
	}
	treesValid(t, db)
}

// TestWALRestartKillChild is the child process of TestWALRestartKill: it
// fills the log, checkpoints it completely, then commits once more (which
// restarts the log from its start with a new salt, over the old frames)
// and waits to be killed.
func TestWALRestartKillChild(t *testing.T) {
	if !childMode(t, "restart") {
		return
	}
	db, err := OpenWithConfig(os.Getenv("SOMBRA_CHILD_DB"), Config{WALAutoCheckpoint: -1})
	if err != nil {
		childFail("open: %v", err)
	}
	for i := 0; i < 40; i++ {
		if err := db.Update(func(tx *Tx) error {
			_, err := tx.CreateNode("Before", Properties{"i": IntValue(int64(i)), "pad": bigProp})
			return err
		}); err != nil {
			childFail("commit: %v", err)
		}
	}
	old, _ := db.p.WAL()
	if _, err := db.CheckpointWithMode(CheckpointFull); err != nil {
		childFail("checkpoint: %v", err)
	}
	if err := db.Update(func(tx *Tx) error {
		_, err := tx.CreateNode("AfterRestart", nil)
		return err
	}); err != nil {
		childFail("commit after restart: %v", err)
	}
	now, _ := db.p.WAL()
	childSay("RESTARTED %d %d %d %d", old.Salt, old.Frames, now.Salt, now.Frames)
	childReadLine()
	os.Exit(0)
}

// SIGKILL right after the WAL restarted: the log file still holds the old
// generation's frames past the new commit (reuse from the start, no
// truncation). Recovery takes the new commit and ignores the old-salt tail;
// nothing committed before is lost.
func TestWALRestartKill(t *testing.T) {
	path := tempDB(t)
	c := startChild(t, "TestWALRestartKillChild", "restart", "SOMBRA_CHILD_DB="+path)
	f := strings.Fields(c.expect("RESTARTED", 2*time.Minute))
	c.kill()
	oldSalt, _ := strconv.ParseUint(f[0], 10, 64)
	oldFrames, _ := strconv.Atoi(f[1])
	newSalt, _ := strconv.ParseUint(f[2], 10, 64)
	newFrames, _ := strconv.Atoi(f[3])
	if oldSalt == newSalt || newFrames >= oldFrames || newFrames == 0 {
		t.Fatalf("child did not restart the log: old salt %d frames %d, new salt %d frames %d", oldSalt, oldFrames, newSalt, newFrames)
	}
	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	ps := 4096
	if st.Size() < wal.FrameOffset(ps, oldFrames) {
		t.Fatalf("WAL is %d bytes: the old frames are gone, so the test does not test a reused log", st.Size())
	}
	db := mustOpen(t, path, Config{WALAutoCheckpoint: -1})
	defer db.Close()
	ws, err := db.p.WAL()
	if err != nil {
		t.Fatal(err)
	}
	if ws.Salt != newSalt || ws.Frames != newFrames || ws.Scan.Uncommitted != 0 {
		t.Fatalf("recovered log: %+v, want salt %d and %d frames", ws, newSalt, newFrames)
	}
	walClean(t, db)
	if b, a := countLabel(t, db, "Before"), countLabel(t, db, "AfterRestart"); b != 40 || a != 1 {
		t.Fatalf("after SIGKILL following a WAL restart: Before %d AfterRestart %d, want 40 1", b, a)
	}
	treesValid(t, db)
}

// countFS counts reads of the WAL file.
type countFS struct {
	vfs.FS
	walReads atomic.Int64
}

type countFile struct {
	vfs.File
	n *atomic.Int64
}

func (f countFile) ReadAt(p []byte, off int64) (int, error) {
	f.n.Add(1)
	return f.File.ReadAt(p, off)
}

func (c *countFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, "-wal") {
		return f, err
	}
	return countFile{File: f, n: &c.walReads}, nil
}

// A connection that wrote the last frame does not read the log again at
// its next write transaction: no header read, no scan.
func TestCommitNoWALRescan(t *testing.T) {
	fs := &countFS{FS: vfs.OS}
	db := mustOpen(t, tempDB(t), Config{FS: fs, WALAutoCheckpoint: -1})
	defer db.Close()
	commit := func() {
		if err := db.Update(func(tx *Tx) error {
			_, err := tx.CreateNode("Event", nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	commit()
	before := fs.walReads.Load()
	for i := 0; i < 20; i++ {
		commit()
	}
	if n := fs.walReads.Load() - before; n != 0 {
		t.Fatalf("20 commits read the WAL %d times", n)
	}
}

// After a complete checkpoint the next commit writes its frames over the
// log's start (the file does not grow), with a new salt; a copy of the
// files taken right then (a crash) recovers the new commit and ignores the
// old frames behind it.
func TestWALReuseOldSaltTail(t *testing.T) {
	path := tempDB(t)
	db := mustOpen(t, path, Config{WALAutoCheckpoint: -1})
	defer db.Close()
	for i := 0; i < 30; i++ {
		if err := db.Update(func(tx *Tx) error {
			_, err := tx.CreateNode("Old", Properties{"pad": bigProp})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := db.p.WAL()
	if _, err := db.CheckpointWithMode(CheckpointFull); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *Tx) error {
		_, err := tx.CreateNode("New", nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	after, _ := db.p.WAL()
	if after.Salt == before.Salt || after.Frames == 0 || after.Frames >= before.Frames || after.Size != before.Size {
		t.Fatalf("log not reused from its start: before %+v after %+v", before, after)
	}
	dir := t.TempDir()
	cp := filepath.Join(dir, "copy.db")
	for _, suf := range []string{"", "-wal"} {
		copyFile(t, path+suf, cp+suf)
	}
	c := mustOpen(t, cp, Config{WALAutoCheckpoint: -1, ReadOnly: true})
	defer c.Close()
	ws, _ := c.p.WAL()
	if ws.Frames != after.Frames || ws.Salt != after.Salt || ws.Scan.Uncommitted != 0 || len(ws.Scan.CorruptFrames) != 0 {
		t.Fatalf("copy's log %+v, want %d frames of salt %d and nothing else", ws, after.Frames, after.Salt)
	}
	if o, n := countLabel(t, c, "Old"), countLabel(t, c, "New"); o != 30 || n != 1 {
		t.Fatalf("copy: Old %d New %d, want 30 1", o, n)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// treesValid checks every B+tree of the database (order, structure,
// reachability) through the page validator of a full logical pass.
func treesValid(t testing.TB, db *DB) {
	t.Helper()
	if _, err := db.LogicalHash(); err != nil {
		t.Fatalf("logical pass over every tree: %v", err)
	}
}

// CreateEdge trusts endpoints this transaction created, but not once it
// deleted a node: then it looks them up again.
func TestCreateEdgeEndpointsCreatedHere(t *testing.T) {
	db := mustOpen(t, tempDB(t), Config{})
	defer db.Close()
	err := db.Update(func(tx *Tx) error {
		a, _ := tx.CreateNode("N", nil)
		b, _ := tx.CreateNode("N", nil)
		if _, err := tx.CreateEdge(a, b, "E", nil); err != nil {
			return fmt.Errorf("edge between nodes created here: %w", err)
		}
		if _, err := tx.CreateEdge(a, b+1, "E", nil); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("edge to a node not yet created: %v, want ErrNotFound", err)
		}
		if err := tx.DeleteNode(b); err != nil {
			return err
		}
		if _, err := tx.CreateEdge(a, b, "E", nil); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("edge to a node deleted in the same tx: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
