package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sombradb/sombra/engine/internal/shm"
)

// Two kinds of metrics:
//
//   - GetPerformanceMetrics (metrics.go) describes one connection: what this
//     *DB did since it was opened, its own cache and process. It is what an
//     application reports about itself.
//   - DatabaseMetrics (this file) describes the database: counters that
//     every connection of every process adds to, kept in the -shm
//     coordination file. It is what a monitoring process that opens its own
//     connection (sombra-info --metrics, an exporter) must report, since its
//     own connection has done nothing.
//
// The shared counters are reset only when the database is opened by a
// first connection (nobody else has it open), so they cover everything
// since the database was last closed by everyone (CountersSince). Rates come
// from two readings (RatesSince), never from an average since a connection
// opened.

// DatabaseMetrics is one reading of the database-wide counters, plus the
// WAL's state at that moment.
type DatabaseMetrics struct {
	// ReadAt is when the counters were read; CountersSince when they were
	// last reset (the first open after everyone had closed the database).
	ReadAt        time.Time `json:"read_at"`
	CountersSince time.Time `json:"counters_since"`

	TransactionsCommitted uint64 `json:"transactions_committed"`
	TransactionsFailed    uint64 `json:"transactions_failed"`
	Rollbacks             uint64 `json:"rollbacks"`
	// ReadTransactions, WriteOperations (creates, updates, deletes) and
	// the cache counters are published by each connection at the end of
	// each write transaction, once a second, when it closes and when it
	// reads these metrics, not at each operation: another connection's
	// reads may show up to a second late.
	ReadTransactions uint64 `json:"read_transactions"`
	WriteOperations  uint64 `json:"write_operations"`
	// WALFramesWritten and WALBytesWritten count the frames written to the
	// log (with their headers; the log's own header is not counted),
	// including pages a large transaction spilled before it ended.
	WALFramesWritten uint64 `json:"wal_frames_written"`
	WALBytesWritten  uint64 `json:"wal_bytes_written"`
	// Checkpoints counts checkpoints that completed, CheckpointSeconds the
	// time they took; CheckpointPages counts pages copied into the database
	// file by any checkpoint, completed or not.
	Checkpoints       uint64  `json:"checkpoints"`
	CheckpointSeconds float64 `json:"checkpoint_seconds"`
	CheckpointPages   uint64  `json:"checkpoint_pages"`
	// CacheHits and CacheMisses are summed over every connection's cache.
	CacheHits   uint64 `json:"cache_hits"`
	CacheMisses uint64 `json:"cache_misses"`
	// BusyWaits counts lock requests (writer, checkpoint, open) that found
	// the lock held by another connection and waited; BusyTimeouts those
	// that gave up with ErrBusy.
	BusyWaits       uint64  `json:"busy_waits"`
	BusyWaitSeconds float64 `json:"busy_wait_seconds"`
	BusyTimeouts    uint64  `json:"busy_timeouts"`

	CommitLatency CommitLatencyHistogram `json:"commit_latency"`

	WALSizeBytes int64 `json:"wal_size_bytes"`
	// DirtyPages counts committed frames not yet checkpointed.
	DirtyPages int `json:"dirty_pages"`
}

// CommitLatencyHistogram is the distribution of commit latencies.
type CommitLatencyHistogram struct {
	// BoundsSeconds are the buckets' upper bounds; a last bucket (+Inf)
	// takes the rest.
	BoundsSeconds []float64 `json:"bounds_seconds"`
	// Counts are the commits per bucket (not cumulative), one more than
	// BoundsSeconds.
	Counts     []uint64 `json:"counts"`
	SumSeconds float64  `json:"sum_seconds"`
}

