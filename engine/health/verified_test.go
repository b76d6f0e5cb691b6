package health

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/vfs"
)

func pageScope(t *testing.T, path string) string {
	t.Helper()
	rep, err := CheckFile(path, Options{SamplePages: 1, DiskUsage: func(string) (uint64, uint64, error) { return 1 << 40, 1 << 41, nil }})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rep.Checks {
		if c.Name == CheckPageChecksums {
			return c.Message
		}
	}
	t.Fatalf("no %s check: %+v", CheckPageChecksums, rep.Checks)
	return ""
}

// A record that cannot describe the file — damaged, of another file, or
// ahead of the file's LSN (restored from an older backup, which keeps the
// file id) — is ignored: the check verifies every page.
func TestVerifiedRecordIgnoredWhenItCannotApply(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	fileID := handle.Pager(db).FileID()
	db.Close()
	if m := pageScope(t, path); !strings.HasPrefix(m, "all ") {
		t.Fatalf("first check: %s", m)
	}
	if m := pageScope(t, path); !strings.Contains(m, "written since the last verification") {
		t.Fatalf("second check should be incremental: %s", m)
	}
	good, err := os.ReadFile(path + VerifiedSuffix)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := readVerified(vfs.OS, path, fileID)
	if !ok {
		t.Fatalf("record unreadable: %s", good)
	}
	ahead := v
	ahead.LSN += 1000
	other := v
	other.FileID++
	for name, rec := range map[string]verified{"ahead": ahead, "other file": other} {
		if err := writeVerified(vfs.OS, path, rec); err != nil {
			t.Fatal(err)
		}
		if m := pageScope(t, path); !strings.HasPrefix(m, "all ") {
			t.Errorf("%s: %s", name, m)
		}
	}
	if err := os.WriteFile(path+VerifiedSuffix, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if m := pageScope(t, path); !strings.HasPrefix(m, "all ") {
		t.Errorf("torn record: %s", m)
	}
}
