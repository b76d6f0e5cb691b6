// Package info is sombra-info: a read-only summary of a database (sizes,
// WAL, fragmentation, counts, indexes) and its metrics export.
package info

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/replication"
	"github.com/sombradb/sombra/internal/cli"
)

// Options is everything sombra-info needs.
type Options struct {
	IO      cli.IOStreams
	Globals cli.Globals

	WALSize       bool          // --wal-size
	Fragmentation bool          // --fragmentation
	Indexes       bool          // --indexes
	Metrics       string        // --metrics prometheus|json|statsd
	Interval      time.Duration // --interval: between the two readings of --metrics
	Listen        string        // --listen: serve --metrics prometheus over HTTP

	// Ctx ends --listen (SIGINT/SIGTERM cancel the command's context).
	Ctx context.Context
}

const long = `Print a summary of a Sombra database: file and page sizes, free pages and
fragmentation, the write-ahead log, the last checkpoint, node and edge
counts, labels and property indexes.

sombra-info opens the database read-only and never modifies the database
file or its WAL, so it is safe to run while an application is writing.

For scripts, --wal-size prints only the WAL size as an integer byte count
and --fragmentation only the fragmentation as an integer percentage
(rounded down), so that

    [ "$(sombra-info --db app.db --fragmentation)" -gt 20 ]

works in a shell. --indexes prints index statistics. These views and
--metrics exclude each other.

METRICS

--metrics prints the metrics of the database, not of sombra-info's own
connection: counters that every connection of every process adds to, kept
in the coordination file NAME.db-shm. They count everything since the
database was last closed by every connection (counters_since); opening it
when nobody has it open starts them from zero. sombra-info reads them
twice, --interval apart (default 1s), and prints the totals with the rates
between the two readings (transactions, reads and writes per second, cache
hit rate and commit latency percentiles over the interval):

    counters   sombra_transactions_total, _transactions_failed_total,
               _rollbacks_total, _read_transactions_total,
               _write_operations_total, _wal_frames_written_total,
               _wal_bytes_written_total, _checkpoints_total,
               _checkpoint_seconds_total, _checkpoint_pages_total,
               _cache_hits_total, _cache_misses_total (summed over every
               connection's cache), _busy_waits_total (lock requests that
               waited for another connection), _busy_wait_seconds_total,
               _busy_timeouts_total
    histogram  sombra_commit_latency_seconds (every connection's commits)
    gauges     sombra_transactions_per_second, _reads_per_second,
               _writes_per_second, _wal_bytes_per_second, _cache_hit_rate,
               _commit_latency_ms (p99), _commit_latency_p50_ms, _p95_ms,
               _rate_interval_seconds, _wal_size_bytes, _dirty_pages,
               _counters_reset_timestamp_seconds

In StatsD format the counters are printed as their increase over the
interval ("name:n|c") and the rest as gauges ("name:v|g"). In JSON (and as
"metrics" in the --json document) they are one object:

    read_at, counters_since  the reading's time and the counters' last
                             reset (RFC 3339)
    transactions_committed, transactions_failed, rollbacks,
    read_transactions, write_operations, wal_frames_written,
    wal_bytes_written, checkpoints, checkpoint_seconds, checkpoint_pages,
    cache_hits, cache_misses, busy_waits, busy_wait_seconds, busy_timeouts
                             the counters (totals since counters_since)
    commit_latency           {bounds_seconds, counts, sum_seconds}: the
                             histogram, counts per bucket (not cumulative),
                             the last one past the highest bound
    wal_size_bytes, dirty_pages  the WAL now
    interval_seconds         time between the two readings
    transactions_per_second, reads_per_second, writes_per_second,
    rollbacks_per_second, wal_bytes_per_second, checkpoints_per_second,
    busy_waits_per_second    rates over the interval
    cache_hit_rate, commit_latency_p50_ms, commit_latency_p95_ms,
    commit_latency_p99_ms    over the interval (or, when it saw no page
                             read or no commit, since counters_since)

--listen ADDR (with --metrics prometheus) serves the same text at
http://ADDR/metrics for Prometheus to scrape, until SIGINT or SIGTERM. An
address without a host (":9090") listens on 127.0.0.1 only; give one
("0.0.0.0:9090") to be reachable from elsewhere. Each scrape opens the
database, reads the counters and closes it again, so the exporter never
keeps compaction or restore waiting; the rates are since the previous
scrape. A scrape that cannot read the metrics answers 503 with the reason.

When the connection cannot see the counters (it was opened without the
coordination file, or a process of another build laid the file out),
--metrics fails and says so rather than printing zeros.

JSON OUTPUT (--json, schema_version 2)

    schema_version           always 2
    db                       database file as given (--db)
    format_version           on-disk format version
    page_size                bytes per page
    file_size                size of the database file in bytes
    page_count               pages in the logical database
    free_pages               pages on the free list
    fragmentation_percent    share of the file a compaction would give
                             back (free pages, sparse pages packed), 0..100;
                             the figure sombra-compact and the health
                             check use (within a few points of the result)
    reclaimable_bytes        bytes compaction would give back
    page_fill_percent        how full B+tree pages are on average, 0..100
    estimated_pages_after    pages after a compaction (estimate)
    wal_size                 size of NAME.db-wal in bytes
    wal_frames               committed frames in the WAL
    wal_frames_checkpointed  frames already copied into the database file
    wal_frames_pending       frames not yet checkpointed
    lsn                      LSN of the last committed transaction
    last_checkpoint_lsn      LSN covered by the last checkpoint
    last_checkpoint_at       time of the last checkpoint (RFC 3339, UTC) or
                             null if there never was one
    created_at               creation time of the database (RFC 3339, UTC)
    node_count, edge_count   number of nodes and edges
    labels                   [{label, count}] node labels, most used first
    edge_labels              [{label, count}] edge labels, most used first
    property_indexes         names of the indexed node properties
    indexes                  [{name, kind, entries, distinct_values,
                             selectivity, estimated}] as for --indexes, except
                             that distinct values of a property index with
                             more than 10000 entries are estimated from its
                             first 10000 (estimated: true), so the summary
                             stays fast; --indexes counts them exactly
    replication              only while a replication node (sombra-server
                             --replicate, or an application) runs on the
                             file: {role, node, mode, primary, applied_lsn,
                             lag_seconds, pending, updated_at, stale, error}
                             from NAME.db-replication; stale: its process
                             stopped updating it (killed)

With --wal-size, --fragmentation, --indexes or --metrics, --json prints
{schema_version, wal_size}, {schema_version, fragmentation_percent},
{schema_version, indexes} or {schema_version, format, metrics} instead, where
metrics is the object of --metrics json.

EXIT STATUS

    0 success, 1 failed (missing file, not a database, I/O), 2 usage error,
    3 database locked (only while compaction or restore holds it; see --wait),
    4 corruption found.`