// Count is the number of commits in the histogram.
func (h CommitLatencyHistogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// sub returns the commits of h not in prev (prev an earlier reading of the
// same counters).
func (h CommitLatencyHistogram) sub(prev CommitLatencyHistogram) CommitLatencyHistogram {
	out := CommitLatencyHistogram{BoundsSeconds: h.BoundsSeconds, Counts: make([]uint64, len(h.Counts)),
		SumSeconds: math.Max(h.SumSeconds-prev.SumSeconds, 0)}
	for i, c := range h.Counts {
		if i < len(prev.Counts) && prev.Counts[i] <= c {
			c -= prev.Counts[i]
		}
		out.Counts[i] = c
	}
	return out
}

// Quantile estimates the q-quantile (0..1) in seconds the way Prometheus's
// histogram_quantile does: linear within the bucket holding it, and the
// highest finite bound when it falls in the +Inf bucket. 0 when empty.
func (h CommitLatencyHistogram) Quantile(q float64) float64 {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	var cum float64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			if i >= len(h.BoundsSeconds) {
				return h.BoundsSeconds[len(h.BoundsSeconds)-1]
			}
			lo := 0.0
			if i > 0 {
				lo = h.BoundsSeconds[i-1]
			}
			return lo + (h.BoundsSeconds[i]-lo)*(rank-cum)/float64(c)
		}
		cum += float64(c)
	}
	return h.BoundsSeconds[len(h.BoundsSeconds)-1]
}

// DatabaseMetrics reads the database-wide counters. It fails with an error
// matching ErrMetricsUnavailable when this connection cannot see them (no
// coordination file, or one whose counters another build laid out).
// It first publishes this connection's own pending counts.
func (db *DB) DatabaseMetrics() (DatabaseMetrics, error) {
	db.mu.Lock()
	closed := db.closed
	db.mu.Unlock()
	if closed { // the -shm is unmapped
		return DatabaseMetrics{}, fmt.Errorf("%s: database metrics: %w", db.p.Path(), ErrClosed)
	}
	s := db.p.Shm()
	if !s.Shared() {
		return DatabaseMetrics{}, fmt.Errorf("%s: %w: the connection was opened without the coordination file %s-shm, where the counters are kept (a read-only open that could not write it)",
			db.p.Path(), ErrMetricsUnavailable, db.p.Path())
	}
	if !s.Counting() {
		return DatabaseMetrics{}, fmt.Errorf("%s: %w: %s has counters of layout version %d, this build reads version %d (a process of another build has the database open)",
			db.p.Path(), ErrMetricsUnavailable, s.Path, s.CountersVersionFound(), shm.CountersVersion)
	}
	db.publishShared()
	snap, ok := s.ReadCounters()
	if !ok {
		return DatabaseMetrics{}, fmt.Errorf("%s: %w: the counters region of %s changed layout while the connection was open",
			db.p.Path(), ErrMetricsUnavailable, s.Path)
	}
	c := snap.Counters
	m := DatabaseMetrics{ReadAt: time.Now(), CountersSince: snap.Reset,
		TransactionsCommitted: c[shm.CtrCommits], TransactionsFailed: c[shm.CtrCommitFailures],
		Rollbacks: c[shm.CtrRollbacks], ReadTransactions: c[shm.CtrReadTx], WriteOperations: c[shm.CtrWriteOps],
		WALFramesWritten: c[shm.CtrWALFrames], WALBytesWritten: c[shm.CtrWALBytes],
		Checkpoints: c[shm.CtrCheckpoints], CheckpointSeconds: seconds(c[shm.CtrCheckpointNanos]),
		CheckpointPages: c[shm.CtrCheckpointPages], CacheHits: c[shm.CtrCacheHits], CacheMisses: c[shm.CtrCacheMisses],
		BusyWaits: c[shm.CtrBusyWaits], BusyWaitSeconds: seconds(c[shm.CtrBusyWaitNanos]), BusyTimeouts: c[shm.CtrBusyTimeouts],
		CommitLatency: CommitLatencyHistogram{BoundsSeconds: shm.LatencyBounds[:], Counts: snap.Buckets[:],
			SumSeconds: seconds(c[shm.CtrCommitLatencyNanos])}}
	st, err := db.p.WAL()
	if err != nil {
		return DatabaseMetrics{}, fmt.Errorf("database metrics: %w", err)
	}
	m.WALSizeBytes, m.DirtyPages = st.Size, st.Frames-st.Backfilled
	return m, nil
}

