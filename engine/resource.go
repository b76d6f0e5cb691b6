package engine

// resource.go: memory-pressure monitoring (the guide's
// enable_memory_pressure_monitoring). A background goroutine samples the
// process's resident memory against the memory it may use and logs a
// warn-level "resource alert" on Config.Logger when the usage crosses the
// threshold — once per crossing, not on every sample — and an info-level
// "resource alert cleared" when it falls back below. The page cache is not
// watched: a warm cache is full by design (it holds at most its budget,
// evicting as it goes), so its fullness says nothing about pressure; it is
// reported in each alert (cache_used_bytes) to show what the cache holds.

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/sombradb/sombra/engine/internal/sysmem"
)

// ResourceProcessMemory is the resource the memory monitor watches
// (ResourceAlert.Resource): the process's resident memory (RSS) against
// MemoryMonitorOptions.MemoryLimit.
const ResourceProcessMemory = "process_memory"

// Defaults of MemoryMonitorOptions.
const (
	DefaultMemoryMonitorInterval = 10 * time.Second
	// DefaultMemoryAlertHysteresis: an alert clears once usage is this far
	// below the threshold, so a usage hovering at it does not flap.
	DefaultMemoryAlertHysteresis = 0.05
)

// MemoryMonitorOptions configure EnableMemoryPressureMonitoringWithOptions.
type MemoryMonitorOptions struct {
	// Threshold is the usage fraction (0 < Threshold <= 1) at which an
	// alert is raised; the guide uses 0.8.
	Threshold float64
	// Interval between samples (default 10s).
	Interval time.Duration
	// MemoryLimit is what the process's resident memory is compared with,
	// in bytes. Zero picks, in order: the Go runtime's soft memory limit
	// (GOMEMLIMIT / debug.SetMemoryLimit) if one is set, the cgroup's
	// memory limit, the machine's physical memory. Negative disables the
	// monitor (Check then samples nothing).
	MemoryLimit int64
	// Hysteresis (default 0.05): an alert clears when usage drops below
	// Threshold-Hysteresis.
	Hysteresis float64
}

// ResourceAlert is one crossing of the threshold, in either direction.
type ResourceAlert struct {
	Resource  string  `json:"resource"` // ResourceProcessMemory
	Usage     float64 `json:"usage"`    // fraction of LimitBytes in use
	Threshold float64 `json:"threshold"`
	UsedBytes int64   `json:"used_bytes"`
	// LimitBytes is the memory limit the process is held against.
	LimitBytes int64 `json:"limit_bytes"`
	// CacheUsedBytes is what the page cache held at the sample, to tell
	// how much of the process's memory is the cache.
	CacheUsedBytes int64     `json:"cache_used_bytes"`
	Cleared        bool      `json:"cleared"` // usage went back below the threshold
	Time           time.Time `json:"time"`
}

// MemoryMonitor samples memory usage for one connection. Get it with
// DB.MemoryMonitor; the background goroutine calls Check every interval.
type MemoryMonitor struct {
	db   *DB
	opts MemoryMonitorOptions

	mu       sync.Mutex // serialises Check
	alerting map[string]bool
	last     map[string]ResourceAlert // latest sample of each resource

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	unhook   func()
}

// EnableMemoryPressureMonitoring starts watching memory with the default
// interval and limit, alerting at threshold (a fraction: 0.8 is 80%). It
// replaces any monitor already running on the connection. The monitor stops
// when the connection closes.
func (db *DB) EnableMemoryPressureMonitoring(threshold float64) error {
	return db.EnableMemoryPressureMonitoringWithOptions(MemoryMonitorOptions{Threshold: threshold})
}

