// Package backup is sombra-backup: full and incremental online backups
// (the root command, as the operations guide calls it), and the list,
// verify, restore, prune, archive-wal and schedule subcommands, each a thin
// layer over package engine/backup.
package backup

import (
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine"
	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/cli"
)

// Options is everything the sombra-backup root command (taking a backup)
// needs. The subcommands share its IO, Globals and Clock.
type Options struct {
	IO      cli.IOStreams
	Globals cli.Globals
	// Clock stamps backups and verifications and measures durations (nil:
	// real time), so golden tests print repeatable output.
	Clock cli.Clock

	Type         string // --type full|incremental
	Output       string // --output
	Base         string // --base
	Force        bool   // --force
	NoHash       bool   // --no-hash
	FullIfNoBase bool   // --full-if-no-base
	S3Endpoint   string // --s3-endpoint (every subcommand)
}

var backupTypes = []string{"full", "incremental"}

const long = `Take an online backup of a Sombra database, or manage backups with the
subcommands (list, verify, restore, prune, archive-wal, schedule).

    sombra-backup --type full|incremental --db DB --output PATH

copies one consistent snapshot of DB into PATH.backup (".backup" is
appended when missing); the directory of PATH is the backup directory,
created if needed, and holds the catalog (catalog.json) and the WAL archive
(wal/). The database stays fully usable meanwhile: the backup only reads,
never blocks writers, and never modifies the database file. The backup is
written under a temporary name, fsynced and renamed, so an interrupted
backup never leaves a file that looks complete.

A full backup holds every page. An incremental backup holds the pages
changed since its parent: by default the newest backup of the same
database in the backup directory, or the one named by --base (which must
be in the same directory). An incremental backup with no full backup to
build on fails; take a full backup first (--type full), or pass
--full-if-no-base to take a full one in that case.

OFF-MACHINE BACKUPS (S3-compatible object storage)

--output s3://bucket/prefix/NAME, and --dir s3://bucket/prefix for list,
verify, restore, prune and archive-wal, keep the backups in a bucket. The
server is --s3-endpoint, else $AWS_ENDPOINT_URL, else AWS (region
$AWS_REGION, default us-east-1; an IP or localhost endpoint is addressed
path-style); keys come from $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY
or the $AWS_PROFILE profile of ~/.aws/credentials. A backup is written to
the local temporary directory, uploaded (multipart, a few parts in memory
at most), checked against the server's checksum, and only then made
visible by a NAME.backup.complete marker: list never shows an interrupted
upload, and the next prune removes what it left. verify and restore
download the chain to a local temporary directory first (--tmpdir for
verify) and check it against the checksum recorded at upload. With
archive-wal --enable, the database archives its WAL into a local spool
(DB.walspool) that archive-wal and every backup upload to
s3://bucket/prefix/wal, where restore --until finds it.

A logical hash of all nodes and edges is recorded so that verify can
compare a trial restore with the original; --no-hash skips it (faster on
large databases; verify then checks structure and checksums only).

--db names the database (--input, the operations guide's name, still
works but is deprecated). An existing output is refused unless --force is
given.

On a terminal a progress bar (bytes written and rate) runs on stderr.

JSON OUTPUT (--json, schema_version 2)

    schema_version             always 2
    name                       backup name (file name without .backup)
    path                       backup file
    db                         database file as given (--db)
    type                       full or incremental (what was taken)
    parent                     parent backup name, null for a full backup
    file_size                  size of the backup file in bytes
    pages_copied               page images written to the backup
    pages_read                 pages read from the database to find them
    page_count                 pages of the database at the backup's end
    base_lsn                   LSN the backup starts after (exclusive; 0 for
                               a full backup): the parent's end_lsn
    end_lsn                    LSN of the last transaction in the backup
    change_source              how changed pages were found: full, wal,
                               wal+changelog or scan
    logical_hash               SHA-256 of nodes and edges, null with --no-hash
    created_at                 creation time (RFC 3339, UTC)
    wal_transactions_archived  transactions copied into the WAL archive first
    warnings                   list of strings (may be empty)
    duration_ms                wall time of the backup
    throughput_bytes_per_sec   file_size / duration

EXIT STATUS

    0 success; 1 failed (missing file, not a database, output exists, no
    base for an incremental backup, I/O); 2 usage error; 3 database locked
    (see --wait); 4 corruption found (in the database, or in a backup:
    verify, restore and list).`

