package engine

// Tests of how the engine names and creates its files, with real second
// processes: a database reached through a symbolic link, two processes
// creating one database at once, and a WAL that belongs to another file.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine/internal/wal"
)

// TestPathChild is the helper process of the tests in this file.
func TestPathChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if !strings.HasPrefix(mode, "path-") {
		t.Skip("helper process for another test")
	}
	childMode(t, mode)
	path := os.Getenv("SOMBRA_CHILD_DB")
	switch mode {
	case "path-create":
		// Wait for the parent's go, so that both children open at once.
		childSay("READY")
		childReadLine()
		db, err := Open(path)
		if err != nil {
			childSay("OPENERR %v", err)
			return
		}
		childSay("OPENED")
		db.Close()
	case "path-writer":
		db, err := OpenWithConfig(path, Config{WALAutoCheckpoint: -1})
		if err != nil {
			childFail("open: %v", err)
		}
		n, _ := strconv.Atoi(os.Getenv("SOMBRA_CHILD_N"))
		for i := 0; i < n; i++ {
			if err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("Child", nil); return err }); err != nil {
				childFail("commit: %v", err)
			}
		}
		childSay("DONE")
		for {
			switch childReadLine() {
			case "count":
				var c uint64
				if err := db.View(func(tx *Tx) error { c = tx.NodeCount(); return nil }); err != nil {
					childFail("count: %v", err)
				}
				childSay("COUNT %d", c)
			case "close":
				if err := db.Close(); err != nil {
					childFail("close: %v", err)
				}
				childSay("CLOSED")
				return
			}
		}
	}
}

