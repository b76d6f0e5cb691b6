// Package healthcheck is sombra-health-check: a health verdict for a
// database with the individual checks behind it, exiting with the
// monitoring-plugin codes (0 healthy, 1 degraded, 2 unhealthy, 3 unknown).
package healthcheck

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine/health"
	"github.com/sombradb/sombra/internal/cli"
)

// Options is everything sombra-health-check needs.
type Options struct {
	IO      cli.IOStreams
	Globals cli.Globals
	// Clock is the time checks measure ages against (nil: real time).
	Clock cli.Clock
	// DiskUsage replaces statfs(2) in tests (nil: the real volume).
	DiskUsage func(path string) (free, total uint64, err error)

	Deep          bool
	SamplePages   int
	FullVerifyAge time.Duration
	WALThreshold  cli.ByteSize
	FragThreshold float64
	CheckpointAge time.Duration
	MinFreeDisk   string // SIZE or PCT%; "" = the default
	BackupDir     string
	BackupAge     time.Duration
	MaxLag        time.Duration
}

const long = `Check the health of a Sombra database and print a verdict — healthy,
degraded or unhealthy, the worst of the individual checks — with the checks
behind it:

    header               the header page is readable and valid
    page_checksums       page checksums: every page written since the last
                         verification and a sample of --sample-pages pages
                         spread over the file; every page with --deep, and
                         when the pages written are unknown (the first
                         check, after a compaction or restore)
    full_verification_age  time since every page was last verified:
                         degraded above --full-verify-age
    structure            (--deep) trees, free list, edges and indexes agree
    wal_size             WAL size: degraded above --wal-threshold, unhealthy
                         above four times it
    fragmentation        free share of the file: degraded above
                         --frag-threshold
    checkpoint_age       degraded when WAL frames have waited longer than
                         --checkpoint-age since the last checkpoint (a WAL
                         with nothing pending is healthy whatever its age)
    disk_space           free space on the database's volume: degraded below
                         --min-free-disk, unhealthy below a quarter of it
    locks                who holds the writer lock and who is reading
                         (informational, always healthy)
    backup_age           (--backup-dir) age of the newest *.backup file under
                         the directory: degraded above --backup-age,
                         unhealthy when there is none
    verified_backup_age  (--backup-dir) age of the newest backup whose last
                         verification (sombra-backup verify) succeeded:
                         degraded above --backup-age or when none is
                         verified, unhealthy when the newest backup failed
                         verification
    replication          (a replicated database, while its sombra-server or
                         application runs) role and lag from
                         NAME.db-replication: degraded when a replica lags
                         more than --max-lag, the node lost its NATS
                         connection, or the file is no longer updated (its
                         process was killed), unhealthy when the node
                         diverged or stopped applying

The database is opened read-only and never modified. What was verified is
recorded next to it in NAME.db-verified (LSN and times, JSON), and the check
starts the checkpoint change log NAME.db-changes that tells it which pages
were written since; either file may be deleted at the cost of one check
that verifies every page.

--min-free-disk takes a size (10GiB) or a percentage of the volume (10%).
By default the minimum is 1 GiB or 5% of the volume, whichever is less.

JSON OUTPUT (--json, schema_version 2)

    schema_version   always 2
    db               database file as given (--db)
    status           "healthy", "degraded" or "unhealthy"
    healthy          status == "healthy"
    checked_at       time of the check (RFC 3339, UTC)
    checks           [{name, status, healthy, message, value, threshold,
                     unit}]: name as listed above; value is the measured
                     quantity and threshold the limit beyond which the check
                     is degraded, both in unit ("bytes", "percent",
                     "seconds", "issues", "readers") or null

EXIT STATUS (monitoring-plugin convention)

    0 healthy, 1 degraded, 2 unhealthy (including corruption found),
    3 unknown: the check could not run (missing file, not a database,
    unreadable, locked by compaction past --wait, bad flags).`

const example = `  sombra-health-check --db /data/production.db
  sombra-health-check --db /data/production.db --deep
  sombra-health-check --db /data/production.db --backup-dir /backups/sombra
  sombra-health-check --db /data/production.db --wal-threshold 1GiB --frag-threshold 50
  sombra-health-check --db /data/production.db --json | jq -r '.checks[] | select(.healthy | not) | .message'`

