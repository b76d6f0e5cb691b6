package engine_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/encryption"
)

// TestEncryptionCrashReopen copies the files of an encrypted database while
// it is open (as a crash would leave them, with the WAL not checkpointed)
// and opens the copy with the key; a plaintext database keeps page 0's
// reserved bytes zero.
func TestEncryptionCrashReopen(t *testing.T) {
	dir := t.TempDir()
	c, err := encryption.NewEncryptionConfig().WithKey(bytes.Repeat([]byte{0x42}, 32))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "enc.db")
	db, err := engine.OpenWithConfig(path, engine.Config{Encryption: c, WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id engine.NodeID
	if err := db.Update(func(tx *engine.Tx) error {
		id, err = tx.CreateNode("User", engine.Properties{"name": engine.StringValue("alice-in-plaintext")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	crash := filepath.Join(dir, "crash.db")
	for _, s := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + s)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("alice-in-plaintext")) {
			t.Fatalf("%s%s holds plaintext", path, s)
		}
		if err := os.WriteFile(crash+s, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := engine.OpenWithConfig(crash, engine.Config{}); !errors.Is(err, engine.ErrEncryption) {
		t.Fatalf("open without key: %v", err)
	}
	db2, err := engine.OpenWithConfig(crash, engine.Config{Encryption: c})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	n, err := db2.GetNode(id)
	if err != nil || !reflect.DeepEqual(n.Properties["name"], engine.StringValue("alice-in-plaintext")) {
		t.Fatalf("after crash: %v %v", n, err)
	}

	plain := filepath.Join(dir, "plain.db")
	pdb, err := engine.OpenWithConfig(plain, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pdb.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	pdb.Close()
	b, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	// 176..232 is the encryption area (zero in plaintext files), 232..344
	// the space statistics (read by no older build), the rest unused.
	if !bytes.Equal(b[176:232], make([]byte, 232-176)) || !bytes.Equal(b[344:4096], make([]byte, 4096-344)) {
		t.Fatal("a plaintext database uses page 0 bytes outside the header, the space statistics")
	}
}
