package replication

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/vfs"
)

// TestReplicaRestoreFaults: a replica's restore from the snapshot goes
// through the database's vfs (engine.Config.FS). When the rename that
// puts the snapshot in place fails, the open fails with the error wrapped,
// an existing database stays in place byte for byte and nothing is left
// beside it; once the fault is gone the restore goes through and keeps the
// replaced database aside, whole.
func TestReplicaRestoreFaults(t *testing.T) {
	s := startNATS(t, t.TempDir(), 0)
	url := s.ClientURL()
	p := openMember(t, dbPath(t, "p.db"), testConfig(url, "vfsrestore", "p", Primary, Sync))
	lsn := writeNodes(t, p.db, 0, 3)
	if _, err := p.node.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	rename := func() vfs.Rule {
		return vfs.NthOp(vfs.OpRename, ".replica-restore -> ", 1, false, vfs.Fault{Err: syscall.EIO})
	}
	dir := t.TempDir()
	rpath := filepath.Join(dir, "r.db")
	list := func() []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}

	// A new replica.
	ffs := vfs.NewFaultFS(vfs.OS)
	ffs.SetRule(rename())
	_, err := tryOpenMemberWith(rpath, testConfig(url, "vfsrestore", "r", Replica, Sync), engine.Config{FS: ffs})
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("a new replica whose restore cannot rename: %v", err)
	}
	if got := list(); len(got) > 0 {
		t.Fatalf("left behind: %v", got)
	}
	ffs.SetRule(nil)
	r, err := tryOpenMemberWith(rpath, testConfig(url, "vfsrestore", "r", Replica, Sync), engine.Config{FS: ffs})
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, r, lsn)
	want, err := r.db.LogicalHash()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}

	// An existing replica that must be restored (marked diverged).
	if err := os.WriteFile(rpath+divergedSuffix, []byte("test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(rpath)
	if err != nil {
		t.Fatal(err)
	}
	files := list()
	ffs.SetRule(rename())
	_, err = tryOpenMemberWith(rpath, testConfig(url, "vfsrestore", "r", Replica, Sync), engine.Config{FS: ffs})
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("restoring an existing replica that cannot rename: %v", err)
	}
	if after, _ := os.ReadFile(rpath); string(after) != string(before) {
		t.Fatal("the existing database changed")
	}
	if got := list(); !slices.Equal(got, files) {
		t.Fatalf("files %v after the failed restore, were %v", got, files)
	}
	ffs.SetRule(nil)
	r2, err := tryOpenMemberWith(rpath, testConfig(url, "vfsrestore", "r", Replica, Sync), engine.Config{FS: ffs})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.db.Close()
	waitApplied(t, r2, lsn)
	var aside string
	for _, n := range list() {
		if strings.HasPrefix(n, "r.db.replaced-") && !strings.HasSuffix(n, "-wal") && !strings.HasSuffix(n, "-shm") {
			aside = filepath.Join(dir, n)
		}
	}
	if aside == "" {
		t.Fatalf("the replaced database was not kept: %v", list())
	}
	old, err := engine.OpenWithConfig(aside, engine.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if got, _ := old.LogicalHash(); got != want {
		t.Fatalf("the database kept aside: hash %.12s, want %.12s", got, want)
	}
	if _, err := os.Stat(rpath + divergedSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the divergence marker outlived the restore: %v", err)
	}
}
