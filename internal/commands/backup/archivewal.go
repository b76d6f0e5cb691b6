package backup

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/cli"
)

// ArchiveWALOptions is everything `sombra-backup archive-wal` needs.
type ArchiveWALOptions struct {
	Root    *Options
	Dir     string // --dir
	Enable  bool   // --enable
	Disable bool   // --disable
}

const archiveLong = `Copy the committed transactions in the database's write-ahead log into
the WAL archive of a backup directory (DIR/wal), which point-in-time
restore (restore --until) replays.

--enable turns archiving on in the database itself: from then on every
connection, in every process, copies the log into DIR/wal before it resets
the log, so no transaction is missed between backups. It then archives
the current log at once. --disable turns it off again. Both write the
setting into the database (one small transaction) and need the writer
lock (see --wait); without them archive-wal only reads the database.

Backups archive the log too before they copy anything, so with archiving
enabled the archive always reaches the newest backup.

The archive of an encrypted database is sealed with the database's key
(given in SOMBRA_ENCRYPTION_KEY, as for opening it): page images stay
encrypted and every segment is authenticated as a whole, so restore
--until and verify --wal need the key and detect a segment altered, cut
short or replaced. LSNs, commit times and page numbers stay readable, which
list --wal shows without the key.

With --dir s3://bucket/prefix the archive is DIR/wal in the bucket: the
database archives into a local spool, DB.walspool (a commit never waits
for the network), and archive-wal and every backup upload the segments the
bucket lacks (the spool then keeps only the newest one). Run archive-wal
from cron as often as the recovery point needs.

JSON OUTPUT (--json, schema_version 2)

    schema_version     always 2
    db                 database file (--db)
    dir                backup directory
    action             archived, enabled or disabled
    archiving_enabled  whether the database now archives its log
    archive_dir        the archive directory the database uses, null when
                       archiving is off
    archive            null with --disable, else what was copied now:
      dir                   archive directory
      segments              segment files written
      first_lsn, last_lsn   LSN range archived now (0 when nothing new)
      transactions, frames  transactions and page frames archived now
      skipped_transactions  transactions already in the archive
      remote                s3:// archive the spool is shipped to, null
                            for a local archive
      uploaded              segments uploaded to it now
    warnings           list of strings (may be empty)

EXIT STATUS

    0 success; 1 failed (missing file, not a database, I/O); 2 usage error;
    3 database locked (--enable, --disable; see --wait); 4 corruption found.`

const archiveExample = `  sombra-backup archive-wal --db /data/production.db --dir /backups/sombra --enable
  sombra-backup archive-wal --db /data/production.db --dir /backups/sombra
  sombra-backup archive-wal --db /data/production.db --dir /backups/sombra --disable`

// NewArchiveWALCmd builds `sombra-backup archive-wal` on root's streams and
// globals; runF (nil: RunArchiveWAL) does the work.
func NewArchiveWALCmd(root *Options, runF func(*ArchiveWALOptions) error) *cobra.Command {
	opts := &ArchiveWALOptions{Root: root}
	cmd := &cobra.Command{
		Use:     "archive-wal --db DB --dir DIR [--enable | --disable]",
		Short:   "Archive the WAL for point-in-time restore; turn archiving on or off",
		Long:    archiveLong,
		Example: archiveExample,
		Args:    cobra.NoArgs,
	}
	f := cmd.Flags()
	addInputFlag(cmd)
	f.StringVar(&opts.Dir, "dir", "", "backup `DIR`ectory (the archive is DIR/wal)")
	f.BoolVar(&opts.Enable, "enable", false, "turn WAL archiving on in the database, then archive the log now")
	f.BoolVar(&opts.Disable, "disable", false, "turn WAL archiving off in the database")
	cmd.MarkFlagsMutuallyExclusive("enable", "disable")
	_ = cmd.MarkFlagRequired("dir")
	_ = cmd.MarkFlagDirname("dir")
	cmd.RunE = func(*cobra.Command, []string) error {
		if runF != nil {
			return runF(opts)
		}
		return RunArchiveWAL(opts)
	}
	return cmd
}

// ArchiveWALResult is the --json document of archive-wal.
type ArchiveWALResult struct {
	SchemaVersion    int           `json:"schema_version"`
	Input            string        `json:"db"`
	Dir              string        `json:"dir"`
	Action           string        `json:"action"`
	ArchivingEnabled bool          `json:"archiving_enabled"`
	ArchiveDir       *string       `json:"archive_dir"`
	Archive          *ArchiveStats `json:"archive"`
	Warnings         []string      `json:"warnings"`
}

