// Package checkpoint is sombra-checkpoint: copy committed WAL frames into
// the database file in one of SQLite's four modes, or show the WAL's
// checkpoint status.
package checkpoint

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/cli"
)

// Options is everything sombra-checkpoint needs.
type Options struct {
	IO      cli.IOStreams
	Globals cli.Globals
	// Clock measures the duration reported (nil: real time).
	Clock cli.Clock

	Mode   string // --mode
	Status bool   // --status
}

var modes = []string{"passive", "full", "restart", "truncate"}

const long = `Copy committed frames from the write-ahead log (NAME.db-wal) into the
database file.

Modes (as in SQLite):

    passive   copy what can be copied without waiting for anyone (default)
    full      wait for the writer and for readers of older snapshots, then
              copy every committed frame
    restart   full, then wait until no reader uses the log and start it over
              from its beginning, so it stops growing
    truncate  restart, and truncate the WAL file to zero bytes

full, restart and truncate need the writer lock and wait for readers: by
default they do not wait (--wait 0s); with --wait DURATION they retry for
up to DURATION. When they cannot get them in time sombra-checkpoint exits
with status 3 and an error naming the process that holds the lock; run it
again later or give a --wait (e.g. --wait 30s).

--status prints the checkpoint status (WAL size, frames, frames pending)
without checkpointing; it opens the database read-only.

JSON OUTPUT (--json, schema_version 2)

A checkpoint prints:

    schema_version       always 2
    db                   database file as given (--db)
    mode                 passive, full, restart or truncate
    wal_frames           committed frames in the WAL when the checkpoint began
    frames_checkpointed  frames now copied into the database file (cumulative
                         for this WAL)
    pages_written        pages this checkpoint wrote to the database file
    wal_size_before      WAL size in bytes before
    wal_size_after       WAL size in bytes after
    blocked_by_readers   readers of older snapshots kept frames back
    blocked_by_writer    a writer held the log (full, restart, truncate)
    wal_restarted        the WAL was started over (restart, truncate)
    checkpoint_lsn       last LSN now in the database file
    duration_ms          time taken in milliseconds

--status prints:

    schema_version       always 2
    db                   database file as given (--db)
    wal_size             WAL size in bytes
    wal_frames           committed frames in the WAL
    frames_checkpointed  frames already copied into the database file
    frames_pending       frames not yet copied
    checkpoint_pending   frames_pending > 0
    last_checkpoint_lsn  LSN covered by the last checkpoint
    last_checkpoint_at   time of the last checkpoint (RFC 3339, UTC) or null

EXIT STATUS

    0 success, 1 failed (missing file, not a database, I/O), 2 usage error
    (e.g. an unknown --mode), 3 database busy: the writer lock or a reader
    kept the checkpoint from finishing within --wait, 4 corruption found.`

const example = `  sombra-checkpoint --db /data/production.db
  sombra-checkpoint --db /data/production.db --mode full
  sombra-checkpoint --db /data/production.db --mode truncate --wait 30s
  sombra-checkpoint --db /data/production.db --status
  sombra-checkpoint --db /data/production.db --mode full --json | jq .pages_written`

// NewCommand returns the sombra-checkpoint root command on streams.
func NewCommand(streams cli.IOStreams) *cobra.Command {
	return NewCmd(&Options{IO: streams}, nil)
}

