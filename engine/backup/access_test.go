package backup

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/security"
)

func TestBackupRespectsAccessControl(t *testing.T) {
	dir := t.TempDir()
	db, err := engine.Open(filepath.Join(dir, "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
		t.Fatal(err)
	}
	acl := security.NewAccessControl()
	if err := acl.AddRole("admin", []security.Permission{security.Read, security.Backup}); err != nil {
		t.Fatal(err)
	}
	if err := acl.AddRole("readonly", []security.Permission{security.Read}); err != nil {
		t.Fatal(err)
	}
	if err := acl.AssignRole("alice", "admin"); err != nil {
		t.Fatal(err)
	}
	if err := acl.AssignRole("charlie", "readonly"); err != nil {
		t.Fatal(err)
	}
	db.SetAccessControl(acl)
	bdir := filepath.Join(dir, "backups")
	denied := NewBackupManagerWithOptions(db, bdir, Options{User: "charlie"})
	if _, err := denied.CreateFullBackup("full_1"); !errors.Is(err, engine.ErrPermissionDenied) {
		t.Fatalf("charlie's backup: %v", err)
	}
	if list, _ := ListBackups(bdir); len(list) != 0 {
		t.Fatalf("a denied backup left %d backups", len(list))
	}
	ok := NewBackupManagerWithOptions(db, bdir, Options{User: "alice"})
	if _, err := ok.CreateFullBackup("full_1"); err != nil {
		t.Fatalf("alice's backup: %v", err)
	}
}
