// Package repair verifies, repairs and salvages a database (the guide's
// DatabaseRepair).
//
// Verification is integrity.Check plus a look at the WAL: a torn
// transaction at its end is reported as a warning (recovery ignores it).
//
// Repair needs the database to itself. It checkpoints the WAL and truncates
// it (which makes dropping a torn tail permanent), runs a full check, and
// fixes in one write transaction what can be derived from the node and edge
// records: dangling edges are dropped, the adjacency tree and the label and
// property indexes are reconciled with the records (rebuilt if their pages
// are damaged), counters are recomputed, and the free list is rebuilt when
// it is damaged or pages leaked. The node, edge and catalog trees are the
// source of truth: when one of them is damaged, Repair changes nothing and
// advises a salvage.
//
// Salvage does not trust the trees at all. It reads every page of the
// database file, and the newest committed copy of each page in the WAL,
// decodes node and edge records from the leaf pages (B+tree pages carry the
// tag of their tree), keeps the newest version of each record, and can
// write what it found into a new database, keeping ids.
package repair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/integrity"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/internal/maint"
	"github.com/sombradb/sombra/engine/internal/pager"
	"github.com/sombradb/sombra/engine/internal/progress"
	"github.com/sombradb/sombra/engine/internal/wal"
	"github.com/sombradb/sombra/engine/vfs"
)

// DatabaseRepair verifies, repairs and salvages the database at one path.
type DatabaseRepair struct {
	path string
	// Wait is how long to wait for other connections when the database is
	// locked (Repair and salvage need it to themselves). Zero fails at once
	// with an error matching engine.ErrBusy that names the holder.
	Wait time.Duration
	// Logger receives the engine's logs (default: discarded).
	Logger *slog.Logger
	// Encryption is the key of an encrypted database (nil: plaintext).
	// Repair needs it to open the database; salvage needs it to read the
	// sealed pages, and seals the salvaged database with it too.
	Encryption engine.PageCipher
	// Progress, if set, is called as an integrity check goes (Verify, and
	// Repair's checks before and after it) with bytes of the file checked
	// and the file's size (see integrity.Options.Progress).
	Progress func(done, total int64)
	// FS is the file layer (default: the OS): the database's, and salvage's
	// for reading the source and for writing, renaming and syncing its
	// output, so that tests can fail or cut any of those steps.
	FS vfs.FS
}

// fs is the file layer in use.
func (r *DatabaseRepair) fs() vfs.FS {
	if r.FS == nil {
		return vfs.OS
	}
	return r.FS
}

// NewDatabaseRepair returns a DatabaseRepair for the database at path.
func NewDatabaseRepair(path string) *DatabaseRepair { return &DatabaseRepair{path: path} }

// Path is the database file.
func (r *DatabaseRepair) Path() string { return r.path }

// KindWALTail is the Issue.Kind of a torn transaction at the end of the WAL.
const KindWALTail = "wal-tail"

// RepairReport describes what Repair found and did.
type RepairReport struct {
	Path    string `json:"path"`
	Success bool   `json:"success"` // no issue remains
	// IssuesFound counts the issues found before repairing; Issues lists them.
	// IssuesTruncated says Issues lists only the first
	// integrity.MaxIssues of them.
	IssuesFound     int               `json:"issues_found"`
	IssuesFixed     int               `json:"issues_fixed"`
	IssuesTruncated bool              `json:"issues_truncated"`
	Issues          []integrity.Issue `json:"issues"`
	// Actions says, one line each, what was changed.
	Actions   []string          `json:"actions"`
	Remaining []integrity.Issue `json:"remaining"`
	// Advice says what to do next when Success is false.
	Advice string `json:"advice,omitempty"`
	// NeedsSalvage is set when only a salvage into a new database
	// (SalvageTo) can recover the data; Advice says why.
	NeedsSalvage bool          `json:"needs_salvage,omitempty"`
	Duration     time.Duration `json:"-"`
}

