package walarchive_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/internal/walarchive"
	"github.com/sombradb/sombra/engine/vfs"
)

func commit(t *testing.T, db *engine.DB, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("A", nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
}

func TestArchiveWALFile(t *testing.T) {
	tmp := t.TempDir()
	db, err := engine.OpenWithConfig(filepath.Join(tmp, "a.db"), engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := handle.Pager(db)
	a := walarchive.New(vfs.OS, filepath.Join(tmp, "wal"))
	commit(t, db, 5)
	r, err := a.ArchiveWALFile(p.WALPath(), p.FileID(), p.PageSize())
	if err != nil || r.Txs != 5 || r.FirstLSN != 1 || r.LastLSN != 5 {
		t.Fatalf("first run: %+v, %v", r, err)
	}
	// Idempotent: nothing new, nothing written.
	r, err = a.ArchiveWALFile(p.WALPath(), p.FileID(), p.PageSize())
	if err != nil || r.Txs != 0 || r.Skipped != 5 || len(r.Segments) != 0 {
		t.Fatalf("second run: %+v, %v", r, err)
	}
	commit(t, db, 3)
	r, err = a.ArchiveWALFile(p.WALPath(), p.FileID(), p.PageSize())
	if err != nil || r.Txs != 3 || r.FirstLSN != 6 {
		t.Fatalf("third run: %+v, %v", r, err)
	}
	segs, bad, err := a.Segments()
	if err != nil || len(segs) != 2 || len(bad) != 0 {
		t.Fatalf("segments %+v bad %+v err %v", segs, bad, err)
	}
	for _, s := range segs {
		if err := a.Verify(s); err != nil {
			t.Fatal(err)
		}
	}
	// Walk sees LSNs 3..8 in order; Replay delivers their pages.
	var lsns []common.LSN
	if err := a.Walk(p.FileID(), 2, 0, func(h walarchive.TxHeader) (bool, error) {
		lsns = append(lsns, h.LSN)
		return true, nil
	}); err != nil || len(lsns) != 6 || lsns[0] != 3 || lsns[5] != 8 {
		t.Fatalf("walk %v, %v", lsns, err)
	}
	frames := 0
	if err := a.Replay(p.FileID(), 2, 7, func(h walarchive.TxHeader, pg common.PageID, img []byte) error {
		frames++
		return nil
	}, nil); err != nil || frames == 0 {
		t.Fatalf("replay: %d frames, %v", frames, err)
	}
	// Another database's log for the same LSNs is refused.
	other, _ := engine.OpenWithConfig(filepath.Join(tmp, "b.db"), engine.Config{WALAutoCheckpoint: -1})
	defer other.Close()
	commit(t, other, 2)
	op := handle.Pager(other)
	if _, err := a.ArchiveWALFile(op.WALPath(), op.FileID(), op.PageSize()); !errors.Is(err, walarchive.ErrForeign) {
		t.Fatalf("foreign: %v", err)
	}
	// Damage inside a segment is found and named.
	f, _ := os.OpenFile(segs[0].Path, os.O_RDWR, 0)
	f.WriteAt([]byte{0xff, 0xee}, walarchive.HeaderSize+24+16+500)
	f.Close()
	var ce *common.CorruptionError
	if err := a.Verify(segs[0]); !errors.As(err, &ce) || ce.Path != segs[0].Path {
		t.Fatalf("verify damaged: %v", err)
	}
	// A missing segment is a gap, reported with the last reachable LSN.
	os.Remove(segs[0].Path)
	var gap *walarchive.GapError
	if err := a.Walk(p.FileID(), 0, 0, func(walarchive.TxHeader) (bool, error) { return true, nil }); !errors.As(err, &gap) || gap.After != 0 || gap.Next != 6 {
		t.Fatalf("gap: %v", err)
	}
}

func FuzzDecodeSegmentHeader(f *testing.F) {
	f.Add(make([]byte, walarchive.HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		walarchive.DecodeHeader(b) // must not panic
	})
}