// EnableMemoryPressureMonitoringWithOptions is EnableMemoryPressureMonitoring
// with every option.
func (db *DB) EnableMemoryPressureMonitoringWithOptions(o MemoryMonitorOptions) error {
	if !(o.Threshold > 0 && o.Threshold <= 1) {
		return fmt.Errorf("memory pressure threshold %v (want 0 < t <= 1): %w", o.Threshold, ErrInvalid)
	}
	if o.Interval < 0 || o.Hysteresis < 0 || o.Hysteresis >= 1 {
		return fmt.Errorf("memory monitor interval %v, hysteresis %v: %w", o.Interval, o.Hysteresis, ErrInvalid)
	}
	if o.Interval == 0 {
		o.Interval = DefaultMemoryMonitorInterval
	}
	if o.Hysteresis == 0 {
		o.Hysteresis = DefaultMemoryAlertHysteresis
	}
	m := &MemoryMonitor{db: db, opts: o, alerting: map[string]bool{}, last: map[string]ResourceAlert{},
		stop: make(chan struct{}), done: make(chan struct{})}
	unhook, err := db.OnClose(m.halt)
	if err != nil {
		return fmt.Errorf("memory pressure monitoring: %w", err)
	}
	m.unhook = unhook
	if old := db.ext.monitor.Swap(m); old != nil {
		old.Stop()
	}
	go m.loop()
	db.log.Info("memory pressure monitoring enabled", "threshold", o.Threshold, "interval", o.Interval)
	return nil
}

// DisableMemoryPressureMonitoring stops the monitor, if any.
func (db *DB) DisableMemoryPressureMonitoring() {
	if m := db.ext.monitor.Swap(nil); m != nil {
		m.Stop()
	}
}

// MemoryMonitor returns the running monitor, or nil.
func (db *DB) MemoryMonitor() *MemoryMonitor { return db.ext.monitor.Load() }

// Options returns the monitor's options, defaults filled in.
func (m *MemoryMonitor) Options() MemoryMonitorOptions { return m.opts }

// Stop stops the background goroutine and waits for it to exit. Check
// still works afterwards.
func (m *MemoryMonitor) Stop() {
	m.unhook()
	m.halt()
}

func (m *MemoryMonitor) halt() {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
	m.db.ext.monitor.CompareAndSwap(m, nil)
}

// Done is closed when the background goroutine has exited.
func (m *MemoryMonitor) Done() <-chan struct{} { return m.done }

func (m *MemoryMonitor) loop() {
	defer close(m.done)
	t := time.NewTicker(m.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.Check()
		}
	}
}

// Check samples memory once (what the background goroutine does every
// interval), logs crossings and returns them: an alert for each resource
// that reached the threshold since the previous Check, a cleared one for
// each that fell back below it.
func (m *MemoryMonitor) Check() []ResourceAlert {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	var out []ResourceAlert

	cs := m.db.p.CacheStats()
	cacheUsed := int64(cs.Pages) * int64(m.db.p.PageSize())
	var samples []ResourceAlert
	rss := sysmem.ProcessRSS()
	if limit := m.memoryLimit(); limit > 0 && rss > 0 {
		samples = append(samples, ResourceAlert{Resource: ResourceProcessMemory, UsedBytes: rss, LimitBytes: limit,
			Usage: float64(rss) / float64(limit), Threshold: m.opts.Threshold, CacheUsedBytes: cacheUsed, Time: now})
	}
	for _, s := range samples {
		m.last[s.Resource] = s
		switch {
		case !m.alerting[s.Resource] && s.Usage >= m.opts.Threshold:
			m.alerting[s.Resource] = true
			m.db.log.Warn("resource alert", "resource", s.Resource, "usage", round3(s.Usage), "threshold", s.Threshold,
				"used_bytes", s.UsedBytes, "limit_bytes", s.LimitBytes, "cache_used_bytes", cacheUsed,
				"path", m.db.p.Path())
			out = append(out, s)
		case m.alerting[s.Resource] && s.Usage < m.opts.Threshold-m.opts.Hysteresis:
			m.alerting[s.Resource] = false
			s.Cleared = true
			m.db.log.Info("resource alert cleared", "resource", s.Resource, "usage", round3(s.Usage),
				"threshold", s.Threshold, "used_bytes", s.UsedBytes, "limit_bytes", s.LimitBytes, "path", m.db.p.Path())
			out = append(out, s)
		}
	}
	return out
}

// Status returns the latest sample of each resource and whether it is in
// alert (Cleared false and Usage >= Threshold means alerting).
func (m *MemoryMonitor) Status() []ResourceAlert {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ResourceAlert, 0, len(m.last))
	for _, r := range []string{ResourceProcessMemory} {
		if s, ok := m.last[r]; ok {
			s.Cleared = !m.alerting[r]
			out = append(out, s)
		}
	}
	return out
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

func (m *MemoryMonitor) memoryLimit() int64 {
	switch {
	case m.opts.MemoryLimit > 0:
		return m.opts.MemoryLimit
	case m.opts.MemoryLimit < 0:
		return 0
	}
	return sysmem.Limit()
}