func seconds(ns uint64) float64 { return float64(ns) / float64(time.Second) }

// publishShared adds to the shared counters what this connection counted
// locally since it last did: read transactions, write operations and cache
// hits and misses, which happen too often to update shared memory each time (every process's
// cores would contend for the same cache line).
func (db *DB) publishShared() {
	s := db.p.Shm()
	if !s.Counting() {
		return
	}
	m := db.metrics
	hits, misses := db.p.CacheCounters()
	publishDelta(&m.sharedReads, m.reads.Load(), s, shm.CtrReadTx)
	publishDelta(&m.sharedWrites, m.writes.Load(), s, shm.CtrWriteOps)
	publishDelta(&m.sharedHits, hits, s, shm.CtrCacheHits)
	publishDelta(&m.sharedMisses, misses, s, shm.CtrCacheMisses)
}

// publishDelta adds cur-done to counter c and advances done to cur; the
// compare-and-swap makes two goroutines publishing at once add it once.
func publishDelta(done *atomic.Uint64, cur uint64, s *shm.File, c int) {
	for {
		old := done.Load()
		if cur <= old {
			return
		}
		if done.CompareAndSwap(old, cur) {
			s.Add(c, cur-old)
			return
		}
	}
}

// DatabaseRates are rates between two readings of DatabaseMetrics.
type DatabaseRates struct {
	// IntervalSeconds is the time between the readings (or since the
	// counters were reset, when that happened between them).
	IntervalSeconds       float64 `json:"interval_seconds"`
	TransactionsPerSecond float64 `json:"transactions_per_second"`
	ReadsPerSecond        float64 `json:"reads_per_second"`
	WritesPerSecond       float64 `json:"writes_per_second"`
	RollbacksPerSecond    float64 `json:"rollbacks_per_second"`
	WALBytesPerSecond     float64 `json:"wal_bytes_per_second"`
	CheckpointsPerSecond  float64 `json:"checkpoints_per_second"`
	BusyWaitsPerSecond    float64 `json:"busy_waits_per_second"`
	// CacheHitRate (0..1) and the commit latency percentiles are over the
	// interval; when no page was read (no commit made) in it, over
	// everything since the counters were reset, and 0 if nothing then.
	CacheHitRate       float64 `json:"cache_hit_rate"`
	CommitLatencyP50Ms float64 `json:"commit_latency_p50_ms"`
	CommitLatencyP95Ms float64 `json:"commit_latency_p95_ms"`
	CommitLatencyP99Ms float64 `json:"commit_latency_p99_ms"`
}

// RatesSince computes the rates from prev, an earlier reading, to m. When
// the counters were reset between the two (everyone closed the database),
// they are taken from the reset.
func (m DatabaseMetrics) RatesSince(prev DatabaseMetrics) DatabaseRates {
	base, from := prev, prev.ReadAt
	if !prev.CountersSince.Equal(m.CountersSince) {
		base, from = DatabaseMetrics{}, m.CountersSince
	}
	var r DatabaseRates
	r.IntervalSeconds = m.ReadAt.Sub(from).Seconds()
	per := func(cur, old uint64) float64 {
		if r.IntervalSeconds <= 0 || cur < old {
			return 0
		}
		return float64(cur-old) / r.IntervalSeconds
	}
	r.TransactionsPerSecond = per(m.TransactionsCommitted, base.TransactionsCommitted)
	r.ReadsPerSecond = per(m.ReadTransactions, base.ReadTransactions)
	r.WritesPerSecond = per(m.WriteOperations, base.WriteOperations)
	r.RollbacksPerSecond = per(m.Rollbacks, base.Rollbacks)
	r.WALBytesPerSecond = per(m.WALBytesWritten, base.WALBytesWritten)
	r.CheckpointsPerSecond = per(m.Checkpoints, base.Checkpoints)
	r.BusyWaitsPerSecond = per(m.BusyWaits, base.BusyWaits)
	hits, misses := m.CacheHits-min(base.CacheHits, m.CacheHits), m.CacheMisses-min(base.CacheMisses, m.CacheMisses)
	if hits+misses == 0 {
		hits, misses = m.CacheHits, m.CacheMisses
	}
	if hits+misses > 0 {
		r.CacheHitRate = float64(hits) / float64(hits+misses)
	}
	h := m.CommitLatency.sub(base.CommitLatency)
	if h.Count() == 0 {
		h = m.CommitLatency
	}
	r.CommitLatencyP50Ms = 1000 * h.Quantile(0.50)
	r.CommitLatencyP95Ms = 1000 * h.Quantile(0.95)
	r.CommitLatencyP99Ms = 1000 * h.Quantile(0.99)
	return r
}

