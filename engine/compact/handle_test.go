package compact

// Tests of compaction on an open handle and through a symbolic link, with
// a real second process where another connection is the point.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
)

const childEnv = "SOMBRA_COMPACT_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "open":
		os.Exit(childOpen(os.Getenv("SOMBRA_COMPACT_TEST_DB")))
	case "hold":
		os.Exit(childHold(os.Getenv("SOMBRA_COMPACT_TEST_DB")))
	}
	os.Exit(m.Run())
}

// childOpen opens the database (waiting at most 200ms for locks) and
// prints its node count, or the error.
func childOpen(path string) int {
	db, err := engine.OpenWithConfig(path, engine.Config{BusyTimeout: 200 * time.Millisecond})
	if err != nil {
		fmt.Printf("ERR %v\n", err)
		return 1
	}
	defer db.Close()
	var n uint64
	if err := db.View(func(tx *engine.Tx) error { n = tx.NodeCount(); return nil }); err != nil {
		fmt.Printf("ERR %v\n", err)
		return 1
	}
	fmt.Printf("NODES %d\n", n)
	return 0
}

// childHold opens the database, says HELD and keeps it open until stdin
// closes.
func childHold(path string) int {
	db, err := engine.Open(path)
	if err != nil {
		fmt.Printf("ERR %v\n", err)
		return 1
	}
	fmt.Println("HELD")
	io.Copy(io.Discard, os.Stdin)
	db.Close()
	return 0
}

// otherProcessOpens runs a second process that opens path and returns
// what it printed: "NODES n" or "ERR ...".
func otherProcessOpens(t *testing.T, path string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=open", "SOMBRA_COMPACT_TEST_DB="+path)
	out, _ := cmd.Output()
	return strings.TrimSpace(string(out))
}

// holdInOtherProcess keeps path open in a second process until the
// returned function is called.
func holdInOtherProcess(t *testing.T, path string) func() {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=hold", "SOMBRA_COMPACT_TEST_DB="+path)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "HELD" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("holder: %q", line)
	}
	return func() {
		in.Close()
		cmd.Wait()
	}
}

