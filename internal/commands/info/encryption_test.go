package info_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/encryption"
	"github.com/sombradb/sombra/internal/cli/clitest"
	"github.com/sombradb/sombra/internal/commands/info"
)

// The tools open an encrypted database with the key operators export
// (cli.Main installs SOMBRA_ENCRYPTION_KEY as the engine's fallback key),
// and refuse it with one clear line without.
func TestEncryptedDatabase(t *testing.T) {
	key, err := encryption.NewEncryptionConfig().WithKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "enc.db")
	db, err := engine.OpenWithConfig(path, engine.Config{Encryption: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("Secret", nil); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, stderr, code := clitest.RunCommand(t, info.NewCommand, "--db", path)
	if code != 1 || !strings.Contains(stderr, "encryption key is required") {
		t.Fatalf("without a key: exit %d, %q", code, stderr)
	}
	engine.SetFallbackEncryption(key)
	defer engine.SetFallbackEncryption(nil)
	stdout, stderr, code := clitest.RunCommand(t, info.NewCommand, "--db", path, "--json")
	var doc struct {
		NodeCount int `json:"node_count"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &doc) != nil || doc.NodeCount != 1 {
		t.Fatalf("with the key: exit %d, %s %s", code, stdout, stderr)
	}
}
