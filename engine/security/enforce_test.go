package security_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/security"
)

// fixture is a database with the guide's policy installed, holding
// nodes a and b joined by edge e (created by alice).
type fixture struct {
	db   *engine.DB
	acl  *security.AccessControl
	a, b engine.NodeID
	e    engine.EdgeID
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := engine.Open(filepath.Join(t.TempDir(), "g.db"))
	must(t, err)
	t.Cleanup(func() { db.Close() })
	f := &fixture{db: db, acl: guidePolicy(t)}
	db.SetAccessControl(f.acl)
	must(t, db.AsUser("alice").Update(func(tx *engine.Tx) error {
		var err error
		if f.a, err = tx.CreateNode("Person", engine.Properties{"name": engine.StringValue("a")}); err != nil {
			return err
		}
		if f.b, err = tx.CreateNode("Person", engine.Properties{"name": engine.StringValue("b")}); err != nil {
			return err
		}
		f.e, err = tx.CreateEdge(f.a, f.b, "KNOWS", nil)
		return err
	}))
	return f
}

func (f *fixture) hash(t *testing.T) string {
	t.Helper()
	var h string
	must(t, f.db.ViewAs("alice", func(tx *engine.Tx) error {
		var err error
		h, err = tx.LogicalHash()
		return err
	}))
	return h
}

func denied(t *testing.T, what string, err error, user string, p engine.Permission) {
	t.Helper()
	if !errors.Is(err, engine.ErrPermissionDenied) {
		t.Fatalf("%s: err = %v, want ErrPermissionDenied", what, err)
	}
	var pe *engine.PermissionError
	if !errors.As(err, &pe) || pe.User != user || pe.Permission != p {
		t.Fatalf("%s: err = %#v, want user %q permission %v", what, err, user, p)
	}
	if !strings.Contains(err.Error(), `"`+user+`"`) || !strings.Contains(err.Error(), p.String()) {
		t.Fatalf("%s: %q does not name %q and %v", what, err, user, p)
	}
}

// Every write operation a user lacks the permission for is refused before
// it changes anything, and the transaction remains usable.
func TestEnforcedPerOperation(t *testing.T) {
	f := newFixture(t)
	before := f.hash(t)

	// charlie (readonly): reads work, every write is refused.
	must(t, f.db.AsUser("charlie").View(func(tx *engine.Tx) error {
		n, err := tx.GetNode(f.a)
		if err != nil || !n.Properties["name"].Equal(engine.StringValue("a")) {
			t.Fatalf("charlie GetNode: %v %v", n, err)
		}
		if ids, err := tx.Neighbors(f.a); err != nil || len(ids) != 1 {
			t.Errorf("charlie Neighbors: %v %v", ids, err)
		}
		return nil
	}))
	tx, err := f.db.AsUser("charlie").BeginTransaction()
	must(t, err)
	_, err = tx.CreateNode("X", nil)
	denied(t, "charlie CreateNode", err, "charlie", engine.PermissionWrite)
	_, err = tx.CreateEdge(f.a, f.b, "X", nil)
	denied(t, "charlie CreateEdge", err, "charlie", engine.PermissionWrite)
	denied(t, "charlie SetNodeProperty", tx.SetNodeProperty(f.a, "k", engine.IntValue(1)), "charlie", engine.PermissionWrite)
	denied(t, "charlie RemoveNodeProperty", tx.RemoveNodeProperty(f.a, "name"), "charlie", engine.PermissionWrite)
	denied(t, "charlie DeleteEdge", tx.DeleteEdge(f.e), "charlie", engine.PermissionDelete)
	denied(t, "charlie DeleteNode", tx.DeleteNode(f.a), "charlie", engine.PermissionDelete)
	// Still usable for what charlie may do, and committing writes nothing.
	if _, err := tx.GetNode(f.a); err != nil {
		t.Fatalf("tx unusable after denials: %v", err)
	}
	must(t, tx.Commit())
	if h := f.hash(t); h != before {
		t.Fatal("denied operations changed the graph")
	}

	// bob (user): creates and updates, but no deletes.
	var c engine.NodeID
	tx, err = f.db.AsUser("bob").BeginTransaction()
	must(t, err)
	if tx.User() != "bob" {
		t.Fatalf("tx.User() = %q", tx.User())
	}
	c, err = tx.CreateNode("Person", nil)
	must(t, err)
	_, err = tx.CreateEdge(c, f.a, "KNOWS", nil)
	must(t, err)
	must(t, tx.SetNodeProperty(c, "name", engine.StringValue("c")))
	denied(t, "bob DeleteNode", tx.DeleteNode(f.a), "bob", engine.PermissionDelete)
	denied(t, "bob DeleteEdge", tx.DeleteEdge(f.e), "bob", engine.PermissionDelete)
	must(t, tx.Commit())
	must(t, f.db.AsUser("charlie").View(func(tx *engine.Tx) error {
		if ok, _ := tx.NodeExists(f.a); !ok {
			t.Error("bob's denied DeleteNode deleted the node")
		}
		if _, err := tx.GetEdge(f.e); err != nil {
			t.Errorf("bob's denied DeleteEdge deleted the edge: %v", err)
		}
		if n, _ := tx.GetNode(c); n == nil || !n.Properties["name"].Equal(engine.StringValue("c")) {
			t.Errorf("bob's node: %v", n)
		}
		if tx.NodeCount() != 3 || tx.EdgeCount() != 2 {
			t.Errorf("counts %d/%d, want 3/2", tx.NodeCount(), tx.EdgeCount())
		}
		return nil
	}))

	// A denied operation inside Update makes it roll back as a whole.
	err = f.db.UpdateAs("bob", func(tx *engine.Tx) error {
		if _, err := tx.CreateNode("Y", nil); err != nil {
			return err
		}
		return tx.DeleteNode(c)
	})
	denied(t, "bob Update", err, "bob", engine.PermissionDelete)
	must(t, f.db.ViewAs("charlie", func(tx *engine.Tx) error {
		if ids, _ := tx.NodesByLabel("Y"); len(ids) != 0 {
			t.Error("rolled back transaction left a node")
		}
		return nil
	}))

	// alice (admin) deletes.
	must(t, f.db.AsUser("alice").Update(func(tx *engine.Tx) error { return tx.DeleteNode(f.a) }))
	must(t, f.db.ViewAs("alice", func(tx *engine.Tx) error {
		if tx.NodeCount() != 2 || tx.EdgeCount() != 0 {
			t.Errorf("after delete: %d nodes %d edges", tx.NodeCount(), tx.EdgeCount())
		}
		return nil
	}))
}

