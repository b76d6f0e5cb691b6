package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func tempDB(t testing.TB) string { return filepath.Join(t.TempDir(), "test.db") }

func mustOpen(t testing.TB, path string, cfg Config) *DB {
	t.Helper()
	db, err := OpenWithConfig(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestBasicGraph(t *testing.T) {
	path := tempDB(t)
	db := mustOpen(t, path, Config{})
	var a, b NodeID
	var e EdgeID
	err := db.Update(func(tx *Tx) error {
		var err error
		if a, err = tx.CreateNode("User", Properties{"name": StringValue("alice"), "age": IntValue(30)}); err != nil {
			return err
		}
		if b, err = tx.CreateNode("User", Properties{"name": StringValue("bob")}); err != nil {
			return err
		}
		e, err = tx.CreateEdge(a, b, "FOLLOWS", Properties{"since": IntValue(2020)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, path, Config{})
	defer db.Close()
	n, err := db.GetNode(a)
	if err != nil || n.Label() != "User" || !n.Properties["name"].Equal(StringValue("alice")) {
		t.Fatalf("node a = %+v, %v", n, err)
	}
	ed, err := db.GetEdge(e)
	if err != nil || ed.From != a || ed.To != b || ed.Label != "FOLLOWS" {
		t.Fatalf("edge = %+v, %v", ed, err)
	}
	nb, err := db.Neighbors(a)
	if err != nil || len(nb) != 1 || nb[0] != b {
		t.Fatalf("neighbors = %v, %v", nb, err)
	}
	in, _ := db.IncomingNeighbors(b)
	if len(in) != 1 || in[0] != a {
		t.Fatalf("incoming = %v", in)
	}
	users, _ := db.NodesByLabel("User")
	if len(users) != 2 {
		t.Fatalf("users = %v", users)
	}
	if err := db.SetNodeProperty(a, "status", StringValue("active")); err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePropertyIndex("name"); err != nil {
		t.Fatal(err)
	}
	ids, err := db.NodesByProperty("name", StringValue("bob"))
	if err != nil || len(ids) != 1 || ids[0] != b {
		t.Fatalf("by property = %v, %v", ids, err)
	}
	if err := db.Update(func(tx *Tx) error { return tx.DeleteNode(a) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetEdge(e); !errors.Is(err, ErrNotFound) {
		t.Fatalf("edge after node delete: %v", err)
	}
	info, err := db.Info()
	if err != nil || info.NodeCount != 1 || info.EdgeCount != 0 {
		t.Fatalf("info = %+v, %v", info, err)
	}
}

func TestManyNodesCheckpointReopen(t *testing.T) {
	path := tempDB(t)
	db := mustOpen(t, path, Config{WALAutoCheckpoint: 200})
	const n = 20000
	for batch := 0; batch < 10; batch++ {
		err := db.Update(func(tx *Tx) error {
			for i := 0; i < n/10; i++ {
				id, err := tx.CreateNode(fmt.Sprintf("L%d", i%5), Properties{"i": IntValue(int64(batch*n/10 + i)), "pad": StringValue("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")})
				if err != nil {
					return err
				}
				if id > 1 {
					if _, err := tx.CreateEdge(id, id-1, "NEXT", nil); err != nil {
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
	if _, err := db.CheckpointWithMode(CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if st, _ := os.Stat(path + "-wal"); st.Size() != 0 {
		t.Logf("wal size after truncate+close: %d", st.Size())
	}
	db = mustOpen(t, path, Config{})
	defer db.Close()
	ids, err := db.AllNodeIDsOrdered()
	if err != nil || len(ids) != n {
		t.Fatalf("ids: %d %v", len(ids), err)
	}
	for i, id := range ids {
		if id != NodeID(i+1) {
			t.Fatalf("id %d at %d", id, i)
		}
	}
	r, _ := db.NodesInRange(100, 200)
	if len(r) != 101 {
		t.Fatalf("range = %d", len(r))
	}
	last, _ := db.LastNNodes(3)
	if len(last) != 3 || last[0] != n {
		t.Fatalf("last = %v", last)
	}
	nb, _ := db.Neighbors(500)
	if len(nb) != 1 || nb[0] != 499 {
		t.Fatalf("nb = %v", nb)
	}
}

func TestSnapshotIsolationAcrossConnections(t *testing.T) {
	path := tempDB(t)
	w := mustOpen(t, path, Config{})
	defer w.Close()
	r := mustOpen(t, path, Config{})
	defer r.Close()
	if err := w.Update(func(tx *Tx) error { _, err := tx.CreateNode("A", nil); return err }); err != nil {
		t.Fatal(err)
	}
	rtx, err := r.BeginReadTransaction()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(func(tx *Tx) error { _, err := tx.CreateNode("A", nil); return err }); err != nil {
		t.Fatal(err)
	}
	// A checkpoint must not copy the second commit under the old reader.
	if _, err := w.CheckpointWithMode(CheckpointPassive); err != nil {
		t.Fatal(err)
	}
	ids, _ := rtx.AllNodeIDsOrdered()
	if len(ids) != 1 {
		t.Fatalf("old snapshot sees %d nodes", len(ids))
	}
	rtx.Rollback()
	ids, _ = r.AllNodeIDsOrdered()
	if len(ids) != 2 {
		t.Fatalf("new snapshot sees %d nodes", len(ids))
	}
	// second writer waits then fails with ErrBusy
	wtx, err := w.BeginTransaction()
	if err != nil {
		t.Fatal(err)
	}
	r2 := mustOpen(t, path, Config{BusyTimeout: 50 * time.Millisecond})
	defer r2.Close()
	if _, err := r2.BeginTransaction(); !errors.Is(err, ErrBusy) {
		t.Fatalf("second writer: %v", err)
	}
	wtx.Rollback()
	if _, err := w.CheckpointWithMode(CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	ids, _ = r2.AllNodeIDsOrdered()
	if len(ids) != 2 {
		t.Fatalf("after truncate: %d", len(ids))
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o644)
	if _, err := Open(empty); !errors.Is(err, ErrNotADatabase) {
		t.Fatalf("empty: %v", err)
	}
	text := filepath.Join(dir, "text.db")
	os.WriteFile(text, []byte("hello world, not a database at all"), 0o644)
	if _, err := Open(text); !errors.Is(err, ErrNotADatabase) {
		t.Fatalf("text: %v", err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrNotADatabase) {
		t.Fatalf("dir: %v", err)
	}
	if _, err := OpenWithConfig(filepath.Join(dir, "missing.db"), Config{ReadOnly: true}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	p := filepath.Join(dir, "x.db")
	db, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Create(p); !errors.Is(err, ErrExists) {
		t.Fatalf("create existing: %v", err)
	}
}

func TestDuplicateLabelsStoredOnce(t *testing.T) {
	db := mustOpen(t, tempDB(t), Config{})
	defer db.Close()
	var id NodeID
	if err := db.Update(func(tx *Tx) error {
		var err error
		id, err = tx.CreateNodeWithLabels([]string{"A", "A", "B"}, nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	n, _ := db.GetNode(id)
	info, _ := db.Info()
	if len(n.Labels) != 2 || info.Labels[0].Count != 1 {
		t.Fatalf("labels %v, counts %+v", n.Labels, info.Labels)
	}
}
