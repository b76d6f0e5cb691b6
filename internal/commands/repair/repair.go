// Package repair is sombra-repair: verify a database's integrity, repair
// what can be repaired in place, or salvage the readable nodes and edges
// into a new database.
package repair

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/integrity"
	dbrepair "github.com/sombradb/sombra/engine/repair"
	"github.com/sombradb/sombra/internal/cli"
)

// Options is everything sombra-repair needs.
type Options struct {
	IO      cli.IOStreams
	Globals cli.Globals
	// Clock measures the duration reported (nil: real time).
	Clock cli.Clock

	Quick       bool   // --quick
	Fix         bool   // --fix
	SalvageTo   string // --salvage-to
	Force       bool   // --force
	SkipDamaged bool   // --skip-damaged
	DryRun      bool   // --dry-run (with --fix)
}

const long = `Verify a Sombra database, repair it, or salvage its data into a new one.

With only --db, sombra-repair verifies the database read-only (a full check:
page checksums, every tree's structure, the free list, edges pointing at
existing nodes, adjacency, label and property indexes, counters) and lists
every issue found with its severity (critical, error, warning), kind and
page. It never modifies the database file or its WAL. --quick checks only
the header and page checksums.

--fix repairs in place. It needs the database to itself: when another
connection has it open, sombra-repair exits with status 3 at once, or
waits up to --wait for it to close. It checkpoints the WAL and truncates it
(a torn transaction at its end is dropped for good), runs a full check and
then, in one transaction: drops edges whose endpoints are missing, brings
the adjacency tree, the label index and the property indexes back in line
with the node and edge records (rebuilding a tree whose pages are
damaged), recomputes counters, and rebuilds the free list when it is
damaged or pages leaked. Then it checks again. The node, edge and catalog
trees are the source of truth: when one of those is damaged --fix changes
nothing, exits with status 4 and advises a salvage.

--fix --dry-run says what --fix would do and changes nothing: it copies
the database and its WAL to a scratch directory under $TMPDIR (room for
one copy is needed), runs the repair on the copy, reports the copy's
actions and remaining issues as --fix would (same exit status), and
deletes the copy. It does not need the database to itself.

--salvage-to NEW.db reads every page of the database file and the newest
committed copy of each page in its WAL without trusting any tree (so it
works when the header or a tree is damaged), keeps the newest version of
each node and edge record, and writes them into a new database under their
old ids: nodes first, then the edges whose endpoints were salvaged, with the
property indexes the old database had. The new database is built under a
temporary name, verified with a full check, and only then renamed to
NEW.db. An existing NEW.db is refused unless --force is given. Records read
from a page that failed its checksum but still decoded are kept and counted
(records_from_damaged_pages); --skip-damaged leaves them out.

JSON OUTPUT (--json, schema_version 2)

Verify prints:

    schema_version   always 2
    action           "verify"
    db               database file as given (--db)
    mode             "full" or "quick"
    healthy          no issue at all
    corrupt          an issue of severity critical or error was found
    pages_checked    pages whose checksum was verified
    page_count       pages in the database
    node_count, edge_count  counts from the header
    critical, errors, warnings   number of issues of each severity (all
                     found, listed or not)
    issues_total     number of issues found
    issues_truncated true when issues lists only the first 1000
    issues           [{severity, kind, page, description}]; page is left
                     out when the issue has none
    duration_ms      time taken

--fix prints:

    schema_version, action ("repair"), db, duration_ms
    dry_run          true with --dry-run: the report is of a repair of a
                     scratch copy; the database was not changed
    success          no issue remains
    issues_found     issues found before repairing (listed in issues)
    issues_fixed     of those, how many are gone
    issues_truncated true when issues lists only the first 1000
    issues           [{severity, kind, page, description}]
    actions          what was changed, one sentence each
    remaining        issues left after repairing
    advice           what to do next (only when success is false)

--salvage-to prints:

    schema_version, action ("salvage"), duration_ms
    db, output       the two database files as given (--db, --salvage-to)
    page_size        page size used
    header_readable  false when the header was damaged (page size probed)
    pages_scanned    pages read
    wal_frames_used  committed WAL frames read
    damaged_pages    pages in use that failed their checksum or are missing
    damaged_page_list  the first 100 of them
    unreadable_leaves  node, edge and catalog leaf pages nothing could be read from
    nodes_found, edges_found       distinct records read
    nodes_salvaged, edges_salvaged records written to the new database
    records_from_damaged_pages     of those, how many came from damaged pages
    records_skipped_damaged        left out by --skip-damaged
    records_undecodable            cells whose record did not decode
    records_rejected               records the engine refused (bad label)
    edges_skipped    edges left out because an endpoint was not salvaged
    nodes_remapped, edges_remapped records written under a new id (only
                     those whose old id was invalid)
    property_indexes property indexes recreated
    verified         the new database passed a full integrity check
    warnings         notes about the header and the WAL

EXIT STATUS

    0 verify: no corruption (warnings may be listed); --fix: no issue
      remains; --salvage-to: the new database was written and verified
    1 failed: missing file, not a database, output exists, I/O
    2 usage error
    3 database busy: another connection has it open (--fix, --salvage-to)
      or compaction or restore holds it; retry later or give --wait
    4 verify found corruption (an issue of severity critical or error), or
      --fix left issues`

