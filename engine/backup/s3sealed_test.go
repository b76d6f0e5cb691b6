package backup

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/encryption"
)

// The sealed archive of an encrypted database goes through object storage
// as any other: spooled, shipped, staged back for restore --until and
// verify --wal, which need the key there too.
func TestS3SealedArchivePointInTime(t *testing.T) {
	f := newS3Fixture(t)
	f.db.Close()
	c, err := encryption.NewEncryptionConfig().WithKey(bytes.Repeat([]byte{9}, encryption.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	f.path = filepath.Join(f.tmp, "enc.db")
	f.db = openDB(t, f.path, engine.Config{WALAutoCheckpoint: -1, Encryption: c})
	t.Cleanup(func() { f.db.Close() })
	const dir = "s3://backups/enc"
	m := NewBackupManagerWithOptions(f.db, dir, f.opts)
	if err := m.EnableWALArchiving(); err != nil {
		t.Fatal(err)
	}
	addNodes(t, f.db, 1, 10)
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	var hash []string
	for k := 0; k < 3; k++ {
		addNodes(t, f.db, 11+10*k, 10)
		h, err := f.db.LogicalHash()
		if err != nil {
			t.Fatal(err)
		}
		at, hash = append(at, time.Now()), append(hash, h)
		if k == 0 {
			if _, err := f.db.CheckpointWithMode(engine.CheckpointRestart); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ar, err := m.ArchiveWAL(); err != nil || len(ar.Uploaded) == 0 {
		t.Fatalf("archive: %+v, %v", ar, err)
	}
	o := f.opts
	o.Encryption = c
	for k := range at {
		target := filepath.Join(f.tmp, "r", strings.Repeat("x", k+1)+".db")
		if _, err := RestoreToTime(dir, at[k], target, o); err != nil {
			t.Fatalf("restore --until t%d: %v", k, err)
		}
		db := openDB(t, target, engine.Config{ReadOnly: true, Encryption: c})
		h, err := db.LogicalHash()
		db.Close()
		if err != nil || h != hash[k] {
			t.Fatalf("restore --until t%d: hash %s (%v), want %s", k, h, err, hash[k])
		}
	}
	v, err := VerifyArchive(context.Background(), dir, o)
	if err != nil || !v.OK || v.Verified < 3 {
		t.Fatalf("verify the bucket's archive: %+v, %v", v, err)
	}
	for _, s := range v.Segments {
		if !s.Sealed || !strings.HasPrefix(s.Path, "s3://backups/enc/wal/") {
			t.Fatalf("segment %+v", s)
		}
	}
	if _, err := VerifyArchive(context.Background(), dir, f.opts); !errors.Is(err, ErrCannotVerify) || !errors.Is(err, ErrKeyRequired) {
		t.Fatalf("verify without the key: %v", err)
	}
	if s := f.staged(t); len(s) != 0 {
		t.Fatalf("local staging left %v", s)
	}
}
