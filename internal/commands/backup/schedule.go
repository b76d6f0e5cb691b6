package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/spf13/cobra"

	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/cli"
)

// ScheduleOptions is everything `sombra-backup schedule` needs.
type ScheduleOptions struct {
	Root        *Options
	Dir         string // --dir
	Full        string // --full cron spec
	Incremental string // --incremental cron spec
	KeepDays    int    // --keep-days (0: never prune)
	NoHash      bool   // --no-hash
	RunOnce     string // --run-once full|incremental
}

const scheduleLong = `Run in the foreground and take backups on a cron schedule: full backups on
--full, incremental ones on --incremental (standard 5-field cron specs in
local time, or descriptors such as @daily and @every 6h; prefix a spec
with CRON_TZ=UTC for another zone). Give one or both.

Each run backs up --db into --dir as full_YYYYMMDD_HHMMSS.backup or
inc_YYYYMMDD_HHMMSS.backup, verifies the new backup (checksums, chain and
a trial restore), and with --keep-days N prunes backups older than N days
(never breaking a chain; see prune). An incremental run with nothing to
build on takes a full backup instead. A failed run is logged and the
schedule goes on; runs never overlap (one that is due while another is
still running waits, or is skipped if its own previous run is still
waiting). The database is opened read-only for each run and closed after,
so it is never held between runs.

Every run is logged on stderr with log/slog (start, backup, verification,
prune, failure), at level info unless --log-level says otherwise; use
--log-format json for a log collector. SIGINT or SIGTERM stops the
schedule cleanly: a running backup is finished first.

--run-once full|incremental takes one scheduled run now (backup, verify,
prune) and exits with its status: for a test of the set-up, or to drive
the same run from an external scheduler.

JSON OUTPUT (--json, schema_version 2)

Printed when the schedule stops (or after --run-once):

    schema_version  always 2
    db              database file (--db)
    dir             backup directory
    full            --full spec ("" when not given)
    incremental     --incremental spec ("" when not given)
    keep_days       --keep-days (0: no pruning)
    runs_total      runs made
    runs_failed     runs that failed
    runs            the last 100 runs, oldest first, each:
      type          full or incremental (as scheduled)
      name          backup name
      started_at    start time (RFC 3339, UTC)
      ok            true when backup, verification and prune succeeded
      error         why the run failed, null when ok
      backup        the backup's document (as sombra-backup --json prints
                    it), null when no backup was taken
      verified      true when the new backup verified
      pruned        {deleted, bytes_freed}, null when not pruned
      duration_ms   wall time of the run

EXIT STATUS

    0 stopped by a signal (failed runs are logged, not fatal), or
    --run-once succeeded; 1 failed (missing file, not a database, I/O; with
    --run-once: the run failed); 2 usage error (including a bad cron
    spec); 3 database locked (--run-once); 4 corruption found (--run-once:
    the backup did not verify).`

const scheduleExample = `  # the operations guide's weekly full / daily incremental, 30 days kept
  sombra-backup schedule --db /data/production.db --dir /backups/sombra \
    --full "0 3 * * 0" --incremental "0 3 * * 1-6" --keep-days 30
  sombra-backup schedule --db app.db --dir backups --incremental "@every 1h" --log-format json
  sombra-backup schedule --db app.db --dir backups --run-once incremental`

// maxRunsReported bounds the runs kept for the final report.
const maxRunsReported = 100

