// Package compact is sombra-compact: analyse fragmentation and rewrite a
// database densely, giving free pages back to the file system.
package compact

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine/compact"
	"github.com/sombradb/sombra/internal/cli"
)

// Options is everything sombra-compact needs.
type Options struct {
	IO      cli.IOStreams
	Globals cli.Globals
	// Clock measures the duration reported (nil: real time).
	Clock cli.Clock

	Analyze   bool    // --analyze
	DryRun    bool    // --dry-run
	Threshold float64 // --threshold PCT; negative: not given
}

const long = `Rewrite a Sombra database densely: every tree is rebuilt in key order
into a new file beside the database, which is fsynced and renamed over the
original, so a crash at any moment leaves either the old or the new file,
both complete. The data is unchanged (the logical hash is compared); the
file shrinks by the free pages and by packing sparse pages densely.

Compaction needs the database to itself. If another connection (in this
or any other process) has it open, sombra-compact refuses with exit status
3 and names the process; --wait DURATION waits that long for the others to
close instead.

One fragmentation figure is reported, the same as sombra-info
--fragmentation and the health check show: the share of the file a
compaction would give back (free pages, and sparse pages packed densely).
Every commit keeps the space statistics it is computed from in the
header, so it costs no scan (files written by older versions are scanned
once per call until compacted). --analyze only reports (read-only).
--threshold PCT compacts only when fragmentation_percent is above PCT and
otherwise says so and exits 0, which suits cron:

      sombra-compact --db app.db --threshold 20

--dry-run says what a compaction would do now — compact or skip (with
--threshold), the file size before and the estimated size after — and
changes nothing (read-only, like --analyze).

A progress bar is drawn on stderr when it is a terminal.

JSON OUTPUT (--json, schema_version 2)

    schema_version          always 2
    db                      database file as given (--db)
    action                  "analyzed" (--analyze), "skipped" (fragmentation
                            not above --threshold), "compacted", or with
                            --dry-run "would_compact"
    dry_run                 true with --dry-run: nothing was changed
    threshold_percent       the --threshold given, or null
    analysis                fragmentation before compaction:
      file_size             database file size in bytes
      page_size             bytes per page
      page_count            pages in the logical database
      free_pages            pages on the free list
      fragmentation_percent share of the file a compaction would give
                            back, 0..100; what --threshold compares against
      reclaimable_bytes     bytes a compaction would give back
      page_fill_percent     how full tree pages are on average, 0..100
      estimated_pages_after pages after a compaction (estimate)
      estimated_reclaimable_bytes    the same as reclaimable_bytes
      estimated_reclaimable_percent  the same as fragmentation_percent
    compaction              null unless action is "compacted":
      pages_before          pages before
      pages_after           pages after
      pages_moved           pages written to the new file
      size_before           file size in bytes before
      size_after            file size in bytes after
      bytes_reclaimed       size_before - size_after
      duration_ms           time taken in milliseconds

EXIT STATUS

    0 success (also when --threshold decided there was nothing to do),
    1 failed (missing file, not a database, I/O), 2 usage error, 3 database
    in use by another connection (see --wait), 4 corruption found (the
    database is left as it was).`

const example = `  sombra-compact --db /data/production.db
  sombra-compact --db /data/production.db --analyze
  sombra-compact --db /data/production.db --threshold 20
  sombra-compact --db /data/production.db --wait 1m
  sombra-compact --db /data/production.db --json | jq .compaction.bytes_reclaimed`

// NewCommand returns the sombra-compact root command on streams.
func NewCommand(streams cli.IOStreams) *cobra.Command {
	return NewCmd(&Options{IO: streams}, nil)
}

