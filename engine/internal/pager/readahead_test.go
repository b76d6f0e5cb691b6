package pager

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

// readAheadFile creates a database whose pages 1..n are leaves holding
// their own page number at byte 100, all checkpointed into the file, and
// reopens it with a cold cache.
func readAheadFile(t *testing.T, n int) (*Pager, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ra.db")
	opts := Options{Create: true, BusyTimeout: 30 * time.Millisecond, CacheBytes: 1 << 20}
	p, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	commitLeaves(t, p, n)
	if _, err := p.Checkpoint(Truncate); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if p, err = Open(path, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, path
}

// commitLeaves commits n new leaves, each holding its page number at byte
// 100.
func commitLeaves(t *testing.T, p *Pager, n int) {
	t.Helper()
	tx, err := p.BeginWrite()
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		id, b, err := tx.Alloc(page.TypeLeaf)
		if err != nil {
			t.Fatal(err)
		}
		b[100] = byte(id)
	}
	if _, err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func readPageValue(t *testing.T, s *Snapshot, id common.PageID) byte {
	t.Helper()
	b, err := s.Page(id)
	if err != nil {
		t.Fatalf("page %d: %v", id, err)
	}
	return b[100]
}

// TestReadAheadOneReadPerWindow: a miss reads the page's aligned window of
// readAheadPages pages; its neighbours are then hits, with their own
// content, and the next window is a miss again.
func TestReadAheadOneReadPerWindow(t *testing.T) {
	p, _ := readAheadFile(t, 2*readAheadPages)
	s, err := p.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, m0 := p.CacheCounters()
	for id := common.PageID(1); id < readAheadPages; id++ {
		if got := readPageValue(t, s, id); got != byte(id) {
			t.Fatalf("page %d holds %d", id, got)
		}
	}
	if _, m := p.CacheCounters(); m-m0 != 1 {
		t.Fatalf("%d misses reading pages 1..%d, want 1 (one read for the window)", m-m0, readAheadPages-1)
	}
	if got := readPageValue(t, s, readAheadPages+2); got != readAheadPages+2 {
		t.Fatalf("page %d holds %d", readAheadPages+2, got)
	}
	if _, m := p.CacheCounters(); m-m0 != 2 {
		t.Fatalf("%d misses after reading into the next window, want 2", m-m0)
	}
}

// TestReadAheadChecksNeighboursOnFirstRead: a damaged page read ahead does
// not fail the read that brought it in, and fails (as a corruption, as
// without read-ahead) the first read that asks for it.
func TestReadAheadChecksNeighboursOnFirstRead(t *testing.T) {
	p, path := readAheadFile(t, readAheadPages)
	const bad = 3
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xEE}, int64(bad)*int64(p.PageSize())+200); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s, err := p.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := readPageValue(t, s, 1); got != 1 {
		t.Fatalf("page 1 holds %d", got)
	}
	var ce *common.CorruptionError
	for range 2 { // the second read goes to the file again: no bad image stays cached
		if _, err := s.Page(bad); !errors.As(err, &ce) || ce.Page != bad {
			t.Fatalf("damaged page %d read ahead: got %v, want a corruption error for it", bad, err)
		}
	}
	if got := readPageValue(t, s, bad+1); got != bad+1 {
		t.Fatalf("page %d holds %d", bad+1, got)
	}
}

// TestReadAheadNotDuringFence: while a fenced section (a checkpoint's copy)
// is open, a miss reads its page alone: the neighbours may be being
// overwritten.
func TestReadAheadNotDuringFence(t *testing.T) {
	p, _ := readAheadFile(t, readAheadPages)
	s, err := p.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p.shm.FenceBegin(false)
	readPageValue(t, s, 1)
	p.shm.FenceEnd()
	_, m0 := p.CacheCounters()
	readPageValue(t, s, 2)
	if _, m := p.CacheCounters(); m-m0 != 1 {
		t.Fatalf("page 2 was read ahead during a fenced section")
	}
}

// TestReadAheadTurnsOff: when speculative pages are rarely read, misses
// stop reading ahead but for one probe in readAheadProbe; once they are
// read again, it comes back.
func TestReadAheadTurnsOff(t *testing.T) {
	var r readAheadState
	if !r.enabled() {
		t.Fatal("off before any page was read ahead")
	}
	r.noteInserted(readAheadWarmup * 2)
	on := 0
	for range 10 * readAheadProbe {
		if r.enabled() {
			on++
		}
	}
	if on != 10 {
		t.Fatalf("read ahead on %d of %d misses with no page used, want 10 probes", on, 10*readAheadProbe)
	}
	r.used.Store(readAheadWarmup * 2 / readAheadMinUse)
	if !r.enabled() {
		t.Fatal("still off with 1 in readAheadMinUse pages used")
	}
}
