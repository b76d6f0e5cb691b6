package engine

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sombradb/sombra/engine/internal/sysmem"
)

// metricsState accumulates counters and a window of recent commit
// latencies for percentiles.
type metricsState struct {
	started   time.Time
	commits   atomic.Uint64
	failed    atomic.Uint64
	rollbacks atomic.Uint64
	reads     atomic.Uint64
	writes    atomic.Uint64
	pages     atomic.Uint64

	// How much of reads, writes and the cache's hits and misses this
	// connection has added to the database-wide counters (dbmetrics.go).
	sharedReads, sharedWrites, sharedHits, sharedMisses atomic.Uint64

	mu      sync.Mutex
	lat     []float64 // ring of recent commit latencies in ms
	latNext int

	// Rates are taken over a recent window, not since open (an average
	// since open hides that a busy service went idle an hour ago): a
	// sampler records the counters once a second into this ring
	// (guarded by mu), and a rate is the difference between the live
	// counters and the oldest sample inside RateWindow.
	samples  [rateSamples]rateSample
	nSamples int // samples held (up to rateSamples)
	next     int // where the next sample goes
}

// RateWindow is the span the per-second rates of PerformanceMetrics are
// measured over (shorter while the connection is younger).
const RateWindow = 60 * time.Second

const (
	latencyWindow  = 4096
	rateSampleStep = time.Second
	rateSamples    = int(RateWindow/rateSampleStep) + 2
)

// rateSample is the counters at one instant.
type rateSample struct {
	at                     time.Time
	commits, reads, writes uint64
}

func newMetrics() *metricsState {
	m := &metricsState{started: time.Now()}
	m.sample(m.started)
	return m
}

// startSampler samples the counters every second until stop is closed,
// calling tick after each sample. The returned channel is closed when the
// sampler has stopped: tick touches the mapped -shm, which must not be
// unmapped under it.
func (m *metricsState) startSampler(stop <-chan struct{}, tick func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(rateSampleStep)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				m.sample(now)
				tick()
			}
		}
	}()
	return done
}

// sample records the counters as of now.
func (m *metricsState) sample(now time.Time) {
	s := rateSample{at: now, commits: m.commits.Load(), reads: m.reads.Load(), writes: m.writes.Load()}
	m.mu.Lock()
	m.samples[m.next] = s
	m.next = (m.next + 1) % rateSamples
	m.nSamples = min(m.nSamples+1, rateSamples)
	m.mu.Unlock()
}

// rates returns commits, read transactions and write operations per second
// over the last RateWindow (or since open when younger), and the span in
// seconds they were measured over.
func (m *metricsState) rates(now time.Time) (tps, rps, wps, span float64) {
	cur := rateSample{at: now, commits: m.commits.Load(), reads: m.reads.Load(), writes: m.writes.Load()}
	m.mu.Lock()
	// The oldest sample inside the window; if the sampler fell behind and
	// none is, the newest one (a longer span, still the latest data).
	var base rateSample
	found := false
	for i := range m.nSamples { // oldest first
		base, found = m.samples[(m.next-m.nSamples+i+rateSamples)%rateSamples], true
		if now.Sub(base.at) <= RateWindow {
			break
		}
	}
	m.mu.Unlock()
	d := cur.at.Sub(base.at).Seconds()
	if !found || d <= 0 {
		return 0, 0, 0, 0
	}
	return float64(cur.commits-base.commits) / d, float64(cur.reads-base.reads) / d,
		float64(cur.writes-base.writes) / d, d
}

func (m *metricsState) recordCommit(d time.Duration, pages int) {
	m.commits.Add(1)
	m.pages.Add(uint64(pages))
	ms := float64(d.Nanoseconds()) / 1e6
	m.mu.Lock()
	if len(m.lat) < latencyWindow {
		m.lat = append(m.lat, ms)
	} else {
		m.lat[m.latNext] = ms
		m.latNext = (m.latNext + 1) % latencyWindow
	}
	m.mu.Unlock()
}