// NewCmd builds the command on opts; runF (nil: Run) does the work.
func NewCmd(opts *Options, runF func(*Options) error) *cobra.Command {
	cmd := cli.NewRoot("sombra-compact", "Analyse fragmentation and compact a database",
		long, example, &opts.Globals, opts.IO)
	cmd.Args = cobra.NoArgs
	f := cmd.Flags()
	f.BoolVar(&opts.Analyze, "analyze", false, "only report fragmentation; change nothing")
	f.Float64Var(&opts.Threshold, "threshold", -1, "compact only if compaction would reclaim more than `PCT` percent of the file")
	f.BoolVar(&opts.DryRun, "dry-run", false, "say whether and how much compaction would shrink the file; change nothing")
	cmd.MarkFlagsMutuallyExclusive("analyze", "threshold")
	cmd.MarkFlagsMutuallyExclusive("analyze", "dry-run")
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		if c.Flags().Changed("threshold") && (opts.Threshold < 0 || opts.Threshold > 100) {
			return cli.Usagef("--threshold %g: want a percentage from 0 to 100", opts.Threshold)
		}
		if runF != nil {
			return runF(opts)
		}
		return Run(opts)
	}
	return cmd
}

// Actions reported in Result.Action.
const (
	ActionAnalyzed  = "analyzed"
	ActionSkipped   = "skipped"
	ActionCompacted = "compacted"
	// ActionWouldCompact is --dry-run's answer when a compaction would run.
	ActionWouldCompact = "would_compact"
)

// Result is the --json document.
type Result struct {
	SchemaVersion    int         `json:"schema_version"`
	Path             string      `json:"db"`
	Action           string      `json:"action"`
	DryRun           bool        `json:"dry_run"`
	ThresholdPercent *float64    `json:"threshold_percent"`
	Analysis         Analysis    `json:"analysis"`
	Compaction       *Compaction `json:"compaction"`
}

// Analysis is fragmentation before compaction.
type Analysis struct {
	FileSize                    int64   `json:"file_size"`
	PageSize                    int     `json:"page_size"`
	PageCount                   uint64  `json:"page_count"`
	FreePages                   uint64  `json:"free_pages"`
	FragmentationPercent        float64 `json:"fragmentation_percent"`
	ReclaimableBytes            int64   `json:"reclaimable_bytes"`
	PageFillPercent             float64 `json:"page_fill_percent"`
	EstimatedPagesAfter         uint64  `json:"estimated_pages_after"`
	EstimatedReclaimableBytes   int64   `json:"estimated_reclaimable_bytes"`
	EstimatedReclaimablePercent float64 `json:"estimated_reclaimable_percent"`
}

// Compaction is what a compaction did.
type Compaction struct {
	PagesBefore    uint64  `json:"pages_before"`
	PagesAfter     uint64  `json:"pages_after"`
	PagesMoved     uint64  `json:"pages_moved"`
	SizeBefore     int64   `json:"size_before"`
	SizeAfter      int64   `json:"size_after"`
	BytesReclaimed int64   `json:"bytes_reclaimed"`
	DurationMS     float64 `json:"duration_ms"`
}

