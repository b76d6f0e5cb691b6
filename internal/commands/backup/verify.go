package backup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine"
	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/cli"
)

// VerifyOptions is everything `sombra-backup verify` needs.
type VerifyOptions struct {
	Root   *Options
	Dir    string // --dir
	Name   string // --name, the same as the argument
	Backup string // the argument: a path or a name
	TmpDir string // --tmpdir
	WAL    bool   // --wal: verify the WAL archive instead of a backup
}

const verifyLong = `Verify a backup and the chain it depends on: the header and trailer of
every backup in the chain, the links between them (parent present, same
database, LSN ranges contiguous), the checksum of every page record and
every page, and the body checksums; then restore the chain to a temporary
file next to the backup, run a full integrity check on it and compare its
logical hash with the one recorded when the backup was taken. The
trial restore goes to --tmpdir (default $TMPDIR, else /tmp), never into
the backup directory, so a read-only backup directory can be verified;
its free space is checked first. The temporary file is removed afterwards
(and those of killed verifications with it); the outcome is recorded in
the catalog (see list) when the directory is writable.

A verification that cannot be carried out (no room for the trial restore)
is "could not verify", exit 1: it says nothing about the backup, and the
backup's last recorded verdict is kept.

The backup is named as in every other subcommand, --dir DIR --name NAME,
or by the argument: a backup file (DIR/NAME.backup) or, with --dir, a
backup name.

--wal verifies the WAL archive of --dir (DIR/wal, see archive-wal) instead
of a backup: every segment's header, trailer and checksums, every page
image, and the gaps between the segments of one database. Segments of an
encrypted database are sealed: each is authenticated as a whole and its
pages opened with the key from SOMBRA_ENCRYPTION_KEY. Without that key (or
with another one) they are reported "could not verify: key required"
(exit 1), not as damaged. Its --json document: schema_version, dir,
archive_dir, ok, verdict ("ok", "damaged" or "could not verify"),
verified (segments that passed), segments (name, path,
db_file_id, first_lsn, last_lsn, first_commit, last_commit, transactions,
size, sealed, error), gaps, error, duration_ms.

JSON OUTPUT (--json, schema_version 2)

    schema_version  always 2
    name            backup name
    path            backup file
    ok              true when every check passed
    chain           backup names restored, full backup first
    end_lsn         LSN of the last transaction in the backup
    pages_checked   page records verified
    node_count, edge_count  counted in the trial restore
    logical_hash    logical hash of the trial restore (null if not checked)
    hash_checked    true when the logical hash was compared
    hash_recorded   false when the backup recorded no hash (--no-hash)
    issues          integrity problems of the trial restore (may be empty)
    error           why verification failed, null when ok
    warnings        list of strings (e.g. the catalog could not be updated)
    verified_at     time of the verification (RFC 3339, UTC)
    duration_ms     wall time of the verification

When verification fails the document is printed with ok false and the
error is also reported on stderr.

EXIT STATUS

    0 the backup is good; 1 failed (no such backup, not a backup file, I/O,
    could not verify: no room for the trial restore, or --wal without the
    key of sealed segments);
    2 usage error; 4 verification failed: corruption (the error names the
    backup file and page), a broken chain or a trial restore that does not
    match.`

const verifyExample = `  sombra-backup verify --dir /backups/sombra --name inc_20240116_120000
  sombra-backup verify /backups/sombra/full_20240115_120000.backup
  sombra-backup verify /backups/sombra/inc_20240116_120000.backup --json | jq .ok
  SOMBRA_ENCRYPTION_KEY=... sombra-backup verify --dir /backups/sombra --wal`

