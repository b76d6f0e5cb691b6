package shm

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine/vfs"
)

// Two mappings of one file (as two processes have) add to the same
// counters, atomically; a reset zeroes them and stamps the time.
func TestCountersSharedAndAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db-shm")
	a, err := Open(vfs.OS, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(vfs.OS, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.AttachCounters() != 0 || b.Counting() {
		t.Fatal("a fresh file's counters are not initialised until the first connection resets them")
	}
	at := time.Unix(1700000000, 5)
	a.ResetCounters(at)
	if b.AttachCounters() != CountersVersion || !b.Counting() {
		t.Fatal("second mapping does not see the initialised region")
	}
	var wg sync.WaitGroup
	for _, s := range []*File{a, b} {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 1000 {
					s.Add(CtrCommits, 1)
					s.ObserveCommit(3 * time.Millisecond)
				}
			}()
		}
	}
	wg.Wait()
	snap, ok := b.ReadCounters()
	if !ok || snap.Counters[CtrCommits] != 8000 || !snap.Reset.Equal(at) {
		t.Fatalf("counters %v (reset %v), want 8000 commits", snap.Counters, snap.Reset)
	}
	if snap.Buckets[5] != 8000 || snap.Counters[CtrCommitLatencyNanos] != 8000*uint64(3*time.Millisecond) {
		t.Errorf("3ms commits must fall in the (2.5ms, 5ms] bucket: %v", snap.Buckets)
	}
	a.ResetCounters(at.Add(time.Second))
	if snap, _ := b.ReadCounters(); snap.Counters[CtrCommits] != 0 || snap.Buckets[5] != 0 {
		t.Errorf("after a reset: %v %v", snap.Counters, snap.Buckets)
	}
}

// A stand-in kept in one connection's memory (what a read-only connection
// that cannot use the file gets) never counts: its counters would be that
// connection's alone, not the database's. Nor does a nil File.
func TestCountersNeedTheSharedFile(t *testing.T) {
	private := &File{mem: make([]byte, mapSize), Path: "x.db-shm"}
	private.ResetCounters(time.Now())
	private.Add(CtrCommits, 1)
	if private.Shared() || private.Counting() {
		t.Error("a private stand-in counts as shared")
	}
	if _, ok := private.ReadCounters(); ok {
		t.Error("a private stand-in's counters read as the database's")
	}
	var none *File
	none.Add(CtrCommits, 1)
	none.ObserveCommit(time.Second)
	if none.Shared() || none.Counting() {
		t.Error("nil file counting")
	}
}

// A region laid out by another build (another version word) is neither
// written nor read.
func TestCountersOtherVersion(t *testing.T) {
	s, err := Open(vfs.OS, filepath.Join(t.TempDir(), "x.db-shm"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = s.WriteU64(offCounters, CountersVersion+1)
	_ = s.WriteU64(offCtr0, 42)
	if v := s.AttachCounters(); v != CountersVersion+1 || s.Counting() {
		t.Fatalf("attached to version %d", v)
	}
	s.Add(CtrCommits, 1)
	if s.ReadU64(offCtr0) != 42 {
		t.Error("wrote into a region of another layout")
	}
}