// Run analyses and, unless told otherwise, compacts the database.
func Run(opts *Options) error {
	g := &opts.Globals
	path, err := g.DBPath()
	if err != nil {
		return err
	}
	if err := cli.CheckDBFile(path); err != nil {
		return err
	}
	// Reads every page only for a file from before space statistics.
	draw, stop := cli.ProgressFunc(opts.IO, g, "analyzing")
	a, err := compact.AnalyzeContext(g.Context(), path, draw)
	stop()
	if err != nil {
		return err
	}
	res := Result{SchemaVersion: cli.SchemaVersion, Path: path, Action: ActionAnalyzed,
		Analysis: Analysis{FileSize: a.FileSize, PageSize: a.PageSize, PageCount: a.PageCount, FreePages: a.FreePages,
			FragmentationPercent: a.FragmentationPercent, ReclaimableBytes: a.ReclaimableBytes,
			PageFillPercent: a.PageFillPercent, EstimatedPagesAfter: a.EstimatedPagesAfter,
			EstimatedReclaimableBytes: a.EstimatedReclaimableBytes, EstimatedReclaimablePercent: a.EstimatedReclaimablePercent}}
	if opts.Threshold >= 0 {
		th := opts.Threshold
		res.ThresholdPercent = &th
	}
	p := cli.NewPrinter(opts.IO, g)
	switch {
	case opts.Analyze:
		return p.Result(res, func(h *cli.Human) { analysis(h, res) })
	case res.ThresholdPercent != nil && a.EstimatedReclaimablePercent <= opts.Threshold:
		res.Action = ActionSkipped
		res.DryRun = opts.DryRun
		return p.Result(res, func(h *cli.Human) {
			h.Line("reclaimable space %s below threshold %s, nothing to do",
				cli.FormatPercent(a.EstimatedReclaimablePercent), cli.FormatPercent(opts.Threshold))
		})
	case opts.DryRun:
		res.Action, res.DryRun = ActionWouldCompact, true
		return p.Result(res, func(h *cli.Human) {
			analysis(h, res)
			h.Line("dry run: compaction would rewrite %s into about %s (%d pages), reclaiming about %s; nothing was changed",
				h.Bytes(a.FileSize), h.Bytes(a.FileSize-a.EstimatedReclaimableBytes), a.EstimatedPagesAfter, h.Bytes(a.EstimatedReclaimableBytes))
		})
	}

	draw, stop = cli.ProgressFunc(opts.IO, g, "compacting")
	start := opts.Clock.Now()
	rep, err := compact.CompactContext(g.Context(), path, compact.Options{Wait: g.Wait, Progress: pagesAsBytes(draw, int64(a.PageSize))})
	stop()
	if err != nil {
		return err
	}
	res.Action = ActionCompacted
	res.Compaction = &Compaction{PagesBefore: rep.PagesBefore, PagesAfter: rep.PagesAfter, PagesMoved: rep.PagesMoved,
		SizeBefore: rep.SizeBefore, SizeAfter: rep.SizeAfter, BytesReclaimed: rep.BytesReclaimed,
		DurationMS: float64(opts.Clock.Since(start).Microseconds()) / 1000}
	return p.Result(res, func(h *cli.Human) { compacted(h, res) })
}

func analysis(h *cli.Human, r Result) {
	a := r.Analysis
	frag := cli.FormatPercent(a.FragmentationPercent)
	if a.FragmentationPercent > 20 {
		frag = h.Warn(frag)
	}
	h.KeyValues([][2]string{
		{"path", r.Path},
		{"file size", h.BytesExact(a.FileSize)},
		{"page count", strconv.FormatUint(a.PageCount, 10)},
		{"free pages", strconv.FormatUint(a.FreePages, 10)},
		{"fragmentation", frag},
		{"reclaimable", h.BytesExact(a.ReclaimableBytes)},
		{"page fill", cli.FormatPercent(a.PageFillPercent)},
		{"estimated after compaction", fmt.Sprintf("%d pages", a.EstimatedPagesAfter)},
		{"estimated reclaimable", fmt.Sprintf("%s (%s)", h.BytesExact(a.EstimatedReclaimableBytes), cli.FormatPercent(a.EstimatedReclaimablePercent))},
	})
}

func compacted(h *cli.Human, r Result) {
	c := r.Compaction
	h.KeyValues([][2]string{
		{"path", r.Path},
		{"fragmentation before", cli.FormatPercent(r.Analysis.FragmentationPercent)},
		{"pages", fmt.Sprintf("%d -> %d", c.PagesBefore, c.PagesAfter)},
		{"pages moved", strconv.FormatUint(c.PagesMoved, 10)},
		{"size", fmt.Sprintf("%s -> %s", h.Bytes(c.SizeBefore), h.Bytes(c.SizeAfter))},
		{"bytes reclaimed", h.Good(h.BytesExact(c.BytesReclaimed))},
		{"duration", cli.FormatDuration(time.Duration(c.DurationMS * float64(time.Millisecond)))},
	})
}

// pagesAsBytes adapts compact's (done, total) page callbacks to a byte
// progress bar; nil stays nil.
func pagesAsBytes(draw func(done, total int64), pageSize int64) func(done, total int64) {
	if draw == nil {
		return nil
	}
	return func(done, total int64) { draw(done*pageSize, total*pageSize) }
}