// NewVerifyCmd builds `sombra-backup verify` on root's streams and globals;
// runF (nil: RunVerify) does the work.
func NewVerifyCmd(root *Options, runF func(*VerifyOptions) error) *cobra.Command {
	opts := &VerifyOptions{Root: root}
	cmd := &cobra.Command{
		Use:     "verify {--dir DIR --name NAME | PATH | --dir DIR --wal}",
		Short:   "Verify a backup and its chain with checksums and a trial restore",
		Long:    verifyLong,
		Example: verifyExample,
		Args:    cobra.MaximumNArgs(1),
	}
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "backup `DIR`ectory")
	cmd.Flags().StringVar(&opts.Name, "name", "", "backup `NAME` to verify (or give DIR/NAME.backup as the argument)")
	_ = cmd.RegisterFlagCompletionFunc("name", cli.CompleteBackupNames("dir"))
	cmd.Flags().StringVar(&opts.TmpDir, "tmpdir", "", "`DIR`ectory for the trial restore (default $TMPDIR, else /tmp)")
	cmd.Flags().BoolVar(&opts.WAL, "wal", false, "verify the WAL archive of --dir (DIR/wal) instead of a backup")
	_ = cmd.MarkFlagDirname("dir")
	_ = cmd.MarkFlagDirname("tmpdir")
	cmd.ValidArgsFunction = cli.CompleteBackupNames("dir")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		if opts.WAL {
			if len(args) > 0 || opts.Name != "" {
				return cli.Usagef("--wal verifies the WAL archive of --dir, not a backup: give no backup name")
			}
			if opts.Dir == "" {
				return cli.Usagef("--wal needs --dir DIR (the archive is DIR/wal)")
			}
			if runF != nil {
				return runF(opts)
			}
			return RunVerifyWAL(opts)
		}
		switch {
		case len(args) == 1 && opts.Name != "":
			return cli.Usagef("give the backup as --name or as an argument, not both")
		case len(args) == 1:
			opts.Backup = args[0]
		case opts.Name != "":
			opts.Backup = opts.Name
		default:
			return cli.Usagef("no backup given: --dir DIR --name NAME, or a backup file DIR/NAME.backup")
		}
		if runF != nil {
			return runF(opts)
		}
		return RunVerify(opts)
	}
	return cmd
}

// VerifyResult is the --json document of verify.
type VerifyResult struct {
	SchemaVersion int       `json:"schema_version"`
	Name          string    `json:"name"`
	Path          string    `json:"path"`
	OK            bool      `json:"ok"`
	Chain         []string  `json:"chain"`
	EndLSN        uint64    `json:"end_lsn"`
	PagesChecked  uint64    `json:"pages_checked"`
	Nodes         uint64    `json:"node_count"`
	Edges         uint64    `json:"edge_count"`
	LogicalHash   *string   `json:"logical_hash"`
	HashChecked   bool      `json:"hash_checked"`
	HashRecorded  bool      `json:"hash_recorded"`
	Issues        []string  `json:"issues"`
	Error         *string   `json:"error"`
	Warnings      []string  `json:"warnings"`
	VerifiedAt    time.Time `json:"verified_at"`
	DurationMS    float64   `json:"duration_ms"`
}

// RunVerify verifies one backup and prints the outcome.
func RunVerify(opts *VerifyOptions) error {
	o := opts.Root
	dir, name, err := backupRef(opts.Dir, opts.Backup)
	if err != nil {
		return err
	}
	path := joinRef(dir, name+bk.Ext)
	if !bk.IsRemote(dir) {
		if err := notABackup(path); err != nil {
			return err // before Verify, which would record it in a catalog there
		}
	}
	start := o.Clock.Now()
	eo := engineOptions(o)
	eo.TempDir = opts.TmpDir
	// Bytes of the chain restored to the scratch file, then of the file
	// checked.
	var stop func()
	eo.Progress, stop = cli.ProgressFunc(o.IO, &o.Globals, "verify "+name)
	v, verr := bk.VerifyContext(o.Globals.Context(), dir, name, eo)
	stop()
	took := o.Clock.Since(start)
	if verr != nil && !integrityProblem(verr) {
		if errors.Is(verr, bk.ErrCannotVerify) {
			err := fmt.Errorf("could not verify %s (not a verdict on the backup): %w", name, verr)
			if errors.Is(verr, syscall.ENOSPC) || errors.Is(verr, syscall.EDQUOT) {
				err = cli.WithHint(err, "give --tmpdir on a larger file system")
			}
			return err
		}
		return classify(verr)
	}
	res := VerifyResult{SchemaVersion: cli.SchemaVersion, Name: name, Path: path,
		OK: verr == nil, Chain: []string{}, Issues: []string{}, Warnings: []string{}, DurationMS: ms(took)}
	if v != nil {
		res.Chain = nonNil(v.Chain)
		res.EndLSN, res.PagesChecked, res.Nodes, res.Edges = v.EndLSN, v.PagesChecked, v.Nodes, v.Edges
		res.LogicalHash, res.HashChecked, res.HashRecorded = strPtr(v.LogicalHash), v.HashChecked, v.HashRecorded
		res.Warnings = nonNil(v.Warnings)
		res.Issues = nonNil(v.Issues)
		res.VerifiedAt = cli.Timestamp(v.Time)
	}
	if verr != nil {
		msg := verr.Error()
		res.Error = &msg
	}
	err = cli.NewPrinter(o.IO, &o.Globals).Result(res, func(h *cli.Human) { verifySummary(h, res) })
	if verr != nil {
		return &cli.ExitError{Code: cli.ExitCorrupt, Err: verr}
	}
	return err
}

