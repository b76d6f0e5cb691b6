package encryption_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/engine/compact"
	"github.com/sombradb/sombra/engine/encryption"
	"github.com/sombradb/sombra/engine/repair"
)

const secret = "TOP-SECRET-PLAINTEXT-MARKER"

func key(b byte) []byte { return bytes.Repeat([]byte{b}, encryption.KeySize) }

func cipherFor(t *testing.T, k []byte) *encryption.EncryptionConfig {
	t.Helper()
	c, err := encryption.NewEncryptionConfig().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func open(t *testing.T, path string, c engine.PageCipher) *engine.DB {
	t.Helper()
	db, err := engine.OpenWithConfig(path, engine.Config{Encryption: c, WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// fill writes nodes with the marker (small and overflow-sized values) and
// deletes some, so leaves, branches, overflow and free-list pages exist.
func fill(t *testing.T, db *engine.DB, n int) []engine.NodeID {
	t.Helper()
	var ids []engine.NodeID
	big := strings.Repeat(secret, 400) // ~11 KB: overflow pages
	err := db.Update(func(tx *engine.Tx) error {
		for i := 0; i < n; i++ {
			v := secret
			if i%50 == 0 {
				v = big
			}
			id, err := tx.CreateNode("Secret", engine.Properties{"name": engine.StringValue(v)})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *engine.Tx) error {
		for i := 1; i < n; i += 7 {
			if err := tx.DeleteNode(ids[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func check(t *testing.T, db *engine.DB, ids []engine.NodeID) {
	t.Helper()
	big := strings.Repeat(secret, 400)
	for i, id := range ids {
		n, err := db.GetNode(id)
		if i%7 == 1 {
			if !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("deleted node %d: %v", id, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("node %d: %v", id, err)
		}
		want := secret
		if i%50 == 0 {
			want = big
		}
		if !reflect.DeepEqual(n.Properties["name"], engine.StringValue(want)) {
			t.Fatalf("node %d: wrong value", id)
		}
	}
}

func noPlaintext(t *testing.T, path string) {
	t.Helper()
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte("Secret")) {
			t.Fatalf("%s holds plaintext", f)
		}
	}
}

func snapshotFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range []string{path, path + "-wal"} {
		b, _ := os.ReadFile(f)
		out[f] = b
	}
	return out
}

func TestConfig(t *testing.T) {
	k := key(7)
	t.Setenv("SOMBRA_ENCRYPTION_KEY", hex.EncodeToString(k))
	c, err := encryption.NewEncryptionConfig().WithKeyFromEnv("SOMBRA_ENCRYPTION_KEY")
	if err != nil {
		t.Fatal(err)
	}
	if c, err = c.WithAlgorithm("AES-256-GCM"); err != nil || !c.HasKey() || c.Algorithm() != "AES-256-GCM" {
		t.Fatal(c, err)
	}
	t.Setenv("SOMBRA_ENCRYPTION_KEY", base64.StdEncoding.EncodeToString(k))
	c2, err := encryption.NewEncryptionConfig().WithKeyFromEnv("SOMBRA_ENCRYPTION_KEY")
	if err != nil {
		t.Fatal(err)
	}
	pt, err := c2.Open(3, c.Seal(3, []byte("hello")))
	if err != nil || string(pt) != "hello" {
		t.Fatal("hex and base64 forms of the key differ", err)
	}
	if _, err := c2.Open(4, c.Seal(3, []byte("hello"))); err == nil {
		t.Fatal("a page image opened under another page id")
	}
	for _, bad := range []string{"", "abc", hex.EncodeToString(k[:31]), base64.StdEncoding.EncodeToString(k[:16]), strings.Repeat("zz", 32)} {
		t.Setenv("SOMBRA_ENCRYPTION_KEY", bad)
		if _, err := encryption.NewEncryptionConfig().WithKeyFromEnv("SOMBRA_ENCRYPTION_KEY"); !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("key %q: %v", bad, err)
		}
	}
	os.Unsetenv("SOMBRA_ENCRYPTION_KEY")
	if _, err := encryption.NewEncryptionConfig().WithKeyFromEnv("SOMBRA_ENCRYPTION_KEY"); err == nil || !strings.Contains(err.Error(), "SOMBRA_ENCRYPTION_KEY") {
		t.Errorf("unset variable: %v", err)
	}
	if _, err := encryption.NewEncryptionConfig().WithKey(k[:16]); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("short key: %v", err)
	}
	if _, err := encryption.NewEncryptionConfig().WithAlgorithm("AES-128-CBC"); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("algorithm: %v", err)
	}
	// A config without a key is refused by the engine, not used.
	path := filepath.Join(t.TempDir(), "k.db")
	if _, err := engine.OpenWithConfig(path, engine.Config{Encryption: encryption.NewEncryptionConfig()}); !errors.Is(err, engine.ErrEncryption) {
		t.Errorf("no key: %v", err)
	}
}

func TestRoundTripFromEnv(t *testing.T) {
	t.Setenv("SOMBRA_ENCRYPTION_KEY", hex.EncodeToString(key(1)))
	c, err := encryption.NewEncryptionConfig().WithKeyFromEnv("SOMBRA_ENCRYPTION_KEY")
	if err != nil {
		t.Fatal(err)
	}
	if c, err = c.WithAlgorithm("AES-256-GCM"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "enc.db")
	db := open(t, path, c)
	ids := fill(t, db, 600)
	check(t, db, ids)
	noPlaintext(t, path) // all in the WAL
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopen without a checkpoint (WAL recovery path).
	db = open(t, path, c)
	check(t, db, ids)
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	noPlaintext(t, path)
	db.Close()
	db = open(t, path, c)
	check(t, db, ids)
	// Writes after the checkpoint reuse free pages.
	more := fill(t, db, 100)
	check(t, db, more)
	db.Close()
	noPlaintext(t, path)

	r := repair.NewDatabaseRepair(path)
	r.Encryption = c
	rep, err := r.VerifyIntegrity()
	if err != nil || !rep.IsHealthy() {
		t.Fatalf("integrity: %v %+v", err, rep)
	}
}

func TestWrongKeyNoKeyAndPlaintext(t *testing.T) {
	dir := t.TempDir()
	enc := filepath.Join(dir, "enc.db")
	db := open(t, enc, cipherFor(t, key(1)))
	fill(t, db, 50)
	db.Close()
	before := snapshotFiles(t, enc)
	for name, c := range map[string]engine.PageCipher{"no key": nil, "wrong key": cipherFor(t, key(2))} {
		_, err := engine.OpenWithConfig(enc, engine.Config{Encryption: c})
		if !errors.Is(err, engine.ErrEncryption) {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	if _, err := engine.OpenWithConfig(enc, engine.Config{ReadOnly: true}); !errors.Is(err, engine.ErrEncryption) {
		t.Fatalf("read-only without key: %v", err)
	}
	if !reflect.DeepEqual(before, snapshotFiles(t, enc)) {
		t.Fatal("a refused open changed the files")
	}

	plain := filepath.Join(dir, "plain.db")
	db = open(t, plain, nil)
	fill(t, db, 50)
	db.Close()
	before = snapshotFiles(t, plain)
	_, err := engine.OpenWithConfig(plain, engine.Config{Encryption: cipherFor(t, key(1))})
	if !errors.Is(err, engine.ErrEncryption) {
		t.Fatalf("key for a plaintext file: %v", err)
	}
	if !reflect.DeepEqual(before, snapshotFiles(t, plain)) {
		t.Fatal("a refused open changed the plaintext files")
	}
	// The plaintext file does hold the marker (the test would be vacuous
	// otherwise).
	b1, _ := os.ReadFile(plain + "-wal")
	b2, _ := os.ReadFile(plain)
	if !bytes.Contains(append(b1, b2...), []byte(secret)) {
		t.Fatal("plaintext marker not found in a plaintext database")
	}
}

func TestTamperedPage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "enc.db")
	c := cipherFor(t, key(3))
	db := open(t, path, c)
	ids := fill(t, db, 200)
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	db.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Flip one ciphertext byte of page 1 (a tree page).
	ps := int64(4096)
	var b [1]byte
	f.ReadAt(b[:], ps+100)
	b[0] ^= 0x40
	f.WriteAt(b[:], ps+100)
	f.Close()
	db = open(t, path, c)
	defer db.Close()
	var failed error
	for _, id := range ids {
		if _, err := db.GetNode(id); err != nil && !errors.Is(err, engine.ErrNotFound) {
			failed = err
			break
		}
	}
	if failed == nil {
		if _, err := db.LogicalHash(); err != nil {
			failed = err
		}
	}
	var ce *engine.CorruptionError
	if !errors.Is(failed, engine.ErrCorrupt) || !errors.As(failed, &ce) || ce.Page != 1 {
		t.Fatalf("tampered page: %v", failed)
	}
	t.Log(failed)
}

func TestCompactKeepsEncryption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "enc.db")
	c := cipherFor(t, key(4))
	db := open(t, path, c)
	ids := fill(t, db, 800)
	db.Close()
	if _, err := compact.Compact(path, compact.Options{}); !errors.Is(err, engine.ErrEncryption) {
		t.Fatalf("compact without key: %v", err)
	}
	rep, err := compact.Compact(path, compact.Options{Encryption: c})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PagesAfter >= rep.PagesBefore {
		t.Logf("compaction: %+v", rep)
	}
	noPlaintext(t, path)
	if _, err := engine.OpenWithConfig(path, engine.Config{}); !errors.Is(err, engine.ErrEncryption) {
		t.Fatalf("compacted file opens without key: %v", err)
	}
	db = open(t, path, c)
	check(t, db, ids)
	db.Close()
	r := repair.NewDatabaseRepair(path)
	r.Encryption = c
	if v, err := r.VerifyIntegrity(); err != nil || !v.IsHealthy() {
		t.Fatalf("integrity after compaction: %v %+v", err, v)
	}
}

// Issue 7 item 16: an encrypted database is backed up as sealed pages,
// full and incremental; the backups stay encrypted and verify and restore
// need the key.
func TestSealedBackup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "enc.db")
	c := cipherFor(t, key(5))
	db := open(t, path, c)
	defer db.Close()
	ids := fill(t, db, 800) // part in the WAL, part checkpointed
	bdir := filepath.Join(dir, "backups")
	m := backup.NewBackupManager(db, bdir)
	res, err := m.CreateFullBackup("full")
	if err != nil {
		t.Fatalf("backup of an encrypted database: %v", err)
	}
	b, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte("Secret")) {
		t.Fatal("the backup holds plaintext")
	}
	if h, err := backup.DecodeHeader(b); err != nil || !h.Sealed {
		t.Fatalf("header: %+v, %v", h, err)
	}
	// Without the key, or with another, nothing can be checked or restored.
	for _, o := range []backup.Options{{}, {Encryption: cipherFor(t, key(6))}} {
		if _, err := backup.Verify(bdir, "full", o); !errors.Is(err, engine.ErrEncryption) {
			t.Errorf("verify with key %v: %v, want ErrEncryption", o.Encryption != nil, err)
		}
		if _, err := backup.Restore(bdir, "full", filepath.Join(dir, "r0.db"), o); !errors.Is(err, engine.ErrEncryption) {
			t.Errorf("restore with key %v: %v, want ErrEncryption", o.Encryption != nil, err)
		}
	}
	o := backup.Options{Encryption: c}
	v, err := backup.Verify(bdir, "full", o)
	if err != nil || !v.HashChecked {
		t.Fatalf("verify with the key: %+v, %v", v, err)
	}
	target := filepath.Join(dir, "restored.db")
	if _, err := backup.Restore(bdir, "full", target, o); err != nil {
		t.Fatal(err)
	}
	noPlaintext(t, target)
	if _, err := engine.OpenWithConfig(target, engine.Config{}); !errors.Is(err, engine.ErrEncryption) {
		t.Fatalf("restored file opens without the key: %v", err)
	}
	r := open(t, target, c)
	check(t, r, ids)
	r.Close()
	// Incremental backups are sealed the same way: one after a checkpoint
	// (the pages come from the change log), one of pages still in the WAL.
	more := fill(t, db, 200)
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	incs := map[string]*backup.Result{}
	for i, name := range []string{"inc1", "inc2"} {
		if i == 1 {
			more = append(more, fill(t, db, 100)...)
		}
		r, err := m.CreateIncrementalBackup(name)
		if err != nil {
			t.Fatalf("incremental backup %s of an encrypted database: %v", name, err)
		}
		if r.Type != "incremental" || r.Pages == 0 || r.Pages >= r.PageCount {
			t.Fatalf("%s: %+v", name, r)
		}
		incs[name] = r
		b, err := os.ReadFile(r.Path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte("Secret")) {
			t.Fatalf("incremental %s holds plaintext", name)
		}
		if h, err := backup.DecodeHeader(b); err != nil || !h.Sealed {
			t.Fatalf("incremental %s header: %+v, %v", name, h, err)
		}
	}
	t.Logf("incrementals: inc1 %d pages via %s, inc2 %d pages via %s", incs["inc1"].Pages, incs["inc1"].ChangeSource, incs["inc2"].Pages, incs["inc2"].ChangeSource)
	if _, err := backup.Verify(bdir, "inc2", backup.Options{}); !errors.Is(err, engine.ErrEncryption) {
		t.Errorf("verify of a sealed incremental without the key: %v, want ErrEncryption", err)
	}
	if v, err := backup.Verify(bdir, "inc2", o); err != nil || !v.HashChecked {
		t.Fatalf("verify of the sealed chain: %+v, %v", v, err)
	}
	target = filepath.Join(dir, "restored-inc.db")
	if _, err := backup.Restore(bdir, "inc2", target, o); err != nil {
		t.Fatal(err)
	}
	noPlaintext(t, target)
	r = open(t, target, c)
	check(t, r, ids)
	check(t, r, more[:200])
	check(t, r, more[200:])
	r.Close()

	// A damaged sealed page is corruption, not a key problem.
	b[backup.HeaderSize+3*(16+4096)+100] ^= 1
	if err := os.WriteFile(res.Path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Verify(bdir, "full", o); !errors.Is(err, engine.ErrCorrupt) {
		t.Fatalf("damaged sealed page: %v", err)
	}
}

func TestSalvage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "enc.db")
	c := cipherFor(t, key(6))
	db := open(t, path, c)
	ids := fill(t, db, 300)
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r := repair.NewDatabaseRepair(path)
	if _, err := r.SalvageNodes(); !errors.Is(err, engine.ErrEncryption) {
		t.Fatalf("salvage without key: %v", err)
	}
	r.Encryption = cipherFor(t, key(9))
	if _, err := r.SalvageNodes(); !errors.Is(err, engine.ErrEncryption) {
		t.Fatalf("salvage with a wrong key: %v", err)
	}
	r.Encryption = c
	nodes, err := r.SalvageNodes()
	if err != nil {
		t.Fatal(err)
	}
	want := len(ids) - (len(ids)+5)/7
	if len(nodes) != want {
		t.Fatalf("salvaged %d nodes, want %d", len(nodes), want)
	}
	out := filepath.Join(dir, "salvaged.db")
	if _, err := r.SalvageTo(out); err != nil {
		t.Fatal(err)
	}
	noPlaintext(t, out)
	db = open(t, out, c)
	defer db.Close()
	n, err := db.GetNode(nodes[0].ID)
	if err != nil || !reflect.DeepEqual(n.Properties["name"], engine.StringValue(strings.Repeat(secret, 400))) {
		t.Fatalf("salvaged node: %v", err)
	}
}
