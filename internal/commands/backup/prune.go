package backup

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/cli"
)

// PruneOptions is everything `sombra-backup prune` needs.
type PruneOptions struct {
	Root     *Options
	Dir      string // --dir
	KeepDays int    // --keep-days
	KeepFull int    // --keep-full
	DryRun   bool   // --dry-run
}

const pruneLong = `Delete old backups from a backup directory: those created more than
--keep-days days ago, except the --keep-full newest full backups (give
either or both). A backup that a kept backup depends on is never deleted:
a kept incremental backup keeps its whole chain, so what remains can
always be restored.

prune also deletes archived WAL segments (DIR/wal) that no kept backup can
use any more, and temporary files left by backups, restores and
verifications that were killed more than a day ago.

--dry-run lists what would be deleted (and how many bytes that frees) and
deletes nothing, writing nothing in the directory.

Unlike find -mtime +N -delete (the operations guide's backup.sh), prune
never breaks a chain.

JSON OUTPUT (--json, schema_version 2)

    schema_version        always 2
    dir                   backup directory
    keep_days, keep_full  the limits applied (0: not given)
    dry_run               true with --dry-run: the lists say what would be
                          deleted, and nothing was
    deleted               names of the backups deleted
    kept                  names of the backups kept
    wal_segments_deleted  archived WAL segment files deleted
    temp_files_deleted    stale temporary files deleted
    bytes_freed           bytes given back

EXIT STATUS

    0 success; 1 failed (no such directory, I/O); 2 usage error.`

const pruneExample = `  sombra-backup prune --dir /backups/sombra --keep-days 30
  sombra-backup prune --dir /backups/sombra --keep-full 4
  sombra-backup prune --dir /backups/sombra --keep-days 30 --keep-full 2 --json | jq '.deleted'`

// NewPruneCmd builds `sombra-backup prune` on root's streams and globals;
// runF (nil: RunPrune) does the work.
func NewPruneCmd(root *Options, runF func(*PruneOptions) error) *cobra.Command {
	opts := &PruneOptions{Root: root}
	cmd := &cobra.Command{
		Use:     "prune --dir DIR (--keep-days N | --keep-full N)",
		Short:   "Delete old backups without breaking a chain",
		Long:    pruneLong,
		Example: pruneExample,
		Args:    cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&opts.Dir, "dir", "", "backup `DIR`ectory")
	f.IntVar(&opts.KeepDays, "keep-days", 0, "keep the backups created in the last `N` days")
	f.IntVar(&opts.KeepFull, "keep-full", 0, "keep the `N` newest full backups (and what depends on them)")
	f.BoolVar(&opts.DryRun, "dry-run", false, "list what would be deleted; delete nothing")
	_ = cmd.MarkFlagRequired("dir")
	_ = cmd.MarkFlagDirname("dir")
	cmd.MarkFlagsOneRequired("keep-days", "keep-full")
	cmd.RunE = func(*cobra.Command, []string) error {
		if runF != nil {
			return runF(opts)
		}
		return RunPrune(opts)
	}
	return cmd
}

// PruneResult is the --json document of prune.
type PruneResult struct {
	SchemaVersion   int      `json:"schema_version"`
	Dir             string   `json:"dir"`
	KeepDays        int      `json:"keep_days"`
	KeepFull        int      `json:"keep_full"`
	DryRun          bool     `json:"dry_run"`
	Deleted         []string `json:"deleted"`
	Kept            []string `json:"kept"`
	SegmentsDeleted []string `json:"wal_segments_deleted"`
	TempDeleted     []string `json:"temp_files_deleted"`
	BytesFreed      int64    `json:"bytes_freed"`
}

// RunPrune deletes old backups from opts.Dir.
func RunPrune(opts *PruneOptions) error {
	o := opts.Root
	if err := validateKeep(opts.KeepDays, opts.KeepFull); err != nil {
		return err
	}
	res, err := prune(o, opts.Dir, opts.KeepDays, opts.KeepFull, opts.DryRun)
	if err != nil {
		return err
	}
	return cli.NewPrinter(o.IO, &o.Globals).Result(res, func(h *cli.Human) {
		deleted, freed := "deleted", "freed"
		if res.DryRun {
			deleted, freed = "to delete", "to free"
		}
		h.KeyValues([][2]string{
			{"dir", res.Dir},
			{deleted, names(res.Deleted)},
			{"kept", names(res.Kept)},
			{"wal segments " + deleted, strconv.Itoa(len(res.SegmentsDeleted))},
			{"temp files " + deleted, strconv.Itoa(len(res.TempDeleted))},
			{freed, h.BytesExact(res.BytesFreed)},
		})
		if res.DryRun {
			h.Line("dry run: nothing was deleted")
		}
	})
}

func validateKeep(days, full int) error {
	switch {
	case days < 0:
		return cli.Usagef("--keep-days %d: must not be negative", days)
	case full < 0:
		return cli.Usagef("--keep-full %d: must not be negative", full)
	case days == 0 && full == 0:
		return cli.Usagef("--keep-days 0 with no --keep-full would delete every backup: give a positive --keep-days or --keep-full")
	}
	return nil
}

// prune runs bk.Prune on dir; schedule uses it too.
func prune(o *Options, dir string, days, full int, dryRun bool) (*PruneResult, error) {
	if _, err := listDir(o, dir); err != nil {
		return nil, err
	}
	eo := engineOptions(o)
	eo.DryRun = dryRun
	r, err := bk.Prune(dir, days, full, eo)
	if err != nil {
		return nil, classify(err)
	}
	return &PruneResult{SchemaVersion: cli.SchemaVersion, Dir: dir, KeepDays: days, KeepFull: full, DryRun: dryRun,
		Deleted: nonNil(r.Deleted), Kept: nonNil(r.Kept), SegmentsDeleted: nonNil(r.SegmentsDeleted),
		TempDeleted: nonNil(r.TempDeleted), BytesFreed: r.BytesFreed}, nil
}

func names(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d (%s)", len(s), strings.Join(s, ", "))
}
