package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/vfs"
)

// TestRestoreThroughSymlink: restoring with Force to a path that is a
// symbolic link replaces the link's target (whose WAL, with commits past
// the backup, is not read over the restored file) and leaves the link a
// link; the result reports the file id of the installed file.
func TestRestoreThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "data", "real.db")
	if err := os.Mkdir(filepath.Dir(real), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(filepath.Join("data", "real.db"), link); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, link, engine.Config{WALAutoCheckpoint: -1})
	addNodes(t, db, 1, 30)
	m := NewBackupManager(db, filepath.Join(dir, "b"))
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	addNodes(t, db, 31, 20) // in real.db-wal only
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := Restore(filepath.Join(dir, "b"), "full", link, Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("link.db is no longer a symbolic link: %v", err)
	}
	if res.Target != real {
		t.Fatalf("restored to %s, want the link's target %s", res.Target, real)
	}
	for _, p := range []string{link, real} {
		if got := seqs(t, p); !slices.Equal(got, span(1, 30)) {
			t.Fatalf("%s after the restore: %v", p, got)
		}
	}
	m2, err := readMeta(vfs.OS, real)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%016x", m2.FileID); res.FileID != want {
		t.Fatalf("result file id %s, installed file %s", res.FileID, want)
	}
	for _, s := range []string{"-wal", "-shm", "-changes"} {
		if _, err := os.Lstat(link + s); !os.IsNotExist(err) {
			t.Fatalf("%s exists beside the link", link+s)
		}
	}
}

// TestRestoreOverDamagedTarget: when the database being replaced does not
// open, its WAL (of the backup's file id, with commits past the backup)
// cannot be folded into it first, so the restored file gets a new file
// id: that WAL can then never be read over it.
func TestRestoreOverDamagedTarget(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.db")
	db := openDB(t, path, engine.Config{WALAutoCheckpoint: -1})
	addNodes(t, db, 1, 30)
	m := NewBackupManager(db, filepath.Join(dir, "b"))
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%016x", handle.Pager(db).FileID())
	addNodes(t, db, 31, 20)
	// Copy the files as a crash would leave them: 20 commits in the WAL.
	for _, s := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "t.db"+s), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	target := filepath.Join(dir, "t.db")
	f, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 100), 0); err != nil { // the header's magic and more
		t.Fatal(err)
	}
	f.Close()
	res, err := Restore(filepath.Join(dir, "b"), "full", target, Options{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.FileID == id {
		t.Fatalf("the restored file kept the file id %s of the WAL it could not fold", res.FileID)
	}
	if got := seqs(t, target); !slices.Equal(got, span(1, 30)) {
		t.Fatalf("restored: %v", got)
	}
}

// TestRestoreForgetsHealthRecord: the health check's NAME.db-verified
// describes the replaced file's history; a restore must not leave it beside
// a file that may share its id and LSN.
func TestRestoreForgetsHealthRecord(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.db")
	db := openDB(t, path, engine.Config{WALAutoCheckpoint: -1})
	addNodes(t, db, 1, 10)
	m := NewBackupManager(db, filepath.Join(dir, "b"))
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"-verified", []byte(`{"lsn":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(filepath.Join(dir, "b"), "full", path, Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-verified"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s-verified after the restore: %v", path, err)
	}
}