// NewCommand returns the sombra-health-check root command on streams.
func NewCommand(streams cli.IOStreams) *cobra.Command {
	return NewCmd(&Options{IO: streams}, nil)
}

// NewCmd builds the command on opts; runF (nil: Run) does the work.
func NewCmd(opts *Options, runF func(*Options) error) *cobra.Command {
	cmd := cli.NewRoot("sombra-health-check", "Check a database's health (exit 0 healthy, 1 degraded, 2 unhealthy, 3 unknown)",
		long, example, &opts.Globals, opts.IO)
	cli.UseHealthExitCodes(cmd)
	cmd.Args = cobra.NoArgs
	opts.WALThreshold = health.DefaultWALThreshold
	f := cmd.Flags()
	f.BoolVar(&opts.Deep, "deep", false, "verify every page and the structure, not a sample of checksums")
	f.IntVar(&opts.SamplePages, "sample-pages", health.DefaultSamplePages, "pages to checksum without --deep, besides those written since the last verification")
	cli.DurationVar(f, &opts.FullVerifyAge, "full-verify-age", health.DefaultFullVerifyAge, "age above which the last verification of every page is too old (e.g. 7d, 2w)")
	f.Var(&opts.WALThreshold, "wal-threshold", "WAL `size` above which the database is degraded (unhealthy above 4x)")
	f.Float64Var(&opts.FragThreshold, "frag-threshold", health.DefaultFragThreshold, "fragmentation `PCT` above which the database is degraded")
	cli.DurationVar(f, &opts.CheckpointAge, "checkpoint-age", health.DefaultCheckpointAge, "how long WAL frames may wait for a checkpoint (e.g. 30m, 6h, 1d)")
	f.StringVar(&opts.MinFreeDisk, "min-free-disk", "", "free disk space below which the database is degraded: a `SIZE` or PCT% (default: 1GiB or 5%, whichever is less)")
	f.StringVar(&opts.BackupDir, "backup-dir", "", "also check the backups in `DIR`")
	cli.DurationVar(f, &opts.BackupAge, "backup-age", health.DefaultBackupAge, "age above which the newest backup is too old (e.g. 26h, 2d, 1w)")
	cli.DurationVar(f, &opts.MaxLag, "max-lag", health.DefaultReplicationLag, "replication lag above which a replica is degraded (e.g. 10s, 1m)")
	_ = cmd.MarkFlagDirname("backup-dir")
	cmd.RunE = func(*cobra.Command, []string) error {
		if opts.SamplePages <= 0 {
			return cli.Usagef("--sample-pages %d: want a positive number", opts.SamplePages)
		}
		if opts.FragThreshold <= 0 || opts.FragThreshold > 100 {
			return cli.Usagef("--frag-threshold %g: want a percentage above 0 and up to 100", opts.FragThreshold)
		}
		if opts.WALThreshold <= 0 || opts.CheckpointAge <= 0 || opts.BackupAge <= 0 || opts.FullVerifyAge <= 0 || opts.MaxLag <= 0 {
			return cli.Usagef("--wal-threshold, --checkpoint-age, --backup-age, --full-verify-age and --max-lag must be positive")
		}
		if runF != nil {
			return runF(opts)
		}
		return Run(opts)
	}
	return cmd
}

// remedies are the commands that carry out the engine's remedies; the
// message of a check that has one ends with "; run" and the command.
var remedies = map[health.Remedy]string{
	health.RemedyRepair:             "sombra-repair",
	health.RemedyCheckpointTruncate: "sombra-checkpoint --mode truncate",
	health.RemedyCompact:            "sombra-compact",
	health.RemedyVerifyBackup:       "sombra-backup verify",
	health.RemedyDeepCheck:          "sombra-health-check --deep",
}

// Result is the --json document.
type Result struct {
	SchemaVersion int            `json:"schema_version"`
	Path          string         `json:"db"`
	Status        health.Status  `json:"status"`
	Healthy       bool           `json:"healthy"`
	CheckedAt     time.Time      `json:"checked_at"`
	Checks        []health.Check `json:"checks"`
}

