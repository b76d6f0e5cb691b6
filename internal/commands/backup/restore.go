package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine"
	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/cli"
)

// RestoreOptions is everything `sombra-backup restore` needs.
type RestoreOptions struct {
	Root      *Options
	Dir       string // --dir
	Name      string // --name (default: the newest restorable backup)
	Until     string // --until RFC 3339
	Force     bool   // --force
	Yes       bool   // --yes: no confirmation prompt for --force
	NewFileID bool   // --new-file-id
	// AllowEarlier: --allow-earlier
	AllowEarlier bool
}

const restoreLong = `Restore a backup, with the chain it depends on (full backup first), into a
new database file; or, with --until, restore the database as it was at a
point in time.

Without --name the newest backup whose chain is whole and not known bad is
restored: a backup whose last verify (or its base's) failed, or that turns
out damaged while restoring, is skipped for the next older one, with a
warning naming it and why. Every
page checksum is verified on the way; the file is written under a
temporary name, fsynced and renamed to --db only when complete, so an
interrupted restore leaves nothing that looks like a database. The result
has no WAL. An existing --db is refused unless --force is given, and is
never replaced while a connection has it open (exit 3). On a terminal,
--force onto an existing database asks for confirmation first ("y" to
go on; anything else leaves it alone, exit 1); --yes skips the question.
Without a terminal (a pipe, cron, CI) there is nobody to ask, so --force
alone replaces it, as scripts expect.

--until TIME (RFC 3339, e.g. 2024-01-15T12:30:00Z) restores the newest
intact backup whose point in time (the commit time of its last transaction)
is at or before TIME, then replays the archived WAL (DIR/wal, see
archive-wal) up to the last commit at or before TIME. A TIME before the
oldest full backup, or beyond a gap in the archive, is an error naming the
nearest restorable points. A TIME after the end of the archive restores
everything archived, with a warning. A TIME after the newest backup when
the archive holds nothing after it (WAL archiving off) cannot be reached:
the restore fails naming the newest restorable point, unless
--allow-earlier is given, which restores that point instead. For an
encrypted database the backups and the archive are sealed: --until needs
the key (SOMBRA_ENCRYPTION_KEY) and fails before writing anything without
it, with another key, at a damaged or altered segment, or when sealed and
plaintext pieces (backup chain, archive) would be mixed.

--new-file-id gives the restored database a new identity, so it starts a
new history: backups of the original chain and its WAL archive no longer
apply to it. Use it when the restored file will live on beside the
original; leave it off to keep taking incremental backups of a database
that replaces the original.

JSON OUTPUT (--json, schema_version 2)

    schema_version  always 2
    db              restored database file (--db)
    dir             backup directory
    backup          the backup restored (for --until: the chain's last)
    chain           backups applied, full backup first
    end_lsn         LSN of the restored database
    page_count      pages of the restored database
    pages_written   page images written
    file_size       size of the restored database file in bytes
    db_file_id      file id of the restored database (hex)
    until           --until (RFC 3339, UTC, whole seconds), null without it
    replay          null without --until, else {from_lsn, to_lsn,
                    transactions, frames, last_commit_at,
                    next_commit_at, archive_end}: the archived transactions replayed
    warnings        list of strings (may be empty)
    duration_ms     wall time of the restore

EXIT STATUS

    0 success; 1 failed (no such backup or directory, target exists, --until
    outside what the backups and archive cover, I/O); 2 usage error; 3 the
    target is open in another process; 4 a backup in the chain is corrupt
    (the error names the file and page) or the chain is broken.`

const restoreExample = `  sombra-backup restore --dir /backups/sombra --db /data/restored.db
  sombra-backup restore --dir /backups/sombra --name full_20240115_120000 --db /data/restored.db
  sombra-backup restore --dir /backups/sombra --until 2024-01-15T12:30:00Z --db /data/pitr.db
  sombra-backup restore --dir /backups/sombra --db /data/production.db --force`

