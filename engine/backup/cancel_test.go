package backup

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/sombradb/sombra/engine"
)

// cancelAt returns a progress callback that cancels the context once the
// operation has reported some work, and the context.
func cancelAt(t *testing.T) (context.Context, func(done, total int64), *[][2]int64) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var calls [][2]int64
	return ctx, func(done, total int64) {
		calls = append(calls, [2]int64{done, total})
		if done > 0 {
			cancel()
		}
	}, &calls
}

// snapshotDir returns each file in dir with its hash.
func snapshotDir(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

func sameDir(t *testing.T, what string, before, after map[string][32]byte) {
	t.Helper()
	var diff []string
	for n, h := range before {
		if a, ok := after[n]; !ok || a != h {
			diff = append(diff, "changed or removed "+n)
		}
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			diff = append(diff, "left "+n)
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Errorf("%s: %v", what, diff)
	}
}

// TestCancelBackupVerifyRestore: each operation stopped by its context
// in mid-run returns an error matching context.Canceled, leaves no
// temporary file, and leaves the backups, the catalog's verdicts and an
// existing restore target as they were.
func TestCancelBackupVerifyRestore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "src.db")
	db := openDB(t, path, engine.Config{})
	defer db.Close()
	addBatch(t, db, 0, 3000)
	bdir := filepath.Join(dir, "backups")
	m := NewBackupManager(db, bdir)
	if _, err := m.CreateFullBackup("full_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.VerifyBackup("full_1"); err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, bdir)

	ctx, progress, calls := cancelAt(t)
	m = NewBackupManagerWithOptions(db, bdir, Options{Progress: progress})
	if _, err := m.CreateFullBackupContext(ctx, "full_2"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled backup: %v, want context.Canceled", err)
	}
	if len(*calls) == 0 || (*calls)[0][1] <= 0 {
		t.Errorf("backup progress calls %v: want a known total", *calls)
	}
	sameDir(t, "cancelled backup", before, snapshotDir(t, bdir))

	scratch := t.TempDir()
	ctx, progress, _ = cancelAt(t)
	if _, err := VerifyContext(ctx, bdir, "full_1", Options{Progress: progress, TempDir: scratch}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled verify: %v, want context.Canceled", err)
	}
	sameDir(t, "cancelled verify (catalog must keep the verdict)", before, snapshotDir(t, bdir))
	if left := snapshotDir(t, scratch); len(left) > 0 {
		t.Errorf("cancelled verify left %v in its scratch directory", left)
	}

	tdir := filepath.Join(dir, "restored")
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(tdir, "t.db")
	tdb := openDB(t, target, engine.Config{})
	addBatch(t, tdb, 0, 10)
	if err := tdb.Close(); err != nil {
		t.Fatal(err)
	}
	tbefore := snapshotDir(t, tdir)
	ctx, progress, _ = cancelAt(t)
	if _, err := RestoreContext(ctx, bdir, "full_1", target, Options{Progress: progress, Force: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled restore: %v, want context.Canceled", err)
	}
	sameDir(t, "cancelled restore", tbefore, snapshotDir(t, tdir))
	sameDir(t, "cancelled restore (backups)", before, snapshotDir(t, bdir))
}

// TestBackupProgressTotals: a full backup reports the database's bytes and
// ends at its total; a verification ends at the chain's bytes plus the
// restored file's.
func TestBackupProgressTotals(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "src.db")
	db := openDB(t, path, engine.Config{})
	defer db.Close()
	addBatch(t, db, 0, 2000)
	in, err := db.Info()
	if err != nil {
		t.Fatal(err)
	}
	var last [2]int64
	m := NewBackupManagerWithOptions(db, filepath.Join(dir, "b"), Options{Progress: func(d, tot int64) { last = [2]int64{d, tot} }})
	res, err := m.CreateFullBackupContext(context.Background(), "full")
	if err != nil {
		t.Fatal(err)
	}
	want := int64(res.PageCount) * int64(in.PageSize)
	if last != [2]int64{want, want} {
		t.Errorf("backup's last progress %v, want [%d %d] (its pages' bytes)", last, want, want)
	}
	last = [2]int64{}
	if _, err := m.VerifyBackupContext(context.Background(), "full"); err != nil {
		t.Fatal(err)
	}
	chain := int64(res.Pages) * int64(recHdrSize+in.PageSize)
	if want := chain + int64(res.PageCount)*int64(in.PageSize); last != [2]int64{want, want} {
		t.Errorf("verify's last progress %v, want [%d %d]", last, want, want)
	}
}
