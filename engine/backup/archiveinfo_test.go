package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/walarchive"
)

// ListArchive and VerifyArchive on a plaintext archive: every segment
// listed and verified, a missing one reported as a gap, a damaged one as
// corruption naming it, no archive at all as not found.
func TestListAndVerifyArchive(t *testing.T) {
	f := newPITR(t)
	ctx := context.Background()
	archDir, segs, err := ListArchive(f.dir, Options{})
	if err != nil || len(segs) != 4 || archDir != filepath.Join(f.dir, "wal") {
		t.Fatalf("list: %s %+v %v", archDir, segs, err)
	}
	for _, s := range segs {
		if s.Sealed || s.Error != "" || s.Transactions != int(s.LastLSN-s.FirstLSN+1) {
			t.Fatalf("segment %+v", s)
		}
	}
	v, err := VerifyArchive(ctx, f.dir, Options{})
	if err != nil || !v.OK || v.Verified != 4 || len(v.Gaps) != 0 {
		t.Fatalf("verify: %+v, %v", v, err)
	}
	if err := os.Remove(filepath.Join(f.dir, "wal", walarchive.SegmentName(22, 41))); err != nil {
		t.Fatal(err)
	}
	v, err = VerifyArchive(ctx, f.dir, Options{})
	if err != nil || !v.OK || len(v.Gaps) != 1 {
		t.Fatalf("verify with a gap: %+v, %v", v, err)
	}
	damaged := filepath.Join(f.dir, "wal", walarchive.SegmentName(42, 61))
	b, err := os.ReadFile(damaged)
	if err != nil {
		t.Fatal(err)
	}
	b[walarchive.HeaderSize+24+16+300] ^= 0xff
	if err := os.WriteFile(damaged, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var ce *engine.CorruptionError
	if v, err := VerifyArchive(ctx, f.dir, Options{}); !errors.As(err, &ce) || ce.Path != damaged || v == nil || v.OK || v.Verified != 2 {
		t.Fatalf("verify with a damaged segment: %+v, %v", v, err)
	}
	if _, err := VerifyArchive(ctx, t.TempDir(), Options{}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("verify of no archive: %v", err)
	}
}