const example = `  sombra-repair --db /data/production.db
  sombra-repair --db /data/production.db --quick
  sombra-repair --db /data/production.db --fix --wait 30s
  sombra-repair --db /data/production.db --salvage-to /data/recovered.db
  sombra-repair --db /data/production.db --json | jq '.issues[] | select(.severity == "critical")'`

// NewCommand returns the sombra-repair root command on streams.
func NewCommand(streams cli.IOStreams) *cobra.Command {
	return NewCmd(&Options{IO: streams}, nil)
}

// NewCmd builds the command on opts; runF (nil: Run) does the work.
func NewCmd(opts *Options, runF func(*Options) error) *cobra.Command {
	cmd := cli.NewRoot("sombra-repair", "Verify, repair or salvage a database",
		long, example, &opts.Globals, opts.IO)
	cmd.Args = cobra.NoArgs
	f := cmd.Flags()
	f.BoolVar(&opts.Quick, "quick", false, "verify only the header and page checksums")
	f.BoolVar(&opts.Fix, "fix", false, "repair the database in place (needs it to itself)")
	f.StringVar(&opts.SalvageTo, "salvage-to", "", "write every readable node and edge into a new database at `PATH`")
	f.BoolVar(&opts.Force, "force", false, "with --salvage-to: replace an existing output file")
	f.BoolVar(&opts.SkipDamaged, "skip-damaged", false, "with --salvage-to: leave out records from pages that failed their checksum")
	f.BoolVar(&opts.DryRun, "dry-run", false, "with --fix: repair a scratch copy and report what would change; change nothing")
	cmd.MarkFlagsMutuallyExclusive("quick", "fix", "salvage-to")
	_ = cmd.MarkFlagFilename("salvage-to")
	cmd.RunE = func(*cobra.Command, []string) error {
		if runF != nil {
			return runF(opts)
		}
		return Run(opts)
	}
	return cmd
}

// VerifyResult is the --json document of a verification.
type VerifyResult struct {
	SchemaVersion int    `json:"schema_version"`
	Action        string `json:"action"`
	Path          string `json:"db"`
	Mode          string `json:"mode"`
	Healthy       bool   `json:"healthy"`
	Corrupt       bool   `json:"corrupt"`
	PagesChecked  int    `json:"pages_checked"`
	PageCount     uint64 `json:"page_count"`
	Nodes         uint64 `json:"node_count"`
	Edges         uint64 `json:"edge_count"`
	Critical      int    `json:"critical"`
	Errors        int    `json:"errors"`
	Warnings      int    `json:"warnings"`
	// IssuesTotal counts every issue found; Issues lists at most
	// integrity.MaxIssues of them (IssuesTruncated is then true).
	IssuesTotal     int               `json:"issues_total"`
	IssuesTruncated bool              `json:"issues_truncated"`
	Issues          []integrity.Issue `json:"issues"`
	DurationMS      float64           `json:"duration_ms"`
}

// RepairResult is the --json document of --fix.
type RepairResult struct {
	SchemaVersion int    `json:"schema_version"`
	Action        string `json:"action"`
	Path          string `json:"db"`
	DryRun        bool   `json:"dry_run"`
	Success       bool   `json:"success"`
	IssuesFound   int    `json:"issues_found"`
	IssuesFixed   int    `json:"issues_fixed"`
	// IssuesTruncated says Issues lists only the first integrity.MaxIssues.
	IssuesTruncated bool              `json:"issues_truncated"`
	Issues          []integrity.Issue `json:"issues"`
	Actions         []string          `json:"actions"`
	Remaining       []integrity.Issue `json:"remaining"`
	Advice          string            `json:"advice,omitempty"`
	DurationMS      float64           `json:"duration_ms"`
}