func (r *DatabaseRepair) config(readOnly bool) engine.Config {
	return engine.Config{ReadOnly: readOnly, BusyTimeout: max(r.Wait, time.Millisecond),
		WALAutoCheckpoint: -1, Logger: r.Logger, Encryption: r.Encryption, FS: r.FS}
}

// headerIssue turns a failure to open because of a damaged header into a
// report issue; ok is false for any other error.
func headerIssue(err error) (integrity.Issue, bool) {
	if !errors.Is(err, engine.ErrCorrupt) || errors.Is(err, engine.ErrBusy) {
		return integrity.Issue{}, false
	}
	desc := err.Error()
	var ce *engine.CorruptionError
	if errors.As(err, &ce) {
		desc = fmt.Sprintf("corrupt page %d (the header): %s", ce.Page, ce.Reason)
	}
	return integrity.Issue{Severity: integrity.Critical, Kind: "header", Page: 0, Description: desc}, true
}

// VerifyIntegrity runs a full check (the guide's verify_integrity).
func (r *DatabaseRepair) VerifyIntegrity() (*integrity.Report, error) {
	return r.Verify(integrity.Options{Full: true})
}

// Verify checks the database read-only: it never modifies the database
// file or its WAL. Damage is reported in the Report (a damaged header
// too); the error is for failures to check at all: a missing file, not a
// database, a lock held by compaction or restore.
func (r *DatabaseRepair) Verify(opts integrity.Options) (_ *integrity.Report, err error) {
	return r.VerifyContext(context.Background(), opts)
}

// VerifyContext is Verify, stopped when ctx is cancelled (checked at every
// page read; the error then matches ctx.Err()).
func (r *DatabaseRepair) VerifyContext(ctx context.Context, opts integrity.Options) (_ *integrity.Report, err error) {
	defer maint.Guard(r.path, &err)
	if opts.Progress == nil {
		opts.Progress = r.Progress
	}
	mode := "quick"
	if opts.Full {
		mode = "full"
	}
	if err := maint.CheckFile(r.fs(), r.path); err != nil {
		return nil, err
	}
	db, err := engine.OpenWithConfig(r.path, r.config(true))
	if err != nil {
		if is, ok := headerIssue(err); ok {
			rep := &integrity.Report{Path: r.path, Mode: mode}
			rep.Prepend(is)
			return rep, nil
		}
		return nil, err
	}
	defer db.Close()
	st, err := handle.Pager(db).WAL()
	if err != nil {
		return nil, err
	}
	rep, err := integrity.CheckDBContext(ctx, db, opts)
	if err != nil {
		return rep, err
	}
	if is, ok := walTailIssue(st, handle.Pager(db).PageSize()); ok {
		rep.Prepend(is)
	}
	if rep.Issues == nil {
		rep.Issues = []integrity.Issue{}
	}
	sortIssues(rep.Issues)
	return rep, nil
}

// walTailIssue reports a torn transaction at the end of the WAL: valid
// frames after the last commit frame, a frame whose checksum fails, or a
// partial frame. (Whole frames of an older log generation after the end
// are normal after a WAL restart and are not reported.)
func walTailIssue(st pager.WALState, pageSize int) (integrity.Issue, bool) {
	sc := st.Scan
	partial := sc.TailBytes%wal.FrameSize(pageSize) != 0
	if sc.Uncommitted == 0 && len(sc.CorruptFrames) == 0 && !partial {
		return integrity.Issue{}, false
	}
	var what []string
	if sc.Uncommitted > 0 {
		what = append(what, fmt.Sprintf("%d uncommitted frames", sc.Uncommitted))
	}
	if len(sc.CorruptFrames) > 0 {
		what = append(what, fmt.Sprintf("a damaged frame (%d)", sc.CorruptFrames[0]))
	}
	if partial {
		what = append(what, "a partial frame")
	}
	return integrity.Issue{Severity: integrity.Warning, Kind: KindWALTail,
		Description: fmt.Sprintf("the WAL ends with a torn transaction (%s, %d bytes after the last commit); recovery ignores it, repair truncates it",
			strings.Join(what, ", "), sc.TailBytes)}, true
}

