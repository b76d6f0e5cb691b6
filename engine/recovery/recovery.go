// Package recovery is the guide's manual WAL recovery (WALRecovery).
//
// Opening a database already recovers it: the WAL index is rebuilt from the
// log, every complete committed transaction becomes visible, and a torn
// transaction at the end (frames after the last commit frame, a frame whose
// checksum fails, a partial frame) is ignored. Recover does that
// explicitly and makes it permanent: with the database to itself it
// copies every committed frame into the database file and truncates the
// WAL (a TRUNCATE checkpoint), so the torn tail is gone for good, and it
// reports what it found. Inspect reports the same without changing
// anything.
package recovery

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/internal/maint"
	"github.com/sombradb/sombra/engine/internal/pager"
	"github.com/sombradb/sombra/engine/internal/wal"
)

// WALRecovery recovers the database at one path.
type WALRecovery struct {
	path string
	// Wait is how long Recover waits for other connections to close (it
	// needs the database to itself). Zero fails at once with an error
	// matching engine.ErrBusy.
	Wait time.Duration
	// Logger receives the engine's logs (default: discarded).
	Logger *slog.Logger
}

// New returns a WALRecovery for the database file at path.
func New(path string) *WALRecovery { return &WALRecovery{path: path} }

// Path is the database file.
func (r *WALRecovery) Path() string { return r.path }

// Report says what the WAL held and, for Recover, what was done with it.
type Report struct {
	Path string `json:"path"`
	// Applied is true for Recover (the frames are now in the database file
	// and the WAL is truncated), false for Inspect.
	Applied bool `json:"applied"`
	// TransactionsRecovered counts the committed transactions whose changes
	// were in the WAL only (not yet checkpointed): Recover wrote them into
	// the database file.
	TransactionsRecovered int `json:"transactions_recovered"`
	// TransactionsInWAL counts every committed transaction in the WAL,
	// including those a checkpoint had already copied.
	TransactionsInWAL int `json:"transactions_in_wal"`
	// FramesApplied counts the committed frames not yet in the database
	// file; Recover copied them (PagesWritten distinct pages).
	FramesApplied   int `json:"frames_applied"`
	CommittedFrames int `json:"committed_frames"`
	PagesWritten    int `json:"pages_written"`
	// LastLSN is the LSN of the last committed transaction: the state the
	// database is recovered to.
	LastLSN uint64 `json:"last_lsn"`
	// UncommittedFrames counts valid frames after the last commit frame: a
	// transaction that never committed. They are discarded.
	UncommittedFrames int `json:"uncommitted_frames"`
	// CorruptedFrames lists (0-based) frames after the last commit that are
	// damaged: a frame of this log whose checksum fails, or a partial frame
	// at the end of the file (a torn write). Recovery stops at the first.
	CorruptedFrames []int `json:"corrupted_frames"`
	// PartialFrame is true when the last entry of CorruptedFrames is a
	// partial frame rather than a checksum failure.
	PartialFrame bool `json:"partial_frame"`
	// TornTail is true when the WAL ends with a torn transaction
	// (uncommitted or damaged frames); DiscardedBytes is everything after
	// the last committed frame.
	TornTail       bool          `json:"torn_tail"`
	DiscardedBytes int64         `json:"discarded_bytes"`
	WALSizeBefore  int64         `json:"wal_size_before"`
	WALSizeAfter   int64         `json:"wal_size_after"`
	Duration       time.Duration `json:"-"`
}

