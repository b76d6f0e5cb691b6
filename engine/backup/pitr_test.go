package backup

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/walarchive"
	"github.com/sombradb/sombra/engine/vfs"
)

// pitrFixture commits seq 1..80 one per transaction, with a full backup
// after 20, a WAL reset (archived by the hook) after 40, an incremental
// backup after 60 and an explicit archive run after 80. at[i] is a time
// between commit i and commit i+1.
type pitrFixture struct {
	tmp, dir string
	m        *BackupManager
	db       *engine.DB
	at       map[int]time.Time
	before   time.Time // before anything was committed
}

func newPITR(t *testing.T) *pitrFixture {
	t.Helper()
	tmp := t.TempDir()
	f := &pitrFixture{tmp: tmp, dir: filepath.Join(tmp, "backups"), at: map[int]time.Time{}}
	f.db = openDB(t, filepath.Join(tmp, "prod.db"), engine.Config{WALAutoCheckpoint: -1})
	t.Cleanup(func() { f.db.Close() })
	f.m = NewBackupManager(f.db, f.dir)
	f.before = time.Now()
	if err := f.m.EnableWALArchiving(); err != nil {
		t.Fatal(err)
	}
	commit := func(from, to int) {
		for i := from; i <= to; i++ {
			addNodes(t, f.db, i, 1)
			f.at[i] = time.Now()
		}
	}
	commit(1, 20)
	if _, err := f.m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	commit(21, 40)
	if _, err := f.db.CheckpointWithMode(engine.CheckpointRestart); err != nil {
		t.Fatal(err)
	}
	commit(41, 60)
	if _, err := f.m.CreateIncrementalBackup("inc"); err != nil {
		t.Fatal(err)
	}
	commit(61, 80)
	if _, err := f.m.ArchiveWAL(); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPointInTimeRestore(t *testing.T) {
	f := newPITR(t)
	segs, _, err := walarchive.New(vfs.OS, filepath.Join(f.dir, "wal")).Segments()
	if err != nil {
		t.Fatal(err)
	}
	// LSN 1 enabled archiving; seq i committed at LSN i+1. The full backup
	// archived 1-21, the restart hook 22-41, the incremental 42-61, the
	// explicit run 62-81.
	var ranges [][2]uint64
	for _, s := range segs {
		ranges = append(ranges, [2]uint64{uint64(s.FirstLSN), uint64(s.LastLSN)})
	}
	if !slices.Equal(ranges, [][2]uint64{{1, 21}, {22, 41}, {42, 61}, {62, 81}}) {
		t.Fatalf("segments %v", ranges)
	}
	for _, k := range []int{20, 30, 45, 60, 61, 79} {
		target := filepath.Join(f.tmp, "pitr.db")
		os.Remove(target)
		r, err := f.m.RestoreToTime(f.at[k], target)
		if err != nil {
			t.Fatalf("until after commit %d: %v", k, err)
		}
		if got := seqs(t, target); !slices.Equal(got, span(1, int64(k))) {
			t.Fatalf("until after commit %d: restored seqs %v", k, got)
		}
		wantBase := "full"
		if k >= 60 {
			wantBase = "inc"
		}
		if r.Backup != wantBase || r.Replay == nil || r.Replay.ToLSN != uint64(k+1) || r.Replay.NextCommit == nil {
			t.Fatalf("until after commit %d: %+v %+v", k, r, r.Replay)
		}
		if _, err := os.Stat(target + "-wal"); err == nil {
			t.Fatalf("restore left a WAL")
		}
	}
	// Beyond the last archived commit: everything, and the result says the
	// archive ended there.
	target := filepath.Join(f.tmp, "all.db")
	r, err := f.m.RestoreToTime(time.Now().Add(time.Hour), target)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, target); !slices.Equal(got, span(1, 80)) || !r.Replay.ArchiveEnd {
		t.Fatalf("restored %v, %+v", got, r.Replay)
	}
	if h1, h2 := hashOf(t, target), mustHash(t, f.db); h1 != h2 {
		t.Fatalf("restored hash %s, live %s", h1, h2)
	}

	// The guide's two steps: restore a backup, then replay (twice, forward).
	target = filepath.Join(f.tmp, "two_step.db")
	if _, err := f.m.RestoreFromBackup("full", target); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.ReplayWALUntil(target, f.at[50]); err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, target); !slices.Equal(got, span(1, 50)) {
		t.Fatalf("replayed to %v", got)
	}
	if _, err := f.m.ReplayWALUntil(target, f.at[70]); err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, target); !slices.Equal(got, span(1, 70)) {
		t.Fatalf("replayed to %v", got)
	}
	// Going backwards is refused, and leaves the target alone.
	if _, err := f.m.ReplayWALUntil(target, f.at[65]); !errors.Is(err, ErrTooEarly) {
		t.Fatalf("replay backwards: %v", err)
	}
	if got := seqs(t, target); len(got) != 70 {
		t.Fatal("refused replay changed the target")
	}
}