// Repair fixes what can be fixed in place; see the package documentation.
// It needs the database to itself (no other connection may have it open;
// see Wait). A database it cannot repair gives a report with Success false
// and Advice, not an error: errors are for failures to run at all.
func (r *DatabaseRepair) Repair() (_ *RepairReport, err error) {
	return r.RepairContext(context.Background())
}

// RepairContext is Repair, stopped when ctx is cancelled. A cancel during
// the check before any change returns an error matching ctx.Err() with
// the database as it was (but for a WAL folded into it, as every repair
// does first); once the repair has committed, the check after it is
// stopped and the error says that the repair was made and what to run to
// check it.
func (r *DatabaseRepair) RepairContext(ctx context.Context) (_ *RepairReport, err error) {
	defer maint.Guard(r.path, &err)
	check := integrity.Options{Full: true, Progress: r.Progress}
	start := time.Now()
	if err := maint.CheckFile(r.fs(), r.path); err != nil {
		return nil, err
	}
	rep := &RepairReport{Path: r.path, Issues: []integrity.Issue{}, Actions: []string{}, Remaining: []integrity.Issue{}}
	defer func() { rep.Duration = time.Since(start) }()
	db, err := engine.OpenWithConfig(r.path, r.config(false))
	if err != nil {
		if is, ok := headerIssue(err); ok {
			rep.Issues = []integrity.Issue{is}
			rep.Remaining = rep.Issues
			rep.IssuesFound = 1
			rep.adviseSalvage("the database header (page 0) is damaged, so the database cannot be opened")
			return rep, nil
		}
		return nil, err
	}
	defer db.Close()
	p := handle.Pager(db)
	if err := p.ExclusiveLockContext(ctx, r.Wait); err != nil {
		return nil, fmt.Errorf("repair %s: %w", r.path, err)
	}
	st, err := p.WAL()
	if err != nil {
		return nil, err
	}
	walIssue, torn := walTailIssue(st, p.PageSize())
	ck, err := db.CheckpointContext(ctx, engine.CheckpointTruncate)
	if err != nil {
		return nil, fmt.Errorf("repair %s: %w", r.path, err)
	}
	switch {
	case torn:
		rep.Actions = append(rep.Actions, fmt.Sprintf("truncated the WAL, discarding a torn transaction (%d bytes after the last commit)", st.Scan.TailBytes))
	case ck.PagesWritten > 0:
		rep.Actions = append(rep.Actions, fmt.Sprintf("checkpointed the WAL (%d pages) and truncated it", ck.PagesWritten))
	}

	before, err := integrity.CheckDBContext(ctx, db, check)
	if err != nil {
		return nil, err
	}
	if torn {
		rep.Issues = append(rep.Issues, walIssue)
	}
	rep.Issues = append(rep.Issues, before.Issues...)
	sortIssues(rep.Issues)
	rep.IssuesFound = len(rep.Issues) + before.IssuesTotal - len(before.Issues)
	rep.IssuesTruncated = before.IssuesTruncated
	if before.IsHealthy() {
		rep.Success, rep.IssuesFixed = true, rep.IssuesFound
		return rep, nil
	}

	if err := progress.Interrupted(ctx); err != nil {
		return nil, fmt.Errorf("repair %s: before any change: %w", r.path, err)
	}
	tx, err := db.BeginTransaction()
	if err != nil {
		return nil, err
	}
	stats, err := handle.Repair(tx)
	if err != nil {
		tx.Rollback()
		if !errors.Is(err, engine.ErrCorrupt) {
			return nil, fmt.Errorf("repair %s: %w", r.path, err)
		}
		why := err.Error()
		var ce *engine.CorruptionError
		if errors.As(err, &ce) {
			why = ce.Reason
		}
		rep.Remaining = before.Issues // sorted with rep.Issues
		sortIssues(rep.Remaining)
		rep.IssuesFixed = rep.IssuesFound - before.IssuesTotal
		rep.adviseSalvage(why)
		return rep, nil
	}
	if stats.Changed() {
		if err := tx.Commit(); err != nil {
			return nil, fmt.Errorf("repair %s: %w", r.path, err)
		}
		rep.Actions = append(rep.Actions, describe(stats)...)
		if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
			return nil, fmt.Errorf("repair %s: %w", r.path, err)
		}
	} else {
		tx.Rollback()
	}
	after, err := integrity.CheckDBContext(ctx, db, check)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("repair %s: the repair was made (%s) but the check after it was interrupted, so verify the database again: %w",
				r.path, strings.Join(rep.Actions, "; "), err)
		}
		return nil, err
	}
	if after.Issues != nil {
		rep.Remaining = after.Issues
		sortIssues(rep.Remaining)
	}
	rep.IssuesFixed = countFixed(rep.Issues, rep.Remaining)
	if rep.IssuesTruncated || after.IssuesTruncated {
		// The lists are cut: count from the totals instead.
		rep.IssuesFixed = max(rep.IssuesFound-after.IssuesTotal, 0)
	}
	rep.Success = after.IsHealthy()
	if !rep.Success {
		rep.adviseSalvage(plural(len(rep.Remaining), "issue") + " remain after repair")
	}
	return rep, nil
}