// NewRestoreCmd builds `sombra-backup restore` on root's streams and
// globals; runF (nil: RunRestore) does the work.
func NewRestoreCmd(root *Options, runF func(*RestoreOptions) error) *cobra.Command {
	opts := &RestoreOptions{Root: root}
	cmd := &cobra.Command{
		Use:     "restore --dir DIR [--name NAME | --until TIME] --db PATH",
		Short:   "Restore a backup, or the database as of a point in time",
		Long:    restoreLong,
		Example: restoreExample,
		Args:    cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&opts.Dir, "dir", "", "backup `DIR`ectory")
	f.StringVar(&opts.Name, "name", "", "backup `NAME` to restore (default: the newest restorable one)")
	f.StringVar(&opts.Until, "until", "", "restore the database as of `TIME` (RFC 3339) by replaying the WAL archive")
	f.BoolVar(&opts.Force, "force", false, "replace an existing --db (on a terminal, after confirmation)")
	f.BoolVar(&opts.Yes, "yes", false, "with --force: replace without asking, also on a terminal")
	f.BoolVar(&opts.NewFileID, "new-file-id", false, "give the restored database a new identity (a new backup history)")
	f.BoolVar(&opts.AllowEarlier, "allow-earlier", false, "with --until: restore the newest earlier point when TIME cannot be reached (WAL archiving off)")
	cmd.MarkFlagsMutuallyExclusive("name", "until")
	// --db (a global flag) names the database to create; --to was its
	// name before every tool called the database --db.
	cli.DeprecatedAlias(cmd, "to", "db")
	_ = cmd.MarkFlagDirname("dir")
	_ = cmd.RegisterFlagCompletionFunc("name", cli.CompleteBackupNames("dir"))
	cmd.RunE = func(*cobra.Command, []string) error {
		// Every file operation of the restore runs on this one thread, in
		// program order. Tracers count calls per thread (strace's
		// inject=...:when=N does, and the kill-point test relies on it to
		// stop the restore at each call in turn); a goroutine that moves
		// between threads splits the count unpredictably, and some calls
		// could never be reached as "the Nth".
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if runF != nil {
			return runF(opts)
		}
		return RunRestore(opts)
	}
	return cmd
}

// RestoreResult is the --json document of restore.
type RestoreResult struct {
	SchemaVersion int         `json:"schema_version"`
	Target        string      `json:"db"`
	Dir           string      `json:"dir"`
	Backup        string      `json:"backup"`
	Chain         []string    `json:"chain"`
	EndLSN        uint64      `json:"end_lsn"`
	PageCount     uint64      `json:"page_count"`
	PagesWritten  uint64      `json:"pages_written"`
	Bytes         int64       `json:"file_size"`
	DBFileID      string      `json:"db_file_id"`
	Until         *time.Time  `json:"until"`
	Replay        *ReplayInfo `json:"replay"`
	Warnings      []string    `json:"warnings"`
	DurationMS    float64     `json:"duration_ms"`
}

// ReplayInfo reports the archived transactions a point-in-time restore
// replayed.
type ReplayInfo struct {
	FromLSN      uint64     `json:"from_lsn"`
	ToLSN        uint64     `json:"to_lsn"`
	Transactions int        `json:"transactions"`
	Frames       int        `json:"frames"`
	LastCommit   *time.Time `json:"last_commit_at"`
	NextCommit   *time.Time `json:"next_commit_at"`
	ArchiveEnd   bool       `json:"archive_end"`
}