// SalvageResult is the --json document of --salvage-to.
type SalvageResult struct {
	SchemaVersion int    `json:"schema_version"`
	Action        string `json:"action"`
	// DB replaces the engine report's "source" (the vocabulary's name for
	// the database acted on); HideSource, at a shallower depth with the
	// same key and omitempty, keeps the embedded "source" out.
	DB         string `json:"db"`
	HideSource string `json:"source,omitempty"`
	*dbrepair.SalvageReport
	DurationMS float64 `json:"duration_ms"`
}

// Run verifies, repairs or salvages, as the flags say.
func Run(opts *Options) error {
	g := &opts.Globals
	path, err := g.DBPath()
	if err != nil {
		return err
	}
	if opts.SalvageTo == "" && (opts.Force || opts.SkipDamaged) {
		return cli.Usagef("--force and --skip-damaged go with --salvage-to")
	}
	if opts.DryRun && !opts.Fix {
		return cli.Usagef("--dry-run goes with --fix (verification never changes anything)")
	}
	if err := cli.CheckDBFile(path); err != nil {
		return err
	}
	r := dbrepair.NewDatabaseRepair(path)
	r.Wait = g.Wait
	r.Logger = g.Logger(opts.IO)
	p := cli.NewPrinter(opts.IO, g)
	switch {
	case opts.Fix:
		return runRepair(opts, r, p)
	case opts.SalvageTo != "":
		return runSalvage(opts, r, p)
	}
	return runVerify(opts, r, p)
}

func runVerify(opts *Options, r *dbrepair.DatabaseRepair, p *cli.Printer) error {
	start := opts.Clock.Now()
	draw, stop := cli.ProgressFunc(opts.IO, &opts.Globals, "checking "+filepath.Base(r.Path()))
	rep, err := r.VerifyContext(opts.Globals.Context(), integrity.Options{Full: !opts.Quick, Progress: draw})
	stop()
	if err != nil {
		return salvageHint(err, r.Path())
	}
	res := VerifyResult{SchemaVersion: cli.SchemaVersion, Action: "verify", Path: r.Path(), Mode: rep.Mode,
		Healthy: rep.IsHealthy(), Corrupt: rep.HasCorruption(), PagesChecked: rep.PagesChecked,
		PageCount: rep.PageCount, Nodes: rep.Nodes, Edges: rep.Edges, Issues: nonNil(rep.Issues),
		DurationMS: durationMS(opts, start)}
	res.IssuesTotal, res.IssuesTruncated = rep.IssuesTotal, rep.IssuesTruncated
	res.Critical = rep.SeverityCounts[integrity.Critical]
	res.Errors = rep.SeverityCounts[integrity.Error]
	res.Warnings = rep.SeverityCounts[integrity.Warning]
	err = p.Result(res, func(h *cli.Human) {
		verdict := h.Good("healthy")
		switch {
		case res.Corrupt:
			verdict = h.Bad("CORRUPT") + " (repair with --fix; if that fails, salvage with --salvage-to NEW.db)"
		case !res.Healthy:
			verdict = h.Warn("no corruption, warnings only") + " (--fix clears them)"
		}
		h.KeyValues([][2]string{
			{"path", res.Path},
			{"mode", res.Mode},
			{"pages checked", fmt.Sprintf("%d of %d", res.PagesChecked, res.PageCount)},
			{"nodes", strconv.FormatUint(res.Nodes, 10)},
			{"edges", strconv.FormatUint(res.Edges, 10)},
			{"issues", issueSummary(res.Critical, res.Errors, res.Warnings) + truncatedNote(len(res.Issues), res.IssuesTotal, res.IssuesTruncated)},
			{"result", verdict},
			{"duration", cli.FormatDuration(msDuration(res.DurationMS))},
		})
		issueTable(h, res.Issues)
	})
	if err != nil {
		return err
	}
	if res.Corrupt {
		return &cli.ExitError{Code: cli.ExitCorrupt}
	}
	return nil
}

