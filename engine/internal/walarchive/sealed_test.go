package walarchive_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/encryption"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/internal/walarchive"
	"github.com/sombradb/sombra/engine/vfs"
)

const marker = "PLAINTEXT-MARKER-IN-A-SEALED-ARCHIVE"

func testCipher(t testing.TB, b byte) *encryption.EncryptionConfig {
	t.Helper()
	c, err := encryption.NewEncryptionConfig().WithKey(bytes.Repeat([]byte{b}, encryption.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sealedArchive archives 5 then 3 transactions of an encrypted database
// (two segments) and returns the archive (with the key), the file id and
// the segments.
func sealedArchive(t *testing.T) (*walarchive.Archive, uint64, []walarchive.Segment) {
	t.Helper()
	tmp := t.TempDir()
	c := testCipher(t, 7)
	db, err := engine.OpenWithConfig(filepath.Join(tmp, "enc.db"), engine.Config{Encryption: c, WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	put := func(n int) {
		for i := 0; i < n; i++ {
			if err := db.Update(func(tx *engine.Tx) error {
				_, err := tx.CreateNode("Secret", engine.Properties{"v": engine.StringValue(marker)})
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	p := handle.Pager(db)
	a := walarchive.New(vfs.OS, filepath.Join(tmp, "wal")).SealedWith(p.Cipher())
	put(5)
	if r, err := a.ArchiveWALFile(p.WALPath(), p.FileID(), p.PageSize()); err != nil || r.Txs != 5 {
		t.Fatalf("archive: %+v, %v", r, err)
	}
	put(3)
	if r, err := a.ArchiveWALFile(p.WALPath(), p.FileID(), p.PageSize()); err != nil || r.Txs != 3 || r.Skipped != 5 {
		t.Fatalf("archive again: %+v, %v", r, err)
	}
	segs, bad, err := a.Segments()
	if err != nil || len(segs) != 2 || len(bad) != 0 {
		t.Fatalf("segments %+v bad %+v: %v", segs, bad, err)
	}
	return a, p.FileID(), segs
}

// Segments of an encrypted database are sealed: no page content in the
// clear, and they read back (verify, walk, replay) with the key only.
func TestSealedSegments(t *testing.T) {
	a, fileID, segs := sealedArchive(t)
	for _, s := range segs {
		b, err := os.ReadFile(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(marker)) || bytes.Contains(b, []byte("Secret")) {
			t.Fatalf("%s holds plaintext", s.Path)
		}
		if !s.Sealed || binary.LittleEndian.Uint32(b[8:]) != 2 {
			t.Fatalf("%s: not a sealed segment: %+v", s.Path, s.Header)
		}
		if err := a.Verify(s); err != nil {
			t.Fatalf("verify %s: %v", s.Path, err)
		}
	}
	frames := 0
	if err := a.Replay(fileID, 0, 8, func(_ walarchive.TxHeader, _ common.PageID, img []byte) error {
		frames++
		return nil
	}, nil); err != nil || frames == 0 {
		t.Fatalf("replay: %d frames, %v", frames, err)
	}
	// Without the key: listed, but nothing is read or verified.
	noKey := walarchive.New(vfs.OS, a.Dir)
	noKey.Sealed = true
	if err := noKey.Verify(segs[0]); !errors.Is(err, walarchive.ErrKeyRequired) || !errors.Is(err, engine.ErrEncryption) {
		t.Fatalf("verify without the key: %v", err)
	}
	if err := noKey.Replay(fileID, 0, 8, func(walarchive.TxHeader, common.PageID, []byte) error { return nil }, nil); !errors.Is(err, walarchive.ErrKeyRequired) {
		t.Fatalf("replay without the key: %v", err)
	}
	// Another key: a key error, not corruption.
	other := walarchive.New(vfs.OS, a.Dir).SealedWith(testCipher(t, 8))
	if err := other.Verify(segs[0]); !errors.Is(err, walarchive.ErrWrongKey) || errors.Is(err, engine.ErrCorrupt) {
		t.Fatalf("verify with another key: %v", err)
	}
	// Read as the history of a plaintext database: refused as a mix.
	plain := walarchive.New(vfs.OS, a.Dir)
	if err := plain.Walk(fileID, 0, 0, func(walarchive.TxHeader) (bool, error) { return true, nil }); !errors.Is(err, walarchive.ErrMixed) {
		t.Fatalf("sealed segments read for a plaintext database: %v", err)
	}
}

// rewriteCRCs fixes every CRC of a segment after a deliberate edit, as an
// attacker without the key would: the CRCs alone then pass.
func rewriteCRCs(t *testing.T, b []byte) {
	t.Helper()
	tab := crc32.MakeTable(crc32.Castagnoli)
	le := binary.LittleEndian
	le.PutUint32(b[60:], crc32.Checksum(b[:60], tab))
	ps := int(le.Uint32(b[12:]))
	txs := int(le.Uint32(b[56:]))
	off := walarchive.HeaderSize
	for i := 0; i < txs; i++ {
		le.PutUint32(b[off+20:], crc32.Checksum(b[off:off+20], tab))
		n := int(le.Uint32(b[off+16:]))
		off += 24
		for j := 0; j < n; j++ {
			sum := crc32.Update(crc32.Checksum(b[off:off+8], tab), tab, b[off+16:off+16+ps])
			le.PutUint32(b[off+8:], sum)
			off += 16 + ps
		}
	}
	body := crc32.Checksum(b[walarchive.HeaderSize:off], tab)
	tr := len(b) - 32
	le.PutUint32(b[tr+16:], body)
	le.PutUint32(b[tr+24:], crc32.Checksum(b[tr:tr+24], tab))
}

// An edit that keeps every CRC right (a commit time moved, a page image
// swapped for another of the same page) passes a plaintext segment's
// checks but not a sealed one's authentication; a byte flipped anywhere
// fails too, and so does a segment cut short.
func TestSealedSegmentTampering(t *testing.T) {
	a, fileID, segs := sealedArchive(t)
	s := segs[0]
	orig, err := os.ReadFile(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	ps := s.PageSize
	cases := map[string]func(b []byte) []byte{
		// The second transaction's commit time, CRCs fixed.
		"commit time": func(b []byte) []byte {
			le := binary.LittleEndian
			off := walarchive.HeaderSize
			off += 24 + int(le.Uint32(b[off+16:]))*(16+ps)
			le.PutUint64(b[off+8:], le.Uint64(b[off+8:])+1)
			rewriteCRCs(t, b)
			return b
		},
		// The first two frames exchanged (both sealed images stay
		// valid seals of their own page), CRCs fixed.
		"frames swapped": func(b []byte) []byte {
			f0 := walarchive.HeaderSize + 24
			f1 := f0 + 16 + ps
			x := append([]byte(nil), b[f0:f0+16+ps]...)
			copy(b[f0:], b[f1:f1+16+ps])
			copy(b[f1:], x)
			rewriteCRCs(t, b)
			return b
		},
		"byte flipped": func(b []byte) []byte { b[walarchive.HeaderSize+24+16+100] ^= 0x40; return b },
		"digest flipped": func(b []byte) []byte {
			b[len(b)-32-10] ^= 1
			return b
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			b := edit(append([]byte(nil), orig...))
			if err := os.WriteFile(s.Path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.WriteFile(s.Path, orig, 0o644) })
			segs, bad, err := a.Segments()
			if err != nil || len(segs) != 2 || len(bad) != 0 {
				t.Fatalf("the edit should keep the header readable: %+v %+v %v", segs, bad, err)
			}
			var ce *common.CorruptionError
			if err := a.Verify(segs[0]); !errors.As(err, &ce) || ce.Path != s.Path {
				t.Fatalf("verify: %v, want corruption of %s", err, s.Path)
			}
			applied := 0
			err = a.Replay(fileID, 0, 8, func(walarchive.TxHeader, common.PageID, []byte) error { applied++; return nil }, nil)
			if !errors.Is(err, engine.ErrCorrupt) || applied != 0 {
				t.Fatalf("replay: %v after %d frames, want corruption before any", err, applied)
			}
		})
	}
	// Cut short: no longer a segment at all (listed as damaged).
	if err := os.WriteFile(s.Path, orig[:len(orig)-50], 0o644); err != nil {
		t.Fatal(err)
	}
	segs, bad, err := a.Segments()
	if err != nil || len(segs) != 1 || len(bad) != 1 || bad[0].Path != s.Path {
		t.Fatalf("truncated: segs %+v bad %+v: %v", segs, bad, err)
	}
	var gap *walarchive.GapError
	if err := a.Walk(fileID, 0, 0, func(walarchive.TxHeader) (bool, error) { return true, nil }); !errors.As(err, &gap) || len(gap.Bad) != 1 {
		t.Fatalf("walk over the truncated segment: %v", err)
	}
}

// The plaintext format is unchanged: version 1, no authenticator.
func TestPlainSegmentFormatUnchanged(t *testing.T) {
	tmp := t.TempDir()
	db, err := engine.OpenWithConfig(filepath.Join(tmp, "a.db"), engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	commit(t, db, 3)
	p := handle.Pager(db)
	a := walarchive.New(vfs.OS, filepath.Join(tmp, "wal")).SealedWith(p.Cipher())
	if a.Sealed {
		t.Fatal("a plaintext database's archive is sealed")
	}
	if _, err := a.ArchiveWALFile(p.WALPath(), p.FileID(), p.PageSize()); err != nil {
		t.Fatal(err)
	}
	segs, _, err := a.Segments()
	if err != nil || len(segs) != 1 {
		t.Fatal(segs, err)
	}
	b, err := os.ReadFile(segs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	frames := 0
	off := walarchive.HeaderSize
	for i := 0; i < segs[0].Txs; i++ {
		n := int(le.Uint32(b[off+16:]))
		frames += n
		off += 24 + n*(16+p.PageSize())
	}
	if le.Uint32(b[8:]) != 1 || len(b) != off+32 || string(b[off:off+8]) != "SOMBRAWE" {
		t.Fatalf("plaintext segment: version %d, %d bytes, body ends at %d", le.Uint32(b[8:]), len(b), off)
	}
	// A plaintext segment in the archive of an encrypted database is a mix.
	enc := walarchive.New(vfs.OS, a.Dir).SealedWith(testCipher(t, 1))
	if _, _, err := enc.CommitTime(p.FileID(), 2); !errors.Is(err, walarchive.ErrMixed) {
		t.Fatalf("plaintext segment read for an encrypted database: %v", err)
	}
}

// seedSegment is a sealed segment of two transactions under testCipher(7),
// kept in testdata so that every fuzzing process has the same seeds (a new
// one would differ: random nonces and file id). Regenerate it with
// SOMBRA_WRITE_SEED=1 go test -run FuzzSealedSegment.
const seedSegment = "testdata/sealed-seed.walseg"

func writeSeedSegment(f *testing.F, c walarchive.Cipher) {
	dir := f.TempDir()
	db, err := engine.OpenWithConfig(filepath.Join(dir, "seed.db"), engine.Config{Encryption: c.(engine.PageCipher), WALAutoCheckpoint: -1, PageSize: 1024})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < 2; i++ {
		if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("A", nil); return err }); err != nil {
			f.Fatal(err)
		}
	}
	p := handle.Pager(db)
	a := walarchive.New(vfs.OS, filepath.Join(dir, "wal")).SealedWith(p.Cipher())
	r, err := a.ArchiveWALFile(p.WALPath(), p.FileID(), p.PageSize())
	if err != nil || len(r.Segments) != 1 {
		f.Fatal(r, err)
	}
	b, err := os.ReadFile(filepath.Join(a.Dir, r.Segments[0]))
	if err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(seedSegment, b, 0o644); err != nil {
		f.Fatal(err)
	}
}

// FuzzSealedSegment feeds arbitrary bytes to every reader of a segment
// file (listing, verification with the key, replay, commit times): errors,
// never panics, and no altered sealed segment authenticates.
func FuzzSealedSegment(f *testing.F) {
	c := testCipher(f, 7)
	if os.Getenv("SOMBRA_WRITE_SEED") != "" {
		writeSeedSegment(f, c)
	}
	seed, err := os.ReadFile(seedSegment)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-40])
	h := append([]byte(nil), seed...)
	h[walarchive.HeaderSize+30] ^= 1
	f.Add(h)
	f.Add(make([]byte, walarchive.HeaderSize+walarchive.AuthSize+32))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := t.TempDir()
		path := filepath.Join(d, walarchive.SegmentName(1, 2))
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		a := walarchive.New(vfs.OS, d).SealedWith(c)
		segs, _, err := a.Segments()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range segs {
			// Every byte of a sealed segment is authenticated: only the
			// untouched seed verifies; anything else is an error.
			if err := a.Verify(s); err == nil && s.Sealed && !bytes.Equal(b, seed) {
				t.Fatalf("an altered sealed segment verifies (%d bytes)", len(b))
			}
			_ = a.Replay(s.FileID, 0, s.LastLSN, func(walarchive.TxHeader, common.PageID, []byte) error { return nil }, nil)
			_, _, _ = a.CommitTime(s.FileID, s.FirstLSN+1)
		}
	})
}

// A sealed segment records the digest of the one before it, so a segment
// of the same database and key from a history that diverged (a copy of the
// file written differently) put in the place of the right one is found:
// the segment after it does not follow it.
func TestSealedSegmentChain(t *testing.T) {
	tmp := t.TempDir()
	c := testCipher(t, 7)
	cfg := engine.Config{Encryption: c, WALAutoCheckpoint: -1}
	put := func(db *engine.DB, n int, label string) {
		for i := 0; i < n; i++ {
			if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode(label, nil); return err }); err != nil {
				t.Fatal(err)
			}
		}
	}
	archiveNow := func(db *engine.DB, dir string) walarchive.Result {
		p := handle.Pager(db)
		r, err := walarchive.New(vfs.OS, dir).SealedWith(p.Cipher()).ArchiveWALFile(p.WALPath(), p.FileID(), p.PageSize())
		if err != nil || len(r.Segments) != 1 {
			t.Fatalf("archive: %+v, %v", r, err)
		}
		return r
	}
	dirA, dirB := filepath.Join(tmp, "walA"), filepath.Join(tmp, "walB")
	pathA, pathB := filepath.Join(tmp, "a.db"), filepath.Join(tmp, "b.db")
	dbA, err := engine.OpenWithConfig(pathA, cfg)
	if err != nil {
		t.Fatal(err)
	}
	put(dbA, 5, "A")
	first := archiveNow(dbA, dirA) // LSNs 1-5
	fileID := handle.Pager(dbA).FileID()
	if err := dbA.Close(); err != nil {
		t.Fatal(err)
	}
	// b.db: the same file (id, key, LSN 5) from here on written otherwise,
	// archiving into its own directory that starts with the common segment.
	b, err := os.ReadFile(pathA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pathB, b, 0o644); err != nil {
		t.Fatal(err)
	}
	seg0, err := os.ReadFile(filepath.Join(dirA, first.Segments[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dirB, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirB, first.Segments[0]), seg0, 0o644); err != nil {
		t.Fatal(err)
	}
	dbB, err := engine.OpenWithConfig(pathB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer dbB.Close()
	put(dbB, 3, "B")
	forked := archiveNow(dbB, dirB) // LSNs 6-8, history B
	dbA, err = engine.OpenWithConfig(pathA, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer dbA.Close()
	put(dbA, 3, "A")
	mid := archiveNow(dbA, dirA) // LSNs 6-8, history A
	put(dbA, 2, "A")
	archiveNow(dbA, dirA) // LSNs 9-10
	if forked.Segments[0] != mid.Segments[0] {
		t.Fatalf("the histories' segments cover other LSNs: %v %v", forked.Segments, mid.Segments)
	}
	a := walarchive.New(vfs.OS, dirA).SealedWith(c)
	replay := func() error {
		return a.Replay(fileID, 0, 10, func(walarchive.TxHeader, common.PageID, []byte) error { return nil }, nil)
	}
	if err := replay(); err != nil {
		t.Fatalf("intact archive: %v", err)
	}
	// History B's 6-8 in the place of A's: it authenticates on its own and
	// follows 1-5, but 9-10 does not follow it.
	bseg, err := os.ReadFile(filepath.Join(dirB, forked.Segments[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirA, mid.Segments[0]), bseg, 0o644); err != nil {
		t.Fatal(err)
	}
	var ce *common.CorruptionError
	if err := replay(); !errors.As(err, &ce) || !strings.Contains(err.Error(), "does not follow") {
		t.Fatalf("replay over a segment of another history: %v", err)
	}
	segs, _, err := a.Segments()
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, s := range segs {
		if err := a.Verify(s); err != nil {
			failed++
			if !strings.Contains(err.Error(), "does not follow") {
				t.Errorf("verify %s: %v", s.Path, err)
			}
		}
	}
	if failed != 1 {
		t.Fatalf("verify: %d segments failed, want the one after the spliced one", failed)
	}
	// Replay that starts after the spliced segment checks it too (the
	// predecessor of the first replayed segment is authenticated).
	if err := a.Replay(fileID, 8, 10, func(walarchive.TxHeader, common.PageID, []byte) error { return nil }, nil); !errors.As(err, &ce) {
		t.Fatalf("replay from LSN 8: %v", err)
	}
}
