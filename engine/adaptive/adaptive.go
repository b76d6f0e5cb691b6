// Package adaptive tunes a connection at run time from its own metrics (the
// guide's AdaptiveConfig).
//
// Tune looks at the activity since the previous Tune (a window) and applies
// these rules, each adjustment logged at info level and returned as an
// Action:
//
//   - grow_cache: the cache hit rate over the window is below MinHitRate
//     (0.8), the window saw at least MinCacheAccesses lookups, and the cache
//     is at least GrowMinPressure (0.9) full, so the misses are evictions
//     rather than first reads: the cache grows by GrowFactor (1.2x, rounded
//     up to whole pages) up to MaxCacheSize (1 GiB).
//   - enable_group_commit: the p99 commit latency (over the engine's window
//     of recent commits) is above MaxP99CommitLatency (100ms), at least
//     MinCommits transactions committed in the window and group commit is
//     off: it is turned on with GroupCommitInterval (5ms) and
//     GroupCommitMaxTx (50).
//   - shrink_cache (only with Rules.Shrink): the hit rate is at least
//     ShrinkMinHitRate (0.99) and the cache is less than ShrinkMaxPressure
//     (0.5) full: the cache shrinks by GrowFactor, not below MinCacheSize
//     (default: the size when the AdaptiveConfig was made). Since the cache
//     is less than half full, the shrink evicts nothing.
//
// EnableAdaptiveTuning runs Tune every monitoring interval (default one
// minute) on a background goroutine that stops with DisableAdaptiveTuning
// or when the database is closed.
package adaptive

import (
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/handle"
)

// Rule names (Action.Rule).
const (
	RuleGrowCache         = "grow_cache"
	RuleShrinkCache       = "shrink_cache"
	RuleEnableGroupCommit = "enable_group_commit"
)

// DefaultMonitoringInterval is the background loop's default period.
const DefaultMonitoringInterval = time.Minute

// Rules are the thresholds Tune applies.
type Rules struct {
	MinHitRate       float64 // grow below this hit rate (0.8)
	GrowFactor       float64 // growth (and shrink) factor (1.2)
	MaxCacheSize     int64   // growth limit in bytes (1 GiB)
	MinCacheAccesses uint64  // lookups needed in a window to judge the hit rate (1000)
	// GrowMinPressure: grow only when the cache is at least this full (0.9).
	// Negative grows whatever the fill.
	GrowMinPressure float64

	MaxP99CommitLatency time.Duration // (100ms)
	MinCommits          uint64        // commits needed in a window to judge latency (10)
	GroupCommitInterval time.Duration // (5ms)
	GroupCommitMaxTx    int           // (50)

	Shrink            bool    // enable the shrink rule (off)
	ShrinkMinHitRate  float64 // (0.99)
	ShrinkMaxPressure float64 // (0.5)
	MinCacheSize      int64   // shrink limit (0: the cache size when the AdaptiveConfig was made)
}

// DefaultRules returns the guide's thresholds.
func DefaultRules() Rules {
	return Rules{MinHitRate: 0.8, GrowFactor: 1.2, MaxCacheSize: 1 << 30, MinCacheAccesses: 1000, GrowMinPressure: 0.9,
		MaxP99CommitLatency: 100 * time.Millisecond, MinCommits: 10, GroupCommitInterval: 5 * time.Millisecond,
		GroupCommitMaxTx: 50, ShrinkMinHitRate: 0.99, ShrinkMaxPressure: 0.5}
}

func (r Rules) validate() error {
	switch {
	case r.MinHitRate < 0 || r.MinHitRate > 1, r.ShrinkMinHitRate < 0 || r.ShrinkMinHitRate > 1:
		return fmt.Errorf("hit rates must be within [0, 1]: %w", engine.ErrInvalid)
	case !(r.GrowFactor > 1):
		return fmt.Errorf("grow factor %v must be > 1: %w", r.GrowFactor, engine.ErrInvalid)
	case r.MaxCacheSize <= 0, r.MinCacheSize < 0:
		return fmt.Errorf("cache bounds %d..%d: %w", r.MinCacheSize, r.MaxCacheSize, engine.ErrInvalid)
	case r.MaxP99CommitLatency <= 0, r.GroupCommitMaxTx < 1:
		return fmt.Errorf("latency %v, group commit %v/%d must be positive: %w", r.MaxP99CommitLatency,
			r.GroupCommitInterval, r.GroupCommitMaxTx, engine.ErrInvalid)
	case r.GroupCommitInterval < engine.MinGroupCommitInterval:
		return fmt.Errorf("group commit interval %v is below the minimum %v: %w", r.GroupCommitInterval,
			engine.MinGroupCommitInterval, engine.ErrInvalid)
	}
	return nil
}