// adviseSalvage says that only a salvage into a new database (SalvageTo)
// can recover the data, and why; the tool adds the command to type.
func (rep *RepairReport) adviseSalvage(why string) {
	rep.Advice = why + "; repair cannot fix this in place. Salvage the readable nodes and edges into a new database"
	rep.NeedsSalvage = true
}

// countFixed counts the issues of found that are not in remaining.
func countFixed(found, remaining []integrity.Issue) int {
	left := map[integrity.Issue]int{}
	for _, is := range remaining {
		left[is]++
	}
	n := 0
	for _, is := range found {
		if left[is] > 0 {
			left[is]--
			continue
		}
		n++
	}
	return n
}

// describe turns repair statistics into one line per action.
func describe(s *engine.RepairStats) []string {
	var out []string
	if n := len(s.DanglingEdges); n > 0 {
		ids := make([]string, 0, min(n, 10))
		for _, id := range s.DanglingEdges[:min(n, 10)] {
			ids = append(ids, fmt.Sprint(uint64(id)))
		}
		more := ""
		if n > 10 {
			more = ", …"
		}
		out = append(out, fmt.Sprintf("dropped %s whose endpoints are missing (ids %s%s) and their adjacency entries", plural(n, "edge"), strings.Join(ids, ", "), more))
	}
	for _, t := range []struct {
		name string
		r    engine.TreeRepair
	}{{"adjacency tree", s.Adjacency}, {"label index", s.LabelIndex}, {"property index", s.PropertyIndex}} {
		switch {
		case t.r.Rebuilt:
			out = append(out, fmt.Sprintf("rebuilt the %s from the records (%s); its old pages could not be trusted", t.name, plural(t.r.Added, "entry")))
		case t.r.Changed():
			var parts []string
			if t.r.Removed > 0 {
				parts = append(parts, fmt.Sprintf("removed %s that matched no record", plural(t.r.Removed, "entry")))
			}
			if t.r.Added > 0 {
				parts = append(parts, "added "+plural(t.r.Added, "missing entry"))
			}
			out = append(out, t.name+": "+strings.Join(parts, ", "))
		}
	}
	if s.CountersFixed > 0 {
		out = append(out, "corrected "+plural(s.CountersFixed, "counter"))
	}
	if f := s.FreeList; f.Rebuilt {
		line := fmt.Sprintf("rebuilt the free list (%s", plural(f.FreePages, "free page"))
		if f.Reclaimed > 0 {
			line += fmt.Sprintf(", %s that no tree uses reclaimed", plural(f.Reclaimed, "page"))
		}
		if f.Rewritten > 0 {
			line += fmt.Sprintf(", %s rewritten", plural(f.Rewritten, "unreadable unused page"))
		}
		out = append(out, line+")")
	}
	return out
}

// plural renders "1 edge", "3 edges", "2 entries".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(noun, "y"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