func nodeCount(t *testing.T, db *DB) uint64 {
	t.Helper()
	var n uint64
	if err := db.View(func(tx *Tx) error { n = tx.NodeCount(); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func addNodesN(t *testing.T, db *DB, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("Parent", nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSymlinkSharesFiles: a process writing through link.db and one using
// real.db share one WAL and one lock file. The writer's 50 commits (still
// in the WAL) are seen through the real path, commits through the real
// path are seen through the link, the lock state through either name shows
// the other process, and the link's name never gets files of its own.
func TestSymlinkSharesFiles(t *testing.T) {
	t.Run("existing", func(t *testing.T) { testSymlinkSharesFiles(t, false) })
	// The first open goes through the dangling link: the database is
	// created at the link's target.
	t.Run("dangling", func(t *testing.T) { testSymlinkSharesFiles(t, true) })
}

func testSymlinkSharesFiles(t *testing.T, dangling bool) {
	dir := t.TempDir()
	real := filepath.Join(dir, "data", "real.db")
	if err := os.Mkdir(filepath.Dir(real), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(filepath.Join("data", "real.db"), link); err != nil {
		t.Fatal(err)
	}
	if !dangling {
		db, err := Create(real)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	c := startChild(t, "TestPathChild", "path-writer", "SOMBRA_CHILD_DB="+link, "SOMBRA_CHILD_N=50")
	defer c.kill()
	c.expect("DONE", 30*time.Second)
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("link.db is no longer a link: %v", err)
	}
	if st, err := os.Stat(real + "-wal"); err != nil || st.Size() == 0 {
		t.Fatalf("the writer's WAL is not real.db-wal: %v", err)
	}

	db, err := Open(real)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := nodeCount(t, db); n != 50 {
		t.Fatalf("through real.db: %d nodes, the writer through link.db committed 50", n)
	}
	addNodesN(t, db, 10)
	c.send("count")
	if got := c.expect("COUNT", 10*time.Second); got != "60" {
		t.Fatalf("through link.db: %s nodes after 10 more commits through real.db, want 60", got)
	}
	for _, name := range []string{link, real} {
		st, err := ReadLockState(name)
		if err != nil || !st.InUse {
			t.Fatalf("lock state through %s: %+v, %v", name, st, err)
		}
	}
	c.send("close")
	c.expect("CLOSED", 10*time.Second)
	c.wait(10 * time.Second)
	for _, s := range []string{"-wal", "-shm", "-changes"} {
		if _, err := os.Lstat(link + s); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s exists beside the link: %v", link+s, err)
		}
	}
	if db.Path() != real {
		t.Fatalf("Path() = %s, want the real path %s", db.Path(), real)
	}
}

// TestConcurrentCreate starts two real processes that open the same
// not-yet-existing database at the same moment, 30 times: both always
// open it (neither sees a half-created, empty file).
func TestConcurrentCreate(t *testing.T) {
	const trials = 30
	dir := t.TempDir()
	for i := 0; i < trials; i++ {
		path := filepath.Join(dir, fmt.Sprintf("new%02d.db", i))
		a := startChild(t, "TestPathChild", "path-create", "SOMBRA_CHILD_DB="+path)
		b := startChild(t, "TestPathChild", "path-create", "SOMBRA_CHILD_DB="+path)
		a.expect("READY", 30*time.Second)
		b.expect("READY", 30*time.Second)
		a.send("go")
		b.send("go")
		for _, c := range []*childProc{a, b} {
			lines := c.wait(30 * time.Second)
			if !slices.Contains(lines, "OPENED") {
				t.Fatalf("trial %d: a creating process reported %q\nstderr:\n%s", i, lines, c.stderr.String())
			}
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".tmp") {
				t.Fatalf("trial %d: temporary file %s left behind", i, e.Name())
			}
		}
	}
}

// TestCreateExclusiveRace: of two Creates of one path, exactly one
// succeeds and the other fails with ErrExists.
func TestCreateExclusiveRace(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 20; i++ {
		path := filepath.Join(dir, fmt.Sprintf("x%02d.db", i))
		errs := make(chan error, 2)
		start := make(chan struct{})
		for range 2 {
			go func() {
				<-start
				db, err := Create(path)
				if err == nil {
					db.Close()
				}
				errs <- err
			}()
		}
		close(start)
		e1, e2 := <-errs, <-errs
		if (e1 == nil) == (e2 == nil) || !errors.Is(errors.Join(e1, e2), ErrExists) {
			t.Fatalf("trial %d: two Creates returned %v and %v", i, e1, e2)
		}
	}
}

// TestForeignWALIgnored: a WAL whose header names another file id (left
// by a restore or compaction that replaced the file) is never read as the
// database's, neither by a reader nor by a writer, whose first commit
// starts a log of its own.
func TestForeignWALIgnored(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.db")
	b := filepath.Join(dir, "b.db")
	dbA, err := OpenWithConfig(a, Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	addNodesN(t, dbA, 30)
	dbB, err := Open(b)
	if err != nil {
		t.Fatal(err)
	}
	addNodesN(t, dbB, 5)
	if _, err := dbB.CheckpointWithMode(CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	if err := dbB.Close(); err != nil {
		t.Fatal(err)
	}
	// a.db's WAL, with 30 committed transactions, beside b.db.
	w, err := os.ReadFile(a + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	dbA.Close()
	h, err := wal.DecodeHeader(w)
	if err != nil || len(w) <= wal.HeaderSize {
		t.Fatalf("a.db's WAL: %d bytes, %v", len(w), err)
	}
	if err := os.WriteFile(b+"-wal", w, 0o644); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenWithConfig(b, Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := nodeCount(t, ro); n != 5 {
		t.Fatalf("read-only: %d nodes, want b.db's 5 (a foreign WAL was read)", n)
	}
	ro.Close()
	dbB, err = Open(b)
	if err != nil {
		t.Fatal(err)
	}
	if n := nodeCount(t, dbB); n != 5 {
		t.Fatalf("%d nodes, want 5", n)
	}
	addNodesN(t, dbB, 1)
	dbB.Close()
	dbB, err = Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer dbB.Close()
	if n := nodeCount(t, dbB); n != 6 {
		t.Fatalf("after one more commit and a reopen: %d nodes, want 6", n)
	}
	if got, _ := os.ReadFile(b + "-wal"); len(got) >= wal.HeaderSize {
		if h2, err := wal.DecodeHeader(got); err == nil && h2.FileID == h.FileID {
			t.Fatal("b.db's writer kept a.db's WAL header")
		}
	}
}
