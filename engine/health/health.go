// Package health computes a health verdict for a database file: a list of
// named checks (header, page checksums, WAL size, fragmentation, checkpoint
// age, free disk space, locks, backups), each healthy, degraded or
// unhealthy, and an overall status that is the worst of them (the guide's
// HealthCheck).
//
// CheckFile opens the database read-only and never modifies it.
package health

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/engine/integrity"
	"github.com/sombradb/sombra/engine/internal/maint"
	"github.com/sombradb/sombra/engine/internal/procs"
	"github.com/sombradb/sombra/engine/internal/progress"
	"github.com/sombradb/sombra/engine/vfs"
	"github.com/sombradb/sombra/internal/units"
)

// Status is a health verdict. Its JSON form is "healthy", "degraded" or
// "unhealthy".
type Status int

// The verdicts, from best to worst.
const (
	Healthy Status = iota
	Degraded
	Unhealthy
)

var statusNames = [...]string{"healthy", "degraded", "unhealthy"}

func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// MarshalText encodes the status as its name.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a status name.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if string(b) == n {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("health status %q: %w", b, engine.ErrInvalid)
}

// Names of the checks. Like JSON field names they are API.
const (
	CheckHeader         = "header"
	CheckPageChecksums  = "page_checksums"
	CheckStructure      = "structure"
	CheckWALSize        = "wal_size"
	CheckFragmentation  = "fragmentation"
	CheckCheckpointAge  = "checkpoint_age"
	CheckDiskSpace      = "disk_space"
	CheckLocks          = "locks"
	CheckBackupAge      = "backup_age"
	CheckVerifiedBackup = "verified_backup_age"
	CheckFullVerify     = "full_verification_age"
	// CheckReplication is in replication.go.
)

