package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine"
	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/cli"
)

// ListOptions is everything `sombra-backup list` needs.
type ListOptions struct {
	Root *Options
	Dir  string // --dir
	WAL  bool   // --wal: list the WAL archive's segments instead
}

const listLong = `List the backups in a backup directory, oldest first (by end LSN, then
creation time): name, type, size, parent, LSN range, creation time, the
last verification and whether the backup can be restored.

The list is rebuilt from the *.backup files present (their headers and
trailers only), so backups deleted by hand or by find -delete simply
disappear, an incremental backup whose parent is gone is flagged BROKEN,
and temporary files of running or killed backups are never listed. It only
reads.

The LSN column is base..end: the backup holds the transactions with an LSN
above base (0 for a full backup) up to and including end.

--wal lists the segments of the WAL archive (DIR/wal, see archive-wal)
instead, from their headers: LSN range, commit times, size, and whether a
segment is sealed (that of an encrypted database: its pages stay
encrypted; listing needs no key, verify --wal does). Damaged files are
flagged (exit 4). Its --json document: schema_version, dir, archive_dir,
segments (name, path, db_file_id, first_lsn, last_lsn, first_commit,
last_commit, transactions, size, sealed, error).

JSON OUTPUT (--json, schema_version 2)

    schema_version  always 2
    dir             backup directory as given
    backups         list, oldest first, of:
      name          backup name
      path          backup file
      type          full, incremental, or unknown (unreadable file)
      file_size     file size in bytes
      parent        parent backup name, null for a full backup
      base_lsn      LSN the backup starts after (exclusive)
      end_lsn       LSN of the last transaction it holds
      page_count    pages of the database at end_lsn
      pages         page images in the file
      created_at    creation time (RFC 3339, UTC)
      last_commit_at  commit time of end_lsn, null when unknown
      db_file_id    id of the database file backed up (hex)
      logical_hash  recorded logical hash, null when not recorded
      chain         "ok" or "broken: why"
      restorable    true when the backup and its whole chain are usable
      verified      last verification {verified_at, ok, error}, null if never
      error         why the file is unreadable, null when it is fine

EXIT STATUS

    0 success (also with broken chains, which are flagged); 1 failed (no such
    directory, I/O); 2 usage error; 4 a backup file is unreadable or corrupt.`

const listExample = `  sombra-backup list --dir /backups/sombra
  sombra-backup list --dir /backups/sombra --wal
  sombra-backup list --dir /backups/sombra --json | jq -r '.backups[] | select(.restorable) | .name'`

// NewListCmd builds `sombra-backup list` on root's streams and globals;
// runF (nil: RunList) does the work.
func NewListCmd(root *Options, runF func(*ListOptions) error) *cobra.Command {
	opts := &ListOptions{Root: root}
	cmd := &cobra.Command{
		Use:     "list --dir DIR",
		Short:   "List the backups in a directory",
		Long:    listLong,
		Example: listExample,
		Args:    cobra.NoArgs,
	}
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "backup `DIR`ectory")
	cmd.Flags().BoolVar(&opts.WAL, "wal", false, "list the segments of the WAL archive (DIR/wal) instead of the backups")
	_ = cmd.MarkFlagRequired("dir")
	_ = cmd.MarkFlagDirname("dir")
	cmd.RunE = func(*cobra.Command, []string) error {
		if runF != nil {
			return runF(opts)
		}
		if opts.WAL {
			return RunListWAL(opts)
		}
		return RunList(opts)
	}
	return cmd
}

// ListResult is the --json document of list.
type ListResult struct {
	SchemaVersion int         `json:"schema_version"`
	Dir           string      `json:"dir"`
	Backups       []ListEntry `json:"backups"`
}

// ListEntry describes one backup.
type ListEntry struct {
	Name        string        `json:"name"`
	Path        string        `json:"path"`
	Type        string        `json:"type"`
	Size        int64         `json:"file_size"`
	Parent      *string       `json:"parent"`
	BaseLSN     uint64        `json:"base_lsn"`
	EndLSN      uint64        `json:"end_lsn"`
	PageCount   uint64        `json:"page_count"`
	Pages       uint64        `json:"pages"`
	Created     time.Time     `json:"created_at"`
	EndTime     *time.Time    `json:"last_commit_at"`
	DBFileID    string        `json:"db_file_id"`
	LogicalHash *string       `json:"logical_hash"`
	Chain       string        `json:"chain"`
	Restorable  bool          `json:"restorable"`
	Verified    *Verification `json:"verified"`
	Error       *string       `json:"error"`
}