// fragmented builds a database with n nodes of which 70% are then deleted.
func fragmented(t *testing.T, db *engine.DB, n int) {
	t.Helper()
	var ids []engine.NodeID
	err := db.Update(func(tx *engine.Tx) error {
		for i := 0; i < n; i++ {
			id, err := tx.CreateNode("N", engine.Properties{"i": engine.IntValue(int64(i)), "pad": engine.StringValue(strings.Repeat("x", 200))})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *engine.Tx) error {
		for i, id := range ids {
			if i%10 < 7 {
				if err := tx.DeleteNode(id); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, db *engine.DB) uint64 {
	t.Helper()
	var n uint64
	if err := db.View(func(tx *engine.Tx) error { n = tx.NodeCount(); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCompactHandleCarriesOn: after DatabaseCompactor.Compact the same
// handle's commits land in the new file (they survive a reopen), and
// another process can open the database at once.
func TestCompactHandleCarriesOn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fragmented(t, db, 3000)
	before := count(t, db)
	rep, err := NewDatabaseCompactor(db).Compact()
	if err != nil {
		t.Fatal(err)
	}
	if rep.PagesAfter >= rep.PagesBefore {
		t.Fatalf("compaction did not shrink the file: %+v", rep)
	}
	if got := otherProcessOpens(t, path); got != fmt.Sprintf("NODES %d", before) {
		t.Fatalf("another process after the compaction: %q (the handle kept the database locked?)", got)
	}
	var id engine.NodeID
	err = db.Update(func(tx *engine.Tx) error {
		id, err = tx.CreateNode("After", engine.Properties{"k": engine.StringValue("v")})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetNode(id); err != nil {
		t.Fatal(err)
	}
	if h1, _ := db.LogicalHash(); h1 == rep.LogicalHash {
		t.Fatal("the commit after compaction did not change the graph")
	}
	// A second compaction on the same handle, then more commits.
	if _, err := NewDatabaseCompactor(db).Compact(); err != nil {
		t.Fatalf("second compaction: %v", err)
	}
	var id2 engine.NodeID
	err = db.Update(func(tx *engine.Tx) error {
		id2, err = tx.CreateNode("After2", nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := db.LogicalHash()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	for _, n := range []engine.NodeID{id, id2} {
		if _, err := db2.GetNode(n); err != nil {
			t.Fatalf("node %d committed after compaction, after reopen: %v", n, err)
		}
	}
	if got := count(t, db2); got != before+2 {
		t.Fatalf("%d nodes after reopen, want %d", got, before+2)
	}
	if got, _ := db2.LogicalHash(); got != want {
		t.Fatalf("hash after reopen %s, the handle saw %s", got, want)
	}
}

// TestCompactFailureReleasesLock: a compaction that fails leaves the
// database openable by other processes and the handle usable.
func TestCompactFailureReleasesLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fragmented(t, db, 500)
	// The temporary file's name is taken by a directory that cannot be
	// removed: the compaction fails after taking the exclusive lock.
	if err := os.MkdirAll(filepath.Join(path+".compact", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDatabaseCompactor(db).Compact(); err == nil {
		t.Fatal("compaction succeeded over a directory")
	}
	if got := otherProcessOpens(t, path); !strings.HasPrefix(got, "NODES ") {
		t.Fatalf("another process after a failed compaction: %q", got)
	}
	st, err := engine.ReadLockState(path)
	if err != nil || st.Exclusive.Held {
		t.Fatalf("lock state after a failed compaction: %+v %v", st, err)
	}
	if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("Still", nil); return err }); err != nil {
		t.Fatal(err)
	}
	// A read transaction of the handle itself left open makes the
	// compaction refuse (busy) and keeps the old file.
	os.RemoveAll(path + ".compact")
	tx, err := db.BeginReadTransaction()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewDatabaseCompactor(db).CompactWithOptions(Options{Wait: 10 * time.Millisecond}); !errors.Is(err, engine.ErrBusy) {
		t.Fatalf("compaction under an open transaction of the handle: %v", err)
	}
	tx.Rollback()
	if got := otherProcessOpens(t, path); !strings.HasPrefix(got, "NODES ") {
		t.Fatalf("another process after a refused compaction: %q", got)
	}
}

// policy grants each user a set of permissions; everyone else nothing.
type policy map[string]engine.Permission

func (p policy) Check(user string, perm engine.Permission) error {
	if p[user]&perm == perm {
		return nil
	}
	return fmt.Errorf("%q lacks %v: %w", user, perm, engine.ErrPermissionDenied)
}

// TestCompactUnderAccessControl: compaction of a database under access
// control works as the system (its own reads need no user), and a user it
// is asked for must hold Configure.
func TestCompactUnderAccessControl(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fragmented(t, db, 1000)
	want, _ := db.LogicalHash()
	db.SetAccessControl(policy{"ops": engine.PermissionConfigure, "reader": engine.PermissionRead})
	c := NewDatabaseCompactor(db)
	if _, err := c.CompactWithOptions(Options{User: "reader"}); !errors.Is(err, engine.ErrPermissionDenied) {
		t.Fatalf("compaction as a user without Configure: %v", err)
	}
	rep, err := c.Compact()
	if err != nil {
		t.Fatalf("compaction as the system: %v", err)
	}
	if rep.LogicalHash != want {
		t.Fatalf("hash %s, want %s", rep.LogicalHash, want)
	}
	if _, err := c.CompactWithOptions(Options{User: "ops"}); err != nil {
		t.Fatalf("compaction as a user with Configure: %v", err)
	}
}

// TestCompactThroughSymlink: compaction through link.db is refused while
// another process has real.db open, and otherwise compacts real.db in
// place: the link stays a link and the data is whole.
func TestCompactThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.db")
	link := filepath.Join(dir, "link.db")
	db, err := engine.Open(real)
	if err != nil {
		t.Fatal(err)
	}
	fragmented(t, db, 2000)
	want, _ := db.LogicalHash()
	db.Close()
	if err := os.Symlink("real.db", link); err != nil {
		t.Fatal(err)
	}
	release := holdInOtherProcess(t, real)
	_, err = Compact(link, Options{})
	release()
	if !errors.Is(err, engine.ErrBusy) {
		t.Fatalf("compaction through the link while another process has the target open: %v", err)
	}
	if _, err := Compact(link, Options{}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("link.db is no longer a symbolic link: %v", err)
	}
	db, err = engine.OpenWithConfig(real, engine.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, _ := db.LogicalHash(); got != want {
		t.Fatalf("real.db after compaction through the link: hash %s, want %s", got, want)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if n := e.Name(); n != "real.db" && n != "link.db" && !strings.HasPrefix(n, "real.db-") {
			t.Fatalf("unexpected file %s after compaction", n)
		}
	}
}

// TestCompactRefusesWhenHandleCommitsMeanwhile: a commit through the same
// handle while the new file is being built is not in that file, so the
// compaction refuses (busy) and the commit survives.
func TestCompactRefusesWhenHandleCommitsMeanwhile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fragmented(t, db, 3000)
	var id engine.NodeID
	committed := false
	progress := func(done, total int64) {
		if committed {
			return
		}
		committed = true
		err := db.Update(func(tx *engine.Tx) error {
			id, err = tx.CreateNode("During", nil)
			return err
		})
		if err != nil {
			t.Errorf("commit during compaction: %v", err)
		}
	}
	if _, err := NewDatabaseCompactor(db).CompactWithOptions(Options{Progress: progress}); !errors.Is(err, engine.ErrBusy) {
		t.Fatalf("compaction with a commit during the build: %v", err)
	}
	if !committed {
		t.Fatal("progress was never called")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.GetNode(id); err != nil {
		t.Fatalf("the node committed during the refused compaction: %v", err)
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
}