// NewScheduleCmd builds `sombra-backup schedule` on root's streams and
// globals; runF (nil: RunSchedule with the command's context, which
// SIGINT and SIGTERM cancel) does the work.
func NewScheduleCmd(root *Options, runF func(context.Context, *ScheduleOptions) error) *cobra.Command {
	opts := &ScheduleOptions{Root: root}
	cmd := &cobra.Command{
		Use:     "schedule --db DB --dir DIR [--full SPEC] [--incremental SPEC] [--keep-days N]",
		Short:   "Take backups on a cron schedule (foreground daemon)",
		Long:    scheduleLong,
		Example: scheduleExample,
		Args:    cobra.NoArgs,
	}
	f := cmd.Flags()
	addInputFlag(cmd)
	f.StringVar(&opts.Dir, "dir", "", "backup `DIR`ectory")
	f.StringVar(&opts.Full, "full", "", "cron `SPEC` of full backups, e.g. \"0 3 * * 0\"")
	f.StringVar(&opts.Incremental, "incremental", "", "cron `SPEC` of incremental backups, e.g. \"0 3 * * 1-6\"")
	f.IntVar(&opts.KeepDays, "keep-days", 0, "after each run, prune backups older than `N` days (0: never)")
	f.BoolVar(&opts.NoHash, "no-hash", false, "do not record logical hashes (see sombra-backup --help)")
	f.Var(cli.Choice(&opts.RunOnce, backupTypes...), "run-once", "take one run of `type` full|incremental now and exit")
	_ = cmd.MarkFlagRequired("dir")
	_ = cmd.MarkFlagDirname("dir")
	_ = cmd.RegisterFlagCompletionFunc("run-once", cobra.FixedCompletions(backupTypes, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		// A daemon's log is its output: runs are logged at info unless
		// the operator chose a level.
		if fl := c.Flag("log-level"); fl != nil && !fl.Changed {
			root.Globals.LogLevel = "info"
		}
		if runF != nil {
			return runF(c.Context(), opts)
		}
		return RunSchedule(c.Context(), opts)
	}
	return cmd
}

// ScheduleResult is the --json document of schedule.
type ScheduleResult struct {
	SchemaVersion int         `json:"schema_version"`
	Input         string      `json:"db"`
	Dir           string      `json:"dir"`
	Full          string      `json:"full"`
	Incremental   string      `json:"incremental"`
	KeepDays      int         `json:"keep_days"`
	RunsTotal     int         `json:"runs_total"`
	RunsFailed    int         `json:"runs_failed"`
	Runs          []RunReport `json:"runs"`
}

// RunReport describes one scheduled run.
type RunReport struct {
	Type       string        `json:"type"`
	Name       string        `json:"name"`
	Started    time.Time     `json:"started_at"`
	OK         bool          `json:"ok"`
	Error      *string       `json:"error"`
	Backup     *Result       `json:"backup"`
	Verified   bool          `json:"verified"`
	Pruned     *PruneSummary `json:"pruned"`
	DurationMS float64       `json:"duration_ms"`

	err error
}

// PruneSummary is what a scheduled run pruned.
type PruneSummary struct {
	Deleted    []string `json:"deleted"`
	BytesFreed int64    `json:"bytes_freed"`
}

// RunSchedule runs the schedule until ctx is cancelled (or, with
// --run-once, makes one run).
func RunSchedule(ctx context.Context, opts *ScheduleOptions) error {
	o := opts.Root
	input, err := o.Globals.DBPath()
	if err != nil {
		return err
	}
	if opts.KeepDays < 0 {
		return cli.Usagef("--keep-days %d: must not be negative", opts.KeepDays)
	}
	specs := map[string]string{"full": opts.Full, "incremental": opts.Incremental}
	for _, kind := range backupTypes {
		if specs[kind] == "" {
			continue
		}
		if _, err := cron.ParseStandard(specs[kind]); err != nil {
			return cli.Usagef("--%s %q: not a cron spec (%v): use 5 fields (minute hour day-of-month month day-of-week) or a descriptor such as @daily or @every 1h", kind, specs[kind], err)
		}
	}
	if opts.RunOnce == "" && opts.Full == "" && opts.Incremental == "" {
		return cli.Usagef("give --full SPEC and/or --incremental SPEC (or --run-once full|incremental)")
	}
	// Fail at once on a wrong path rather than at the first run.
	if err := checkOutputDir(opts.Dir); err != nil {
		return err
	}
	db, err := openDB(input, &o.Globals, true)
	if err != nil {
		return err
	}
	db.Close()

	s := &scheduler{opts: opts, input: input, log: o.Globals.Logger(o.IO).With("input", input, "dir", opts.Dir)}
	if opts.RunOnce != "" {
		r := s.run(opts.RunOnce)
		if err := s.report(); err != nil {
			return err
		}
		if !r.OK {
			return r.err
		}
		return nil
	}

	cl := cronLogger{s.log}
	c := cron.New(cron.WithLogger(cl), cron.WithChain(cron.Recover(cl), cron.SkipIfStillRunning(cl)))
	ids := map[string]cron.EntryID{}
	for _, kind := range backupTypes {
		if specs[kind] == "" {
			continue
		}
		kind := kind
		id, err := c.AddFunc(specs[kind], func() { s.run(kind) })
		if err != nil {
			return cli.Usagef("--%s %q: %v", kind, specs[kind], err)
		}
		ids[kind] = id
	}
	c.Start()
	attrs := []any{"keep_days", opts.KeepDays}
	for _, kind := range backupTypes {
		if id, ok := ids[kind]; ok {
			attrs = append(attrs, kind, specs[kind], "next_"+kind, c.Entry(id).Next.Format(time.RFC3339))
		}
	}
	s.log.Info("backup schedule started", attrs...)
	<-ctx.Done()
	// Runs already due but waiting for the one in progress are skipped;
	// the one in progress finishes.
	s.stopping.Store(true)
	s.log.Info("backup schedule stopping (a running backup is finished first)")
	<-c.Stop().Done()
	s.log.Info("backup schedule stopped", "runs", s.total, "failed", s.failed)
	return s.report()
}

// scheduler makes the runs of one schedule, one at a time.
type scheduler struct {
	opts  *ScheduleOptions
	input string
	log   *slog.Logger

	stopping atomic.Bool // set on SIGINT/SIGTERM: start no more runs

	mu     sync.Mutex // held for a whole run: runs never overlap
	total  int
	failed int
	runs   []RunReport
}

// run makes one scheduled run: backup, verify, prune. It logs the
// outcome and never panics the daemon on failure.
func (s *scheduler) run(kind string) RunReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.opts.Root
	r := RunReport{Type: kind, Started: cli.Timestamp(o.Clock.Now())}
	if s.stopping.Load() {
		s.log.Info("backup run skipped: the schedule is stopping", "type", kind)
		return r
	}
	log := s.log.With("type", kind)
	r.err = s.do(kind, &r, log)
	r.OK = r.err == nil
	r.DurationMS = ms(o.Clock.Since(r.Started))
	s.total++
	if r.err != nil {
		s.failed++
		msg := r.err.Error()
		r.Error = &msg
		log.Error("backup run failed", "name", r.Name, "err", msg, "duration_ms", r.DurationMS)
	} else {
		b := r.Backup
		attrs := []any{"name", r.Name, "type_taken", b.Type, "parent", deref(b.Parent), "size", b.Size,
			"pages", b.PagesCopied, "end_lsn", b.EndLSN, "verified", r.Verified}
		if r.Pruned != nil {
			attrs = append(attrs, "pruned", len(r.Pruned.Deleted))
		}
		log.Info("backup run done", append(attrs, "duration_ms", r.DurationMS)...)
	}
	s.runs = append(s.runs, r)
	if len(s.runs) > maxRunsReported {
		s.runs = s.runs[len(s.runs)-maxRunsReported:]
	}
	return r
}

