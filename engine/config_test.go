package engine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestInvalidPageSizeCreatesNothing (issue 12 #11): an impossible page
// size is refused with ErrInvalid before any file exists, so no tool later
// finds a "corrupt" database; the valid extremes work.
func TestInvalidPageSizeCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	for _, ps := range []int{512, 3000, 5000, 131072, -4096} {
		path := filepath.Join(dir, "bad.db")
		db, err := OpenWithConfig(path, Config{PageSize: ps})
		if err == nil {
			db.Close()
			t.Fatalf("page size %d accepted", ps)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("page size %d: %v, want ErrInvalid", ps, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("page size %d left %d files (first %s)", ps, len(ents), ents[0].Name())
		}
	}
	for _, ps := range []int{1024, 65536} {
		path := filepath.Join(dir, "ok.db")
		db, err := OpenWithConfig(path, Config{PageSize: ps})
		if err != nil {
			t.Fatalf("page size %d: %v", ps, err)
		}
		db.Close()
		db, err = OpenWithConfig(path, Config{ReadOnly: true})
		if err != nil {
			t.Fatalf("reopen page size %d: %v", ps, err)
		}
		db.Close()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			os.Remove(p)
		}
	}
}