func runRepair(opts *Options, r *dbrepair.DatabaseRepair, p *cli.Printer) error {
	start := opts.Clock.Now()
	// A bar per check: the one before the repair, the one after it.
	var draw func(done, total int64)
	stop := func() {}
	if cli.ShowsProgress(opts.IO, &opts.Globals) {
		r.Progress = func(done, total int64) {
			if draw == nil {
				draw, stop = cli.ProgressFunc(opts.IO, &opts.Globals, "checking "+filepath.Base(r.Path()))
			}
			draw(done, total)
			if done >= total {
				stop()
				draw, stop = nil, func() {}
			}
		}
	}
	var (
		rep *dbrepair.RepairReport
		err error
	)
	if opts.DryRun {
		rep, err = r.DryRunContext(opts.Globals.Context(), "")
	} else {
		rep, err = r.RepairContext(opts.Globals.Context())
	}
	stop()
	if err != nil {
		return salvageHint(err, r.Path())
	}
	advice := rep.Advice
	if rep.NeedsSalvage {
		advice += ": " + salvageCommand(rep.Path)
	}
	res := RepairResult{SchemaVersion: cli.SchemaVersion, Action: "repair", DryRun: opts.DryRun, Path: rep.Path, Success: rep.Success,
		IssuesFound: rep.IssuesFound, IssuesFixed: rep.IssuesFixed, IssuesTruncated: rep.IssuesTruncated, Issues: nonNil(rep.Issues),
		Actions: rep.Actions, Remaining: nonNil(rep.Remaining), Advice: advice, DurationMS: durationMS(opts, start)}
	if res.Actions == nil {
		res.Actions = []string{}
	}
	err = p.Result(res, func(h *cli.Human) {
		verdict := h.Good("repaired")
		switch {
		case res.DryRun && res.IssuesFound == 0:
			verdict = h.Good("healthy, nothing to repair")
		case res.DryRun && res.Success:
			verdict = h.Good("--fix would repair it")
		case res.DryRun:
			verdict = h.Bad(fmt.Sprintf("--fix would NOT repair it: %d issues would remain", len(res.Remaining)))
		case res.IssuesFound == 0:
			verdict = h.Good("healthy, nothing to repair")
		case !res.Success:
			left := fmt.Sprintf("%d issues remain", len(res.Remaining))
			if len(res.Remaining) == 1 {
				left = "1 issue remains"
			}
			verdict = h.Bad("NOT REPAIRED: " + left)
		}
		h.KeyValues([][2]string{
			{"path", res.Path},
			{"issues found", strconv.Itoa(res.IssuesFound) + truncatedNote(len(res.Issues), res.IssuesFound, res.IssuesTruncated)},
			{"issues fixed", strconv.Itoa(res.IssuesFixed)},
			{"result", verdict},
			{"duration", cli.FormatDuration(msDuration(res.DurationMS))},
		})
		if len(res.Actions) > 0 {
			h.Line("")
			if res.DryRun {
				h.Line("actions --fix would take (done on a scratch copy):")
			} else {
				h.Line("actions:")
			}
			for _, a := range res.Actions {
				h.Line("  - %s", a)
			}
		}
		if len(res.Remaining) > 0 {
			h.Line("")
			h.Line("remaining issues:")
			issueTable(h, res.Remaining)
		}
		if res.Advice != "" {
			h.Line("")
			h.Line("advice: %s", res.Advice)
		}
		if res.DryRun {
			h.Line("")
			h.Line("dry run: the database was not changed")
		}
	})
	if err != nil {
		return err
	}
	if !res.Success {
		return &cli.ExitError{Code: cli.ExitCorrupt}
	}
	return nil
}