// PerformanceMetrics is a point-in-time view of a connection's activity:
// what this *DB did, not what the database's other connections did. A
// process that opens its own connection to watch a database (an exporter)
// wants DB.DatabaseMetrics instead (dbmetrics.go).
type PerformanceMetrics struct {
	UptimeSeconds         float64 `json:"uptime_seconds"`
	TransactionsCommitted uint64  `json:"transactions_committed"`
	TransactionsFailed    uint64  `json:"transactions_failed"`
	Rollbacks             uint64  `json:"rollbacks"`
	ReadTransactions      uint64  `json:"read_transactions"`
	WriteOperations       uint64  `json:"write_operations"`
	// TransactionsPerSecond, ReadsPerSecond and WritesPerSecond are rates
	// over the last RateWindowSeconds (60, or the connection's age when
	// younger), not averages since open.
	TransactionsPerSecond float64 `json:"transactions_per_second"`
	ReadsPerSecond        float64 `json:"reads_per_second"`
	WritesPerSecond       float64 `json:"writes_per_second"`
	RateWindowSeconds     float64 `json:"rate_window_seconds"`
	CommitLatencyP50Ms    float64 `json:"commit_latency_p50_ms"`
	CommitLatencyP95Ms    float64 `json:"commit_latency_p95_ms"`
	CommitLatencyP99Ms    float64 `json:"commit_latency_p99_ms"`
	CacheHitRate          float64 `json:"cache_hit_rate"`
	CacheHits             uint64  `json:"cache_hits"`
	CacheMisses           uint64  `json:"cache_misses"`
	CacheSizeBytes        int64   `json:"cache_size_bytes"`
	CacheUsedBytes        int64   `json:"cache_used_bytes"`
	// CacheFill is the fraction of the cache budget in use (0..1); a warm
	// cache is normally near 1, which is no cause for alarm.
	CacheFill float64 `json:"cache_fill"`
	// MemoryPressure is the process's resident memory against the memory
	// it may use (sysmem.Limit: GOMEMLIMIT, the cgroup's memory.max,
	// or physical memory), 0..1; 0 when either cannot be read.
	MemoryPressure   float64 `json:"memory_pressure"`
	ProcessRSSBytes  int64   `json:"process_rss_bytes"`
	MemoryLimitBytes int64   `json:"memory_limit_bytes"`
	WALSizeBytes     int64   `json:"wal_size_bytes"`
	// DirtyPages counts committed pages not yet checkpointed into the
	// database file (pages written by a live transaction are private to it).
	DirtyPages int `json:"dirty_pages"`
}

// P50CommitLatency returns the median commit latency in milliseconds.
func (m PerformanceMetrics) P50CommitLatency() float64 { return m.CommitLatencyP50Ms }

// P95CommitLatency returns the 95th percentile commit latency in ms.
func (m PerformanceMetrics) P95CommitLatency() float64 { return m.CommitLatencyP95Ms }

// P99CommitLatency returns the 99th percentile commit latency in ms.
func (m PerformanceMetrics) P99CommitLatency() float64 { return m.CommitLatencyP99Ms }

// GetPerformanceMetrics returns the connection's metrics (for the whole
// database's, see DatabaseMetrics).
func (db *DB) GetPerformanceMetrics() PerformanceMetrics {
	m := db.metrics
	up := time.Since(m.started).Seconds()
	out := PerformanceMetrics{UptimeSeconds: up, TransactionsCommitted: m.commits.Load(),
		TransactionsFailed: m.failed.Load(), Rollbacks: m.rollbacks.Load(),
		ReadTransactions: m.reads.Load(), WriteOperations: m.writes.Load()}
	out.TransactionsPerSecond, out.ReadsPerSecond, out.WritesPerSecond, out.RateWindowSeconds = m.rates(time.Now())
	m.mu.Lock()
	lat := slices.Clone(m.lat)
	m.mu.Unlock()
	slices.Sort(lat)
	out.CommitLatencyP50Ms = percentile(lat, 0.50)
	out.CommitLatencyP95Ms = percentile(lat, 0.95)
	out.CommitLatencyP99Ms = percentile(lat, 0.99)
	cs := db.p.CacheStats()
	out.CacheHits, out.CacheMisses = cs.Hits, cs.Misses
	if cs.Hits+cs.Misses > 0 {
		out.CacheHitRate = float64(cs.Hits) / float64(cs.Hits+cs.Misses)
	}
	ps := int64(db.p.PageSize())
	out.CacheSizeBytes = int64(cs.MaxPage) * ps
	out.CacheUsedBytes = int64(cs.Pages) * ps
	if cs.MaxPage > 0 {
		out.CacheFill = float64(cs.Pages) / float64(cs.MaxPage)
	}
	out.ProcessRSSBytes, out.MemoryLimitBytes = sysmem.ProcessRSS(), sysmem.Limit()
	if out.ProcessRSSBytes > 0 && out.MemoryLimitBytes > 0 {
		out.MemoryPressure = float64(out.ProcessRSSBytes) / float64(out.MemoryLimitBytes)
	}
	if st, err := db.p.WAL(); err == nil {
		out.WALSizeBytes = st.Size
		out.DirtyPages = st.Frames - st.Backfilled
	}
	return out
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}