func (s *scheduler) do(kind string, r *RunReport, log *slog.Logger) error {
	o := s.opts.Root
	dir := s.opts.Dir
	prefix := "full_"
	typ := bk.TypeFull
	if kind == "incremental" {
		prefix, typ = "inc_", bk.TypeIncremental
		if !hasRestorable(o, dir) {
			// Nothing to build on yet: this run is a full backup, and is
			// named like one (the engine would also fall back, see below).
			prefix, typ = "full_", bk.TypeFull
			log.Info("no backup to build on in the directory yet: taking a full backup")
		}
	}
	r.Name = freeName(o, dir, prefix+o.Clock.Now().Format("20060102_150405"))
	log = log.With("name", r.Name)
	log.Info("backup run started")

	// The run's own copy of the options: no progress bar between log
	// lines, the daemon's logger for the engine, and an incremental run
	// with nothing to build on takes a full backup.
	// A signal stops the schedule, not the run under way: the daemon's
	// documented contract is that a running backup is finished first.
	bo := &Options{IO: o.IO, Globals: o.Globals.WithContext(context.WithoutCancel(o.Globals.Context())), Clock: o.Clock, NoHash: s.opts.NoHash, S3Endpoint: o.S3Endpoint}
	bo.IO.ErrIsTTY = false
	eo := engineOptions(bo)
	eo.Logger = s.log // the engine logs "backup created" with name and type
	eo.FullIfNoBase = true
	res, err := createBackup(bo, s.input, dir, r.Name, typ, &eo)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	r.Backup = res
	for _, w := range res.Warnings {
		log.Warn("backup warning", "warning", w)
	}

	v, err := bk.Verify(dir, r.Name, eo)
	if err != nil {
		return classify(fmt.Errorf("verify %s: %w", res.Path, err))
	}
	r.Verified = true
	log.Debug("backup verified", "pages_checked", v.PagesChecked, "nodes", v.Nodes, "edges", v.Edges, "hash_checked", v.HashChecked)

	if s.opts.KeepDays > 0 {
		p, err := prune(bo, dir, s.opts.KeepDays, 0, false)
		if err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		r.Pruned = &PruneSummary{Deleted: p.Deleted, BytesFreed: p.BytesFreed}
		if len(p.Deleted) > 0 || len(p.SegmentsDeleted) > 0 {
			log.Info("old backups pruned", "deleted", p.Deleted, "wal_segments_deleted", len(p.SegmentsDeleted), "bytes_freed", p.BytesFreed)
		}
	}
	return nil
}