func TestUnknownAndAnonymousUsers(t *testing.T) {
	f := newFixture(t)
	// dave has no roles: even reads are refused.
	err := f.db.ViewAs("dave", func(tx *engine.Tx) error { _, err := tx.GetNode(f.a); return err })
	denied(t, "dave GetNode", err, "dave", engine.PermissionRead)
	err = f.db.ViewAs("dave", func(tx *engine.Tx) error {
		for _, err := range tx.Nodes() {
			return err
		}
		return nil
	})
	denied(t, "dave Nodes", err, "dave", engine.PermissionRead)

	// Transactions without a user run as "": denied unless granted.
	_, err = f.db.GetNode(f.a)
	denied(t, "anonymous db.GetNode", err, "", engine.PermissionRead)
	err = f.db.View(func(tx *engine.Tx) error { _, err := tx.NodesByLabel("Person"); return err })
	denied(t, "anonymous View", err, "", engine.PermissionRead)
	err = f.db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("Z", nil); return err })
	denied(t, "anonymous Update", err, "", engine.PermissionWrite)
	denied(t, "anonymous SetNodeProperty", f.db.SetNodeProperty(f.a, "k", engine.IntValue(1)), "", engine.PermissionWrite)
	_, err = f.db.LogicalHash()
	denied(t, "anonymous LogicalHash", err, "", engine.PermissionRead)

	must(t, f.acl.AssignRole("", "readonly"))
	if _, err := f.db.GetNode(f.a); err != nil {
		t.Fatalf("anonymous read after granting \"\" readonly: %v", err)
	}
	denied(t, "anonymous SetNodeProperty", f.db.SetNodeProperty(f.a, "k", engine.IntValue(1)), "", engine.PermissionWrite)
}

func TestConfigureAndBackupPermissions(t *testing.T) {
	f := newFixture(t)
	bob, alice := f.db.AsUser("bob"), f.db.AsUser("alice")
	type op struct {
		name string
		run  func(*engine.Session) error
	}
	ops := []op{
		{"CreatePropertyIndex", func(s *engine.Session) error { return s.CreatePropertyIndex("name") }},
		{"RebuildPropertyIndex", func(s *engine.Session) error { return s.RebuildPropertyIndex("name") }},
		{"RebuildLabelIndex", func(s *engine.Session) error { return s.RebuildLabelIndex("Person") }},
		{"RebuildAllIndexes", func(s *engine.Session) error { return s.RebuildAllIndexes() }},
		{"DropPropertyIndex", func(s *engine.Session) error { return s.DropPropertyIndex("name") }},
		{"UpdateCacheSize", func(s *engine.Session) error { return s.UpdateCacheSize(8 << 20) }},
		{"EnableGroupCommit", func(s *engine.Session) error { return s.EnableGroupCommit(0, 0) }},
		{"Checkpoint", func(s *engine.Session) error { _, err := s.Checkpoint(); return err }},
	}
	for _, o := range ops {
		denied(t, "bob "+o.name, o.run(bob), "bob", engine.PermissionConfigure)
		if err := o.run(alice); err != nil {
			t.Errorf("alice %s: %v", o.name, err)
		}
	}
	// The DB-level methods run as "".
	denied(t, "db.CreatePropertyIndex", f.db.CreatePropertyIndex("x"), "", engine.PermissionConfigure)
	denied(t, "db.RebuildAllIndexes", f.db.RebuildAllIndexes(), "", engine.PermissionConfigure)
	denied(t, "db.UpdateCacheSize", f.db.UpdateCacheSize(1<<20), "", engine.PermissionConfigure)
	denied(t, "db.EnableGroupCommit", f.db.EnableGroupCommit(time.Millisecond, 4), "", engine.PermissionConfigure)

	must(t, f.db.Authorize("alice", engine.PermissionBackup))
	must(t, alice.Authorize(engine.PermissionBackup))
	denied(t, "bob backup", f.db.Authorize("bob", engine.PermissionBackup), "bob", engine.PermissionBackup)
	denied(t, "anonymous backup", f.db.Authorize("", engine.PermissionBackup), "", engine.PermissionBackup)
}