// Run checks the database, prints the report and returns an ExitError
// carrying the verdict's exit code.
func Run(opts *Options) error {
	g := &opts.Globals
	path, err := g.DBPath()
	if err != nil {
		return err
	}
	ho := health.Options{Deep: opts.Deep, SamplePages: opts.SamplePages, FullVerifyAge: opts.FullVerifyAge, WALThreshold: int64(opts.WALThreshold),
		FragThreshold: opts.FragThreshold, CheckpointAge: opts.CheckpointAge, BackupDir: opts.BackupDir,
		BackupAge: opts.BackupAge, ReplicationLag: opts.MaxLag, BusyTimeout: g.BusyTimeout(time.Second), Now: opts.Clock.Now,
		DiskUsage: opts.DiskUsage}
	if err := parseMinFree(opts.MinFreeDisk, &ho); err != nil {
		return err
	}
	// The same words as every other tool for a missing file or a directory.
	if err := cli.CheckDBFile(path); err != nil {
		return err
	}
	var stop func()
	ho.Progress, stop = cli.ProgressFunc(opts.IO, g, "checking "+filepath.Base(path))
	rep, err := health.CheckFileContext(g.Context(), path, ho)
	stop()
	if err != nil {
		return err
	}
	for i := range rep.Checks {
		if cmd := remedies[rep.Checks[i].Remedy]; cmd != "" {
			rep.Checks[i].Message += "; run " + cmd
		}
	}
	res := Result{SchemaVersion: cli.SchemaVersion, Path: rep.Path, Status: rep.Status, Healthy: rep.Healthy(),
		CheckedAt: cli.Timestamp(rep.CheckedAt), Checks: rep.Checks}
	if err := cli.NewPrinter(opts.IO, g).Result(res, func(h *cli.Human) { human(h, res) }); err != nil {
		return err
	}
	if g.Quiet && !g.JSON && rep.Status != health.Healthy {
		// --quiet means nothing on success; a degraded or unhealthy
		// database is not success, and cron mail (or the log) should say
		// why, in one line on stderr as errors are.
		fmt.Fprintf(opts.IO.ErrOut, "%s: %s\n", "sombra-health-check", problemLine(res))
	}
	switch rep.Status {
	case health.Degraded:
		return &cli.ExitError{Code: cli.HealthDegraded}
	case health.Unhealthy:
		return &cli.ExitError{Code: cli.HealthUnhealthy}
	}
	return nil
}

func parseMinFree(s string, ho *health.Options) error {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
		if err != nil || p <= 0 || p >= 100 {
			return cli.Usagef("--min-free-disk %q: want a size (10GiB) or a percentage between 0 and 100 (5%%)", s)
		}
		ho.MinFreeDiskPercent = p
	default:
		n, err := cli.ParseByteSize(s)
		if err != nil || n <= 0 {
			return cli.Usagef("--min-free-disk %q: want a size (10GiB) or a percentage (5%%)", s)
		}
		ho.MinFreeDisk = n
	}
	return nil
}

func human(h *cli.Human, r Result) {
	word := func(s health.Status) string {
		switch s {
		case health.Healthy:
			return h.Good(s.String())
		case health.Degraded:
			return h.Warn(s.String())
		default:
			return h.Bad(s.String())
		}
	}
	var bad []string
	for _, c := range r.Checks {
		if !c.Healthy {
			bad = append(bad, c.Name)
		}
	}
	summary := fmt.Sprintf("%s: %s", r.Path, word(r.Status))
	if len(bad) > 0 {
		summary += fmt.Sprintf(" (%s)", strings.Join(bad, ", "))
	} else {
		summary += fmt.Sprintf(" (%d checks passed)", len(r.Checks))
	}
	// In a pipe the output is pure TSV (header line, one row per check)
	// for awk and cut; the verdict is the exit status.
	if h.TTY() {
		h.Line("%s", summary)
	}
	rows := make([][]string, len(r.Checks))
	for i, c := range r.Checks {
		rows[i] = []string{c.Name, word(c.Status), c.Message}
	}
	h.Table([]string{"check", "status", "message"}, rows)
}

// problemLine is the one line --quiet prints when the database is not
// healthy: the verdict and each failing check with its message.
func problemLine(r Result) string {
	var parts []string
	for _, c := range r.Checks {
		if !c.Healthy {
			parts = append(parts, c.Name+": "+c.Message)
		}
	}
	return fmt.Sprintf("%s: %s: %s", r.Path, r.Status, strings.Join(parts, "; "))
}