func (s *scheduler) report() error {
	s.mu.Lock()
	res := ScheduleResult{SchemaVersion: cli.SchemaVersion, Input: s.input, Dir: s.opts.Dir, Full: s.opts.Full,
		Incremental: s.opts.Incremental, KeepDays: s.opts.KeepDays, RunsTotal: s.total, RunsFailed: s.failed,
		Runs: append([]RunReport{}, s.runs...)}
	s.mu.Unlock()
	o := s.opts.Root
	return cli.NewPrinter(o.IO, &o.Globals).Result(res, func(h *cli.Human) {
		if s.opts.RunOnce == "" {
			h.Line("backup schedule stopped after %d runs (%d failed)", res.RunsTotal, res.RunsFailed)
			return
		}
		for _, r := range res.Runs {
			result := h.Good("ok")
			if !r.OK {
				result = h.Bad("FAILED: " + deref(r.Error))
			}
			pairs := [][2]string{{"run", r.Type}, {"backup", r.Name}, {"result", result}}
			if b := r.Backup; b != nil {
				pairs = append(pairs, [2]string{"type taken", b.Type}, [2]string{"size", h.BytesExact(b.Size)},
					[2]string{"lsn range", lsnRange(b.BaseLSN, b.EndLSN)})
			}
			pairs = append(pairs, [2]string{"verified", cli.YesNo(r.Verified)})
			if p := r.Pruned; p != nil {
				pairs = append(pairs, [2]string{"pruned", names(p.Deleted)})
			}
			pairs = append(pairs, [2]string{"duration", cli.FormatDuration(msDuration(r.DurationMS))})
			h.KeyValues(pairs)
		}
	})
}

// freeName returns name, or name_2, name_3, ... if a backup of that name
// exists (two runs in the same second).
func freeName(o *Options, dir, name string) string {
	taken := func(n string) bool {
		_, err := os.Stat(filepath.Join(dir, n+bk.Ext))
		return !errors.Is(err, os.ErrNotExist)
	}
	if bk.IsRemote(dir) {
		names := map[string]bool{}
		list, _ := bk.ListBackupsWithOptions(dir, engineOptions(o))
		for _, b := range list {
			names[b.Name] = true
		}
		taken = func(n string) bool { return names[n] }
	}
	for i := 1; ; i++ {
		n := name
		if i > 1 {
			n = name + "_" + strconv.Itoa(i)
		}
		if !taken(n) {
			return n
		}
	}
}

// hasRestorable reports whether dir holds a backup an incremental backup
// could build on.
func hasRestorable(o *Options, dir string) bool {
	list, err := bk.ListBackupsWithOptions(dir, engineOptions(o))
	if err != nil {
		return false
	}
	for i := range list {
		if list[i].ChainOK() {
			return true
		}
	}
	return false
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// cronLogger sends robfig/cron's own messages to slog: its chatter
// (wake-ups, schedules) at debug, its errors (a recovered panic) at error.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}