type metricDef struct {
	name, help, typ string
	value           float64
}

func (m PerformanceMetrics) defs() []metricDef {
	return []metricDef{
		{"sombra_transactions_total", "Transactions committed.", "counter", float64(m.TransactionsCommitted)},
		{"sombra_transactions_failed_total", "Commits that failed.", "counter", float64(m.TransactionsFailed)},
		{"sombra_rollbacks_total", "Transactions rolled back.", "counter", float64(m.Rollbacks)},
		{"sombra_read_transactions_total", "Read transactions begun.", "counter", float64(m.ReadTransactions)},
		{"sombra_write_operations_total", "Write operations (creates, updates, deletes).", "counter", float64(m.WriteOperations)},
		{"sombra_transactions_per_second", "Commit rate over the last 60s.", "gauge", m.TransactionsPerSecond},
		{"sombra_reads_per_second", "Read transaction rate over the last 60s.", "gauge", m.ReadsPerSecond},
		{"sombra_writes_per_second", "Write operation rate over the last 60s.", "gauge", m.WritesPerSecond},
		{"sombra_commit_latency_ms", "99th percentile commit latency over recent commits.", "gauge", m.CommitLatencyP99Ms},
		{"sombra_commit_latency_p50_ms", "Median commit latency.", "gauge", m.CommitLatencyP50Ms},
		{"sombra_commit_latency_p95_ms", "95th percentile commit latency.", "gauge", m.CommitLatencyP95Ms},
		{"sombra_cache_hit_rate", "Page cache hit rate (0..1).", "gauge", m.CacheHitRate},
		{"sombra_cache_size_bytes", "Page cache budget.", "gauge", float64(m.CacheSizeBytes)},
		{"sombra_cache_used_bytes", "Page cache in use.", "gauge", float64(m.CacheUsedBytes)},
		{"sombra_cache_fill", "Fraction of the cache budget in use.", "gauge", m.CacheFill},
		{"sombra_memory_pressure", "Process resident memory against its limit (0..1).", "gauge", m.MemoryPressure},
		{"sombra_process_rss_bytes", "Process resident memory.", "gauge", float64(m.ProcessRSSBytes)},
		{"sombra_memory_limit_bytes", "Memory the process may use (GOMEMLIMIT, cgroup, physical).", "gauge", float64(m.MemoryLimitBytes)},
		{"sombra_wal_size_bytes", "WAL file size.", "gauge", float64(m.WALSizeBytes)},
		{"sombra_dirty_pages", "Committed pages not yet checkpointed.", "gauge", float64(m.DirtyPages)},
	}
}

// ToPrometheusFormat renders the metrics in the Prometheus text exposition
// format (version 0.0.4).
func (m PerformanceMetrics) ToPrometheusFormat() string {
	var b strings.Builder
	for _, d := range m.defs() {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %g\n", d.name, d.help, d.name, d.typ, d.name, d.value)
	}
	return b.String()
}

// ToJSON renders the metrics as a JSON object.
func (m PerformanceMetrics) ToJSON() string {
	b, _ := json.Marshal(m) // a struct of numbers cannot fail to marshal
	return string(b)
}

// ToStatsD renders the metrics as StatsD gauge lines ("name:value|g").
func (m PerformanceMetrics) ToStatsD() string {
	var b strings.Builder
	for _, d := range m.defs() {
		name := strings.Replace(strings.TrimPrefix(d.name, "sombra_"), "_total", "", 1)
		fmt.Fprintf(&b, "sombra.%s:%g|g\n", name, d.value)
	}
	return b.String()
}
