// Command graphbench runs the same graph workload against SQLite, bbolt and
// Sombra and prints per-engine figures and ratios relative to Sombra.
//
// Each engine runs in its own child process (the same binary started with
// -child NAME) so that the reported peak RSS (VmHWM) is that engine's alone.
//
//	go run ./cmd/graphbench -nodes 20000 -edges 100000 -engines sqlite,bbolt
//	go run ./cmd/graphbench -nodes 1000000 -edges 5000000 -dir /var/tmp/gb
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/sombradb/sombra/bench"
	"github.com/sombradb/sombra/internal/gengraph"
)

type flags struct {
	nodes, edges int
	seed         int64
	engines      string
	dir          string
	only         string
	child        string
	base         string
	baseline     bool
	keep         bool
	cache        int64
	batch        int
	cfg          bench.Config
}

func parseFlags(args []string) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("graphbench", flag.ContinueOnError)
	fs.IntVar(&f.nodes, "nodes", 100_000, "nodes in the generated graph")
	fs.IntVar(&f.edges, "edges", 500_000, "edges in the generated graph")
	fs.Int64Var(&f.seed, "seed", 1, "generator seed")
	fs.StringVar(&f.engines, "engines", "sqlite,bbolt,sombra", "comma-separated engines to run")
	fs.StringVar(&f.dir, "dir", "", "directory for the databases (default: a temporary directory, removed afterwards)")
	fs.StringVar(&f.only, "only", "", "comma-separated workloads to report (default all): "+strings.Join(bench.Workloads, ","))
	fs.StringVar(&f.child, "child", "", "internal: run one engine and write JSON results to stdout")
	fs.StringVar(&f.base, "base", "sombra", "engine the ratio lines compare against")
	fs.BoolVar(&f.baseline, "baseline", true, "also run the generator alone (engine \"gen\") as a time and memory baseline")
	fs.BoolVar(&f.keep, "keep", false, "keep the temporary directory")
	fs.Int64Var(&f.cache, "cache", 256<<20, "page cache bytes for SQLite and Sombra")
	fs.IntVar(&f.batch, "batch", 0, "nodes+edges per bulk-load transaction (0: bbolt 100000, Sombra one transaction)")
	d := bench.DefaultConfig(gengraph.Spec{})
	f.cfg = d
	fs.IntVar(&f.cfg.FsyncOps, "fsync-ops", d.FsyncOps, "iterations of the raw 4 KiB write+fdatasync loop")
	fs.IntVar(&f.cfg.GetOps, "get-ops", d.GetOps, "point reads")
	fs.IntVar(&f.cfg.RangeOps, "range-ops", d.RangeOps, "range scans")
	fs.IntVar(&f.cfg.RangeWidth, "range-width", d.RangeWidth, "ids per range scan")
	fs.IntVar(&f.cfg.FullIters, "full-iters", d.FullIters, "full scans")
	fs.IntVar(&f.cfg.Hop1Ops, "hop1-ops", d.Hop1Ops, "1-hop neighbour queries")
	fs.IntVar(&f.cfg.Hop2Ops, "hop2-ops", d.Hop2Ops, "2-hop neighbour queries")
	fs.IntVar(&f.cfg.DurableOps, "durable-ops", d.DurableOps, "sequential durable single-node commits")
	fs.IntVar(&f.cfg.GroupOps, "group-ops", d.GroupOps, "durable commits in total across the group-commit workers")
	fs.IntVar(&f.cfg.Workers, "workers", d.Workers, "group-commit goroutines")
	fs.DurationVar(&f.cfg.GroupInterval, "group-interval", d.GroupInterval, "group-commit window (bbolt MaxBatchDelay, Sombra EnableGroupCommit)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	f.cfg.Spec = gengraph.Spec{Nodes: f.nodes, Edges: f.edges, Seed: f.seed}
	if err := f.cfg.Spec.Validate(); err != nil {
		return nil, err
	}
	if f.only != "" {
		f.cfg.Only = map[string]bool{}
		for _, w := range splitList(f.only) {
			if !slices.Contains(bench.Workloads, w) {
				return nil, fmt.Errorf("unknown workload %q; have %s", w, strings.Join(bench.Workloads, ","))
			}
			f.cfg.Only[w] = true
		}
	}
	return f, nil
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// message is one line of the child-to-parent protocol.
type message struct {
	Type string `json:"type"` // "result" or "stats"
	bench.Result
	PeakRSSKiB int64 `json:"peak_rss_kib,omitempty"`
	DiskBytes  int64 `json:"disk_bytes,omitempty"`
}

func main() {
	f, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "graphbench:", err)
		os.Exit(2)
	}
	if f.child != "" {
		err = runChild(f)
	} else {
		err = runParent(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "graphbench:", err)
		os.Exit(1)
	}
}