// Verification is the outcome of the last verify of a backup.
type Verification struct {
	Time  time.Time `json:"verified_at"`
	OK    bool      `json:"ok"`
	Error *string   `json:"error"`
}

// RunList prints the backups in opts.Dir.
func RunList(opts *ListOptions) error {
	o := opts.Root
	list, err := listDir(o, opts.Dir)
	if err != nil {
		return err
	}
	res := ListResult{SchemaVersion: cli.SchemaVersion, Dir: opts.Dir, Backups: make([]ListEntry, len(list))}
	var unreadable []ListEntry
	for i, b := range list {
		e := ListEntry{Name: b.Name, Path: b.Path, Type: b.Type, Size: b.Size, Parent: strPtr(b.Parent),
			BaseLSN: b.BaseLSN, EndLSN: b.EndLSN, PageCount: b.PageCount, Pages: b.Pages, Created: cli.Timestamp(b.Created),
			DBFileID: b.DBFileID, LogicalHash: strPtr(b.LogicalHash), Chain: b.Chain, Restorable: b.ChainOK(),
			Error: strPtr(b.Error)}
		if b.EndTime != nil {
			t := cli.Timestamp(*b.EndTime)
			e.EndTime = &t
		}
		if v := b.Verified; v != nil {
			e.Verified = &Verification{Time: cli.Timestamp(v.Time), OK: v.OK, Error: strPtr(v.Error)}
		}
		if e.Error != nil {
			unreadable = append(unreadable, e)
		}
		res.Backups[i] = e
	}
	err = cli.NewPrinter(o.IO, &o.Globals).Result(res, func(h *cli.Human) { listTable(h, res) })
	if err != nil || len(unreadable) == 0 {
		return err
	}
	return damagedFiles(unreadable[0].Path, "unreadable backup", *unreadable[0].Error, len(unreadable))
}

// damagedFiles is list's exit 4 after the listing: the first of n damaged
// files, what it is and why.
func damagedFiles(path, what, why string, n int) error {
	msg := fmt.Sprintf("%s: %s: %s", path, what, why)
	if n > 1 {
		msg += fmt.Sprintf(" (and %d more)", n-1)
	}
	return &cli.ExitError{Code: cli.ExitCorrupt, Err: fmt.Errorf("%s", msg)}
}

func listTable(h *cli.Human, res ListResult) {
	if len(res.Backups) == 0 {
		h.Line("no backups in %s", res.Dir)
		return
	}
	rows := make([][]string, len(res.Backups))
	for i, b := range res.Backups {
		parent, created, lsn := "-", "-", "-"
		if b.Parent != nil {
			parent = *b.Parent
		}
		if b.Error == nil {
			created = b.Created.Format(time.RFC3339)
			lsn = lsnRange(b.BaseLSN, b.EndLSN)
		}
		verified := "never"
		if v := b.Verified; v != nil {
			if v.OK {
				verified = h.Good("ok") + " " + v.Time.Format(time.RFC3339)
			} else {
				verified = h.Bad("FAILED") + " " + v.Time.Format(time.RFC3339)
			}
		}
		status := h.Good("ok")
		switch {
		case b.Error != nil:
			status = h.Bad("UNREADABLE: " + *b.Error)
		case !b.Restorable:
			status = h.Bad("BROKEN: " + strings.TrimPrefix(b.Chain, "broken: "))
		}
		rows[i] = []string{b.Name, b.Type, h.Bytes(b.Size), parent, lsn, created, verified, status}
	}
	h.Table([]string{"name", "type", "size", "parent", "lsn", "created", "verified", "status"}, rows)
}

// listDir is bk.ListBackups with a missing directory reported as such.
func listDir(o *Options, dir string) ([]bk.BackupInfo, error) {
	list, err := bk.ListBackupsWithOptions(dir, engineOptions(o))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &hintError{msg: dir + ": no such backup directory", err: engine.ErrNotFound}
	}
	return list, err
}