// notABackup fails for an existing file that does not even start like a
// backup (wrong magic): some other file named *.backup.
func notABackup(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // Verify reports it
	}
	defer f.Close()
	b := make([]byte, bk.HeaderSize)
	n, _ := io.ReadFull(f, b)
	if _, err := bk.DecodeHeader(b[:n]); errors.Is(err, bk.ErrNotABackup) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// integrityProblem reports whether err means the backup is damaged (as
// opposed to missing, unreadable for another reason, or misnamed).
func integrityProblem(err error) bool {
	return errors.Is(err, engine.ErrCorrupt) || errors.Is(err, bk.ErrVerifyFailed) || errors.Is(err, bk.ErrBrokenChain)
}

func verifySummary(h *cli.Human, r VerifyResult) {
	result := h.Good("ok")
	if !r.OK {
		result = h.Bad("FAILED")
	}
	var hash string
	switch {
	case r.HashChecked && r.LogicalHash != nil:
		hash = "matches " + *r.LogicalHash
	case !r.HashRecorded && len(r.Chain) > 0:
		hash = "not recorded in the backup (taken with --no-hash)"
	default:
		hash = "not compared (verification stopped before)"
	}
	pairs := [][2]string{
		{"backup", r.Name},
		{"path", r.Path},
		{"result", result},
		{"chain", strings.Join(r.Chain, " -> ")},
		{"end lsn", strconv.FormatUint(r.EndLSN, 10)},
		{"pages checked", strconv.FormatUint(r.PagesChecked, 10)},
		{"nodes", strconv.FormatUint(r.Nodes, 10)},
		{"edges", strconv.FormatUint(r.Edges, 10)},
		{"logical hash", hash},
		{"duration", cli.FormatDuration(msDuration(r.DurationMS))},
	}
	if r.Error != nil {
		pairs = append(pairs, [2]string{"error", *r.Error})
	}
	h.KeyValues(pairs)
	for _, is := range r.Issues {
		h.Line("%s %s", h.Bad("issue:"), is)
	}
	for _, w := range r.Warnings {
		h.Line("%s %s", h.Warn("warning:"), w)
	}
}

// backupRef turns a verify or restore argument (DIR/NAME.backup, NAME with
// --dir) into the backup directory and name.
func backupRef(dir, arg string) (string, string, error) {
	if arg == "" {
		return "", "", cli.Usagef("no backup given")
	}
	if bk.IsRemote(arg) || bk.IsRemote(dir) {
		if !bk.IsRemote(arg) {
			if strings.Contains(arg, "/") {
				return "", "", cli.Usagef("%s is not in --dir %s", arg, dir)
			}
			arg = joinRef(dir, arg)
		}
		d, name, err := remoteRef(arg, "backup")
		if err == nil && dir != "" && d != strings.TrimSuffix(dir, "/") {
			return "", "", cli.Usagef("%s is not in --dir %s", arg, dir)
		}
		return d, name, err
	}
	d, base := filepath.Split(arg)
	name := strings.TrimSuffix(base, bk.Ext)
	switch {
	case name == "" || strings.HasPrefix(name, "."):
		return "", "", cli.Usagef("%s: not a backup name (NAME or DIR/NAME.backup)", arg)
	case d != "" && dir != "" && filepath.Clean(d) != filepath.Clean(dir):
		return "", "", cli.Usagef("%s is not in --dir %s", arg, dir)
	case d != "":
		return filepath.Clean(d), name, nil
	case dir != "":
		return dir, name, nil
	}
	return ".", name, nil
}
