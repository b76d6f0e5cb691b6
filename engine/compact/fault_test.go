package compact

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/vfs"
)

// afterRename fails (with fault) the first directory fsync that follows a
// rename of a file named *.compact: the fsync that makes the new file's
// name durable.
func afterRename(fault vfs.Fault) vfs.Rule {
	return vfs.After(func(op vfs.Op, name string) bool {
		return op == vfs.OpRename && strings.Contains(name, ".compact -> ")
	}, vfs.NthOp(vfs.OpSyncDir, "", 1, false, fault))
}

// TestCompactHandleFaults: compaction on an open handle writes, renames
// and syncs through the database's vfs.FS, so a failure at each step can
// be injected. A failure before the rename returns the error wrapped,
// leaves the database file byte for byte as it was and no temporary file,
// releases the exclusive lock and keeps the handle usable; a failed fsync
// of the directory after the rename reports the error with the new file
// whole in place. A simulated kill ("crash") at the rename or after it
// leaves either file whole, and the next compaction cleans up.
func TestCompactHandleFaults(t *testing.T) {
	eio := syscall.EIO
	cases := []struct {
		name     string
		rule     vfs.Rule
		is       error
		replaced bool // the failure comes after the rename
		crash    bool
	}{
		{"create", vfs.NthOp(vfs.OpCreate, ".compact", 1, false, vfs.Fault{Err: eio}), eio, false, false},
		{"write", vfs.NthOp(vfs.OpWrite, ".compact", 3, true, vfs.Fault{Err: vfs.ENOSPC}), syscall.ENOSPC, false, false},
		{"torn write", vfs.NthOp(vfs.OpWrite, ".compact", 2, false, vfs.Fault{Err: eio, Tear: 100}), eio, false, false},
		{"fsync", vfs.NthOp(vfs.OpSync, ".compact", 1, false, vfs.Fault{Err: eio}), eio, false, false},
		{"rename", vfs.NthOp(vfs.OpRename, ".compact -> ", 1, false, vfs.Fault{Err: eio}), eio, false, false},
		{"directory fsync", afterRename(vfs.Fault{Err: eio}), eio, true, false},
		{"crash at rename", vfs.NthOp(vfs.OpRename, ".compact -> ", 1, false, vfs.Fault{Crash: true}), vfs.ErrCrashed, false, true},
		{"crash at directory fsync", afterRename(vfs.Fault{Crash: true}), vfs.ErrCrashed, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f.db")
			ffs := vfs.NewFaultFS(vfs.OS)
			db, err := engine.OpenWithConfig(path, engine.Config{FS: ffs})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			fragmented(t, db, 800)
			if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
				t.Fatal(err)
			}
			wantHash, _ := db.LogicalHash()
			wantNodes := count(t, db)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ffs.SetRule(c.rule)
			_, err = NewDatabaseCompactor(db).Compact()
			ffs.SetRule(nil)
			if !errors.Is(err, c.is) || !strings.HasPrefix(err.Error(), "compact "+path) {
				t.Fatalf("compaction with a failed %s: %v, want %v wrapped", c.name, err, c.is)
			}
			after, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if replaced := !bytes.Equal(before, after); replaced != c.replaced {
				t.Fatalf("database file replaced: %v, want %v", replaced, c.replaced)
			}
			if !c.crash {
				if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("the temporary file was left: %v", err)
				}
				if st, err := engine.ReadLockState(path); err != nil || st.Exclusive.Held {
					t.Fatalf("lock state after a failed compaction: %+v %v", st, err)
				}
			}
			if !c.replaced && !c.crash {
				// the handle carries on with the old file
				if got := count(t, db); got != wantNodes {
					t.Fatalf("%d nodes after the failure, want %d", got, wantNodes)
				}
				if _, err := NewDatabaseCompactor(db).Compact(); err != nil {
					t.Fatalf("compaction once the fault is gone: %v", err)
				}
			}
			db.Close()
			ffs.Revive()
			// Whatever happened, the database holds the same graph.
			db2, err := engine.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db2.Close()
			if got, _ := db2.LogicalHash(); got != wantHash {
				t.Fatalf("after reopening: hash %.12s, want %.12s", got, wantHash)
			}
			if c.crash {
				// a kill leaves the temporary file; the next run removes it
				if _, err := NewDatabaseCompactor(db2).Compact(); err != nil {
					t.Fatalf("compaction after the crash: %v", err)
				}
				if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("the temporary file is still there: %v", err)
				}
			}
		})
	}
}