// NewCmd builds the command on opts; runF (nil: Run) does the work.
func NewCmd(opts *Options, runF func(*Options) error) *cobra.Command {
	cmd := cli.NewRoot("sombra-checkpoint", "Checkpoint the write-ahead log into the database file",
		long, example, &opts.Globals, opts.IO)
	cmd.Args = cobra.NoArgs
	if opts.Mode == "" {
		opts.Mode = "passive"
	}
	f := cmd.Flags()
	f.Var(cli.Choice(&opts.Mode, modes...), "mode", "checkpoint `mode`: passive|full|restart|truncate")
	f.BoolVar(&opts.Status, "status", false, "show the checkpoint status without checkpointing")
	cmd.MarkFlagsMutuallyExclusive("mode", "status")
	_ = cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions(modes, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(*cobra.Command, []string) error {
		if runF != nil {
			return runF(opts)
		}
		return Run(opts)
	}
	return cmd
}

// Result is the --json document of a checkpoint.
type Result struct {
	SchemaVersion      int     `json:"schema_version"`
	Path               string  `json:"db"`
	Mode               string  `json:"mode"`
	WALFrames          int     `json:"wal_frames"`
	FramesCheckpointed int     `json:"frames_checkpointed"`
	PagesWritten       int     `json:"pages_written"`
	WALSizeBefore      int64   `json:"wal_size_before"`
	WALSizeAfter       int64   `json:"wal_size_after"`
	BlockedByReaders   bool    `json:"blocked_by_readers"`
	BlockedByWriter    bool    `json:"blocked_by_writer"`
	WALRestarted       bool    `json:"wal_restarted"`
	CheckpointLSN      uint64  `json:"checkpoint_lsn"`
	DurationMS         float64 `json:"duration_ms"`
}

// StatusResult is the --json document of --status.
type StatusResult struct {
	SchemaVersion      int        `json:"schema_version"`
	Path               string     `json:"db"`
	WALSize            int64      `json:"wal_size"`
	WALFrames          int        `json:"wal_frames"`
	FramesCheckpointed int        `json:"frames_checkpointed"`
	FramesPending      int        `json:"frames_pending"`
	CheckpointPending  bool       `json:"checkpoint_pending"`
	LastCheckpointLSN  uint64     `json:"last_checkpoint_lsn"`
	LastCheckpoint     *time.Time `json:"last_checkpoint_at"`
}

// Run checkpoints (or with --status, reports) the database.
func Run(opts *Options) error {
	if opts.Status {
		return runStatus(opts)
	}
	g := &opts.Globals
	mode, err := engine.ParseCheckpointMode(opts.Mode)
	if err != nil {
		return &cli.UsageError{Err: err}
	}
	db, err := cli.OpenDB(g, engine.Config{BusyTimeout: g.BusyTimeout(cli.DefaultBusyTimeout), WALAutoCheckpoint: -1})
	if err != nil {
		return err
	}
	defer db.Close()
	start := opts.Clock.Now()
	r, err := db.CheckpointContext(g.Context(), mode)
	if err != nil {
		return err
	}
	res := Result{SchemaVersion: cli.SchemaVersion, Path: db.Path(), Mode: r.Mode, WALFrames: r.WALFrames,
		FramesCheckpointed: r.FramesCheckpointed, PagesWritten: r.PagesWritten, WALSizeBefore: r.WALSizeBefore,
		WALSizeAfter: r.WALSizeAfter, BlockedByReaders: r.BlockedByReaders, BlockedByWriter: r.BlockedByWriter,
		WALRestarted: r.WALRestarted, CheckpointLSN: r.CheckpointLSN,
		DurationMS: float64(opts.Clock.Since(start).Microseconds()) / 1000}
	return cli.NewPrinter(opts.IO, g).Result(res, func(h *cli.Human) {
		pending := res.WALFrames - res.FramesCheckpointed
		blocked := "no"
		if res.BlockedByReaders {
			blocked = h.Warn(fmt.Sprintf("yes (%d frames left for a later checkpoint)", pending))
		}
		h.KeyValues([][2]string{
			{"path", res.Path},
			{"mode", res.Mode},
			{"wal frames", strconv.Itoa(res.WALFrames)},
			{"frames checkpointed", strconv.Itoa(res.FramesCheckpointed)},
			{"pages written", strconv.Itoa(res.PagesWritten)},
			{"wal size before", h.BytesExact(res.WALSizeBefore)},
			{"wal size after", h.BytesExact(res.WALSizeAfter)},
			{"wal restarted", cli.YesNo(res.WALRestarted)},
			{"blocked by readers", blocked},
			{"blocked by writer", cli.YesNo(res.BlockedByWriter)},
			{"checkpoint lsn", strconv.FormatUint(res.CheckpointLSN, 10)},
			{"duration", cli.FormatDuration(time.Duration(res.DurationMS * float64(time.Millisecond)))},
		})
	})
}

func runStatus(opts *Options) error {
	g := &opts.Globals
	db, err := cli.OpenDB(g, engine.Config{ReadOnly: true, BusyTimeout: g.BusyTimeout(cli.DefaultBusyTimeout)})
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := db.CheckpointStatus()
	if err != nil {
		return fmt.Errorf("checkpoint status of %s: %w", db.Path(), err)
	}
	res := StatusResult{SchemaVersion: cli.SchemaVersion, Path: db.Path(), WALSize: st.WALSizeBytes,
		WALFrames: st.WALFrames, FramesCheckpointed: st.FramesCheckpointed,
		FramesPending: max(st.WALFrames-st.FramesCheckpointed, 0), CheckpointPending: st.CheckpointPending,
		LastCheckpointLSN: st.LastCheckpointLSN}
	if !st.LastCheckpoint.IsZero() {
		t := cli.Timestamp(st.LastCheckpoint)
		res.LastCheckpoint = &t
	}
	return cli.NewPrinter(opts.IO, g).Result(res, func(h *cli.Human) {
		last := "never"
		if res.LastCheckpoint != nil {
			last = fmt.Sprintf("%s (LSN %d)", res.LastCheckpoint.Format(time.RFC3339), res.LastCheckpointLSN)
		}
		pending := cli.YesNo(res.CheckpointPending)
		if res.CheckpointPending {
			pending = h.Warn(fmt.Sprintf("yes (%d frames)", res.FramesPending))
		}
		h.KeyValues([][2]string{
			{"path", res.Path},
			{"wal size", h.BytesExact(res.WALSize)},
			{"wal frames", strconv.Itoa(res.WALFrames)},
			{"frames checkpointed", strconv.Itoa(res.FramesCheckpointed)},
			{"checkpoint pending", pending},
			{"last checkpoint", last},
		})
	})
}