// RunRestore restores a backup (or a point in time) to --db.
func RunRestore(opts *RestoreOptions) error {
	o := opts.Root
	target, err := o.Globals.DBPath()
	if err != nil {
		return err
	}
	var until *time.Time
	if opts.Until != "" {
		t, err := time.Parse(time.RFC3339, opts.Until)
		if err != nil {
			return cli.Usagef("--until %q: not an RFC 3339 time (e.g. 2024-01-15T12:30:00Z)", opts.Until)
		}
		t = t.UTC()
		until = &t
	}
	dir, name := opts.Dir, opts.Name
	if dir == "" && (name == "" || refDir(name) == ".") {
		return cli.Usagef("--dir is required")
	}
	if name != "" {
		var err error
		if dir, name, err = backupRef(dir, name); err != nil {
			return err
		}
	}
	eo := engineOptions(o)
	eo.Force, eo.NewFileID, eo.AllowEarlier = opts.Force, opts.NewFileID, opts.AllowEarlier
	if opts.AllowEarlier && until == nil {
		return cli.Usagef("--allow-earlier applies to --until only")
	}
	if opts.Force && !opts.Yes && o.IO.Interactive() {
		if err := confirmReplace(o.IO, target); err != nil {
			return err
		}
	}
	start := o.Clock.Now()
	var (
		r       *bk.RestoreResult
		skipped []string
		stop    func()
	)
	// Bytes of the chain written to the new file (then, with --until, of
	// the archived pages replayed).
	eo.Progress, stop = cli.ProgressFunc(o.IO, &o.Globals, "restore "+filepath.Base(target))
	ctx := o.Globals.Context()
	switch {
	case until != nil:
		r, err = bk.RestoreToTimeContext(ctx, dir, *until, target, eo)
	case name != "":
		r, err = bk.RestoreContext(ctx, dir, name, target, eo)
	default:
		r, skipped, err = restoreNewestGood(ctx, o, dir, target, eo)
	}
	stop()
	if err != nil {
		return restoreError(err)
	}
	res := RestoreResult{SchemaVersion: cli.SchemaVersion, Target: r.Target, Dir: dir, Backup: r.Backup,
		Chain: nonNil(r.Chain), EndLSN: r.EndLSN, PageCount: r.PageCount, PagesWritten: r.Pages, Bytes: r.Bytes,
		DBFileID: r.FileID, Until: cli.TimestampPtr(until), Warnings: nonNil(skipped), DurationMS: ms(o.Clock.Since(start))}
	if rr := r.Replay; rr != nil {
		res.Replay = &ReplayInfo{FromLSN: rr.FromLSN, ToLSN: rr.ToLSN, Transactions: rr.Transactions, Frames: rr.Frames,
			LastCommit: cli.TimestampPtr(rr.LastCommit), NextCommit: cli.TimestampPtr(rr.NextCommit), ArchiveEnd: rr.ArchiveEnd}
		res.Warnings = append(res.Warnings, rr.Warnings...)
	}
	return cli.NewPrinter(o.IO, &o.Globals).Result(res, func(h *cli.Human) { restoreSummary(h, res) })
}

// restoreNewestGood restores the newest backup whose chain is whole and
// known good: backups whose own or an ancestor's last verification failed
// are skipped, and so is one whose restore finds it damaged (the next older
// one is tried). Each skip is returned as a warning naming the backup and
// why, so the operator learns that the newest restore point was not used.
func restoreNewestGood(ctx context.Context, o *Options, dir, target string, eo bk.Options) (*bk.RestoreResult, []string, error) {
	list, err := listDir(o, dir)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]*bk.BackupInfo{}
	for i := range list {
		byName[list[i].Name] = &list[i]
	}
	var skipped []string
	var lastErr error
	for i := len(list) - 1; i >= 0; i-- {
		b := &list[i]
		if !b.ChainOK() {
			continue
		}
		if why := failedVerification(byName, b); why != "" {
			skipped = append(skipped, fmt.Sprintf("skipped %s: %s", b.Name, why))
			continue
		}
		r, err := bk.RestoreContext(ctx, dir, b.Name, target, eo)
		if err == nil {
			return r, skipped, nil
		}
		if !integrityProblem(err) || ctx.Err() != nil {
			return nil, skipped, err
		}
		skipped = append(skipped, fmt.Sprintf("skipped %s: %v", b.Name, err))
		lastErr = err
	}
	switch {
	case len(list) == 0:
		return nil, nil, fmt.Errorf("%s holds no backups: %w", dir, engine.ErrNotFound)
	case lastErr != nil:
		return nil, skipped, fmt.Errorf("%s holds no restorable backup (%s): %w", dir, strings.Join(skipped, "; "), lastErr)
	case len(skipped) > 0:
		return nil, skipped, fmt.Errorf("%s holds no restorable backup (%s; restore one with --name to try it anyway): %w",
			dir, strings.Join(skipped, "; "), bk.ErrVerifyFailed)
	}
	return nil, nil, fmt.Errorf("%s holds no restorable backup (%d backups, every chain broken or unreadable; see list): %w",
		dir, len(list), engine.ErrNotFound)
}

