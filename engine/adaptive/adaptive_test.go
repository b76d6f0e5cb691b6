package adaptive

import (
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/logging"
	"github.com/sombradb/sombra/engine/vfs"
)

func open(t *testing.T, cfg engine.Config) *engine.DB {
	t.Helper()
	db, err := engine.OpenWithConfig(filepath.Join(t.TempDir(), "a.db"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func createNodes(t *testing.T, db *engine.DB, n int) {
	t.Helper()
	pad := strings.Repeat("x", 300)
	err := db.Update(func(tx *engine.Tx) error {
		for i := range n {
			if _, err := tx.CreateNode("N", engine.Properties{"i": engine.IntValue(int64(i)), "pad": engine.StringValue(pad)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// scan reads every node: with a cache smaller than the node tree, an LRU
// cache misses on nearly every page.
func scan(t *testing.T, db *engine.DB, times int) {
	t.Helper()
	for range times {
		err := db.View(func(tx *engine.Tx) error {
			for _, err := range tx.Nodes() {
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestGrowCacheOnLowHitRate(t *testing.T) {
	rec := logging.NewRecorder(slog.LevelInfo)
	db := open(t, engine.Config{CacheSize: 16 * 4096, Logger: rec.Logger()})
	createNodes(t, db, 600)
	a := NewAdaptiveConfig(db)
	defer a.Close()
	r := DefaultRules()
	r.MinCacheAccesses = 50
	r.MaxCacheSize = 90000 // 21 whole pages
	if err := a.SetRules(r); err != nil {
		t.Fatal(err)
	}
	scan(t, db, 3)
	m := db.GetPerformanceMetrics()
	acts, err := a.Tune()
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) != 1 || acts[0].Rule != RuleGrowCache {
		t.Fatalf("actions = %+v (hit rate %.2f, pressure %.2f)", acts, m.CacheHitRate, m.MemoryPressure)
	}
	// 64 KiB * 1.2 = 78643.2 bytes, rounded up to 20 pages.
	if acts[0].CacheFrom != 65536 || acts[0].CacheTo != 20*4096 || db.Config().CacheSize != 20*4096 {
		t.Errorf("grew %d -> %d, config %d", acts[0].CacheFrom, acts[0].CacheTo, db.Config().CacheSize)
	}
	if acts[0].Observed >= 0.8 || acts[0].Threshold != 0.8 {
		t.Errorf("observed %v threshold %v", acts[0].Observed, acts[0].Threshold)
	}
	if logs := rec.Find("adaptive tuning"); len(logs) != 1 {
		t.Errorf("%d adaptive tuning log records, want 1", len(logs))
	}
	// No activity since: nothing to judge, nothing done.
	if acts, _ := a.Tune(); len(acts) != 0 {
		t.Errorf("idle window acted: %+v", acts)
	}
	// Growth stops at MaxCacheSize, rounded down to whole pages.
	scan(t, db, 3)
	if acts, _ := a.Tune(); len(acts) != 1 || acts[0].CacheTo != 21*4096 {
		t.Fatalf("second growth: %+v", acts)
	}
	scan(t, db, 3)
	if acts, _ := a.Tune(); len(acts) != 0 {
		t.Errorf("grew past the maximum: %+v", acts)
	}
	if h := a.History(); len(h) != 2 {
		t.Errorf("history = %+v", h)
	}
}

func TestNoGrowthOnColdCache(t *testing.T) {
	// A big cache that is still filling misses on first reads only: growing
	// it would not help.
	db := open(t, engine.Config{CacheSize: 64 << 20})
	createNodes(t, db, 600)
	a := NewAdaptiveConfig(db)
	defer a.Close()
	r := DefaultRules()
	r.MinCacheAccesses = 1
	a.SetRules(r)
	scan(t, db, 1)
	if acts, err := a.Tune(); err != nil || len(acts) != 0 {
		t.Fatalf("actions = %+v, %v", acts, err)
	}
}

// slowWAL makes every WAL fsync take d.
func slowWAL(d time.Duration) *vfs.FaultFS {
	fs := vfs.NewFaultFS(vfs.OS)
	fs.SetRule(func(op vfs.Op, name string, _ int) *vfs.Fault {
		if op == vfs.OpSync && strings.HasSuffix(name, "-wal") {
			time.Sleep(d)
		}
		return nil
	})
	return fs
}

func TestGroupCommitOnSlowCommits(t *testing.T) {
	db := open(t, engine.Config{FS: slowWAL(110 * time.Millisecond)})
	a := NewAdaptiveConfig(db)
	defer a.Close()
	r := DefaultRules()
	r.MinCommits = 3
	a.SetRules(r)
	createNodes(t, db, 1)
	createNodes(t, db, 1)
	if acts, _ := a.Tune(); len(acts) != 0 {
		t.Fatalf("acted on 2 commits (MinCommits 3): %+v", acts)
	}
	for range 3 {
		createNodes(t, db, 1)
	}
	acts, err := a.Tune()
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) != 1 || acts[0].Rule != RuleEnableGroupCommit || acts[0].Observed <= 100 {
		t.Fatalf("actions = %+v (p99 %.1fms)", acts, db.GetPerformanceMetrics().CommitLatencyP99Ms)
	}
	if g := db.GroupCommit(); g != (engine.GroupCommitSettings{Enabled: true, Interval: 5 * time.Millisecond, MaxTx: 50}) {
		t.Errorf("group commit = %+v", g)
	}
	for range 3 {
		createNodes(t, db, 1)
	}
	if acts, _ := a.Tune(); len(acts) != 0 {
		t.Errorf("group commit enabled twice: %+v", acts)
	}
}

func TestShrinkCache(t *testing.T) {
	db := open(t, engine.Config{CacheSize: 4 << 20})
	createNodes(t, db, 10)
	a := NewAdaptiveConfig(db)
	defer a.Close()
	r := DefaultRules()
	r.MinCacheAccesses = 50
	hot := func() {
		for range 200 {
			if _, err := db.GetNode(1); err != nil {
				t.Fatal(err)
			}
		}
	}
	hot()
	if acts, _ := a.Tune(); len(acts) != 0 {
		t.Fatalf("shrank with Shrink off: %+v", acts)
	}
	r.Shrink = true
	r.MinCacheSize = 1 << 20
	a.SetRules(r)
	var shrinks int
	for range 30 {
		hot()
		acts, err := a.Tune()
		if err != nil {
			t.Fatal(err)
		}
		for _, act := range acts {
			if act.Rule != RuleShrinkCache || act.CacheTo >= act.CacheFrom {
				t.Fatalf("action %+v", act)
			}
			shrinks++
		}
	}
	if shrinks < 2 || db.Config().CacheSize != 1<<20 {
		t.Errorf("%d shrinks, cache %d, want it at the 1 MiB floor", shrinks, db.Config().CacheSize)
	}
}

func TestBackgroundLoopAndClose(t *testing.T) {
	db, err := engine.OpenWithConfig(filepath.Join(t.TempDir(), "a.db"), engine.Config{FS: slowWAL(110 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	a := NewAdaptiveConfig(db)
	r := DefaultRules()
	r.MinCommits = 1
	a.SetRules(r)
	if a.MonitoringInterval() != time.Minute {
		t.Errorf("default interval %v", a.MonitoringInterval())
	}
	if err := a.EnableAdaptiveTuning(); err != nil {
		t.Fatal(err)
	}
	if err := a.EnableAdaptiveTuning(); err != nil || !a.Enabled() {
		t.Fatalf("second enable: %v", err)
	}
	a.SetMonitoringInterval(5) // takes effect on the running loop
	createNodes(t, db, 1)
	createNodes(t, db, 1)
	deadline := time.Now().Add(10 * time.Second)
	for !db.GroupCommit().Enabled {
		if time.Now().After(deadline) {
			t.Fatal("the background loop did not enable group commit")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if h := a.History(); len(h) != 1 || h[0].Rule != RuleEnableGroupCommit {
		t.Errorf("history = %+v", h)
	}
	a.SetMonitoringInterval(0)
	if a.MonitoringInterval() != DefaultMonitoringInterval {
		t.Errorf("interval after reset: %v", a.MonitoringInterval())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if a.Enabled() {
		t.Error("loop still running after the database closed")
	}
	if err := a.EnableAdaptiveTuning(); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("enable after close: %v", err)
	}
	if _, err := a.Tune(); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("tune after close: %v", err)
	}
}

func TestInvalidRules(t *testing.T) {
	db := open(t, engine.Config{})
	a := NewAdaptiveConfig(db)
	defer a.Close()
	for _, mod := range []func(*Rules){
		func(r *Rules) { r.GrowFactor = 1 },
		func(r *Rules) { r.MinHitRate = 1.5 },
		func(r *Rules) { r.MaxCacheSize = 0 },
		func(r *Rules) { r.GroupCommitMaxTx = 0 },
		func(r *Rules) { r.MaxP99CommitLatency = 0 },
	} {
		r := DefaultRules()
		mod(&r)
		if err := a.SetRules(r); !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("SetRules(%+v) = %v", r, err)
		}
	}
	if a.Rules() != DefaultRules() {
		t.Error("an invalid SetRules changed the rules")
	}
}

func TestShrinkStopsAtThePageLayerMinimum(t *testing.T) {
	// The page cache keeps at least 16 pages: a floor below that must not
	// produce an "action" on every Tune that changes nothing.
	db := open(t, engine.Config{CacheSize: 32 * 4096})
	createNodes(t, db, 2)
	a := NewAdaptiveConfig(db)
	defer a.Close()
	r := DefaultRules()
	r.MinCacheAccesses = 10
	r.Shrink = true
	r.MinCacheSize = 4096
	a.SetRules(r)
	for range 20 {
		for range 50 {
			db.GetNode(1)
		}
		if _, err := a.Tune(); err != nil {
			t.Fatal(err)
		}
	}
	// 32 -> 27 -> 23 -> 20 -> 17 -> 16 pages, then nothing.
	h := a.History()
	if m := db.GetPerformanceMetrics(); m.CacheSizeBytes != 16*4096 || len(h) != 5 || h[4].CacheTo != 16*4096 {
		t.Errorf("cache %d bytes after %+v", m.CacheSizeBytes, h)
	}
}