// Action is one adjustment Tune made.
type Action struct {
	Rule        string    `json:"rule"`
	Description string    `json:"description"`
	Observed    float64   `json:"observed"`  // the metric that triggered it (hit rate, or p99 latency in ms)
	Threshold   float64   `json:"threshold"` // the threshold it crossed, same unit
	CacheFrom   int64     `json:"cache_from,omitempty"`
	CacheTo     int64     `json:"cache_to,omitempty"`
	Time        time.Time `json:"time"`
}

// AdaptiveConfig tunes one connection. Its methods are safe for
// concurrent use.
type AdaptiveConfig struct {
	db *engine.DB

	mu       sync.Mutex // guards everything below, and serialises Tune
	rules    Rules
	log      *slog.Logger
	interval time.Duration
	minCache int64 // MinCacheSize default
	prev     window
	history  []Action

	running *loop
	closed  atomic.Bool
	unhook  func()
}

type window struct {
	hits, misses, commits uint64
}

type loop struct {
	stop, done chan struct{}
	reset      chan time.Duration
}

// historyLimit bounds History.
const historyLimit = 256

// NewAdaptiveConfig returns an AdaptiveConfig for db with DefaultRules,
// logging to db's Config.Logger. The first window starts now.
func NewAdaptiveConfig(db *engine.DB) *AdaptiveConfig {
	a := &AdaptiveConfig{db: db, rules: DefaultRules(), log: db.Config().Logger, interval: DefaultMonitoringInterval,
		minCache: db.Config().CacheSize, unhook: func() {}}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.prev = current(db.GetPerformanceMetrics())
	unhook, err := db.OnClose(a.onClose)
	if err != nil {
		a.closed.Store(true)
	} else {
		a.unhook = unhook
	}
	return a
}

func current(m engine.PerformanceMetrics) window {
	return window{hits: m.CacheHits, misses: m.CacheMisses, commits: m.TransactionsCommitted}
}

// SetRules replaces the rules.
func (a *AdaptiveConfig) SetRules(r Rules) error {
	if err := r.validate(); err != nil {
		return err
	}
	a.mu.Lock()
	a.rules = r
	a.mu.Unlock()
	return nil
}

// Rules returns the rules in force.
func (a *AdaptiveConfig) Rules() Rules {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rules
}

// SetLogger sends the adjustments' logs to l instead of the database's logger.
func (a *AdaptiveConfig) SetLogger(l *slog.Logger) {
	a.mu.Lock()
	a.log = l
	a.mu.Unlock()
}

// SetMonitoringInterval sets the background loop's period in milliseconds
// (the guide's set_monitoring_interval); ms <= 0 restores the default of
// one minute. A running loop picks it up at once.
func (a *AdaptiveConfig) SetMonitoringInterval(ms int) {
	d := time.Duration(ms) * time.Millisecond
	if ms <= 0 {
		d = DefaultMonitoringInterval
	}
	a.mu.Lock()
	a.interval = d
	l := a.running
	a.mu.Unlock()
	if l != nil {
		select {
		case l.reset <- d:
		case <-l.done:
		}
	}
}

// MonitoringInterval returns the background loop's period.
func (a *AdaptiveConfig) MonitoringInterval() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.interval
}

// EnableAdaptiveTuning starts the background loop (a no-op if it runs).
// It fails with engine.ErrClosed once the database is closed.
func (a *AdaptiveConfig) EnableAdaptiveTuning() error {
	if a.closed.Load() {
		return fmt.Errorf("adaptive tuning: %w", engine.ErrClosed)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running != nil {
		return nil
	}
	l := &loop{stop: make(chan struct{}), done: make(chan struct{}), reset: make(chan time.Duration)}
	a.running = l
	go a.run(l, a.interval)
	a.log.Info("adaptive tuning enabled", "interval", a.interval)
	return nil
}

// DisableAdaptiveTuning stops the background loop and waits for it.
func (a *AdaptiveConfig) DisableAdaptiveTuning() {
	a.mu.Lock()
	l := a.running
	a.running = nil
	a.mu.Unlock()
	if l == nil {
		return
	}
	close(l.stop)
	<-l.done
	a.log.Info("adaptive tuning disabled")
}

// Enabled reports whether the background loop runs.
func (a *AdaptiveConfig) Enabled() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.running != nil
}

// Close stops the loop and forgets the database's close hook.
func (a *AdaptiveConfig) Close() {
	a.unhook()
	a.DisableAdaptiveTuning()
}

func (a *AdaptiveConfig) onClose() {
	a.closed.Store(true)
	a.DisableAdaptiveTuning()
}

func (a *AdaptiveConfig) run(l *loop, every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case d := <-l.reset:
			t.Reset(d)
		case <-t.C:
			if _, err := a.Tune(); err != nil {
				a.mu.Lock()
				log := a.log
				a.mu.Unlock()
				log.Warn("adaptive tuning failed", "err", err)
			}
		}
	}
}

// History returns the actions taken so far (the latest 256), oldest first.
func (a *AdaptiveConfig) History() []Action {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Action(nil), a.history...)
}

