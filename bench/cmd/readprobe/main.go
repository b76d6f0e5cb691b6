// Command readprobe profiles Sombra's read workloads of graphbench (get_node,
// neighbors_2hop) on a database it builds once and keeps, so a profile or a
// syscall count covers the reads alone, not the bulk load. The ids and the
// 2-hop expansion are graphbench's (same seeds, same code path).
//
//	readprobe -dir /var/tmp/probe -nodes 200000 -edges 1000000 -cpuprofile cpu.out
//
// With -dir holding a database it reopens it (a cold cache: -passes 2 reports
// a cold and a warm pass); without one it bulk-loads it first and keeps the
// handle, as graphbench does.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/sombradb/sombra/bench"
	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/gengraph"
)

func main() {
	dir := flag.String("dir", "/var/tmp/probe", "database directory (kept)")
	nodes := flag.Int("nodes", 200_000, "nodes")
	edges := flag.Int("edges", 1_000_000, "edges")
	cache := flag.Int64("cache", 256<<20, "cache bytes")
	getOps := flag.Int("get-ops", 100_000, "point reads per pass")
	hop2Ops := flag.Int("hop2-ops", 2_000, "2-hop queries per pass")
	passes := flag.Int("passes", 2, "passes over each workload")
	only := flag.String("only", "get_node,neighbors_2hop", "workloads")
	cpu := flag.String("cpuprofile", "", "CPU profile of the last pass")
	flag.Parse()
	if err := run(*dir, *nodes, *edges, *cache, *getOps, *hop2Ops, *passes, *only, *cpu); err != nil {
		fmt.Fprintln(os.Stderr, "readprobe:", err)
		os.Exit(1)
	}
}

func run(dir string, nodes, edges int, cache int64, getOps, hop2Ops, passes int, only, cpu string) error {
	spec := gengraph.Spec{Nodes: nodes, Edges: edges, Seed: 1}
	_, statErr := os.Stat(filepath.Join(dir, "graph.sombra"))
	cfg := bench.DefaultConfig(spec)
	cfg.GetOps, cfg.Hop2Ops = getOps, hop2Ops
	cfg.ViewOps, cfg.RangeOps, cfg.FullIters, cfg.Hop1Ops = 0, 0, 0, 0
	cfg.FsyncOps, cfg.DurableOps, cfg.GroupOps = 0, 0, 0
	cfg.Only = map[string]bool{}
	for _, w := range splitComma(only) {
		cfg.Only[w] = true
	}
	s, err := bench.Open("sombra", dir, bench.Options{CacheBytes: cache})
	if err != nil {
		return err
	}
	defer s.Close()
	if statErr != nil {
		t0 := time.Now()
		if err := s.BulkLoad(bench.SpecSource(spec)); err != nil {
			return err
		}
		fmt.Printf("built %d/%d in %v\n", nodes, edges, time.Since(t0).Round(time.Millisecond))
	}
	db := bench.SombraHandle(s).(*engine.DB)
	for p := range passes {
		if p == passes-1 && cpu != "" {
			f, err := os.Create(cpu)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
		m0 := db.GetPerformanceMetrics()
		fmt.Printf("pass %d: cache %d of %d MiB in use\n", p, m0.CacheUsedBytes>>20, m0.CacheSizeBytes>>20)
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		cpu0 := cpuTime()
		report := func(r bench.Result) {
			m1 := db.GetPerformanceMetrics()
			runtime.ReadMemStats(&ms1)
			ops := float64(r.Ops)
			cpu1 := cpuTime()
			fmt.Printf("pass %d %-16s %8.0f ns/op %6.0f cpu-ns/op %6.1f allocs/op %7.0f B/op  %d GCs  cache hits %d misses %d (%.3f misses/op)\n",
				p, r.Workload, r.NsPerOp(), float64(cpu1-cpu0)/ops, float64(ms1.Mallocs-ms0.Mallocs)/ops, float64(ms1.TotalAlloc-ms0.TotalAlloc)/ops,
				ms1.NumGC-ms0.NumGC, m1.CacheHits-m0.CacheHits, m1.CacheMisses-m0.CacheMisses,
				float64(m1.CacheMisses-m0.CacheMisses)/ops)
			m0, ms0, cpu0 = m1, ms1, cpu1
		}
		err := bench.RunReads("sombra", s, cfg, report)
		if err == nil {
			err = extra(db, cfg, report)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// cpuTime is the process's user+system CPU time in nanoseconds: on a
// loaded machine it is steadier than wall-clock time.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// extra runs probe-only workloads that split get_node's cost: the same ids
// read in one long transaction (no begin/end per lookup), and NodeExists
// (the descent without the decoding).
func extra(db *engine.DB, cfg bench.Config, report func(bench.Result)) error {
	ids := make([]engine.NodeID, cfg.GetOps)
	r := rand.New(rand.NewPCG(cfg.QuerySeed, 1))
	for i := range ids {
		ids[i] = engine.NodeID(1 + r.Int64N(int64(cfg.Spec.Nodes)))
	}
	// hot: the same lookups over 64 ids, whose pages stay in the CPU
	// caches; the difference to get_node_1tx is the memory latency.
	hot := make([]engine.NodeID, len(ids))
	for i := range hot {
		hot[i] = ids[i%64]
	}
	timed := func(w string, fn func() (int64, error)) error {
		if !cfg.Only[w] {
			return nil
		}
		t0 := time.Now()
		n, err := fn()
		if err != nil {
			return fmt.Errorf("%s: %w", w, err)
		}
		report(bench.Result{Engine: "sombra", Workload: w, Ops: int64(len(ids)), Nanos: time.Since(t0).Nanoseconds(), Check: n})
		return nil
	}
	inOneTx := func(ids []engine.NodeID) func() (int64, error) {
		return func() (n int64, err error) {
			err = db.View(func(tx *engine.Tx) error {
				for _, id := range ids {
					if _, err := tx.GetNode(id); err != nil {
						return err
					}
					n++
				}
				return nil
			})
			return n, err
		}
	}
	if err := timed("get_node_1tx", inOneTx(ids)); err != nil {
		return err
	}
	if err := timed("get_node_1tx_hot", inOneTx(hot)); err != nil {
		return err
	}
	return timed("exists", func() (n int64, err error) {
		for _, id := range ids {
			err = db.View(func(tx *engine.Tx) error {
				ok, err := tx.NodeExists(id)
				if ok {
					n++
				}
				return err
			})
			if err != nil {
				return n, err
			}
		}
		return n, nil
	})
}
