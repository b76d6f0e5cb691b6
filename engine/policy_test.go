package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine/internal/page"
)

// Issue 7 item 14: the access policy is stored in the database and every
// connection of every process enforces it; checkpoints and the WAL archive
// setting need Configure.

func testPolicy() *AccessPolicy {
	return &AccessPolicy{
		Roles: map[string][]Permission{
			"admin":    {PermissionRead, PermissionWrite, PermissionDelete, PermissionBackup, PermissionConfigure},
			"readonly": {PermissionRead},
		},
		Users: map[string][]string{"alice": {"admin"}, "bob": {"readonly"}},
	}
}

func denied(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("%s: %v, want permission denied", what, err)
	}
}

// The anonymous user's Checkpoint and SetWALArchiveDir were allowed under
// an installed policy (SetWALArchiveDir even committed a write).
func TestAnonymousCheckpointAndArchiveDenied(t *testing.T) {
	path := tempDB(t)
	db := mustOpen(t, path, Config{})
	defer db.Close()
	if err := db.SetAccessPolicy(testPolicy()); err != nil {
		t.Fatal(err)
	}
	_, err := db.Checkpoint()
	denied(t, "anonymous Checkpoint", err)
	_, err = db.CheckpointWithMode(CheckpointTruncate)
	denied(t, "anonymous CheckpointWithMode", err)
	lsn := db.lastLSN(t)
	arch := filepath.Join(t.TempDir(), "arch")
	denied(t, "anonymous SetWALArchiveDir", db.SetWALArchiveDir(arch))
	if got := db.lastLSN(t); got != lsn {
		t.Errorf("a denied SetWALArchiveDir committed (LSN %d -> %d)", lsn, got)
	}
	if _, err := os.Stat(arch); err == nil {
		t.Error("a denied SetWALArchiveDir created the directory")
	}
	denied(t, "bob Checkpoint", func() error { _, err := db.AsUser("bob").Checkpoint(); return err }())
	denied(t, "bob SetWALArchiveDir", db.AsUser("bob").SetWALArchiveDir(arch))
	if _, err := db.AsUser("alice").Checkpoint(); err != nil {
		t.Errorf("alice Checkpoint: %v", err)
	}
	if err := db.AsUser("alice").SetWALArchiveDir(arch); err != nil {
		t.Errorf("alice SetWALArchiveDir: %v", err)
	}
	// Changing or removing the stored policy needs Configure too.
	denied(t, "anonymous SetAccessPolicy", db.SetAccessPolicy(nil))
	denied(t, "bob SetAccessPolicy", db.AsUser("bob").SetAccessPolicy(nil))
	// A policy nobody could change again is refused.
	lock := &AccessPolicy{Roles: map[string][]Permission{"r": {PermissionRead}}, Users: map[string][]string{"alice": {"r"}}}
	if err := db.AsUser("alice").SetAccessPolicy(lock); !errors.Is(err, ErrInvalid) {
		t.Errorf("policy without configure: %v", err)
	}
	// A connection acting as alice (Config.User) may do everything.
	db2 := mustOpen(t, path, Config{User: "alice"})
	defer db2.Close()
	if _, err := db2.Checkpoint(); err != nil {
		t.Errorf("Config.User alice: %v", err)
	}
	if err := db2.Update(func(tx *Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
		t.Errorf("Config.User alice write: %v", err)
	}
}

func (db *DB) lastLSN(t *testing.T) uint64 {
	t.Helper()
	lsn, err := view(db, func(tx *Tx) (uint64, error) { return tx.LSN(), nil })
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// Another process that never heard of the policy enforces it: it only
// opens the file. A change of policy reaches its open connection at the
// next transaction.
func TestStoredPolicyEnforcedInAnotherProcess(t *testing.T) {
	path := tempDB(t)
	db := mustOpen(t, path, Config{})
	defer db.Close()
	var id NodeID
	if err := db.Update(func(tx *Tx) error { var err error; id, err = tx.CreateNode("N", nil); return err }); err != nil {
		t.Fatal(err)
	}
	if err := db.SetAccessPolicy(testPolicy()); err != nil {
		t.Fatal(err)
	}

	c := startChild(t, "TestStoredPolicyChild", "policy", "SOMBRA_TEST_DB="+path)
	c.send("probe")
	got := c.expect("RESULT", 30*time.Second)
	want := "anon:read=denied,write=denied,checkpoint=denied,archive=denied " +
		"bob:read=ok,write=denied,checkpoint=denied " +
		"alice:read=ok,write=ok,checkpoint=ok"
	if got != want {
		t.Fatalf("child saw\n  %s\nwant\n  %s", got, want)
	}
	// Grant bob admin while the child's connection stays open.
	p := testPolicy()
	p.Users["bob"] = []string{"admin"}
	if err := db.AsUser("alice").SetAccessPolicy(p); err != nil {
		t.Fatal(err)
	}
	c.send("probe")
	got = c.expect("RESULT", 30*time.Second)
	if !strings.Contains(got, "bob:read=ok,write=ok,checkpoint=ok") {
		t.Fatalf("after the policy change the child saw %s", got)
	}
	// Removing it opens everything again.
	if err := db.AsUser("alice").SetAccessPolicy(nil); err != nil {
		t.Fatal(err)
	}
	c.send("probe")
	got = c.expect("RESULT", 30*time.Second)
	if !strings.HasPrefix(got, "anon:read=ok,write=ok,checkpoint=ok,archive=ok") {
		t.Fatalf("after removing the policy the child saw %s", got)
	}
	c.send("quit")
	c.wait(30 * time.Second)
	_ = id
}

func TestStoredPolicyChild(t *testing.T) {
	if !childMode(t, "policy") {
		return
	}
	db, err := Open(os.Getenv("SOMBRA_TEST_DB"))
	if err != nil {
		childFail("%v", err)
	}
	defer db.Close()
	res := func(err error) string {
		switch {
		case err == nil:
			return "ok"
		case errors.Is(err, ErrPermissionDenied):
			return "denied"
		}
		return "error(" + err.Error() + ")"
	}
	probe := func(s *Session, archive bool) string {
		read := s.View(func(tx *Tx) error { _, err := tx.GetNode(1); return err })
		write := s.Update(func(tx *Tx) error { _, err := tx.CreateNode("C", nil); return err })
		_, cp := s.Checkpoint()
		out := "read=" + res(read) + ",write=" + res(write) + ",checkpoint=" + res(cp)
		if archive {
			// Turning archiving on then off leaves nothing behind.
			arch := s.SetWALArchiveDir(filepath.Join(filepath.Dir(db.Path()), "arch"))
			if arch == nil {
				arch = s.SetWALArchiveDir("")
			}
			out += ",archive=" + res(arch)
		}
		return out
	}
	for {
		switch childReadLine() {
		case "probe":
			childSay("RESULT anon:%s bob:%s alice:%s", probe(db.AsUser(""), true), probe(db.AsUser("bob"), false),
				probe(db.AsUser("alice"), false))
		case "quit":
			return
		}
	}
}

// A stored policy that cannot be read (damaged catalog page) denies every
// check with an error that also reports the corruption; checkpoints, which
// repair needs, still run.
func TestUnreadablePolicyFailsClosed(t *testing.T) {
	path := tempDB(t)
	db := mustOpen(t, path, Config{})
	if err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
		t.Fatal(err)
	}
	if err := db.SetAccessPolicy(testPolicy()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AsUser("alice").CheckpointWithMode(CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	m, err := db.p.FileMeta()
	if err != nil {
		t.Fatal(err)
	}
	cat := int64(m.Roots[page.RootCatalog]) * int64(db.p.PageSize())
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("garbage garbage garbage"), cat+100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db = mustOpen(t, path, Config{User: "alice"})
	defer db.Close()
	_, err = db.GetNode(1)
	if !errors.Is(err, ErrPermissionDenied) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read with an unreadable policy: %v (want denied and corrupt)", err)
	}
	if _, err := db.Checkpoint(); err != nil {
		t.Fatalf("checkpoint with an unreadable policy: %v", err)
	}
}
