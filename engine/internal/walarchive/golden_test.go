package walarchive_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/wal"
	"github.com/sombradb/sombra/engine/internal/walarchive"
	"github.com/sombradb/sombra/engine/vfs"
)

// plainGolden is a plaintext segment written from a fixed log by the code
// before sealed segments existed; SOMBRA_WRITE_GOLDEN=1 rewrites it.
const plainGolden = "testdata/plain-golden.walseg"

// A plaintext database's segments are byte for byte what they were before
// sealed segments were added: the same fixed log gives the same file.
func TestPlainSegmentGolden(t *testing.T) {
	const ps = 1024
	txs := [][]common.PageID{{0, 3}, {5}, {3, 6, 7}}
	var frames []wal.Frame
	log := make([]byte, wal.HeaderSize)
	lsn := common.LSN(7)
	for ti, pages := range txs {
		for i, pg := range pages {
			fr := make([]byte, wal.FrameHeaderSize+ps)
			img := fr[wal.FrameHeaderSize:]
			for j := range img {
				img[j] = byte(int(pg)*31 + j*7 + ti)
			}
			page.SetLSN(img, lsn)
			page.Seal(img)
			log = append(log, fr...)
			frames = append(frames, wal.Frame{Page: pg, LSN: lsn, Commit: i == len(pages)-1, CommitTS: 1_700_000_000_000_000_000 + int64(lsn)*1000})
		}
		lsn++
	}
	dir := t.TempDir()
	a := walarchive.New(vfs.OS, dir)
	r, err := a.Append(0x1122334455667788, walarchive.Source{R: bytes.NewReader(log), Frames: frames, PageSize: ps, Path: "golden-wal"})
	if err != nil || len(r.Segments) != 1 || r.Txs != 3 {
		t.Fatalf("append: %+v, %v", r, err)
	}
	got, err := os.ReadFile(filepath.Join(dir, r.Segments[0]))
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("SOMBRA_WRITE_GOLDEN") != "" {
		if err := os.WriteFile(plainGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(plainGolden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("plaintext segment differs from %s (%d bytes, want %d)", plainGolden, len(got), len(want))
	}
}