const example = `  # the operations guide's backup.sh
  sombra-backup --type full --db /data/production.db --output /backups/sombra/full_20240115_120000
  sombra-backup --type incremental --db /data/production.db --output /backups/sombra/inc_20240116_120000
  sombra-backup verify /backups/sombra/inc_20240116_120000.backup

  sombra-backup list --dir /backups/sombra
  sombra-backup restore --dir /backups/sombra --db /data/restored.db
  sombra-backup restore --dir /backups/sombra --until 2024-01-16T12:30:00Z --db /data/pitr.db
  sombra-backup prune --dir /backups/sombra --keep-days 30
  sombra-backup --type full --db app.db --output backups/full --json | jq .file_size`

// NewCommand returns the sombra-backup root command on streams.
func NewCommand(streams cli.IOStreams) *cobra.Command {
	return NewCmd(&Options{IO: streams}, nil)
}

// NewCmd builds the root command and its subcommands on opts; runF (nil:
// Run) does the root's work, so tests can check flag parsing on its own.
func NewCmd(opts *Options, runF func(*Options) error) *cobra.Command {
	cmd := cli.NewRoot("sombra-backup", "Take, list, verify, restore and schedule online backups",
		long, example, &opts.Globals, opts.IO)
	cmd.Args = cobra.NoArgs
	cmd.PersistentFlags().StringVar(&opts.S3Endpoint, "s3-endpoint", "",
		"`URL` of the S3-compatible server for s3://bucket/prefix backup directories (default $AWS_ENDPOINT_URL, else AWS)")
	f := cmd.Flags()
	f.Var(cli.Choice(&opts.Type, backupTypes...), "type", "backup `type`: full|incremental")
	addInputFlag(cmd)
	f.StringVar(&opts.Output, "output", "", "backup file `PATH` (\".backup\" is appended when missing); its directory is the backup directory")
	f.StringVar(&opts.Base, "base", "", "parent `NAME` of an incremental backup (default: the newest backup of the database in the directory)")
	f.BoolVar(&opts.Force, "force", false, "overwrite an existing backup of the same name")
	f.BoolVar(&opts.NoHash, "no-hash", false, "do not record the logical hash (faster; verify then checks structure only)")
	f.BoolVar(&opts.FullIfNoBase, "full-if-no-base", false, "with --type incremental, take a full backup when there is nothing to build on")
	_ = cmd.MarkFlagRequired("type")
	_ = cmd.MarkFlagRequired("output")
	_ = cmd.MarkFlagFilename("output", "backup")
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions(backupTypes, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(*cobra.Command, []string) error {
		if runF != nil {
			return runF(opts)
		}
		return Run(opts)
	}
	cmd.AddCommand(
		NewListCmd(opts, nil),
		NewVerifyCmd(opts, nil),
		NewRestoreCmd(opts, nil),
		NewPruneCmd(opts, nil),
		NewArchiveWALCmd(opts, nil),
		NewScheduleCmd(opts, nil),
	)
	return cmd
}

// Result is the --json document of a backup.
type Result struct {
	SchemaVersion         int       `json:"schema_version"`
	Name                  string    `json:"name"`
	Path                  string    `json:"path"`
	Input                 string    `json:"db"`
	Type                  string    `json:"type"`
	Parent                *string   `json:"parent"`
	Size                  int64     `json:"file_size"`
	PagesCopied           uint64    `json:"pages_copied"`
	PagesRead             uint64    `json:"pages_read"`
	PageCount             uint64    `json:"page_count"`
	BaseLSN               uint64    `json:"base_lsn"`
	EndLSN                uint64    `json:"end_lsn"`
	ChangeSource          string    `json:"change_source"`
	LogicalHash           *string   `json:"logical_hash"`
	Created               time.Time `json:"created_at"`
	WALTransactions       int       `json:"wal_transactions_archived"`
	Warnings              []string  `json:"warnings"`
	DurationMS            float64   `json:"duration_ms"`
	ThroughputBytesPerSec int64     `json:"throughput_bytes_per_sec"`
}

// Run takes one backup as the flags describe and prints the result.
func Run(opts *Options) error {
	g := &opts.Globals
	typ, err := bk.ParseType(opts.Type)
	if err != nil {
		return cli.Usagef("--type %q: must be one of %s", opts.Type, strings.Join(backupTypes, "|"))
	}
	input, err := g.DBPath()
	if err != nil {
		return err
	}
	dir, name, err := outputName(opts.Output)
	if err != nil {
		return err
	}
	if opts.Base != "" {
		if bd := refDir(opts.Base); bd != "." && bd != refDir(joinRef(dir, "x")) {
			return cli.Usagef("--base %s: the base must be a backup in the output directory %s", opts.Base, dir)
		}
	}
	if typ == bk.TypeFull && opts.Base != "" {
		return cli.Usagef("--base applies to incremental backups only")
	}
	r, err := createBackup(opts, input, dir, name, typ, nil)
	if err != nil {
		return err
	}
	return cli.NewPrinter(opts.IO, g).Result(r, func(h *cli.Human) { backupSummary(h, r) })
}

// createBackup opens input read-only and takes one backup dir/name of
// type typ. eo, when not nil, replaces the engine options (schedule passes
// its own logger and FullIfNoBase).
func createBackup(opts *Options, input, dir, name string, typ bk.Type, eo *bk.Options) (*Result, error) {
	g := &opts.Globals
	if err := checkOutputDir(dir); err != nil {
		return nil, err
	}
	// Read-only: a backup never writes the database file or its WAL (the
	// engine keeps its change log in NAME.db-changes).
	db, err := openDB(input, g, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	o := engineOptions(opts)
	if eo != nil {
		o = *eo
	}
	o.Force, o.Base, o.NoLogicalHash = opts.Force, opts.Base, opts.NoHash
	o.FullIfNoBase = o.FullIfNoBase || opts.FullIfNoBase
	if typ == bk.TypeIncremental && !o.FullIfNoBase && !bk.IsRemote(dir) {
		// The engine would create the directory before finding out.
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return nil, &hintError{err: bk.ErrNoBase, msg: fmt.Sprintf(
				"%s: no such backup directory, so no full backup to base an incremental backup on (use --type full, or --full-if-no-base)", dir)}
		}
	}
	// The engine reports the database bytes it has read (every page for
	// a full backup, the candidates for an incremental one).
	var stop func()
	o.Progress, stop = cli.ProgressFunc(opts.IO, g, "backup "+name)
	m := bk.NewBackupManagerWithOptions(db, dir, o)
	path := joinRef(dir, name+bk.Ext)

	start := opts.Clock.Now()
	var res *bk.Result
	if typ == bk.TypeFull {
		res, err = m.CreateFullBackupContext(g.Context(), path)
	} else {
		res, err = m.CreateIncrementalBackupContext(g.Context(), path)
	}
	stop()
	if err != nil {
		return nil, backupError(err, dir)
	}
	return newResult(res, input, opts.Clock.Since(start)), nil
}

func newResult(res *bk.Result, input string, took time.Duration) *Result {
	r := &Result{SchemaVersion: cli.SchemaVersion, Name: res.Name, Path: res.Path, Input: input, Type: res.Type,
		Parent: strPtr(res.Parent), Size: res.Bytes, PagesCopied: res.Pages, PagesRead: res.PagesRead,
		PageCount: res.PageCount, BaseLSN: res.BaseLSN, EndLSN: res.EndLSN, ChangeSource: string(res.ChangeSource),
		LogicalHash: strPtr(res.LogicalHash), Created: cli.Timestamp(res.Created), WALTransactions: res.Archived,
		Warnings: nonNil(res.Warnings), DurationMS: ms(took)}
	if took > 0 {
		r.ThroughputBytesPerSec = int64(float64(res.Bytes) / took.Seconds())
	}
	return r
}

func backupSummary(h *cli.Human, r *Result) {
	typ := r.Type
	if r.Parent != nil {
		typ = fmt.Sprintf("%s (parent %s)", r.Type, *r.Parent)
	}
	hash := "not recorded (--no-hash)"
	if r.LogicalHash != nil {
		hash = *r.LogicalHash
	}
	h.KeyValues([][2]string{
		{"backup", r.Name},
		{"path", r.Path},
		{"input", r.Input},
		{"type", typ},
		{"size", h.BytesExact(r.Size)},
		{"pages copied", fmt.Sprintf("%d of %d (read %d, via %s)", r.PagesCopied, r.PageCount, r.PagesRead, r.ChangeSource)},
		{"lsn range", lsnRange(r.BaseLSN, r.EndLSN)},
		{"logical hash", hash},
		{"created", r.Created.Format(time.RFC3339)},
		{"duration", cli.FormatDuration(msDuration(r.DurationMS))},
		{"throughput", h.Rate(r.ThroughputBytesPerSec)},
	})
	for _, w := range r.Warnings {
		h.Line("%s %s", h.Warn("warning:"), w)
	}
}

// outputName splits --output into the backup directory and the backup
// name (without .backup).
func outputName(out string) (dir, name string, err error) {
	if out == "" {
		return "", "", cli.Usagef("--output is required")
	}
	if bk.IsRemote(out) {
		return remoteRef(out, "--output")
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return "", "", cli.Usagef("--output %s is a directory: give a backup file name in it, e.g. %s", out,
			filepath.Join(out, "full_YYYYMMDD_HHMMSS"))
	}
	if strings.HasSuffix(out, string(os.PathSeparator)) {
		return "", "", cli.Usagef("--output %s names a directory: give a backup file name in it", out)
	}
	dir, base := filepath.Split(out)
	name = strings.TrimSuffix(base, bk.Ext)
	if name == "" || strings.HasPrefix(name, ".") {
		return "", "", cli.Usagef("--output %s: the backup name must not be empty or start with a dot", out)
	}
	if dir == "" {
		dir = "."
	}
	return filepath.Clean(dir), name, nil
}

// checkOutputDir fails with a clear message when dir cannot be a backup
// directory: a path component is a regular file, or dir is not writable.
// It never creates anything (the engine creates missing directories).
func checkOutputDir(dir string) error {
	if bk.IsRemote(dir) {
		return nil // the engine checks the bucket before writing anything
	}
	for d := dir; ; {
		st, err := os.Stat(d)
		if err == nil {
			if !st.IsDir() {
				if d == dir {
					return fmt.Errorf("backup directory %s: is a file, not a directory", dir)
				}
				return fmt.Errorf("backup directory %s: %s is a file, not a directory", dir, d)
			}
			if d == dir && !writable(dir) {
				return fmt.Errorf("backup directory %s: not writable (permission denied)", dir)
			}
			return nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return nil
		}
		d = parent
	}
}

// backupError adds the flags to use where the operator needs a hint.
func backupError(err error, dir string) error {
	switch {
	case errors.Is(err, bk.ErrNoBase):
		if !strings.Contains(err.Error(), dir) {
			err = fmt.Errorf("%s: %w", dir, err)
		}
		return cli.WithHint(err, "use --type full, or --full-if-no-base")
	case errors.Is(err, engine.ErrExists):
		return cli.WithHint(err, "use --force to overwrite")
	}
	return classify(err)
}

// hintError replaces an error's message and keeps it for errors.Is.
type hintError struct {
	msg string
	err error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }

// classify maps backup errors to exit codes: a damaged backup or chain is
// an integrity problem (4), an invalid name a usage error (2).
func classify(err error) error {
	var (
		ee *cli.ExitError
		ue *cli.UsageError
	)
	switch {
	case err == nil, errors.As(err, &ee), errors.As(err, &ue):
		return err
	case errors.Is(err, bk.ErrVerifyFailed), errors.Is(err, bk.ErrBrokenChain):
		return &cli.ExitError{Code: cli.ExitCorrupt, Err: err}
	case errors.Is(err, engine.ErrInvalid):
		return &cli.UsageError{Err: err}
	}
	return err
}

// addInputFlag registers --input, the operations guide's name for the
// database to back up, as a deprecated alias of --db (the name every tool
// uses), so the guide's scripts keep working.
func addInputFlag(cmd *cobra.Command) {
	cli.DeprecatedAlias(cmd, "input", "db")
}

// openDB opens the database at path after cli.CheckDBFile (a missing file
// is reported, never created).
func openDB(path string, g *cli.Globals, readOnly bool) (*engine.DB, error) {
	if err := cli.CheckDBFile(path); err != nil {
		return nil, err
	}
	return engine.OpenWithConfig(path, engine.Config{ReadOnly: readOnly, BusyTimeout: g.BusyTimeout(cli.DefaultBusyTimeout)})
}

// engineOptions are the engine/backup options common to every command.
func engineOptions(opts *Options) bk.Options {
	return bk.Options{
		S3:          bk.S3Config{Endpoint: opts.S3Endpoint},
		BusyTimeout: opts.Globals.BusyTimeout(cli.DefaultBusyTimeout),
		Now:         opts.Clock.Now,
		Logger:      opts.Globals.Logger(opts.IO),
	}
}

func lsnRange(base, end uint64) string {
	return strconv.FormatUint(base, 10) + ".." + strconv.FormatUint(end, 10)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func msDuration(m float64) time.Duration { return time.Duration(m * float64(time.Millisecond)) }

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writable reports whether this process may create files in dir.
func writable(dir string) bool {
	return unix.Access(dir, unix.W_OK) == nil
}