const example = `  sombra-info --db /data/production.db
  sombra-info --db /data/production.db --wal-size
  sombra-info --db /data/production.db --fragmentation
  sombra-info --db /data/production.db --indexes
  sombra-info --db /data/production.db --metrics prometheus
  sombra-info --db /data/production.db --metrics json --interval 10s | jq .transactions_per_second
  sombra-info --db /data/production.db --metrics prometheus --listen :9090
  sombra-info --db /data/production.db --json | jq '.node_count'`

// NewCommand returns the sombra-info root command on streams.
func NewCommand(streams cli.IOStreams) *cobra.Command {
	return NewCmd(&Options{IO: streams}, nil)
}

// NewCmd builds the command on opts; runF (nil: Run) does the work, so tests
// can check flag parsing on its own.
func NewCmd(opts *Options, runF func(*Options) error) *cobra.Command {
	cmd := cli.NewRoot("sombra-info", "Show database sizes, WAL, fragmentation, counts and indexes",
		long, example, &opts.Globals, opts.IO)
	cmd.Args = cobra.NoArgs
	f := cmd.Flags()
	f.BoolVar(&opts.WALSize, "wal-size", false, "print only the WAL size in bytes (an integer)")
	f.BoolVar(&opts.Fragmentation, "fragmentation", false, "print only the fragmentation as an integer percentage (rounded down)")
	f.BoolVar(&opts.Indexes, "indexes", false, "print index statistics: name, kind, entries, distinct values, selectivity")
	f.Var(cli.Choice(&opts.Metrics, "prometheus", "json", "statsd"), "metrics", "print the database-wide metrics in `format` prometheus|json|statsd")
	f.DurationVar(&opts.Interval, "interval", time.Second, "with --metrics, time between the two readings the rates come from")
	f.StringVar(&opts.Listen, "listen", "", "with --metrics prometheus, serve /metrics at `addr` (host:port; no host means 127.0.0.1) until SIGINT/SIGTERM")
	cmd.MarkFlagsMutuallyExclusive("wal-size", "fragmentation", "indexes", "metrics")
	_ = cmd.RegisterFlagCompletionFunc("metrics", cobra.FixedCompletions([]string{"prometheus", "json", "statsd"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		opts.Ctx = c.Context()
		if err := checkMetricsFlags(c, opts); err != nil {
			return err
		}
		if runF != nil {
			return runF(opts)
		}
		return Run(opts)
	}
	return cmd
}

// Result is the --json document of the default view.
type Result struct {
	SchemaVersion         int          `json:"schema_version"`
	Path                  string       `json:"db"`
	FormatVersion         uint32       `json:"format_version"`
	PageSize              int          `json:"page_size"`
	FileSize              int64        `json:"file_size"`
	PageCount             uint64       `json:"page_count"`
	FreePages             uint64       `json:"free_pages"`
	FragmentationPercent  float64      `json:"fragmentation_percent"`
	ReclaimableBytes      int64        `json:"reclaimable_bytes"`
	WALSize               int64        `json:"wal_size"`
	WALFrames             int          `json:"wal_frames"`
	WALFramesCheckpointed int          `json:"wal_frames_checkpointed"`
	WALFramesPending      int          `json:"wal_frames_pending"`
	LSN                   uint64       `json:"lsn"`
	LastCheckpointLSN     uint64       `json:"last_checkpoint_lsn"`
	LastCheckpoint        *time.Time   `json:"last_checkpoint_at"`
	Created               time.Time    `json:"created_at"`
	NodeCount             uint64       `json:"node_count"`
	EdgeCount             uint64       `json:"edge_count"`
	Labels                []LabelCount `json:"labels"`
	EdgeLabels            []LabelCount `json:"edge_labels"`
	PropertyIndexes       []string     `json:"property_indexes"`
	Indexes               []IndexStat  `json:"indexes"`
	// Replication is present while a replication node runs on the file.
	Replication *Replication `json:"replication,omitempty"`
}

// Replication is a replicated database's state, from NAME.db-replication.
type Replication struct {
	Role       string    `json:"role"`
	Node       string    `json:"node"`
	Mode       string    `json:"mode"`
	Primary    string    `json:"primary,omitempty"`
	AppliedLSN uint64    `json:"applied_lsn"`
	LagSeconds float64   `json:"lag_seconds"`
	Pending    uint64    `json:"pending"`
	UpdatedAt  time.Time `json:"updated_at"`
	Stale      bool      `json:"stale"` // the writing process stopped updating it
	Error      string    `json:"error,omitempty"`
}

// LabelCount is a label and how many nodes (or edges) carry it.
type LabelCount struct {
	Label string `json:"label"`
	Count uint64 `json:"count"`
}

// IndexStat describes one index.
type IndexStat struct {
	Name           string  `json:"name"`
	Kind           string  `json:"kind"`
	Entries        uint64  `json:"entries"`
	DistinctValues uint64  `json:"distinct_values"`
	Selectivity    float64 `json:"selectivity"`
	Estimated      bool    `json:"estimated,omitempty"` // distinct values from a sample
}

// WALSizeResult is the --json document of --wal-size.
type WALSizeResult struct {
	SchemaVersion int   `json:"schema_version"`
	WALSize       int64 `json:"wal_size"`
}

// FragmentationResult is the --json document of --fragmentation.
type FragmentationResult struct {
	SchemaVersion        int     `json:"schema_version"`
	FragmentationPercent float64 `json:"fragmentation_percent"`
}

// IndexesResult is the --json document of --indexes.
type IndexesResult struct {
	SchemaVersion int         `json:"schema_version"`
	Indexes       []IndexStat `json:"indexes"`
}

// MetricsResult is the --json document of --metrics.
type MetricsResult struct {
	SchemaVersion int                   `json:"schema_version"`
	Format        string                `json:"format"`
	Metrics       engine.DatabaseReport `json:"metrics"`
}

// Run opens the database read-only and prints the requested view.
func Run(opts *Options) error {
	g := &opts.Globals
	p := cli.NewPrinter(opts.IO, g)
	if opts.Listen != "" {
		return serveMetrics(opts) // opens the database at each scrape (metrics.go)
	}
	db, err := openDB(g)
	if err != nil {
		return err
	}
	defer db.Close()
	switch {
	case opts.Metrics != "":
		return printMetrics(opts, p, db)
	case opts.Indexes:
		stats, err := indexStats(db, 0)
		if err != nil {
			return err
		}
		return p.Result(IndexesResult{SchemaVersion: cli.SchemaVersion, Indexes: stats}, func(h *cli.Human) {
			indexTable(h, stats)
		})
	}
	// Reads every page only for a file from before space statistics.
	draw, stop := cli.ProgressFunc(opts.IO, g, "reading "+filepath.Base(db.Path()))
	in, err := db.InfoContext(g.Context(), draw)
	stop()
	if err != nil {
		return err // names the file and the problem already
	}
	switch {
	case opts.WALSize:
		return bare(p, opts, WALSizeResult{SchemaVersion: cli.SchemaVersion, WALSize: in.WALSize}, in.WALSize)
	case opts.Fragmentation:
		pct := int64(math.Floor(in.FragmentationPercent))
		return bare(p, opts, FragmentationResult{SchemaVersion: cli.SchemaVersion, FragmentationPercent: in.FragmentationPercent}, pct)
	}
	// The summary must stay fast on any database: distinct values of large
	// property indexes are estimated from a sample; --indexes counts exactly.
	stats, err := indexStats(db, summarySample)
	if err != nil {
		return err
	}
	res := newResult(in, stats)
	if res.Replication, err = replicationState(db.Path()); err != nil {
		return err
	}
	return p.Result(res, func(h *cli.Human) { summary(h, res) })
}

// bare prints n alone on a line for scripts, even under --quiet: the number
// is the whole point of asking for it.
func bare(p *cli.Printer, opts *Options, doc any, n int64) error {
	if opts.Globals.JSON {
		return p.Result(doc, nil)
	}
	h := p.Human()
	h.Line("%d", n)
	return nil
}

func newResult(in engine.Info, stats []IndexStat) Result {
	r := Result{SchemaVersion: cli.SchemaVersion, Path: in.Path, FormatVersion: in.FormatVersion,
		PageSize: in.PageSize, FileSize: in.FileSize, PageCount: in.PageCount, FreePages: in.FreePages,
		FragmentationPercent: in.FragmentationPercent, ReclaimableBytes: in.ReclaimableBytes,
		WALSize: in.WALSize, WALFrames: in.WALFrames, WALFramesCheckpointed: in.WALFramesCheckpointed,
		WALFramesPending: max(in.WALFrames-in.WALFramesCheckpointed, 0), LSN: in.LSN,
		LastCheckpointLSN: in.LastCheckpointLSN, LastCheckpoint: cli.TimestampPtr(in.LastCheckpoint), Created: cli.Timestamp(in.Created),
		NodeCount: in.NodeCount, EdgeCount: in.EdgeCount, Labels: labelCounts(in.Labels),
		EdgeLabels: labelCounts(in.EdgeLabels), PropertyIndexes: in.PropertyIndexes, Indexes: stats}
	if r.PropertyIndexes == nil {
		r.PropertyIndexes = []string{}
	}
	return r
}

// replicationState reads the replication status file, if any.
func replicationState(path string) (*Replication, error) {
	st, err := replication.ReadStatusFile(path)
	if err != nil || st == nil {
		return nil, err
	}
	return &Replication{Role: st.Role, Node: st.Node, Mode: st.Mode, Primary: st.PrimaryAddr, AppliedLSN: st.AppliedLSN,
		LagSeconds: st.Lag.Seconds(), Pending: st.Pending, UpdatedAt: cli.Timestamp(st.UpdatedAt), Stale: st.Stale(time.Now()), Error: st.Err}, nil
}

func labelCounts(in []engine.LabelCount) []LabelCount {
	out := make([]LabelCount, len(in))
	for i, l := range in {
		out[i] = LabelCount(l)
	}
	return out
}

// summarySample is how many entries of each property index the summary
// reads to estimate distinct values.
const summarySample = 10000

// indexStats gathers index statistics, exactly (sample 0) or estimated.
func indexStats(db *engine.DB, sample int) ([]IndexStat, error) {
	st, err := db.IndexStatisticsSampled(sample)
	if err != nil {
		return nil, fmt.Errorf("index statistics of %s: %w", db.Path(), err)
	}
	out := make([]IndexStat, len(st))
	for i, s := range st {
		out[i] = IndexStat{Name: s.Name, Kind: s.Kind, Entries: s.Entries, DistinctValues: s.Distinct, Selectivity: s.Selectivity, Estimated: s.Estimated}
	}
	return out, nil
}

func summary(h *cli.Human, r Result) {
	lastCkpt := "never"
	if r.LastCheckpoint != nil {
		lastCkpt = fmt.Sprintf("%s (LSN %d)", r.LastCheckpoint.Format(time.RFC3339), r.LastCheckpointLSN)
	}
	frag := cli.FormatPercent(r.FragmentationPercent)
	if r.FragmentationPercent > 20 {
		frag = h.Warn(frag)
	}
	props := "none"
	if len(r.PropertyIndexes) > 0 {
		props = strings.Join(r.PropertyIndexes, ", ")
	}
	h.KeyValues([][2]string{
		{"path", r.Path},
		{"format version", strconv.FormatUint(uint64(r.FormatVersion), 10)},
		{"page size", h.Bytes(int64(r.PageSize))},
		{"file size", h.BytesExact(r.FileSize)},
		{"page count", strconv.FormatUint(r.PageCount, 10)},
		{"free pages", strconv.FormatUint(r.FreePages, 10)},
		{"fragmentation", frag},
		{"reclaimable", h.BytesExact(r.ReclaimableBytes)},
		{"wal size", h.BytesExact(r.WALSize)},
		{"wal frames", fmt.Sprintf("%d (%d checkpointed, %d pending)", r.WALFrames, r.WALFramesCheckpointed, r.WALFramesPending)},
		{"last checkpoint", lastCkpt},
		{"lsn", strconv.FormatUint(r.LSN, 10)},
		{"created", r.Created.Format(time.RFC3339)},
		{"nodes", strconv.FormatUint(r.NodeCount, 10)},
		{"edges", strconv.FormatUint(r.EdgeCount, 10)},
		{"property indexes", props},
	})
	if rp := r.Replication; rp != nil {
		state := fmt.Sprintf("%s %s (%s), applied LSN %d, lag %.3fs", rp.Role, rp.Node, rp.Mode, rp.AppliedLSN, rp.LagSeconds)
		if rp.Primary != "" && rp.Role != "primary" {
			state += ", primary " + rp.Primary
		}
		if rp.Stale {
			state = h.Warn(state + fmt.Sprintf(" (not updated since %s)", rp.UpdatedAt.Format(time.RFC3339)))
		}
		h.KeyValues([][2]string{{"replication", state}})
	}
	if len(r.Labels) > 0 {
		h.Line("")
		h.Table([]string{"node label", "nodes"}, countRows(r.Labels))
	}
	if len(r.EdgeLabels) > 0 {
		h.Line("")
		h.Table([]string{"edge label", "edges"}, countRows(r.EdgeLabels))
	}
}

func countRows(ls []LabelCount) [][]string {
	rows := make([][]string, len(ls))
	for i, l := range ls {
		rows[i] = []string{l.Label, strconv.FormatUint(l.Count, 10)}
	}
	return rows
}

func indexTable(h *cli.Human, stats []IndexStat) {
	rows := make([][]string, len(stats))
	for i, s := range stats {
		distinct, sel := strconv.FormatUint(s.DistinctValues, 10), cli.FormatPercent(100*s.Selectivity)
		if s.Estimated {
			distinct, sel = "~"+distinct, "~"+sel
		}
		rows[i] = []string{s.Name, s.Kind, strconv.FormatUint(s.Entries, 10), distinct, sel}
	}
	h.Table([]string{"name", "kind", "entries", "distinct", "selectivity"}, rows)
}

// openDB opens the database read-only, failing at once on a busy lock
// unless --wait says otherwise.
func openDB(g *cli.Globals) (*engine.DB, error) {
	return cli.OpenDB(g, engine.Config{ReadOnly: true, BusyTimeout: g.BusyTimeout(cli.DefaultBusyTimeout)})
}