// Tune applies the rules to the activity since the previous Tune (or since
// NewAdaptiveConfig) and returns what it changed; the background loop calls
// it every interval. An error leaves the actions applied before it in the
// result.
func (a *AdaptiveConfig) Tune() ([]Action, error) {
	if a.closed.Load() {
		return nil, fmt.Errorf("adaptive tuning: %w", engine.ErrClosed)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.rules
	m := a.db.GetPerformanceMetrics()
	now := current(m)
	dh, dm, dc := now.hits-a.prev.hits, now.misses-a.prev.misses, now.commits-a.prev.commits
	a.prev = now
	var out []Action
	record := func(act Action) {
		act.Time = time.Now()
		out = append(out, act)
		a.history = append(a.history, act)
		if over := len(a.history) - historyLimit; over > 0 {
			a.history = append(a.history[:0], a.history[over:]...)
		}
		a.log.Info("adaptive tuning", "rule", act.Rule, "action", act.Description, "observed", act.Observed,
			"threshold", act.Threshold, "path", a.db.Path())
	}

	// The budget in force (the page layer keeps at least 16 pages whatever
	// the configured size).
	cacheSize := m.CacheSizeBytes
	if cacheSize <= 0 {
		cacheSize = a.db.Config().CacheSize
	}
	pageSize := int64(handle.Pager(a.db).PageSize())
	if accesses := dh + dm; accesses >= max(r.MinCacheAccesses, 1) {
		hitRate := float64(dh) / float64(accesses)
		switch {
		case hitRate < r.MinHitRate && m.CacheFill >= r.GrowMinPressure:
			to := min(roundUp(int64(math.Ceil(float64(cacheSize)*r.GrowFactor)), pageSize), roundDown(r.MaxCacheSize, pageSize))
			if to <= cacheSize {
				a.log.Debug("adaptive tuning: cache at its maximum", "cache_bytes", cacheSize, "max", r.MaxCacheSize, "hit_rate", hitRate)
				break
			}
			if err := a.db.UpdateCacheSize(to); err != nil {
				return out, err
			}
			record(Action{Rule: RuleGrowCache, Observed: hitRate, Threshold: r.MinHitRate, CacheFrom: cacheSize, CacheTo: to,
				Description: fmt.Sprintf("cache hit rate %.1f%% < %.1f%% over %d lookups: cache %s -> %s",
					100*hitRate, 100*r.MinHitRate, accesses, mib(cacheSize), mib(to))})
		case r.Shrink && hitRate >= r.ShrinkMinHitRate && m.CacheFill < r.ShrinkMaxPressure:
			floor := r.MinCacheSize
			if floor == 0 {
				floor = a.minCache
			}
			to := max(roundUp(int64(float64(cacheSize)/r.GrowFactor), pageSize), roundUp(floor, pageSize))
			if to >= cacheSize {
				break
			}
			if err := a.db.UpdateCacheSize(to); err != nil {
				return out, err
			}
			got := a.budget()
			if got >= cacheSize {
				a.log.Debug("adaptive tuning: cache at its minimum", "cache_bytes", cacheSize)
				break
			}
			to = got // the page layer's minimum may be above the target
			record(Action{Rule: RuleShrinkCache, Observed: hitRate, Threshold: r.ShrinkMinHitRate, CacheFrom: cacheSize, CacheTo: to,
				Description: fmt.Sprintf("cache hit rate %.1f%% with the cache %.0f%% full: cache %s -> %s",
					100*hitRate, 100*m.CacheFill, mib(cacheSize), mib(to))})
		}
	}

	limitMs := float64(r.MaxP99CommitLatency) / float64(time.Millisecond)
	if dc >= max(r.MinCommits, 1) && m.CommitLatencyP99Ms > limitMs && !a.db.GroupCommit().Enabled {
		if err := a.db.EnableGroupCommit(r.GroupCommitInterval, r.GroupCommitMaxTx); err != nil {
			return out, err
		}
		record(Action{Rule: RuleEnableGroupCommit, Observed: m.CommitLatencyP99Ms, Threshold: limitMs,
			Description: fmt.Sprintf("p99 commit latency %.1fms > %.0fms: group commit on (%v, max %d transactions)",
				m.CommitLatencyP99Ms, limitMs, r.GroupCommitInterval, r.GroupCommitMaxTx)})
	}
	return out, nil
}

// budget is the cache budget in force, in bytes.
func (a *AdaptiveConfig) budget() int64 {
	return int64(handle.Pager(a.db).CacheStats().MaxPage) * int64(handle.Pager(a.db).PageSize())
}

func roundUp(n, unit int64) int64 {
	if unit <= 0 {
		return n
	}
	return (n + unit - 1) / unit * unit
}

func roundDown(n, unit int64) int64 {
	if unit <= 0 {
		return n
	}
	return n / unit * unit
}

func mib(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%d KiB", b>>10)
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