// failedVerification says why b's chain is known bad: its own or an
// ancestor's last verification failed ("" when none did).
func failedVerification(byName map[string]*bk.BackupInfo, b *bk.BackupInfo) string {
	for cur, depth := b, 0; cur != nil && depth <= len(byName); depth++ {
		if v := cur.Verified; v != nil && !v.OK {
			at := v.Time.UTC().Format(time.RFC3339)
			if cur == b {
				return fmt.Sprintf("its last verification (%s) failed: %s", at, v.Error)
			}
			return fmt.Sprintf("its base %s failed verification (%s): %s", cur.Name, at, v.Error)
		}
		if cur.Parent == "" {
			break
		}
		cur = byName[cur.Parent]
	}
	return ""
}

func restoreSummary(h *cli.Human, r RestoreResult) {
	pairs := [][2]string{
		{"restored", r.Target},
		{"from", r.Dir},
		{"backup", r.Backup},
		{"chain", strings.Join(r.Chain, " -> ")},
	}
	if r.Until != nil {
		pairs = append(pairs, [2]string{"until", r.Until.Format(time.RFC3339Nano)})
	}
	if rp := r.Replay; rp != nil {
		last := "unknown"
		if rp.LastCommit != nil {
			last = rp.LastCommit.Format(time.RFC3339Nano)
		}
		pairs = append(pairs,
			[2]string{"wal replayed", fmt.Sprintf("%d transactions, LSN %d to %d", rp.Transactions, rp.FromLSN, rp.ToLSN)},
			[2]string{"last commit", last})
	}
	pairs = append(pairs,
		[2]string{"end lsn", strconv.FormatUint(r.EndLSN, 10)},
		[2]string{"size", h.BytesExact(r.Bytes)},
		[2]string{"pages written", strconv.FormatUint(r.PagesWritten, 10)},
		[2]string{"duration", cli.FormatDuration(msDuration(r.DurationMS))},
	)
	h.KeyValues(pairs)
	for _, w := range r.Warnings {
		h.Line("%s %s", h.Warn("warning:"), w)
	}
}

// confirmReplace asks before --force replaces an existing database on a
// terminal: it cannot be undone, and a mistyped --db would lose data.
func confirmReplace(s cli.IOStreams, target string) error {
	st, err := os.Stat(target)
	if err != nil {
		return nil // nothing to replace (or the restore says why)
	}
	q := fmt.Sprintf("%s exists (%s, modified %s); replace it with the restored database?",
		target, cli.FormatBytes(st.Size()), st.ModTime().UTC().Format(time.RFC3339))
	ok, err := cli.Confirm(s, q)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%s: not replaced (restore cancelled; --yes skips the question): %w", target, cli.ErrNotConfirmed)
	}
	return nil
}

// restoreError adds the flags to use where the operator needs a hint.
func restoreError(err error) error {
	var ue *bk.UnreachableError
	switch {
	case errors.As(err, &ue):
		return cli.WithHint(err, fmt.Sprintf("restore it with --name %s, or pass --allow-earlier; "+
			"'sombra-backup archive-wal --enable' turns WAL archiving on", ue.Newest))
	case errors.Is(err, engine.ErrExists):
		return cli.WithHint(err, "use --force to overwrite")
	}
	return classify(err)
}