func runChild(f *flags) error {
	if f.dir == "" {
		return errors.New("-child needs -dir")
	}
	dir := filepath.Join(f.dir, f.child)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	opt := bench.DefaultOptions()
	opt.CacheBytes, opt.BatchSize = f.cache, f.batch
	s, err := bench.Open(f.child, dir, opt)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	var encErr error
	disk, err := bench.RunEngine(f.child, s, dir, f.cfg, func(r bench.Result) {
		fmt.Fprintf(os.Stderr, "  [%s] %-15s %s\n", f.child, r.Workload, time.Duration(r.Nanos).Round(time.Millisecond))
		if err := enc.Encode(message{Type: "result", Result: r}); err != nil && encErr == nil {
			encErr = err
		}
	})
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if encErr != nil {
		return encErr
	}
	rss, err := bench.PeakRSSKiB()
	if err != nil {
		fmt.Fprintln(os.Stderr, "graphbench: peak RSS:", err)
	}
	return enc.Encode(message{Type: "stats", Result: bench.Result{Engine: f.child}, PeakRSSKiB: rss, DiskBytes: disk})
}

type engineStats struct {
	rssKiB, disk int64
}

func runParent(f *flags) error {
	root := f.dir
	if root == "" {
		tmp, err := os.MkdirTemp("", "graphbench-")
		if err != nil {
			return err
		}
		root = tmp
		if !f.keep {
			defer os.RemoveAll(tmp)
		}
	} else if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}

	engines := splitList(f.engines)
	if f.baseline && !slices.Contains(engines, bench.GenOnly) && f.wantAnyEngineWorkload() {
		engines = append([]string{bench.GenOnly}, engines...)
	}

	printHeader(f, root)
	var results []bench.Result
	stats := map[string]engineStats{}
	var ran []string

	if !f.wantAnyEngineWorkload() {
		// Only the raw sync rate: no need to load any engine.
		r, err := bench.RawFsync(root, f.cfg.FsyncOps)
		if err != nil {
			return err
		}
		results = append(results, r)
	} else {
		for _, name := range engines {
			if !bench.Registered(name) {
				_, err := bench.Open(name, "", bench.Options{}) // for its message
				fmt.Fprintf(os.Stderr, "graphbench: skipping %s: %v\n", name, err)
				continue
			}
			fmt.Fprintf(os.Stderr, "== %s\n", name)
			rs, st, err := runChildProcess(exe, name, root)
			results = append(results, rs...)
			if err != nil {
				fmt.Fprintf(os.Stderr, "graphbench: %s failed: %v\n", name, err)
				continue
			}
			stats[name] = st
			ran = append(ran, name)
		}
	}
	printReport(f, results, stats, ran)
	return nil
}

// wantAnyEngineWorkload reports whether a workload other than the raw fsync
// loop is selected.
func (f *flags) wantAnyEngineWorkload() bool {
	if f.cfg.Only == nil {
		return true
	}
	for w := range f.cfg.Only {
		if w != bench.WFsync {
			return true
		}
	}
	return false
}

func runChildProcess(exe, name, root string) ([]bench.Result, engineStats, error) {
	args := append(slices.Clone(os.Args[1:]), "-dir", root, "-child", name)
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, engineStats{}, err
	}
	if err := cmd.Start(); err != nil {
		return nil, engineStats{}, err
	}
	var results []bench.Result
	var st engineStats
	sc := bufio.NewScanner(out)
	var perr error
	for sc.Scan() {
		var m message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			perr = fmt.Errorf("bad line from child: %q: %v", sc.Text(), err)
			break
		}
		switch m.Type {
		case "result":
			results = append(results, m.Result)
		case "stats":
			st = engineStats{rssKiB: m.PeakRSSKiB, disk: m.DiskBytes}
		}
	}
	if perr != nil {
		io.Copy(io.Discard, out)
	}
	err = cmd.Wait()
	if err == nil {
		err = perr
	}
	return results, st, err
}