// An operation is checked at its entry only: the reads it makes on its own
// behalf need no Read permission.
func TestNarrowRoles(t *testing.T) {
	f := newFixture(t)
	must(t, f.acl.AddRole("writer", []security.Permission{security.Write}))
	must(t, f.acl.AddRole("deleter", []security.Permission{security.Delete}))
	must(t, f.acl.AssignRole("wendy", "writer"))
	must(t, f.acl.AssignRole("dan", "deleter"))

	var c engine.NodeID
	must(t, f.db.UpdateAs("wendy", func(tx *engine.Tx) error {
		var err error
		if c, err = tx.CreateNode("W", nil); err != nil {
			return err
		}
		if _, err := tx.CreateEdge(c, f.a, "E", nil); err != nil { // checks both endpoints exist
			return err
		}
		return tx.SetNodeProperty(c, "k", engine.IntValue(1)) // reads the record
	}))
	err := f.db.ViewAs("wendy", func(tx *engine.Tx) error { _, err := tx.GetNode(c); return err })
	denied(t, "wendy GetNode", err, "wendy", engine.PermissionRead)

	// dan may delete a node with edges (which reads its adjacency and deletes
	// the edges) but not read or write.
	must(t, f.db.UpdateAs("dan", func(tx *engine.Tx) error { return tx.DeleteNode(f.a) }))
	err = f.db.UpdateAs("dan", func(tx *engine.Tx) error { _, err := tx.CreateNode("D", nil); return err })
	denied(t, "dan CreateNode", err, "dan", engine.PermissionWrite)
	must(t, f.db.ViewAs("alice", func(tx *engine.Tx) error {
		if tx.EdgeCount() != 0 || tx.NodeCount() != 2 {
			t.Errorf("after dan's delete: %d nodes, %d edges", tx.NodeCount(), tx.EdgeCount())
		}
		return nil
	}))
}

func TestRevocationTakesEffectNextTransaction(t *testing.T) {
	f := newFixture(t)
	tx, err := f.db.BeginReadTransactionAs("charlie")
	must(t, err)
	defer tx.Rollback()
	if _, err := tx.GetNode(f.a); err != nil {
		t.Fatal(err)
	}
	must(t, f.acl.RevokeRole("charlie", "readonly"))
	if _, err := tx.GetNode(f.b); err != nil {
		t.Fatalf("running transaction lost its granted Read: %v", err)
	}
	err = f.db.ViewAs("charlie", func(tx *engine.Tx) error { _, err := tx.GetNode(f.a); return err })
	denied(t, "charlie after revoke", err, "charlie", engine.PermissionRead)
}

// Without an AccessChecker nothing is checked (the engine's behaviour
// before access control existed).
func TestNoAccessControlAllowsAll(t *testing.T) {
	f := newFixture(t)
	f.db.SetAccessControl(nil)
	if f.db.AccessControl() != nil {
		t.Fatal("AccessControl() not nil after removal")
	}
	must(t, f.db.Update(func(tx *engine.Tx) error { return tx.DeleteNode(f.a) }))
	must(t, f.db.CreatePropertyIndex("name"))
	must(t, f.db.AsUser("nobody").Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("N", nil); return err }))
	must(t, f.db.Authorize("nobody", engine.PermissionBackup))
	if _, err := f.db.GetNode(f.b); err != nil {
		t.Fatal(err)
	}
}

// A custom checker's own error is kept as the reason.
func TestCustomChecker(t *testing.T) {
	db, err := engine.Open(filepath.Join(t.TempDir(), "g.db"))
	must(t, err)
	defer db.Close()
	reason := errors.New("outside business hours")
	db.SetAccessControl(checkerFunc(func(user string, p engine.Permission) error {
		if p == engine.PermissionWrite {
			return reason
		}
		return nil
	}))
	err = db.UpdateAs("eve", func(tx *engine.Tx) error { _, err := tx.CreateNode("N", nil); return err })
	denied(t, "eve CreateNode", err, "eve", engine.PermissionWrite)
	if !errors.Is(err, reason) || !strings.Contains(err.Error(), reason.Error()) || !strings.Contains(err.Error(), engine.OpNodeCreate) {
		t.Fatalf("err = %v, want the reason and the operation", err)
	}
}

type checkerFunc func(string, engine.Permission) error

func (f checkerFunc) Check(u string, p engine.Permission) error { return f(u, p) }
