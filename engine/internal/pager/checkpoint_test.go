package pager

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
)

// commitValue commits one transaction that stores v in page 1 (allocating
// it the first time): two frames, page 1 and page 0.
func commitValue(t *testing.T, p *Pager, v byte) {
	t.Helper()
	tx, err := p.BeginWrite()
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	if tx.Meta.PageCount < 2 {
		_, b, err = tx.Alloc(page.TypeLeaf)
	} else {
		b, err = tx.Mut(1)
	}
	if err != nil {
		t.Fatal(err)
	}
	b[100] = v
	if _, err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func readValue(t *testing.T, s *Snapshot) byte {
	t.Helper()
	b, err := s.Page(1)
	if err != nil {
		t.Fatal(err)
	}
	return b[100]
}

// TestCheckpointModes runs each checkpoint mode against a log of three
// commits (six frames), with no other reader or with another connection
// reading the snapshot of commit 1 or 3. A checkpoint never copies past
// the oldest read mark of a live reader; Full and stronger modes wait for
// such readers and give up with ErrBusy; Restart and Truncate also wait
// for every reader of the log before starting it over. Whatever happens,
// the reader keeps seeing its snapshot.
func TestCheckpointModes(t *testing.T) {
	const commits, framesPerCommit = 3, 2
	for _, tc := range []struct {
		name     string
		mode     CheckpointMode
		readerAt int // commit whose snapshot the other connection reads; 0 none
		busy     bool
		copied   int // frames in the database file afterwards
		blocked  bool
		restart  bool
	}{
		{"passive", Passive, 0, false, 6, false, false},
		{"passive behind a reader", Passive, 1, false, 2, true, false},
		{"passive beside a current reader", Passive, 3, false, 6, false, false},
		{"full behind a reader", Full, 1, true, 2, true, false},
		{"full beside a current reader", Full, 3, false, 6, false, false},
		{"restart", Restart, 0, false, 6, false, true},
		{"restart beside a current reader", Restart, 3, true, 6, true, false},
		{"truncate", Truncate, 0, false, 6, false, true},
		{"truncate behind a reader", Truncate, 1, true, 2, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			opts := Options{Create: true, BusyTimeout: 30 * time.Millisecond, CacheBytes: 1 << 20}
			w, err := Open(path, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			r, err := Open(path, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var snap *Snapshot
			for i := 1; i <= commits; i++ {
				commitValue(t, w, byte(i))
				if i == tc.readerAt {
					if snap, err = r.BeginRead(); err != nil {
						t.Fatal(err)
					}
				}
			}
			res, err := w.Checkpoint(tc.mode)
			if tc.busy != errors.Is(err, common.ErrBusy) || (!tc.busy && err != nil) {
				t.Fatalf("checkpoint: %v, want busy %v", err, tc.busy)
			}
			if res.WALFrames != commits*framesPerCommit || res.Checkpointed != tc.copied ||
				res.BlockedByReaders != tc.blocked || res.Restarted != tc.restart {
				t.Fatalf("result %+v, want %d frames checkpointed, blocked %v, restarted %v", res, tc.copied, tc.blocked, tc.restart)
			}
			if tc.mode == Truncate && tc.restart && res.WALSizeAfter != 0 {
				t.Errorf("truncate left the log at %d bytes", res.WALSizeAfter)
			}
			if snap != nil {
				if got := readValue(t, snap); got != byte(tc.readerAt) {
					t.Errorf("the reader of commit %d now reads %d", tc.readerAt, got)
				}
				snap.Close()
			}
			// The file holds exactly what was checkpointed: its header's
			// stamp is the LSN of the last commit copied.
			m, err := w.FileMeta()
			if err != nil {
				t.Fatal(err)
			}
			if want := common.LSN(tc.copied / framesPerCommit); m.CheckpointLSN != want && m.LastLSN != want {
				t.Errorf("file header at LSN %d/%d, want %d", m.CheckpointLSN, m.LastLSN, want)
			}
			// With the reader gone, the next writer finds either frames
			// still to copy, and appends, or every frame in the database
			// file and no reader of the log, and starts it over (as after
			// a restart): the new log holds only its two frames.
			commitValue(t, w, 9)
			st, err := w.WAL()
			if err != nil {
				t.Fatal(err)
			}
			want := commits*framesPerCommit + framesPerCommit
			if tc.copied == commits*framesPerCommit {
				want = framesPerCommit
			}
			if st.Frames != want {
				t.Errorf("after one more commit the log has %d frames, want %d", st.Frames, want)
			}
			s, err := r.BeginRead()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := readValue(t, s); got != 9 {
				t.Errorf("a new reader reads %d, want 9", got)
			}
		})
	}
}

// TestReadMarksBoundCheckpoints: with readers of several snapshots in
// several connections, a passive checkpoint copies up to the oldest read
// mark still held, and each reader that finishes lets it go further.
func TestReadMarksBoundCheckpoints(t *testing.T) {
	for _, tc := range []struct {
		name    string
		readers []int // commit whose snapshot each reader holds, in opening order
		closing []int // indexes into readers, in closing order
		want    []int // frames checkpointed before any close, then after each
	}{
		{"one reader", []int{2}, []int{0}, []int{4, 8}},
		{"oldest closes first", []int{1, 3}, []int{0, 1}, []int{2, 6, 8}},
		{"newest closes first", []int{1, 3}, []int{1, 0}, []int{2, 2, 8}},
		{"two readers of one snapshot", []int{2, 2}, []int{0, 1}, []int{4, 4, 8}},
		{"idle connection", []int{0}, []int{0}, []int{8, 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			opts := Options{Create: true, BusyTimeout: 30 * time.Millisecond, CacheBytes: 1 << 20}
			w, err := Open(path, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			conns := make([]*Pager, len(tc.readers))
			snaps := make([]*Snapshot, len(tc.readers))
			for i := range conns {
				if conns[i], err = Open(path, opts); err != nil {
					t.Fatal(err)
				}
				defer conns[i].Close()
			}
			for c := 1; c <= 4; c++ {
				commitValue(t, w, byte(c))
				for i, at := range tc.readers {
					if at == c {
						if snaps[i], err = conns[i].BeginRead(); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			check := func(step int) {
				t.Helper()
				res, err := w.Checkpoint(Passive)
				if err != nil {
					t.Fatal(err)
				}
				if res.Checkpointed != tc.want[step] {
					t.Fatalf("step %d: %d frames checkpointed, want %d", step, res.Checkpointed, tc.want[step])
				}
				for i, s := range snaps {
					if s != nil {
						if got := readValue(t, s); got != byte(tc.readers[i]) {
							t.Fatalf("step %d: reader of commit %d reads %d", step, tc.readers[i], got)
						}
					}
				}
			}
			check(0)
			for step, i := range tc.closing {
				if snaps[i] != nil {
					snaps[i].Close()
					snaps[i] = nil
				}
				check(step + 1)
			}
		})
	}
}

// TestCompleteCheckpointMovesFrameImages: a checkpoint that copies the
// whole log turns this connection's cached frame images into the file's
// (one entry per image, not two), and a snapshot begun afterwards reads
// them from the cache.
func TestCompleteCheckpointMovesFrameImages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	p, err := Open(path, Options{Create: true, BusyTimeout: 30 * time.Millisecond, CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 40
	commitLeaves(t, p, n)
	before := p.CacheStats().Pages
	res, err := p.Checkpoint(Passive)
	if err != nil || res.BlockedByReaders {
		t.Fatalf("checkpoint: %+v, %v", res, err)
	}
	if after := p.CacheStats().Pages; after > before {
		t.Fatalf("cache holds %d entries after the checkpoint, %d before: frame images were duplicated", after, before)
	}
	s, err := p.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Mark() != 0 {
		t.Fatalf("snapshot after a complete checkpoint reads %d frames, want the file alone", s.Mark())
	}
	_, m0 := p.CacheCounters()
	for id := common.PageID(1); id <= n; id++ {
		if got := readPageValue(t, s, id); got != byte(id) {
			t.Fatalf("page %d holds %d", id, got)
		}
	}
	if _, m := p.CacheCounters(); m != m0 {
		t.Fatalf("%d misses reading pages the checkpoint copied from cached frames", m-m0)
	}
}
