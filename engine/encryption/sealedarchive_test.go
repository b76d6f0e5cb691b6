package encryption_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/walarchive"
	"github.com/sombradb/sombra/engine/vfs"
)

func logicalHash(t *testing.T, db *engine.DB) string {
	t.Helper()
	h, err := db.LogicalHash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func restoredHash(t *testing.T, path string, c engine.PageCipher) string {
	t.Helper()
	db, err := engine.OpenWithConfig(path, engine.Config{Encryption: c, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	return logicalHash(t, db)
}

// sealedPITR is an encrypted database archiving into bdir/wal with a full
// backup, then three phases of commits (t1 < t2 < t3): after phase 1 a WAL
// reset archives through the connection's hook, after phase 3 ArchiveWAL
// does. at[k] lies after phase k's last commit and before the next one;
// hash[k] is the logical hash there.
type sealedPITR struct {
	dir, bdir string
	c         engine.PageCipher
	db        *engine.DB
	at        [4]time.Time
	hash      [4]string
}

func newSealedPITR(t *testing.T) *sealedPITR {
	t.Helper()
	f := &sealedPITR{dir: t.TempDir(), c: cipherFor(t, key(3))}
	f.bdir = filepath.Join(f.dir, "backups")
	f.db = open(t, filepath.Join(f.dir, "enc.db"), f.c)
	t.Cleanup(func() { f.db.Close() })
	m := backup.NewBackupManager(f.db, f.bdir)
	if err := m.EnableWALArchiving(); err != nil {
		t.Fatalf("WAL archiving of an encrypted database: %v", err)
	}
	fill(t, f.db, 100)
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	f.at[0], f.hash[0] = time.Now(), logicalHash(t, f.db)
	for k := 1; k <= 3; k++ {
		time.Sleep(5 * time.Millisecond)
		fill(t, f.db, 60*k)
		f.at[k], f.hash[k] = time.Now(), logicalHash(t, f.db)
		if k == 1 {
			if _, err := f.db.CheckpointWithMode(engine.CheckpointRestart); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := m.ArchiveWAL(); err != nil {
		t.Fatalf("archive the WAL of an encrypted database: %v", err)
	}
	return f
}

func (f *sealedPITR) segments(t *testing.T) []walarchive.Segment {
	t.Helper()
	segs, bad, err := walarchive.New(vfs.OS, filepath.Join(f.bdir, "wal")).Segments()
	if err != nil || len(bad) != 0 {
		t.Fatalf("segments: bad %+v, %v", bad, err)
	}
	return segs
}

// Issue 7 item 16: WAL archiving and point-in-time restore of an encrypted
// database. The archive is sealed (no plaintext in it), restore --until
// replays it with the key to exactly the state of the requested time, and
// without the key or with another one nothing is restored.
func TestSealedArchivePointInTime(t *testing.T) {
	f := newSealedPITR(t)
	segs := f.segments(t)
	if len(segs) < 3 {
		t.Fatalf("want segments from the backup, the restart hook and ArchiveWAL; got %d", len(segs))
	}
	for _, s := range segs {
		if !s.Sealed {
			t.Fatalf("%s is not sealed", s.Path)
		}
		noPlaintextIn(t, s.Path)
	}
	o := backup.Options{Encryption: f.c}
	for k := 0; k <= 3; k++ {
		target := filepath.Join(f.dir, "r", "t"+string(rune('0'+k))+".db")
		r, err := backup.RestoreToTime(f.bdir, f.at[k], target, o)
		if err != nil {
			t.Fatalf("restore --until t%d: %v", k, err)
		}
		if got := restoredHash(t, target, f.c); got != f.hash[k] {
			t.Fatalf("restore --until t%d: logical hash %s, want %s (replayed %+v)", k, got, f.hash[k], r.Replay)
		}
		noPlaintext(t, target)
		if _, err := engine.OpenWithConfig(target, engine.Config{}); !errors.Is(err, engine.ErrEncryption) {
			t.Fatalf("restored t%d opens without the key: %v", k, err)
		}
	}
	// Without the key, or with another one: a key error, nothing written.
	for name, o := range map[string]backup.Options{"no key": {}, "wrong key": {Encryption: cipherFor(t, key(4))}} {
		target := filepath.Join(f.dir, "nokey", "x.db")
		_, err := backup.RestoreToTime(f.bdir, f.at[2], target, o)
		if !errors.Is(err, engine.ErrEncryption) || errors.Is(err, engine.ErrCorrupt) {
			t.Fatalf("%s: %v, want a key error", name, err)
		}
		t.Logf("%s: %v", name, err)
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is not one line: %q", name, err)
		}
		if ents, _ := os.ReadDir(filepath.Dir(target)); len(ents) != 0 {
			t.Fatalf("%s: left %d files in the target directory", name, len(ents))
		}
	}
}

// A sealed segment altered (one byte) or cut short fails the restore with
// a corruption error naming it, and an existing target is left as it was.
func TestSealedArchiveTamperedOrTruncated(t *testing.T) {
	f := newSealedPITR(t)
	segs := f.segments(t)
	last := segs[len(segs)-1]
	o := backup.Options{Encryption: f.c, Force: true}
	target := filepath.Join(f.dir, "target.db")
	if _, err := backup.RestoreToTime(f.bdir, f.at[0], target, o); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(last.Path)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"flipped":   flip(orig, walarchive.HeaderSize+24+16+200),
		"truncated": orig[:len(orig)-100],
	} {
		if err := os.WriteFile(last.Path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := backup.RestoreToTime(f.bdir, f.at[3], target, o)
		if !errors.Is(err, engine.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(last.Path)) {
			t.Fatalf("%s segment: %v, want corruption naming %s", name, err, last.Path)
		}
		t.Logf("%s: %v", name, err)
		if after, err := os.ReadFile(target); err != nil || !bytes.Equal(after, before) {
			t.Fatalf("%s segment: the target changed (%v)", name, err)
		}
	}
	// Restored, the archive serves again.
	if err := os.WriteFile(last.Path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.RestoreToTime(f.bdir, f.at[3], target, o); err != nil {
		t.Fatal(err)
	}
	if got := restoredHash(t, target, f.c); got != f.hash[3] {
		t.Fatalf("hash %s, want %s", got, f.hash[3])
	}
}

func flip(b []byte, off int) []byte {
	b = append([]byte(nil), b...)
	b[off] ^= 0x10
	return b
}

func noPlaintextIn(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte("Secret")) {
		t.Fatalf("%s holds plaintext", path)
	}
}

// setFileID gives the (closed) database at path another file id: page 0
// is plaintext and checksummed even in an encrypted file.
func setFileID(t *testing.T, path string, id uint64) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	p0 := make([]byte, 4096)
	if _, err := fh.ReadAt(p0, 0); err != nil {
		t.Fatal(err)
	}
	m, err := page.DecodeMeta(p0)
	if err != nil {
		t.Fatal(err)
	}
	m.FileID = id
	m.Encode(p0)
	page.Seal(p0)
	if _, err := fh.WriteAt(p0, 0); err != nil {
		t.Fatal(err)
	}
}

// A restore that would mix sealed and plaintext pieces is refused before
// anything is written: a plaintext archive for a sealed backup, a sealed
// archive for a plaintext backup, and a sealed incremental on a plaintext
// base.
func TestSealedPlainMixRefused(t *testing.T) {
	dir := t.TempDir()
	c := cipherFor(t, key(5))
	const fileID = 0x5eed5eed5eed5eed
	// Two databases with one file id, one encrypted, one not (WAL folded
	// first so the new id is the one every frame carries).
	mk := func(name string, c engine.PageCipher) string {
		path := filepath.Join(dir, name)
		db := open(t, path, c)
		fill(t, db, 50)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		setFileID(t, path, fileID)
		return path
	}
	encPath, plainPath := mk("enc.db", c), mk("plain.db", nil)
	// backupsOf(a) holds a full backup of a; archiveInto(b, dir) archives
	// commits of b into dir's archive.
	backupOf := func(path string, c engine.PageCipher, bdir string) {
		db := open(t, path, c)
		defer db.Close()
		if _, err := backup.NewBackupManager(db, bdir).CreateFullBackup("full"); err != nil {
			t.Fatal(err)
		}
	}
	archiveInto := func(path string, c engine.PageCipher, bdir string) {
		db := open(t, path, c)
		defer db.Close()
		m := backup.NewBackupManager(db, bdir)
		fill(t, db, 30)
		if _, err := m.ArchiveWAL(); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name          string
		backupPath    string
		backupCipher  engine.PageCipher
		archivePath   string
		archiveCipher engine.PageCipher
	}{
		{"plaintext archive for a sealed backup", encPath, c, plainPath, nil},
		{"sealed archive for a plaintext backup", plainPath, nil, encPath, c},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bdir := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			backupOf(tc.backupPath, tc.backupCipher, bdir)
			archiveInto(tc.archivePath, tc.archiveCipher, bdir)
			target := filepath.Join(dir, "out", "r.db")
			_, err := backup.RestoreToTime(bdir, time.Now(), target, backup.Options{Encryption: c})
			if !errors.Is(err, backup.ErrMixedArchive) {
				t.Fatalf("restore --until: %v, want ErrMixedArchive", err)
			}
			t.Log(err)
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("target written: %v", err)
			}
		})
	}
	// A sealed incremental on a plaintext base: the incremental's header
	// claims sealed pages (CRC fixed), as a backup of an encrypted file
	// with the same id and LSNs would.
	bdir := filepath.Join(dir, "chain")
	db := open(t, plainPath, nil)
	m := backup.NewBackupManager(db, bdir)
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	fill(t, db, 20)
	inc, err := m.CreateIncrementalBackup("inc")
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := os.ReadFile(inc.Path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := backup.DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	h.Sealed = true
	hb, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	copy(b, hb)
	if err := os.WriteFile(inc.Path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "out2", "r.db")
	if _, err := backup.Restore(bdir, "inc", target, backup.Options{Encryption: c}); !errors.Is(err, backup.ErrBrokenChain) || !strings.Contains(err.Error(), "sealed") {
		t.Fatalf("restore of a sealed incremental on a plaintext base: %v", err)
	}
	if _, err := backup.Verify(bdir, "inc", backup.Options{Encryption: c, TempDir: t.TempDir()}); !errors.Is(err, backup.ErrBrokenChain) {
		t.Fatalf("verify of a sealed incremental on a plaintext base: %v", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("target written: %v", err)
	}
}

// ReplayWALUntil into a restored encrypted file opens it with the key from
// the options and replays the sealed archive; without the key it fails
// before touching the file.
func TestSealedReplayWALUntil(t *testing.T) {
	f := newSealedPITR(t)
	target := filepath.Join(f.dir, "replayed.db")
	if _, err := backup.Restore(f.bdir, "full", target, backup.Options{Encryption: f.c}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]backup.Options{"no key": {}, "wrong key": {Encryption: cipherFor(t, key(4))}} {
		if _, err := backup.ReplayWALUntil(f.bdir, target, f.at[2], o); !errors.Is(err, engine.ErrEncryption) {
			t.Fatalf("%s: %v, want a key error", name, err)
		}
		if after, err := os.ReadFile(target); err != nil || !bytes.Equal(after, before) {
			t.Fatalf("%s: the target changed (%v)", name, err)
		}
	}
	r, err := backup.ReplayWALUntil(f.bdir, target, f.at[2], backup.Options{Encryption: f.c})
	if err != nil {
		t.Fatal(err)
	}
	if got := restoredHash(t, target, f.c); got != f.hash[2] {
		t.Fatalf("replayed to t2: hash %s, want %s (%+v)", got, f.hash[2], r)
	}
	noPlaintext(t, target)
}
