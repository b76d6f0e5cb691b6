package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine/internal/pager"
)

// CheckpointMode selects how hard a checkpoint tries.
type CheckpointMode int

// Checkpoint modes, as in SQLite.
const (
	// CheckpointPassive copies what it can without waiting.
	CheckpointPassive CheckpointMode = iota
	// CheckpointFull waits for the writer and older readers, then copies all.
	CheckpointFull
	// CheckpointRestart is full, then restarts the WAL from its beginning.
	CheckpointRestart
	// CheckpointTruncate is restart, and truncates the WAL file to zero bytes.
	CheckpointTruncate
)

// The pager's modes have the same values, so a mode converts as it is:
// each line fails to compile if they drift apart.
var (
	_ [CheckpointPassive - CheckpointMode(pager.Passive)]struct{}   = [0]struct{}{}
	_ [CheckpointFull - CheckpointMode(pager.Full)]struct{}         = [0]struct{}{}
	_ [CheckpointRestart - CheckpointMode(pager.Restart)]struct{}   = [0]struct{}{}
	_ [CheckpointTruncate - CheckpointMode(pager.Truncate)]struct{} = [0]struct{}{}
)

// String returns "passive", "full", "restart" or "truncate".
func (m CheckpointMode) String() string {
	if m < CheckpointPassive || m > CheckpointTruncate {
		return fmt.Sprintf("CheckpointMode(%d)", int(m))
	}
	return pager.CheckpointMode(m).String()
}

// ParseCheckpointMode parses "passive", "full", "restart" or "truncate".
func ParseCheckpointMode(s string) (CheckpointMode, error) {
	for _, m := range []CheckpointMode{CheckpointPassive, CheckpointFull, CheckpointRestart, CheckpointTruncate} {
		if strings.EqualFold(s, m.String()) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("checkpoint mode %q (want passive, full, restart or truncate): %w", s, ErrInvalid)
}

// CheckpointResult reports what a checkpoint did.
type CheckpointResult struct {
	Mode               string        `json:"mode"`
	WALFrames          int           `json:"wal_frames"`
	FramesCheckpointed int           `json:"frames_checkpointed"`
	PagesWritten       int           `json:"pages_written"`
	WALSizeBefore      int64         `json:"wal_size_before"`
	WALSizeAfter       int64         `json:"wal_size_after"`
	BlockedByReaders   bool          `json:"blocked_by_readers"`
	BlockedByWriter    bool          `json:"blocked_by_writer"`
	WALRestarted       bool          `json:"wal_restarted"`
	CheckpointLSN      uint64        `json:"checkpoint_lsn"`
	Duration           time.Duration `json:"-"`
}

// Checkpoint runs a passive checkpoint.
func (db *DB) Checkpoint() (CheckpointResult, error) { return db.CheckpointWithMode(CheckpointPassive) }

// CheckpointWithMode copies committed WAL frames into the database file.
// Passive never waits; full, restart and truncate wait up to
// Config.BusyTimeout for the writer and for readers and fail with ErrBusy
// (the result says which blocked them). Under access control it needs
// Configure for the connection's user (Config.User) and is audited as
// "checkpoint"; the checkpoints the engine runs itself (automatic, on
// close) are not checked.
func (db *DB) CheckpointWithMode(mode CheckpointMode) (CheckpointResult, error) {
	return db.checkpoint(context.Background(), db.cfg.User, mode)
}

// CheckpointContext is CheckpointWithMode whose waits for the writer and
// readers end when ctx is cancelled (within a few milliseconds), with an
// error matching ctx.Err(); frames already copied stay copied.
func (db *DB) CheckpointContext(ctx context.Context, mode CheckpointMode) (CheckpointResult, error) {
	return db.checkpoint(ctx, db.cfg.User, mode)
}

func (db *DB) checkpoint(ctx context.Context, user string, mode CheckpointMode) (res CheckpointResult, err error) {
	target := fmt.Sprintf("mode:%s", mode)
	st, err := db.secNow()
	if err != nil {
		return CheckpointResult{Mode: mode.String()}, fmt.Errorf("checkpoint (%s): %w", mode, err)
	}
	if st != nil && errors.Is(st.policyErr, ErrCorrupt) {
		// A checkpoint copies committed frames and changes no data (the
		// engine runs one unchecked after commits); repair needs it on a
		// file whose catalog, and so the stored policy, is damaged. Only
		// this connection's own checker applies then.
		db.log.Warn("stored access policy unreadable; checkpoint checked against this connection's policy only",
			"path", db.p.Path(), "err", st.policyErr)
		st = db.sec.p.Load()
	}
	done, err := db.guardWith(st, user, PermissionConfigure, OpCheckpoint, target)
	if err != nil {
		return CheckpointResult{Mode: mode.String()}, fmt.Errorf("checkpoint (%s): %w", mode, err)
	}
	defer done(&err)
	r, err := db.p.CheckpointContext(ctx, pager.CheckpointMode(mode))
	res = CheckpointResult{Mode: mode.String(), WALFrames: r.WALFrames, FramesCheckpointed: r.Checkpointed,
		PagesWritten: r.Copied, WALSizeBefore: r.WALSizeBefore, WALSizeAfter: r.WALSizeAfter,
		BlockedByReaders: r.BlockedByReaders, BlockedByWriter: r.BlockedByWriter, WALRestarted: r.Restarted,
		CheckpointLSN: uint64(r.LSN), Duration: r.Duration}
	if err != nil {
		db.nameHolder(err)
		db.log.Warn("checkpoint failed", "mode", mode.String(), "err", err)
		return res, fmt.Errorf("checkpoint (%s): %w", mode, err)
	}
	if res.CheckpointLSN == 0 {
		// Nothing new was copied (an earlier checkpoint already had):
		// report the LSN the file holds, as CheckpointStatus does, not 0.
		if m, err := db.p.FileMeta(); err == nil {
			res.CheckpointLSN = uint64(m.CheckpointLSN)
		}
	}
	db.log.Info("checkpoint", "mode", mode.String(), "frames", r.WALFrames, "checkpointed", r.Checkpointed,
		"pages", r.Copied, "duration_ms", r.Duration.Milliseconds())
	return res, nil
}

// CheckpointStatus describes the WAL without changing anything.
type CheckpointStatus struct {
	WALSizeBytes       int64     `json:"wal_size_bytes"`
	WALFrames          int       `json:"wal_frames"`
	FramesCheckpointed int       `json:"frames_checkpointed"`
	CheckpointPending  bool      `json:"checkpoint_pending"`
	LastCheckpointLSN  uint64    `json:"last_checkpoint_lsn"`
	LastCheckpoint     time.Time `json:"last_checkpoint"`
}

// CheckpointStatus reports the WAL's size and whether frames await a checkpoint.
func (db *DB) CheckpointStatus() (CheckpointStatus, error) {
	st, err := db.p.CheckpointStatus()
	if err != nil {
		return CheckpointStatus{}, err
	}
	out := CheckpointStatus{WALSizeBytes: st.WALSize, WALFrames: st.Frames, FramesCheckpointed: st.Backfilled, CheckpointPending: st.CheckpointPending}
	if m, err := db.p.FileMeta(); err == nil {
		out.LastCheckpointLSN = uint64(m.CheckpointLSN)
		out.LastCheckpoint = m.CheckpointAt()
	}
	return out, nil
}