func runSalvage(opts *Options, r *dbrepair.DatabaseRepair, p *cli.Printer) error {
	start := opts.Clock.Now()
	g := &opts.Globals
	// A bar per phase: the scan of the source (its size), the records
	// written, the check of the new database (its size).
	scan, stopScan := cli.ProgressFunc(opts.IO, g, "scanning "+filepath.Base(r.Path()))
	write, stopWrite := cli.CountProgressFunc(opts.IO, g, "writing "+filepath.Base(opts.SalvageTo), "records")
	check, stopCheck := cli.ProgressFunc(opts.IO, g, "checking "+filepath.Base(opts.SalvageTo))
	so := dbrepair.SalvageOptions{Overwrite: opts.Force, SkipDamaged: opts.SkipDamaged,
		Progress: scan, WriteProgress: phase(write, stopScan), CheckProgress: phase(check, stopWrite)}
	rep, err := r.SalvageToContext(g.Context(), opts.SalvageTo, so)
	stopScan()
	stopWrite()
	stopCheck()
	if errors.Is(err, engine.ErrExists) {
		return &existsError{path: opts.SalvageTo}
	}
	if err != nil {
		return err
	}
	res := SalvageResult{SchemaVersion: cli.SchemaVersion, Action: "salvage", DB: rep.Source, SalvageReport: rep,
		DurationMS: durationMS(opts, start)}
	return p.Result(res, func(h *cli.Human) {
		header := "readable"
		if !rep.HeaderReadable {
			header = h.Warn("damaged (page size found by probing)")
		}
		damaged := strconv.Itoa(rep.DamagedPages)
		if rep.DamagedPages > 0 {
			damaged = h.Warn(fmt.Sprintf("%d (%s)", rep.DamagedPages, pageList(rep.DamagedPageList, rep.DamagedPages)))
		}
		edges := fmt.Sprintf("%d of %d found", rep.EdgesSalvaged, rep.EdgesFound)
		if rep.EdgesSkipped > 0 {
			edges += fmt.Sprintf(" (%d skipped: an endpoint was not salvaged)", rep.EdgesSkipped)
		}
		idx := "none"
		if len(rep.PropertyIndexes) > 0 {
			idx = strings.Join(rep.PropertyIndexes, ", ")
		}
		pairs := [][2]string{
			{"source", rep.Source},
			{"output", rep.Output},
			{"page size", h.Bytes(int64(rep.PageSize))},
			{"header", header},
			{"pages scanned", strconv.FormatUint(rep.PagesScanned, 10)},
			{"wal frames used", strconv.Itoa(rep.WALFramesUsed)},
			{"damaged pages", damaged},
			{"nodes salvaged", fmt.Sprintf("%d of %d found", rep.NodesSalvaged, rep.NodesFound)},
			{"edges salvaged", edges},
			{"from damaged pages", strconv.Itoa(rep.RecordsFromDamagedPages)},
		}
		if rep.RecordsSkippedDamaged > 0 {
			pairs = append(pairs, [2]string{"skipped (damaged)", strconv.Itoa(rep.RecordsSkippedDamaged)})
		}
		pairs = append(pairs,
			[2]string{"undecodable records", strconv.Itoa(rep.RecordsUndecodable + rep.RecordsRejected)},
			[2]string{"property indexes", idx},
			[2]string{"verified", h.Good(cli.YesNo(rep.Verified))},
			[2]string{"duration", cli.FormatDuration(msDuration(res.DurationMS))},
		)
		h.KeyValues(pairs)
		for _, w := range rep.Warnings {
			h.Line("warning: %s", w)
		}
	})
}

// phase returns draw, first ending the bar of the phase before (once);
// nil stays nil.
func phase(draw func(done, total int64), endPrevious func()) func(done, total int64) {
	if draw == nil {
		return nil
	}
	var once sync.Once
	return func(done, total int64) {
		once.Do(endPrevious)
		draw(done, total)
	}
}

// salvageCommand is what to type to salvage the database at path.
func salvageCommand(path string) string {
	return "sombra-repair --db " + path + " --salvage-to NEW.db"
}

// salvageHint adds the salvage command to an error saying the database is
// too damaged to check or repair (the engine failed on a damaged page).
func salvageHint(err error, path string) error {
	if errors.Is(err, engine.ErrCorrupt) {
		return cli.WithHint(err, "salvage the data into a new database: "+salvageCommand(path))
	}
	return err
}

// existsError refuses to overwrite the salvage output; it matches
// engine.ErrExists so the exit code and JSON kind follow.
type existsError struct{ path string }

func (e *existsError) Error() string {
	return e.path + ": output already exists (use --force to replace it)"
}
func (e *existsError) Is(target error) bool { return target == engine.ErrExists }

// truncatedNote says that an issue list was cut, so a reader of the table
// does not take the listed issues for all of them.
func truncatedNote(listed, total int, truncated bool) string {
	if !truncated {
		return ""
	}
	return fmt.Sprintf(" (only the first %d of %d are listed)", listed, total)
}
