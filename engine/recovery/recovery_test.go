package recovery

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/internal/wal"
)

const pageSize = 4096

// crashCopy commits n transactions (one node each) plus, when torn is
// set, one more, into a database that never checkpoints, and copies the
// database file and its WAL while the connection is still open: the copy
// is what a crash would leave. It returns the copy's path and the WAL's
// committed frame count after the n transactions.
func crashCopy(t *testing.T, n int, extra bool) (string, int) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "live.db")
	db, err := engine.OpenWithConfig(src, engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for i := range n {
		if err := db.Update(func(tx *engine.Tx) error {
			_, err := tx.CreateNode("User", engine.Properties{"i": engine.IntValue(int64(i))})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := handle.Pager(db).WAL()
	if err != nil {
		t.Fatal(err)
	}
	if extra {
		if err := db.Update(func(tx *engine.Tx) error {
			_, err := tx.CreateNode("Ghost", nil)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(dir, "crashed.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(src + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst, st.Frames
}

func walFrames(t *testing.T, path string) int {
	t.Helper()
	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return int((st.Size() - wal.HeaderSize) / wal.FrameSize(pageSize))
}

func sums(t *testing.T, path string) [2][32]byte {
	t.Helper()
	var out [2][32]byte
	for i, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		out[i] = sha256.Sum256(b)
	}
	return out
}

// checkRecovered opens the recovered database with no WAL at all and
// checks that it holds exactly the n committed nodes.
func checkRecovered(t *testing.T, path string, n int) {
	t.Helper()
	st, err := os.Stat(path + "-wal")
	if err != nil || st.Size() != 0 {
		t.Fatalf("WAL after recovery: %v, %v (want 0 bytes)", st, err)
	}
	if err := os.Remove(path + "-wal"); err != nil { // the data must be in the database file
		t.Fatal(err)
	}
	db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	users, err := db.NodesByLabel("User")
	if err != nil {
		t.Fatal(err)
	}
	ghosts, _ := db.NodesByLabel("Ghost")
	if len(users) != n || len(ghosts) != 0 {
		t.Errorf("recovered %d User and %d Ghost nodes, want %d and 0", len(users), len(ghosts), n)
	}
}

func TestRecoverTornChecksum(t *testing.T) {
	const n = 5
	path, committed := crashCopy(t, n, true)
	// Tear the last frame (the commit frame of transaction n+1): damage its
	// page image so that its checksum fails.
	last := walFrames(t, path) - 1
	f, err := os.OpenFile(path+"-wal", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := wal.FrameOffset(pageSize, last) + wal.FrameHeaderSize + 100
	if _, err := f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, off); err != nil {
		t.Fatal(err)
	}
	f.Close()

	before := sums(t, path)
	r := New(path)
	insp, err := r.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	if sums(t, path) != before {
		t.Fatal("Inspect modified the files")
	}
	rep, err := r.Recover()
	if err != nil {
		t.Fatal(err)
	}
	for _, rp := range []*Report{insp, rep} {
		if rp.TransactionsRecovered != n || rp.TransactionsInWAL != n {
			t.Errorf("transactions recovered %d (in WAL %d), want %d", rp.TransactionsRecovered, rp.TransactionsInWAL, n)
		}
		if len(rp.CorruptedFrames) != 1 || rp.CorruptedFrames[0] != last || rp.PartialFrame {
			t.Errorf("corrupted frames %v (partial %v), want [%d]", rp.CorruptedFrames, rp.PartialFrame, last)
		}
		if rp.FramesApplied != committed || rp.CommittedFrames != committed {
			t.Errorf("frames applied %d of %d committed, want %d", rp.FramesApplied, rp.CommittedFrames, committed)
		}
		if !rp.TornTail || rp.UncommittedFrames != last-committed || rp.DiscardedBytes <= 0 {
			t.Errorf("torn tail %v, uncommitted %d (want %d), discarded %d", rp.TornTail, rp.UncommittedFrames, last-committed, rp.DiscardedBytes)
		}
		if rp.LastLSN == 0 {
			t.Error("no last LSN")
		}
	}
	if insp.Applied || !rep.Applied || rep.PagesWritten == 0 || rep.WALSizeAfter != 0 || insp.WALSizeAfter != insp.WALSizeBefore {
		t.Errorf("inspect %+v\nrecover %+v", insp, rep)
	}
	// Recovering again finds nothing to do.
	again, err := r.Recover()
	if err != nil {
		t.Fatal(err)
	}
	if again.TransactionsRecovered != 0 || again.FramesApplied != 0 || len(again.CorruptedFrames) != 0 || again.TornTail {
		t.Errorf("second recovery: %+v", again)
	}
	checkRecovered(t, path, n)
}

func TestRecoverPartialFrame(t *testing.T) {
	const n = 3
	path, committed := crashCopy(t, n, true)
	frames := walFrames(t, path)
	// The crash cut the last frame short: keep half of it.
	size := wal.FrameOffset(pageSize, frames-1) + wal.FrameSize(pageSize)/2
	if err := os.Truncate(path+"-wal", size); err != nil {
		t.Fatal(err)
	}
	rep, err := New(path).Recover()
	if err != nil {
		t.Fatal(err)
	}
	if rep.TransactionsRecovered != n || len(rep.CorruptedFrames) != 1 || rep.CorruptedFrames[0] != frames-1 || !rep.PartialFrame {
		t.Errorf("report %+v, want %d transactions and partial frame %d", rep, n, frames-1)
	}
	if rep.FramesApplied != committed || rep.UncommittedFrames != frames-1-committed {
		t.Errorf("applied %d uncommitted %d", rep.FramesApplied, rep.UncommittedFrames)
	}
	checkRecovered(t, path, n)
}

func TestRecoverCleanCrash(t *testing.T) {
	const n = 4
	path, committed := crashCopy(t, n, false)
	rep, err := New(path).Recover()
	if err != nil {
		t.Fatal(err)
	}
	if rep.TransactionsRecovered != n || rep.FramesApplied != committed || len(rep.CorruptedFrames) != 0 || rep.TornTail || rep.DiscardedBytes != 0 {
		t.Errorf("report %+v", rep)
	}
	checkRecovered(t, path, n)
}

func TestRecoverAfterCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	db, err := engine.OpenWithConfig(path, engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("User", nil); return err })
	}
	if _, err := db.CheckpointWithMode(engine.CheckpointFull); err != nil { // copied, WAL kept
		t.Fatal(err)
	}
	db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("User", nil); return err })
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := New(path).Inspect()
	if err != nil {
		t.Fatal(err)
	}
	// Close ran a passive checkpoint: everything is in the database file
	// (the WAL restarted after the full checkpoint, so it holds the third
	// transaction only, followed by stale frames of the previous log).
	if rep.TransactionsRecovered != 0 || rep.FramesApplied != 0 || rep.TransactionsInWAL != 1 || rep.TornTail || rep.LastLSN < 3 {
		t.Errorf("report %+v", rep)
	}
}

func TestRecoverBusyAndMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode("User", nil); return err })
	before := sums(t, path)
	if _, err := New(path).Recover(); !errors.Is(err, engine.ErrBusy) {
		t.Fatalf("recover while open elsewhere: %v, want ErrBusy", err)
	}
	if sums(t, path) != before {
		t.Error("a busy Recover modified the files")
	}
	if _, err := New(path).Inspect(); err != nil { // read-only: fine
		t.Fatalf("inspect while open: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "missing.db")
	if _, err := New(missing).Recover(); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Error("Recover created a database")
	}
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, bytes.Repeat([]byte("x"), 8192), 0o644)
	if _, err := New(junk).Inspect(); !errors.Is(err, engine.ErrNotADatabase) && !errors.Is(err, engine.ErrCorrupt) {
		t.Errorf("junk: %v", err)
	}
}