// DatabaseReport is a reading of the database-wide counters with the rates
// since an earlier one: what sombra-info --metrics prints.
type DatabaseReport struct {
	DatabaseMetrics
	DatabaseRates
	prev DatabaseMetrics // for StatsD's per-interval counts
}

// NewDatabaseReport pairs the reading cur with the rates since prev.
func NewDatabaseReport(prev, cur DatabaseMetrics) DatabaseReport {
	if !prev.CountersSince.Equal(cur.CountersSince) {
		prev = DatabaseMetrics{}
	}
	return DatabaseReport{DatabaseMetrics: cur, DatabaseRates: cur.RatesSince(prev), prev: prev}
}

type dbMetricDef struct {
	name, help, typ string
	value, prev     float64
}

func (r DatabaseReport) defs() []dbMetricDef {
	m, p := r.DatabaseMetrics, r.prev
	ctr := func(name, help string, cur, old uint64) dbMetricDef {
		return dbMetricDef{name, help, "counter", float64(cur), float64(old)}
	}
	gauge := func(name, help string, v float64) dbMetricDef { return dbMetricDef{name, help, "gauge", v, 0} }
	return []dbMetricDef{
		ctr("sombra_transactions_total", "Write transactions committed, by every connection.", m.TransactionsCommitted, p.TransactionsCommitted),
		ctr("sombra_transactions_failed_total", "Commits that failed.", m.TransactionsFailed, p.TransactionsFailed),
		ctr("sombra_rollbacks_total", "Write transactions rolled back.", m.Rollbacks, p.Rollbacks),
		ctr("sombra_read_transactions_total", "Read transactions begun.", m.ReadTransactions, p.ReadTransactions),
		ctr("sombra_write_operations_total", "Write operations (creates, updates, deletes).", m.WriteOperations, p.WriteOperations),
		ctr("sombra_wal_frames_written_total", "Frames written to the WAL.", m.WALFramesWritten, p.WALFramesWritten),
		ctr("sombra_wal_bytes_written_total", "Bytes written to the WAL.", m.WALBytesWritten, p.WALBytesWritten),
		ctr("sombra_checkpoints_total", "Checkpoints completed.", m.Checkpoints, p.Checkpoints),
		{"sombra_checkpoint_seconds_total", "Time spent in completed checkpoints.", "counter", m.CheckpointSeconds, p.CheckpointSeconds},
		ctr("sombra_checkpoint_pages_total", "Pages copied into the database file by checkpoints.", m.CheckpointPages, p.CheckpointPages),
		ctr("sombra_cache_hits_total", "Page cache hits, summed over connections.", m.CacheHits, p.CacheHits),
		ctr("sombra_cache_misses_total", "Page cache misses, summed over connections.", m.CacheMisses, p.CacheMisses),
		ctr("sombra_busy_waits_total", "Lock requests that waited for another connection.", m.BusyWaits, p.BusyWaits),
		{"sombra_busy_wait_seconds_total", "Time spent waiting for locks held by other connections.", "counter", m.BusyWaitSeconds, p.BusyWaitSeconds},
		ctr("sombra_busy_timeouts_total", "Lock waits that gave up (busy errors).", m.BusyTimeouts, p.BusyTimeouts),
		gauge("sombra_counters_reset_timestamp_seconds", "When the counters were last reset (the database was opened after everyone had closed it), Unix time.", float64(m.CountersSince.UnixNano())/1e9),
		gauge("sombra_rate_interval_seconds", "Interval the per-second rates were measured over.", r.IntervalSeconds),
		gauge("sombra_transactions_per_second", "Commit rate over the interval.", r.TransactionsPerSecond),
		gauge("sombra_reads_per_second", "Read transaction rate over the interval.", r.ReadsPerSecond),
		gauge("sombra_writes_per_second", "Write operation rate over the interval.", r.WritesPerSecond),
		gauge("sombra_wal_bytes_per_second", "WAL write rate over the interval.", r.WALBytesPerSecond),
		gauge("sombra_cache_hit_rate", "Page cache hit rate over the interval (0..1).", r.CacheHitRate),
		gauge("sombra_commit_latency_ms", "99th percentile commit latency over the interval (from the histogram).", r.CommitLatencyP99Ms),
		gauge("sombra_commit_latency_p50_ms", "Median commit latency over the interval (from the histogram).", r.CommitLatencyP50Ms),
		gauge("sombra_commit_latency_p95_ms", "95th percentile commit latency over the interval (from the histogram).", r.CommitLatencyP95Ms),
		gauge("sombra_wal_size_bytes", "WAL file size.", float64(m.WALSizeBytes)),
		gauge("sombra_dirty_pages", "Committed frames not yet checkpointed.", float64(m.DirtyPages)),
	}
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// ToPrometheusFormat renders the report in the Prometheus text exposition
// format (version 0.0.4); commit latency is a histogram
// (sombra_commit_latency_seconds).
func (r DatabaseReport) ToPrometheusFormat() string {
	var b strings.Builder
	for _, d := range r.defs() {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", d.name, d.help, d.name, d.typ, d.name, fmtFloat(d.value))
	}
	h := r.CommitLatency
	const name = "sombra_commit_latency_seconds"
	fmt.Fprintf(&b, "# HELP %s Commit latency, every connection's commits.\n# TYPE %s histogram\n", name, name)
	var cum uint64
	for i, c := range h.Counts {
		cum += c
		le := "+Inf"
		if i < len(h.BoundsSeconds) {
			le = fmtFloat(h.BoundsSeconds[i])
		}
		fmt.Fprintf(&b, "%s_bucket{le=%q} %d\n", name, le, cum)
	}
	fmt.Fprintf(&b, "%s_sum %s\n%s_count %d\n", name, fmtFloat(h.SumSeconds), name, cum)
	return b.String()
}

// ToJSON renders the report as one JSON object.
func (r DatabaseReport) ToJSON() string {
	b, _ := json.Marshal(r) // numbers, times and slices of numbers cannot fail
	return string(b)
}

// ToStatsD renders the report as StatsD lines: the counters' increase over
// the interval as counts ("name:n|c", what StatsD sums per flush) and the
// rest as gauges ("name:v|g").
func (r DatabaseReport) ToStatsD() string {
	var b strings.Builder
	for _, d := range r.defs() {
		name := "sombra." + strings.TrimSuffix(strings.TrimPrefix(d.name, "sombra_"), "_total")
		// Plain decimals: not every StatsD server parses exponents.
		if d.typ == "counter" {
			fmt.Fprintf(&b, "%s:%s|c\n", name, strconv.FormatFloat(math.Max(d.value-d.prev, 0), 'f', -1, 64))
		} else {
			fmt.Fprintf(&b, "%s:%s|g\n", name, strconv.FormatFloat(d.value, 'f', -1, 64))
		}
	}
	return b.String()
}
