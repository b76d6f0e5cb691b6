package security_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sombradb/sombra/engine/security"
	"github.com/sombradb/sombra/engine/vfs"
)

// TestSaveFSFaults: the policy file is written through a vfs.FS (a
// database's, db.Config().FS). A failure before the rename is returned
// wrapped and leaves the old file byte for byte and no temporary file; a
// failed directory fsync after it is reported with the new policy in
// place; a kill at the rename leaves the old file whole. Loading through a
// failing FS leaves the policy in memory as it was.
func TestSaveFSFaults(t *testing.T) {
	eio := syscall.EIO
	cases := []struct {
		name     string
		rule     vfs.Rule
		is       error
		replaced bool
	}{
		{"create", vfs.NthOp(vfs.OpCreate, "policy.json", 1, false, vfs.Fault{Err: eio}), eio, false},
		{"write", vfs.NthOp(vfs.OpWrite, "policy.json", 1, false, vfs.Fault{Err: syscall.ENOSPC}), syscall.ENOSPC, false},
		{"torn write", vfs.NthOp(vfs.OpWrite, "policy.json", 1, false, vfs.Fault{Err: syscall.ENOSPC, Tear: 10}), syscall.ENOSPC, false},
		{"fsync", vfs.NthOp(vfs.OpSync, "policy.json", 1, false, vfs.Fault{Err: eio}), eio, false},
		{"rename", vfs.NthOp(vfs.OpRename, "policy.json", 1, false, vfs.Fault{Err: eio}), eio, false},
		{"directory fsync", vfs.NthOp(vfs.OpSyncDir, "", 1, false, vfs.Fault{Err: eio}), eio, true},
		{"crash at rename", vfs.NthOp(vfs.OpRename, "policy.json", 1, false, vfs.Fault{Crash: true}), vfs.ErrCrashed, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "policy.json")
			old := guidePolicy(t)
			must(t, old.Save(path))
			before, err := os.ReadFile(path)
			must(t, err)
			next := guidePolicy(t)
			must(t, next.AddRole("auditor", []security.Permission{security.Read}))
			ffs := vfs.NewFaultFS(vfs.OS)
			ffs.SetRule(c.rule)
			err = next.SaveFS(ffs, path)
			ffs.SetRule(nil)
			ffs.Revive()
			if !errors.Is(err, c.is) || !strings.HasPrefix(err.Error(), "save access policy") {
				t.Fatalf("save with a failed %s: %v, want %v wrapped", c.name, err, c.is)
			}
			got, err := security.LoadAccessControl(path)
			must(t, err)
			_, hasNew := got.RolePermissions("auditor")
			if hasNew != c.replaced {
				t.Fatalf("the new policy is in place: %v, want %v", hasNew, c.replaced)
			}
			if !c.replaced {
				if after, _ := os.ReadFile(path); string(after) != string(before) {
					t.Fatal("the old policy file changed")
				}
			}
			ents, err := os.ReadDir(dir)
			must(t, err)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			// a kill leaves its temporary file (as any killed writer does)
			if !strings.HasPrefix(c.name, "crash") && !slices.Equal(names, []string{"policy.json"}) {
				t.Fatalf("left in the directory: %v", names)
			}
		})
	}
	t.Run("load", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "policy.json")
		must(t, guidePolicy(t).Save(path))
		acl := security.NewAccessControl()
		must(t, acl.AddRole("kept", []security.Permission{security.Read}))
		for _, op := range []vfs.Op{vfs.OpOpen, vfs.OpRead} {
			ffs := vfs.NewFaultFS(vfs.OS)
			ffs.SetRule(vfs.NthOp(op, "policy.json", 1, false, vfs.Fault{Err: eio}))
			if err := acl.LoadFS(ffs, path); !errors.Is(err, eio) {
				t.Fatalf("load with a failed %v: %v", op, err)
			}
			if _, ok := acl.RolePermissions("kept"); !ok {
				t.Fatalf("a failed load (%v) changed the policy", op)
			}
		}
		must(t, acl.LoadFS(vfs.NewFaultFS(vfs.OS), path))
		if _, ok := acl.RolePermissions("kept"); ok {
			t.Fatal("load did not replace the policy")
		}
	})
}
