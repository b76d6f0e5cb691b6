package repair

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/vfs"
	"github.com/sombradb/sombra/internal/fixtures"
)

// oldOutput makes a database at path whose last commits are only in its
// WAL (the checkpoint that would copy them into the file fails), and
// returns its logical hash: an output that loses its WAL loses them.
func oldOutput(t *testing.T, path string) string {
	t.Helper()
	ffs := vfs.NewFaultFS(vfs.OS)
	db, err := engine.OpenWithConfig(path, engine.Config{FS: ffs, WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := db.Update(func(tx *engine.Tx) error {
			_, err := tx.CreateNode("Old", engine.Properties{"i": engine.IntValue(int64(i))})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
				t.Fatal(err)
			}
		}
	}
	h, err := db.LogicalHash()
	if err != nil {
		t.Fatal(err)
	}
	ffs.SetRule(func(op vfs.Op, name string, _ int) *vfs.Fault {
		if op == vfs.OpWrite && name == path {
			return &vfs.Fault{Err: syscall.EIO}
		}
		return nil
	})
	db.Close()
	if st, err := os.Stat(path + "-wal"); err != nil || st.Size() == 0 {
		t.Fatalf("the old output has no WAL to lose: %v", err)
	}
	return h
}

// snapshot is the bytes of a database and its WAL ("" when missing).
func snapshot(t *testing.T, path string) [2]string {
	t.Helper()
	var s [2]string
	for i, suf := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suf)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		s[i] = string(b)
	}
	return s
}

// leftovers lists the salvage's temporary files in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), "salvage-tmp") {
			out = append(out, e.Name())
		}
	}
	return out
}

// afterPublish fails the first directory fsync after the salvage's new
// database was linked or renamed into place.
func afterPublish(fault vfs.Fault) vfs.Rule {
	return vfs.After(func(op vfs.Op, name string) bool {
		return (op == vfs.OpLink || op == vfs.OpRename) && strings.Contains(name, ".salvage-tmp -> ")
	}, vfs.NthOp(vfs.OpSyncDir, "", 1, false, fault))
}

// TestSalvageToFaults: salvage reads its source and writes, publishes and
// syncs its output through DatabaseRepair.FS. A failure at each step is
// returned wrapped, leaves the source byte for byte as it was, and leaves
// no temporary file and no partial output: before the publication a new
// output does not exist and an overwritten one is whole with its WAL; a
// failed directory fsync after it reports the error with the new output
// whole in place. A kill (Crash) at the publication or after it leaves
// either output whole, and the next salvage cleans up.
func TestSalvageToFaults(t *testing.T) {
	eio := syscall.EIO
	cases := []struct {
		name     string
		rule     func(overwrite bool) vfs.Rule
		is       error
		replaced bool
		crash    bool
	}{
		{"read source", func(bool) vfs.Rule {
			return vfs.NthOp(vfs.OpRead, "/"+fixtures.Healthy, 3, true, vfs.Fault{Err: eio})
		}, eio, false, false},
		{"create", func(bool) vfs.Rule { return vfs.NthOp(vfs.OpCreate, "salvage-tmp", 1, false, vfs.Fault{Err: eio}) }, eio, false, false},
		{"write", func(bool) vfs.Rule {
			return vfs.NthOp(vfs.OpWrite, "salvage-tmp", 4, true, vfs.Fault{Err: vfs.ENOSPC})
		}, syscall.ENOSPC, false, false},
		{"fsync", func(bool) vfs.Rule { return vfs.NthOp(vfs.OpSync, "salvage-tmp", 2, false, vfs.Fault{Err: eio}) }, eio, false, false},
		{"publish", func(overwrite bool) vfs.Rule {
			op := vfs.OpLink
			if overwrite {
				op = vfs.OpRename
			}
			return vfs.NthOp(op, ".salvage-tmp -> ", 1, false, vfs.Fault{Err: eio})
		}, eio, false, false},
		{"directory fsync", func(bool) vfs.Rule { return afterPublish(vfs.Fault{Err: eio}) }, eio, true, false},
		{"crash at publish", func(overwrite bool) vfs.Rule {
			op := vfs.OpLink
			if overwrite {
				op = vfs.OpRename
			}
			return vfs.NthOp(op, ".salvage-tmp -> ", 1, false, vfs.Fault{Crash: true})
		}, vfs.ErrCrashed, false, true},
		{"crash at directory fsync", func(bool) vfs.Rule { return afterPublish(vfs.Fault{Crash: true}) }, vfs.ErrCrashed, true, true},
	}
	src := fixture(t, fixtures.Healthy)
	srcBefore := snapshot(t, src)
	want := logicalHash(t, src)
	for _, overwrite := range []bool{false, true} {
		for _, c := range cases {
			name := c.name
			if overwrite {
				name += " overwriting"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				out := filepath.Join(dir, "out.db")
				var oldHash string
				if overwrite {
					oldHash = oldOutput(t, out)
				}
				outBefore := snapshot(t, out)
				ffs := vfs.NewFaultFS(vfs.OS)
				ffs.SetRule(c.rule(overwrite))
				r := NewDatabaseRepair(src)
				r.FS = ffs
				_, err := r.SalvageToWithOptions(out, SalvageOptions{Overwrite: overwrite})
				ffs.SetRule(nil)
				ffs.Revive()
				// (a failed read of the source is reported as the scan words it)
				if !errors.Is(err, c.is) || c.name != "read source" && !strings.HasPrefix(err.Error(), "salvage "+src) {
					t.Fatalf("salvage with a failed %s: %v, want %v wrapped", c.name, err, c.is)
				}
				if got := snapshot(t, src); got != srcBefore {
					t.Fatal("the source changed")
				}
				if c.replaced {
					if got := logicalHash(t, out); got != want {
						t.Fatalf("the published output: hash %.12s, want %.12s", got, want)
					}
					mustHealthy(t, out)
				} else {
					if got := snapshot(t, out); got != outBefore {
						t.Fatalf("the output changed before its replacement was published (WAL %d -> %d bytes)",
							len(outBefore[1]), len(got[1]))
					}
					if overwrite {
						if got := logicalHash(t, out); got != oldHash {
							t.Fatal("the old output lost commits")
						}
					}
				}
				if !c.crash {
					if l := leftovers(t, dir); len(l) > 0 {
						t.Fatalf("left behind: %v", l)
					}
					return
				}
				// A kill leaves temporary files; the next salvage removes
				// them and publishes.
				if _, err := NewDatabaseRepair(src).SalvageToWithOptions(out, SalvageOptions{Overwrite: true}); err != nil {
					t.Fatalf("salvage after the crash: %v", err)
				}
				if l := leftovers(t, dir); len(l) > 0 {
					t.Fatalf("left behind after the next salvage: %v", l)
				}
				if got := logicalHash(t, out); got != want {
					t.Fatalf("after the next salvage: hash %.12s, want %.12s", got, want)
				}
			})
		}
	}
}