func printHeader(f *flags, root string) {
	fmt.Printf("graphbench: %d nodes, %d edges, seed %d; %s/%s, %d CPUs, %s\n",
		f.nodes, f.edges, f.seed, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fsType := bench.FSType(root)
	fmt.Printf("dir: %s (%s)", root, fsType)
	if fsType == "tmpfs" {
		fmt.Print("  WARNING: tmpfs ignores fsync, durable figures are meaningless")
	}
	fmt.Println()
	if bi, ok := debug.ReadBuildInfo(); ok {
		var deps []string
		for _, d := range bi.Deps {
			if d.Path == "github.com/mattn/go-sqlite3" || d.Path == "go.etcd.io/bbolt" {
				deps = append(deps, d.Path+" "+d.Version)
			}
		}
		if len(deps) > 0 {
			fmt.Printf("deps: %s\n", strings.Join(deps, ", "))
		}
	}
	fmt.Println()
}

func printReport(f *flags, results []bench.Result, stats map[string]engineStats, ran []string) {
	byKey := map[[2]string]bench.Result{}
	for _, r := range results {
		byKey[[2]string{r.Workload, r.Engine}] = r
	}
	order := append(slices.Clone(ran), "raw")

	fmt.Printf("%-15s %-7s %12s %14s %10s %10s %9s  %s\n", "workload", "engine", "time/op", "ops/s", "ops", "total", "peak_rss", "check")
	for _, w := range bench.Workloads {
		for _, e := range order {
			r, ok := byKey[[2]string{w, e}]
			if !ok {
				continue
			}
			name := e
			if e == bench.GenOnly {
				name = "gen-only"
			}
			rss := "-"
			if r.PeakRSSKiB > 0 {
				rss = fmt.Sprintf("%.0fM", float64(r.PeakRSSKiB)/1024)
			}
			fmt.Printf("%-15s %-8s %11s %14s %10d %10s %9s  %d\n", w, name, fmtNs(r.NsPerOp()), fmtCount(r.OpsPerSec()),
				r.Ops, time.Duration(r.Nanos).Round(time.Millisecond), rss, r.Check)
		}
	}
	fmt.Println()
	for _, e := range ran {
		st := stats[e]
		note := ""
		if e == bench.GenOnly {
			note = "  (generator + Go runtime alone; included in every engine's figure)"
		}
		fmt.Printf("%-15s %-8s %10.1f MiB%s\n", "peak_rss", e, float64(st.rssKiB)/1024, note)
	}
	for _, e := range ran {
		if e != bench.GenOnly {
			fmt.Printf("%-15s %-8s %10.1f MiB  (allocated, after bulk load)\n", "disk_size", e, float64(stats[e].disk)/(1<<20))
		}
	}

	// Cross-engine consistency of read results.
	for w := range bench.CheckedWorkloads {
		var parts []string
		first, differ := int64(-1), false
		for _, e := range ran {
			r, ok := byKey[[2]string{w, e}]
			if !ok {
				continue
			}
			parts = append(parts, fmt.Sprintf("%s=%d", e, r.Check))
			if first == -1 {
				first = r.Check
			} else if r.Check != first {
				differ = true
			}
		}
		if differ {
			fmt.Printf("WARNING: engines disagree on %s results (%s): different semantics or a bug\n", w, strings.Join(parts, " "))
		}
	}

	// Durable commits relative to the device's raw sync rate, measured in
	// the same directory just before them.
	sep := "\n"
	for _, w := range []string{bench.WDurableCommit, bench.WGroupCommit} {
		for _, e := range ran {
			raw, rawOK := byKey[[2]string{bench.WFsync, e}]
			if r, ok := byKey[[2]string{w, e}]; ok && rawOK {
				x := r.NsPerOp() / raw.NsPerOp()
				note := ""
				if w == bench.WDurableCommit && x < 0.5 {
					note = "  WARNING: faster than the device syncs; are commits durable?"
				}
				fmt.Printf("%s%-15s %-8s %6.2f raw fsyncs of time per commit%s\n", sep, w, e, x, note)
				sep = ""
			}
		}
	}

	// Ratios against the base engine.
	var engines []string
	for _, e := range ran {
		if e != bench.GenOnly {
			engines = append(engines, e)
		}
	}
	if len(engines) < 2 {
		return
	}
	base := f.base
	if !slices.Contains(engines, base) {
		fmt.Printf("\n(no %s results: ratios relative to %s)\n", base, engines[0])
		base = engines[0]
	}
	fmt.Println()
	for _, w := range bench.Workloads {
		b, ok := byKey[[2]string{w, base}]
		if !ok || w == bench.WFsync {
			continue
		}
		for _, e := range engines {
			r, ok := byKey[[2]string{w, e}]
			if e == base || !ok || b.NsPerOp() == 0 || r.NsPerOp() == 0 {
				continue
			}
			fmt.Printf("%-15s %s/%s = %s\n", w, base, e, ratio(r.NsPerOp()/b.NsPerOp(), "faster", "slower"))
		}
	}
	bs := stats[base]
	for _, e := range engines {
		st := stats[e]
		if e == base || st.rssKiB == 0 || bs.rssKiB == 0 {
			continue
		}
		fmt.Printf("%-15s %s/%s = %s\n", "peak_rss", base, e, ratio(float64(st.rssKiB)/float64(bs.rssKiB), "less memory", "more memory"))
	}
	for _, e := range engines {
		st := stats[e]
		if e == base || st.disk == 0 || bs.disk == 0 {
			continue
		}
		fmt.Printf("%-15s %s/%s = %s\n", "disk_size", base, e, ratio(float64(st.disk)/float64(bs.disk), "smaller", "larger"))
	}
}

// ratio renders x = other/base cost as "N.NNx better" or "N.NNx worse".
func ratio(x float64, better, worse string) string {
	if x >= 1 {
		return fmt.Sprintf("%.2fx %s", x, better)
	}
	return fmt.Sprintf("%.2fx %s", 1/x, worse)
}

func fmtNs(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%.0fns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.2fµs", ns/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.2fms", ns/1e6)
	}
	return fmt.Sprintf("%.2fs", ns/1e9)
}

func fmtCount(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e4:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.1f", x)
}