// ArchiveStats reports what one archiving run copied.
type ArchiveStats struct {
	Dir          string   `json:"dir"`
	Segments     []string `json:"segments"`
	FirstLSN     uint64   `json:"first_lsn"`
	LastLSN      uint64   `json:"last_lsn"`
	Transactions int      `json:"transactions"`
	Frames       int      `json:"frames"`
	Skipped      int      `json:"skipped_transactions"`
	// Remote is the s3:// archive the spool Dir is shipped to (null when
	// the archive is local), Uploaded the segments this run uploaded.
	Remote   *string  `json:"remote"`
	Uploaded []string `json:"uploaded"`
}

// RunArchiveWAL archives the WAL and/or changes the archiving setting.
func RunArchiveWAL(opts *ArchiveWALOptions) error {
	o := opts.Root
	g := &o.Globals
	input, err := g.DBPath()
	if err != nil {
		return err
	}
	if err := checkOutputDir(opts.Dir); err != nil {
		return err
	}
	changing := opts.Enable || opts.Disable
	db, err := openDB(input, g, !changing)
	if err != nil {
		return err
	}
	defer db.Close()
	m := bk.NewBackupManagerWithOptions(db, opts.Dir, engineOptions(o))
	res := ArchiveWALResult{SchemaVersion: cli.SchemaVersion, Input: input, Dir: opts.Dir, Action: "archived", Warnings: []string{}}
	switch {
	case opts.Enable:
		res.Action = "enabled"
		if err := m.EnableWALArchiving(); err != nil {
			return err
		}
	case opts.Disable:
		res.Action = "disabled"
		if err := m.DisableWALArchiving(); err != nil {
			return err
		}
	}
	if !opts.Disable {
		a, err := m.ArchiveWAL()
		if err != nil {
			return fmt.Errorf("archive the WAL of %s: %w", input, err)
		}
		res.Archive = &ArchiveStats{Dir: a.Dir, Segments: nonNil(a.Segments), FirstLSN: a.FirstLSN, LastLSN: a.LastLSN,
			Transactions: a.Transactions, Frames: a.Frames, Skipped: a.Skipped, Remote: strPtr(a.Remote), Uploaded: nonNil(a.Uploaded)}
	}
	dir, err := db.WALArchiveDir()
	if err != nil {
		return fmt.Errorf("read the WAL archive setting of %s: %w", input, err)
	}
	res.ArchivingEnabled, res.ArchiveDir = dir != "", strPtr(dir)
	if res.Action == "archived" && !res.ArchivingEnabled {
		res.Warnings = append(res.Warnings, fmt.Sprintf("WAL archiving is off for %s: transactions checkpointed before the next archive-wal or backup are not archived (use --enable)", input))
	}
	want, _ := filepath.Abs(filepath.Join(opts.Dir, "wal"))
	if bk.IsRemote(opts.Dir) {
		// Archived locally by every connection, shipped to the bucket.
		want, _ = filepath.Abs(input + bk.SpoolSuffix)
	}
	if dir != "" && dir != want {
		res.Warnings = append(res.Warnings, fmt.Sprintf("the database archives into %s, not %s/wal", dir, opts.Dir))
	}
	return cli.NewPrinter(o.IO, g).Result(res, func(h *cli.Human) {
		archDir := "off"
		if res.ArchiveDir != nil {
			archDir = "on, into " + *res.ArchiveDir
		}
		pairs := [][2]string{{"input", res.Input}, {"action", res.Action}, {"archiving", archDir}}
		if a := res.Archive; a != nil {
			archived := "nothing new"
			if a.Transactions > 0 {
				archived = fmt.Sprintf("%d transactions (%d frames), LSN %d to %d", a.Transactions, a.Frames, a.FirstLSN, a.LastLSN)
			}
			pairs = append(pairs, [2]string{"archived now", archived},
				[2]string{"already archived", strconv.Itoa(a.Skipped) + " transactions"})
			if a.Remote != nil {
				pairs = append(pairs, [2]string{"shipped to", fmt.Sprintf("%s (%d segments uploaded now)", *a.Remote, len(a.Uploaded))})
			}
		}
		h.KeyValues(pairs)
		for _, w := range res.Warnings {
			h.Line("%s %s", h.Warn("warning:"), w)
		}
	})
}
