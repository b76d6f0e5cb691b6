package backup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
)

// TestHashInPassMatchesTreeWalk takes full backups whose logical hash is
// computed in the copy pass (pages read in file order, some of them from
// the WAL, freed leaves still holding old records, values in overflow
// pages) and checks it against the hash of a walk of the trees, then that
// verify (which recomputes it on the trial restore) accepts the backup.
func TestHashInPassMatchesTreeWalk(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "g.db")
	db := openDB(t, path, engine.Config{WALAutoCheckpoint: -1})
	defer db.Close()
	addBatch(t, db, 0, 3000)
	addNodes(t, db, 3000, 50)
	err := db.Update(func(tx *engine.Tx) error {
		_, err := tx.CreateNode("Big", engine.Properties{"bio": engine.StringValue(strings.Repeat("long value on overflow pages ", 800))})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	// Deletes free whole leaves (their old records stay on the pages, which
	// go to the free list) and stay in the WAL: the pass must read those
	// pages' new versions from the WAL and ignore the freed ones.
	err = db.Update(func(tx *engine.Tx) error {
		for id := engine.NodeID(100); id < 1500; id++ {
			if err := tx.DeleteNode(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	addNodes(t, db, 4000, 20)
	want, err := db.LogicalHash()
	if err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(dir, "backups")
	m := NewBackupManager(db, bdir)
	res, err := m.CreateFullBackup("full")
	if err != nil {
		t.Fatal(err)
	}
	if res.LogicalHash != want {
		t.Fatalf("hash in the copy pass %s, tree walk %s", res.LogicalHash, want)
	}
	v, err := Verify(bdir, "full", Options{})
	if err != nil || !v.HashChecked || v.LogicalHash != want {
		t.Fatalf("verify: %+v, %v", v, err)
	}
}

// TestLegacyHashBackupVerifies rewrites a backup's header as an earlier
// version wrote it (the key-order hash, without the order-independent
// flag): verify must compare it with the legacy hash, and still catch a
// wrong one.
func TestLegacyHashBackupVerifies(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "g.db")
	db := openDB(t, path, engine.Config{})
	addNodes(t, db, 0, 30)
	legacy, err := db.LegacyLogicalHash()
	if err != nil {
		t.Fatal(err)
	}
	current, _ := db.LogicalHash()
	if legacy == current {
		t.Fatal("legacy and current hash coincide")
	}
	bdir := filepath.Join(dir, "backups")
	if _, err := NewBackupManager(db, bdir).CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	setHeader := func(hash string, legacyFlag bool) {
		t.Helper()
		f, err := os.OpenFile(filepath.Join(bdir, "full.backup"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, HeaderSize)
		if _, err := f.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		h, err := DecodeHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		h.LogicalHash, h.LegacyHash = hash, legacyFlag
		if b, err = h.Encode(); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b, 0); err != nil {
			t.Fatal(err)
		}
	}
	setHeader(legacy, true)
	if v, err := Verify(bdir, "full", Options{}); err != nil || !v.HashChecked {
		t.Fatalf("legacy backup: %+v, %v", v, err)
	}
	setHeader(current, true) // the flag says legacy, the hash is not
	if _, err := Verify(bdir, "full", Options{}); !errors.Is(err, ErrVerifyFailed) {
		t.Fatalf("wrong legacy hash: %v", err)
	}
}