func mustHash(t *testing.T, db *engine.DB) string {
	t.Helper()
	h, err := db.LogicalHash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPointInTimeErrors(t *testing.T) {
	f := newPITR(t)
	target := filepath.Join(f.tmp, "x.db")
	_, err := f.m.RestoreToTime(f.before.Add(-time.Hour), target)
	if !errors.Is(err, ErrTooEarly) || !strings.Contains(err.Error(), "oldest full backup full") {
		t.Fatalf("too early: %v", err)
	}
	// Lose the segment the restart hook wrote (LSNs 22-41).
	os.Remove(filepath.Join(f.dir, "wal", walarchive.SegmentName(22, 41)))
	_, err = f.m.RestoreToTime(f.at[35], target)
	var gap *walarchive.GapError
	if !errors.Is(err, ErrArchiveGap) || !errors.As(err, &gap) || gap.After != 21 || gap.Next != 42 {
		t.Fatalf("gap: %v", err)
	}
	for _, want := range []string{"gap after LSN 21", "LSNs 22-41 are missing", "restorable up to"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("gap message %q lacks %q", err, want)
		}
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatal("failed point-in-time restore left a target")
	}
	// The incremental backup lies after the gap: later times still work.
	if _, err := f.m.RestoreToTime(f.at[75], target); err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, target); !slices.Equal(got, span(1, 75)) {
		t.Fatalf("restored %v", got)
	}
}

func TestInterruptedReplayRefusesToOpen(t *testing.T) {
	f := newPITR(t)
	target := filepath.Join(f.tmp, "r.db")
	if _, err := f.m.RestoreFromBackup("full", target); err != nil {
		t.Fatal(err)
	}
	// Fail the replay's writes after the marker went in.
	ffs := vfs.NewFaultFS(vfs.OS)
	ffs.SetRule(vfs.NthOp(vfs.OpWrite, "r.db", 3, true, vfs.Fault{Err: vfs.ENOSPC}))
	m := NewBackupManagerWithOptions(f.db, f.dir, Options{FS: ffs})
	if _, err := m.ReplayWALUntil(target, f.at[50]); err == nil {
		t.Fatal("replay succeeded on a full disk")
	}
	if _, err := engine.OpenWithConfig(target, engine.Config{ReadOnly: true}); !errors.Is(err, engine.ErrCorrupt) {
		t.Fatalf("half-replayed target opened: %v", err)
	}
	if _, err := f.m.ReplayWALUntil(target, f.at[50]); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("replay into a half-replayed target: %v", err)
	}
}

func TestWALArchiveTimelineDivergence(t *testing.T) {
	f := newPITR(t)
	// Restore to an earlier point and write to it as the application
	// would: its new LSN 31 differs from the archived LSN 31.
	target := filepath.Join(f.tmp, "fork.db")
	if _, err := f.m.RestoreToTime(f.at[30], target); err != nil {
		t.Fatal(err)
	}
	fork := openDB(t, target, engine.Config{WALAutoCheckpoint: -1})
	defer fork.Close()
	addNodes(t, fork, 1000, 3)
	_, err := NewBackupManager(fork, f.dir).ArchiveWAL()
	if !errors.Is(err, ErrTimeline) {
		t.Fatalf("archiving a forked history: %v", err)
	}
	// An incremental of the fork on the old chain is refused while it is
	// behind the chain...
	if _, err := NewBackupManager(fork, f.dir).CreateIncrementalBackup("fork_inc"); !errors.Is(err, ErrNoBase) {
		t.Fatalf("incremental of a fork: %v", err)
	}
	// ...and once it has passed the chain's end LSN with other commits.
	addNodes(t, fork, 2000, 40)
	if _, err := NewBackupManager(fork, f.dir).CreateIncrementalBackup("fork_inc"); !errors.Is(err, ErrTimeline) {
		t.Fatalf("incremental of a fork past the chain: %v", err)
	}
	// The copy does not archive into the original's archive on a WAL reset
	// (its catalog names the original's path).
	arch := walarchive.New(vfs.OS, filepath.Join(f.dir, "wal"))
	before, _, _ := arch.Segments()
	if _, err := fork.CheckpointWithMode(engine.CheckpointRestart); err != nil {
		t.Fatal(err)
	}
	after, _, _ := arch.Segments()
	if len(after) != len(before) {
		t.Fatalf("a copy archived into the original's archive: %d -> %d segments", len(before), len(after))
	}
	if d, _ := fork.WALArchiveDir(); d != "" {
		t.Fatalf("copy reports archiving into %s", d)
	}
}