// Recover applies the WAL to the database file and truncates it. It needs
// the database to itself (see Wait). A missing file fails with
// engine.ErrNotFound and is not created.
func (r *WALRecovery) Recover() (_ *Report, err error) {
	defer maint.Guard(r.path, &err)
	start := time.Now()
	if err := maint.CheckFile(nil, r.path); err != nil {
		return nil, err
	}
	// Probe for other connections read-only first: closing a writable
	// connection runs a passive checkpoint, and a Recover that cannot run
	// should leave the files alone.
	probe, err := engine.OpenWithConfig(r.path, r.config(true))
	if err != nil {
		return nil, fmt.Errorf("recover %s: %w", r.path, err)
	}
	err = handle.Pager(probe).ExclusiveLock(r.Wait)
	probe.Close()
	if err != nil {
		return nil, fmt.Errorf("recover %s: %w", r.path, err)
	}
	db, err := engine.OpenWithConfig(r.path, r.config(false))
	if err != nil {
		return nil, fmt.Errorf("recover %s: %w", r.path, err)
	}
	defer db.Close()
	p := handle.Pager(db)
	if err := p.ExclusiveLock(r.Wait); err != nil {
		return nil, fmt.Errorf("recover %s: %w", r.path, err)
	}
	rep, err := inspect(db, r.path)
	if err != nil {
		return nil, err
	}
	ck, err := db.CheckpointWithMode(engine.CheckpointTruncate)
	if err != nil {
		return nil, fmt.Errorf("recover %s: %w", r.path, err)
	}
	rep.Applied = true
	rep.PagesWritten = ck.PagesWritten
	rep.WALSizeAfter = ck.WALSizeAfter
	rep.Duration = time.Since(start)
	r.logger().Info("WAL recovery", "path", r.path, "transactions", rep.TransactionsRecovered, "frames", rep.FramesApplied,
		"pages", rep.PagesWritten, "corrupted_frames", len(rep.CorruptedFrames), "uncommitted_frames", rep.UncommittedFrames)
	return rep, nil
}

// Inspect reports what Recover would find, read-only: the database file and
// its WAL are not modified, and other connections may stay open.
func (r *WALRecovery) Inspect() (_ *Report, err error) {
	defer maint.Guard(r.path, &err)
	start := time.Now()
	if err := maint.CheckFile(nil, r.path); err != nil {
		return nil, err
	}
	db, err := engine.OpenWithConfig(r.path, r.config(true))
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", r.path, err)
	}
	defer db.Close()
	rep, err := inspect(db, r.path)
	if err != nil {
		return nil, err
	}
	rep.WALSizeAfter = rep.WALSizeBefore
	rep.Duration = time.Since(start)
	return rep, nil
}

func inspect(db *engine.DB, path string) (*Report, error) {
	p := handle.Pager(db)
	st, err := p.WAL()
	if err != nil {
		return nil, fmt.Errorf("read WAL of %s: %w", path, err)
	}
	rep := &Report{Path: path, TransactionsInWAL: st.Commits, CommittedFrames: st.Frames,
		FramesApplied: st.Frames - st.Backfilled, UncommittedFrames: st.Scan.Uncommitted,
		CorruptedFrames: append([]int{}, st.Scan.CorruptFrames...), DiscardedBytes: st.Scan.TailBytes,
		WALSizeBefore: st.Size}
	if i, ok := partialFrame(st, p.PageSize()); ok {
		rep.CorruptedFrames = append(rep.CorruptedFrames, i)
		rep.PartialFrame = true
	}
	rep.TornTail = rep.UncommittedFrames > 0 || len(rep.CorruptedFrames) > 0

	// The frames not yet in the database file: which transactions they
	// hold. A snapshot sees exactly the committed frames (none when all
	// are checkpointed).
	tx, err := db.BeginReadTransaction()
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	frames := handle.Snapshot(tx).Frames()
	for i, f := range frames {
		if f.Commit && i >= st.Backfilled {
			rep.TransactionsRecovered++
		}
	}
	if len(frames) == 0 {
		rep.FramesApplied = 0
	}
	rep.LastLSN = tx.LSN()
	return rep, nil
}

// partialFrame reports a partial frame right where the scan of the log
// stopped (after the committed and uncommitted frames, no damaged frame
// before it): a write torn by a crash.
func partialFrame(st pager.WALState, pageSize int) (int, bool) {
	if len(st.Scan.CorruptFrames) > 0 || st.Size < wal.HeaderSize || (st.Salt == 0 && st.Frames == 0) {
		return 0, false
	}
	i := st.Frames + st.Scan.Uncommitted
	rem := st.Size - wal.FrameOffset(pageSize, i)
	return i, rem > 0 && rem < wal.FrameSize(pageSize)
}

func (r *WALRecovery) config(readOnly bool) engine.Config {
	return engine.Config{ReadOnly: readOnly, BusyTimeout: max(r.Wait, time.Millisecond), WALAutoCheckpoint: -1, Logger: r.Logger}
}

func (r *WALRecovery) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.New(slog.DiscardHandler)
}