// Check is one health indicator.
type Check struct {
	Name    string `json:"name"`
	Healthy bool   `json:"healthy"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Value is the measured quantity in Unit, Threshold the value above
	// (for disk_space: below) which the check is degraded; both are null
	// when they do not apply.
	Value     *float64 `json:"value"`
	Threshold *float64 `json:"threshold"`
	Unit      string   `json:"unit"`
	// Remedy is the maintenance that answers a check that is not healthy
	// (RemedyNone when there is none to run). The message does not name a
	// tool: a tool adds its own command for the remedy.
	Remedy Remedy `json:"-"`
}

// Remedy is a maintenance operation that answers a check.
type Remedy int

// The remedies.
const (
	RemedyNone Remedy = iota
	// RemedyRepair: repair the database (engine/repair).
	RemedyRepair
	// RemedyCheckpointTruncate: a truncate checkpoint, the only mode that
	// shrinks the WAL file (full copies the frames but leaves its size).
	RemedyCheckpointTruncate
	// RemedyCompact: compact the database (engine/compact).
	RemedyCompact
	// RemedyVerifyBackup: verify a backup by a trial restore.
	RemedyVerifyBackup
	// RemedyDeepCheck: run the check with Options.Deep, which verifies
	// every page and records when it did.
	RemedyDeepCheck
)

// Report is the outcome of Check.
type Report struct {
	Path      string    `json:"path"`
	Status    Status    `json:"status"`
	CheckedAt time.Time `json:"checked_at"`
	Checks    []Check   `json:"checks"`
}

// Healthy reports whether every check is healthy.
func (r *Report) Healthy() bool { return r.Status == Healthy }

// Defaults of Options.
const (
	DefaultSamplePages        = 64
	DefaultWALThreshold       = 100 << 20
	DefaultFragThreshold      = 30.0
	DefaultCheckpointAge      = time.Hour
	DefaultMinFreeDisk        = 1 << 30
	DefaultMinFreeDiskPercent = 5.0
	DefaultBackupAge          = 26 * time.Hour
	DefaultMinReclaim         = 1 << 20
	DefaultFullVerifyAge      = 7 * 24 * time.Hour
)

// Options tune the checks; zero values mean the defaults above.
type Options struct {
	// Deep verifies every page's checksum and the tree structure, free
	// list and indexes (integrity.CheckDB with Full); otherwise a sample of
	// SamplePages pages is checksummed.
	Deep        bool
	SamplePages int
	// FullVerifyAge: the last verification of every page (--deep, or
	// the default check when it could not tell which pages changed) older
	// than this is degraded.
	FullVerifyAge time.Duration
	// WALThreshold: the WAL above this many bytes is degraded, above four
	// times as many unhealthy.
	WALThreshold int64
	// FragThreshold: fragmentation above this percentage is degraded,
	// if a compaction would give back at least MinReclaim bytes (a small
	// file is not worth compacting for a few pages; default 1 MiB).
	FragThreshold float64
	MinReclaim    int64
	// CheckpointAge: frames waiting longer than this since the last
	// checkpoint are degraded (a WAL with nothing pending is healthy).
	CheckpointAge time.Duration
	// MinFreeDisk and MinFreeDiskPercent: free space on the database's
	// volume below the limit is degraded, below a quarter of it unhealthy.
	// Give one of them to use it alone; with neither, the limit is the
	// smaller of 1 GiB and 5% of the volume (so small volumes are not
	// always short and big ones are not flagged with terabytes left).
	MinFreeDisk        int64
	MinFreeDiskPercent float64
	// BackupDir, if set, adds the backup checks: the newest *.backup file
	// under it (recursively) and the newest backup whose last verification
	// succeeded (from the backup catalog) must be younger than BackupAge.
	BackupDir string
	BackupAge time.Duration
	// ReplicationLag: a replica lagging more is degraded (default 10s).
	ReplicationLag time.Duration
	// ListBackups reads the backup catalog (default backup.ListBackups).
	ListBackups func(dir string) ([]backup.BackupInfo, error)
	// BusyTimeout is how long to wait to open a database that compaction
	// or restore holds exclusively (default 1s).
	BusyTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// DiskUsage reports free and total bytes of the volume holding path
	// (default: statfs(2)).
	DiskUsage func(path string) (free, total uint64, err error)
	// Progress, if set, is called as the integrity check reads the file,
	// with bytes of it checked and its size (see integrity.Options).
	Progress func(done, total int64)

	// ctx is CheckFileContext's context (nil: none), carried in the call's
	// copy of the options.
	ctx context.Context
}

func (o Options) withDefaults() Options {
	if o.SamplePages <= 0 {
		o.SamplePages = DefaultSamplePages
	}
	if o.ReplicationLag <= 0 {
		o.ReplicationLag = DefaultReplicationLag
	}
	if o.FullVerifyAge <= 0 {
		o.FullVerifyAge = DefaultFullVerifyAge
	}
	if o.WALThreshold <= 0 {
		o.WALThreshold = DefaultWALThreshold
	}
	if o.FragThreshold <= 0 {
		o.FragThreshold = DefaultFragThreshold
	}
	if o.MinReclaim <= 0 {
		o.MinReclaim = DefaultMinReclaim
	}
	if o.CheckpointAge <= 0 {
		o.CheckpointAge = DefaultCheckpointAge
	}
	if o.BackupAge <= 0 {
		o.BackupAge = DefaultBackupAge
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DiskUsage == nil {
		o.DiskUsage = Statfs
	}
	if o.ListBackups == nil {
		o.ListBackups = backup.ListBackups
	}
	return o
}

// Statfs returns the free (available to unprivileged users) and total
// bytes of the file system holding path.
func Statfs(path string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), uint64(st.Blocks) * uint64(st.Bsize), nil // field types differ between systems
}

// CheckFile examines the database at path. The error is for failures to check
// at all — the file is missing, unreadable, not a Sombra database, written
// by a newer version, or held exclusively past BusyTimeout; a damaged
// database is not an error but an unhealthy report.
func CheckFile(path string, opts Options) (*Report, error) {
	return CheckFileContext(context.Background(), path, opts)
}

// CheckFileContext is CheckFile, stopped when ctx is cancelled: the
// integrity check stops at the next page read, nothing is recorded (the
// record of the last verification stays as it was) and the error matches
// ctx.Err().
func CheckFileContext(ctx context.Context, path string, opts Options) (*Report, error) {
	opts = opts.withDefaults()
	opts.ctx = ctx
	rep := &Report{Path: path, CheckedAt: opts.Now().UTC()}
	if err := maint.CheckFile(nil, path); err != nil {
		return nil, err
	}
	db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true, BusyTimeout: opts.BusyTimeout})
	var ce *engine.CorruptionError
	switch {
	case errors.As(err, &ce):
		rep.add(Check{Name: CheckHeader, Status: Unhealthy, Message: "header unreadable: " + ce.Error()})
	case err != nil:
		return nil, err
	default:
		err := checkDB(db, opts, rep)
		db.Close()
		if err != nil {
			return nil, err
		}
	}
	rep.add(diskCheck(path, opts))
	if c, ok := replicationCheck(path, opts); ok {
		rep.add(c)
	}
	if opts.BackupDir != "" {
		rep.add(backupCheck(opts))
		if _, err := os.Stat(opts.BackupDir); err == nil {
			rep.add(verifiedBackupCheck(opts))
		}
	}
	return rep, nil
}

func (r *Report) add(c Check) {
	c.Healthy = c.Status == Healthy
	r.Checks = append(r.Checks, c)
	r.Status = max(r.Status, c.Status)
}

func num(v float64) *float64 { return &v }

func checkDB(db *engine.DB, opts Options, rep *Report) error {
	in, err := db.Info()
	if err != nil {
		if errors.Is(err, engine.ErrCorrupt) {
			rep.add(Check{Name: CheckHeader, Status: Unhealthy, Message: "cannot read the catalog: " + err.Error()})
			return nil
		}
		return err
	}
	rep.add(Check{Name: CheckHeader, Status: Healthy, Message: fmt.Sprintf(
		"format version %d, page size %d, %d pages", in.FormatVersion, in.PageSize, in.PageCount)})
	if err := integrityChecks(db, opts, rep); err != nil {
		return err
	}
	rep.add(walCheck(in, opts))
	rep.add(fragCheck(in, opts))
	rep.add(checkpointCheck(in, opts))
	rep.add(lockCheck(db))
	return nil
}

func integrityChecks(db *engine.DB, opts Options, rep *Report) error {
	// Without --deep: every page written since the last recorded
	// verification (found from the WAL and the checkpoint change log),
	// plus a sample of the rest; every page when the record or the log
	// does not reach back (the first check, after a compaction or restore).
	inc, err := planVerification(db, opts)
	if err != nil {
		return fmt.Errorf("integrity check of %s: %w", db.Path(), err)
	}
	io := integrity.Options{Full: opts.Deep, SamplePages: opts.SamplePages, Progress: opts.Progress}
	if inc.full {
		io.SamplePages = 0
	}
	ctx := opts.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ir, err := integrity.CheckDBContext(ctx, db, io)
	if err != nil && !errors.Is(err, engine.ErrCorrupt) {
		return fmt.Errorf("integrity check of %s: %w", db.Path(), err)
	}
	var sums, structure []integrity.Issue
	for _, is := range ir.Issues {
		if is.Kind == "checksum" || is.Kind == "header" {
			sums = append(sums, is)
		} else {
			structure = append(structure, is)
		}
	}
	changed, err := checkPages(db, inc.pages)
	if err != nil {
		return fmt.Errorf("integrity check of %s: %w", db.Path(), err)
	}
	if err := progress.Interrupted(ctx); err != nil { // before anything is recorded
		return fmt.Errorf("integrity check of %s: %w", db.Path(), err)
	}
	sums = mergeIssues(sums, changed)
	var scope string
	if ir.PagesChecked >= int(ir.PageCount) {
		scope = fmt.Sprintf("all %d pages checked", ir.PageCount)
	} else {
		scope = fmt.Sprintf("%d pages written since the last verification and a sample of %d of %d pages checked",
			len(inc.pages), ir.PagesChecked, ir.PageCount)
	}
	if ir.IssuesTruncated {
		// The checker lists only the first integrity.MaxIssues.
		note := integrity.Issue{Severity: integrity.Critical, Kind: "truncated",
			Description: fmt.Sprintf("%d issues in all, only the first %d listed", ir.IssuesTotal, len(ir.Issues))}
		if len(structure) > 0 {
			structure = append(structure, note)
		} else {
			sums = append(sums, note)
		}
	}
	c := issuesCheck(CheckPageChecksums, scope, sums)
	c.Value, c.Unit = num(float64(len(sums))), "issues"
	rep.add(c)
	if opts.Deep {
		if err != nil {
			structure = append(structure, integrity.Issue{Severity: integrity.Critical, Description: err.Error()})
		}
		c := issuesCheck(CheckStructure, "trees, free list, edges and indexes verified", structure)
		c.Value, c.Unit = num(float64(len(structure))), "issues"
		rep.add(c)
	} else if len(structure) > 0 {
		rep.add(issuesCheck(CheckStructure, "", structure))
	}
	rep.add(inc.record(opts, len(sums) == 0))
	return nil
}

// issuesCheck summarises integrity issues: any critical or error issue is
// unhealthy, warnings alone are degraded.
func issuesCheck(name, scope string, issues []integrity.Issue) Check {
	if len(issues) == 0 {
		return Check{Name: name, Status: Healthy, Message: scope + ", no problems"}
	}
	st := Degraded
	for _, is := range issues {
		if is.Severity != integrity.Warning {
			st = Unhealthy
		}
	}
	msg := fmt.Sprintf("%d problem(s): %s", len(issues), issues[0].Description)
	if len(issues) > 1 {
		msg += fmt.Sprintf("; and %d more", len(issues)-1)
	}
	return Check{Name: name, Status: st, Message: msg, Remedy: RemedyRepair}
}

func walCheck(in engine.Info, opts Options) Check {
	c := Check{Name: CheckWALSize, Value: num(float64(in.WALSize)), Threshold: num(float64(opts.WALThreshold)), Unit: "bytes"}
	msg := fmt.Sprintf("WAL is %s (threshold %s)", units.Bytes(in.WALSize), units.Bytes(opts.WALThreshold))
	switch {
	case in.WALSize > 4*opts.WALThreshold:
		c.Status, c.Remedy = Unhealthy, RemedyCheckpointTruncate
	case in.WALSize > opts.WALThreshold:
		c.Status, c.Remedy = Degraded, RemedyCheckpointTruncate
	}
	c.Message = msg
	return c
}

func fragCheck(in engine.Info, opts Options) Check {
	c := Check{Name: CheckFragmentation, Value: num(in.FragmentationPercent), Threshold: num(opts.FragThreshold), Unit: "percent"}
	c.Message = fmt.Sprintf("a compaction would reclaim %.2f%% of the file, %s (threshold %g%%)",
		in.FragmentationPercent, units.Bytes(in.ReclaimableBytes), opts.FragThreshold)
	switch {
	case in.FragmentationPercent <= opts.FragThreshold:
	case in.ReclaimableBytes < opts.MinReclaim:
		c.Message += fmt.Sprintf("; less than %s, not worth a compaction", units.Bytes(opts.MinReclaim))
	default:
		c.Status, c.Remedy = Degraded, RemedyCompact
	}
	return c
}

func checkpointCheck(in engine.Info, opts Options) Check {
	c := Check{Name: CheckCheckpointAge, Threshold: num(opts.CheckpointAge.Seconds()), Unit: "seconds"}
	pending := in.WALFrames - in.WALFramesCheckpointed
	// Age of the oldest waiting frame, not of the last checkpoint: a
	// database written rarely would otherwise be "degraded" after every
	// quiet hour, although its one new frame has waited only a minute.
	since, what := in.Created, "the database was created"
	switch {
	case in.OldestPendingCommit != nil:
		since, what = *in.OldestPendingCommit, "the oldest of them was committed"
	case in.LastCheckpoint != nil:
		since, what = *in.LastCheckpoint, "the last checkpoint"
	}
	age := max(opts.Now().Sub(since), 0)
	c.Value = num(float64(int64(age.Seconds())))
	if pending <= 0 {
		c.Message = "no WAL frames waiting for a checkpoint"
		return c
	}
	c.Message = fmt.Sprintf("%d WAL frames waiting; %s was %s ago (threshold %s)", pending, what, units.Age(age), units.Age(opts.CheckpointAge))
	if age > opts.CheckpointAge {
		c.Status = Degraded
		c.Message += "; is anything checkpointing?"
	}
	return c
}

func lockCheck(db *engine.DB) Check {
	c := Check{Name: CheckLocks, Unit: "readers"}
	ls, err := db.LockState()
	if err != nil {
		c.Message = "lock state unknown: " + err.Error()
		return c
	}
	c.Value = num(float64(len(ls.ReaderPIDs)))
	var parts []string
	switch {
	case ls.Writer.Held:
		parts = append(parts, fmt.Sprintf("writer lock held by pid %d", ls.Writer.PID))
	case ls.Writer.PID != 0 && procs.Alive(ls.Writer.PID):
		// History, and only of a live process: an exited one's pid would
		// send the operator after a ghost (or a stranger that reused it).
		parts = append(parts, fmt.Sprintf("writer lock free (last writer pid %d)", ls.Writer.PID))
	default:
		parts = append(parts, "writer lock free")
	}
	if ls.Checkpointer.Held {
		parts = append(parts, fmt.Sprintf("checkpoint running in pid %d", ls.Checkpointer.PID))
	}
	// Name every other process that has the database open: one that is
	// idle between reads holds no read slot, yet it keeps compaction and
	// restore out, so "no readers" alone would send the operator astray.
	var open []string
	for _, p := range ls.Open {
		if p.PID != os.Getpid() {
			open = append(open, p.String())
		}
	}
	if len(open) > 0 {
		parts = append(parts, fmt.Sprintf("open in %s", strings.Join(open, ", ")))
	}
	switch n := len(ls.ReaderPIDs); n {
	case 0:
		parts = append(parts, "no readers")
	default:
		pids := make([]string, n)
		for i, p := range ls.ReaderPIDs {
			pids[i] = fmt.Sprint(p)
		}
		parts = append(parts, fmt.Sprintf("%d reader(s): pid %s", n, strings.Join(pids, ", ")))
	}
	c.Message = strings.Join(parts, "; ")
	return c
}

func diskCheck(path string, opts Options) Check {
	c := Check{Name: CheckDiskSpace, Unit: "bytes"}
	if real, err := vfs.RealPath(path); err == nil {
		path = real // the file system that holds the file, not its link
	}
	free, total, err := opts.DiskUsage(filepath.Dir(path))
	if err != nil {
		c.Status, c.Message = Degraded, "free space unknown: "+err.Error()
		return c
	}
	var limit int64
	var how string
	pctLimit := int64(opts.MinFreeDiskPercent / 100 * float64(total))
	switch {
	case opts.MinFreeDisk > 0 && opts.MinFreeDiskPercent > 0:
		limit, how = max(opts.MinFreeDisk, pctLimit), fmt.Sprintf("%s or %g%%, whichever is more", units.Bytes(opts.MinFreeDisk), opts.MinFreeDiskPercent)
	case opts.MinFreeDisk > 0:
		limit, how = opts.MinFreeDisk, units.Bytes(opts.MinFreeDisk)
	case opts.MinFreeDiskPercent > 0:
		limit, how = pctLimit, fmt.Sprintf("%g%% of %s", opts.MinFreeDiskPercent, units.Bytes(int64(total)))
	default:
		pctLimit = int64(DefaultMinFreeDiskPercent / 100 * float64(total))
		limit = min(int64(DefaultMinFreeDisk), pctLimit)
		how = fmt.Sprintf("%s or %g%% of %s, whichever is less", units.Bytes(DefaultMinFreeDisk), DefaultMinFreeDiskPercent, units.Bytes(int64(total)))
	}
	c.Value, c.Threshold = num(float64(free)), num(float64(limit))
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(free) / float64(total)
	}
	c.Message = fmt.Sprintf("%s free (%.1f%% of %s; minimum %s)", units.Bytes(int64(free)), pct, units.Bytes(int64(total)), how)
	switch {
	case int64(free) < limit/4:
		c.Status = Unhealthy
	case int64(free) < limit:
		c.Status = Degraded
	}
	return c
}

func backupCheck(opts Options) Check {
	c := Check{Name: CheckBackupAge, Threshold: num(opts.BackupAge.Seconds()), Unit: "seconds"}
	var newest time.Time
	var newestPath string
	err := filepath.WalkDir(opts.BackupDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".backup") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.ModTime().After(newest) {
			newest, newestPath = fi.ModTime(), p
		}
		return nil
	})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.Status, c.Message = Unhealthy, fmt.Sprintf("backup directory %s does not exist", opts.BackupDir)
		return c
	case err != nil:
		c.Status, c.Message = Unhealthy, fmt.Sprintf("cannot read backup directory: %v", err)
		return c
	case newestPath == "":
		c.Status, c.Message = Unhealthy, fmt.Sprintf("no *.backup files in %s", opts.BackupDir)
		return c
	}
	age := max(opts.Now().Sub(newest), 0)
	c.Value = num(float64(int64(age.Seconds())))
	rel, err := filepath.Rel(opts.BackupDir, newestPath)
	if err != nil {
		rel = newestPath
	}
	c.Message = fmt.Sprintf("newest backup %s is %s old (threshold %s)", rel, units.Age(age), units.Age(opts.BackupAge))
	if age > opts.BackupAge {
		c.Status = Degraded
	}
	return c
}

// verifiedBackupCheck finds the newest backup whose last verification
// succeeded. A newest backup whose verification failed is unhealthy: the
// backup that would be restored first is known to be bad.
func verifiedBackupCheck(opts Options) Check {
	c := Check{Name: CheckVerifiedBackup, Threshold: num(opts.BackupAge.Seconds()), Unit: "seconds"}
	list, err := opts.ListBackups(opts.BackupDir)
	if err != nil {
		c.Status, c.Message = Degraded, "cannot read the backup catalog: "+err.Error()
		return c
	}
	var newest, verified *backup.BackupInfo
	for i := range list {
		b := &list[i]
		if b.Error != "" {
			continue
		}
		if newest == nil || b.Created.After(newest.Created) {
			newest = b
		}
		if b.Verified != nil && b.Verified.OK && b.ChainOK() && (verified == nil || b.Created.After(verified.Created)) {
			verified = b
		}
	}
	if newest != nil && newest.Verified != nil && !newest.Verified.OK {
		c.Status = Unhealthy
		c.Message = fmt.Sprintf("newest backup %s failed verification: %s", newest.Name, newest.Verified.Error)
		return c
	}
	if verified == nil {
		c.Status = Degraded
		c.Message = "no verified backup in " + opts.BackupDir
		c.Remedy = RemedyVerifyBackup
		return c
	}
	age := max(opts.Now().Sub(verified.Created), 0)
	c.Value = num(float64(int64(age.Seconds())))
	c.Message = fmt.Sprintf("newest verified backup %s is %s old (threshold %s)", verified.Name, units.Age(age), units.Age(opts.BackupAge))
	if age > opts.BackupAge {
		c.Status = Degraded
	}
	return c
}
