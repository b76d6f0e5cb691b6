package commands_test

import (
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/encryption"
)

// Issue 7 item 14: a policy stored in the database binds the tools, which
// act as --user or $SOMBRA_USER (real processes: the built binaries).
func TestToolsActAsUserUnderStoredPolicy(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "g.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
		t.Fatal(err)
	}
	err = db.SetAccessPolicy(&engine.AccessPolicy{
		Roles: map[string][]engine.Permission{
			"admin":    engine.AllPermissions(),
			"readonly": {engine.PermissionRead},
		},
		Users: map[string][]string{"alice": {"admin"}, "bob": {"readonly"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	sh := newShell(t, bin, dir, "DB=g.db", "SOMBRA_USER=")
	for _, c := range []struct {
		script string
		code   int
		want   string
	}{
		{`sombra-checkpoint --db "$DB" --mode truncate`, 1, `user "" lacks configure permission`},
		{`sombra-checkpoint --db "$DB" --mode truncate --user bob`, 1, `user "bob" lacks configure permission`},
		{`sombra-checkpoint --db "$DB" --mode truncate --user alice`, 0, ""},
		{`SOMBRA_USER=alice sombra-checkpoint --db "$DB" --mode truncate`, 0, ""},
		{`sombra-backup --type full --db "$DB" --output b/full --user bob`, 1, `user "bob" lacks backup permission`},
		{`sombra-backup --type full --db "$DB" --output b/full --user alice`, 0, ""},
		{`sombra-checkpoint --db "$DB" --mode passive --json`, 1, `"kind":"permission_denied"`},
	} {
		out, errOut, code := sh.run(c.script)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%s\nexit %d (want %d)\nstdout: %s\nstderr: %s (want %q)", c.script, code, c.code, out, errOut, c.want)
		}
	}
}

// Issue 7 item 16 through the tools: sombra-backup backs up an encrypted
// database sealed; verify and restore need SOMBRA_ENCRYPTION_KEY.
func TestToolsSealedBackup(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	key := strings.Repeat("ab", 32)
	sh := newShell(t, bin, dir, "SOMBRA_ENCRYPTION_KEY="+key, "SOMBRA_USER=")
	c, err := encryption.NewEncryptionConfig().WithKey(mustHex(t, key))
	if err != nil {
		t.Fatal(err)
	}
	db, err := engine.OpenWithConfig(filepath.Join(dir, "enc.db"), engine.Config{Encryption: c})
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	sh.ok(`sombra-backup --type full --db enc.db --output b/full`)
	sh.ok(`sombra-backup verify b/full.backup`)
	out, errOut, code := sh.run(`SOMBRA_ENCRYPTION_KEY= sombra-backup verify b/full.backup`)
	if code == 0 || !strings.Contains(errOut, "key is needed") {
		t.Errorf("verify without the key: exit %d\n%s%s", code, out, errOut)
	}
	sh.ok(`sombra-backup restore --dir b --name full --db r.db`)
	if out := sh.ok(`sombra-info --db r.db --json | jq -r .node_count`); strings.TrimSpace(out) != "50" {
		t.Errorf("restored nodes: %q", out)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
