package bench

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sombradb/sombra/internal/gengraph"
)

// Workload names, in the order RunEngine runs them.
const (
	WBulkInsert    = "bulk_insert"
	WEmptyView     = "empty_view"
	WGetNode       = "get_node"
	WRangeScan     = "range_scan"
	WFullIterate   = "full_iterate"
	WNeighbors1Hop = "neighbors_1hop"
	WNeighbors2Hop = "neighbors_2hop"
	WDurableCommit = "durable_commit"
	WGroupCommit   = "group_commit16"
	// WFsync is the device's raw sync rate (see RawFsync), measured in
	// each engine's directory just before its durable commits so the two
	// can be compared.
	WFsync = "fsync_4k"
)

// Workloads lists every workload name in run order.
var Workloads = []string{WBulkInsert, WEmptyView, WGetNode, WRangeScan, WFullIterate, WNeighbors1Hop,
	WNeighbors2Hop, WFsync, WDurableCommit, WGroupCommit}

// CheckedWorkloads are the read workloads whose Check must agree across engines.
var CheckedWorkloads = map[string]bool{WGetNode: true, WRangeScan: true, WFullIterate: true,
	WNeighbors1Hop: true, WNeighbors2Hop: true}

// Config sizes the workloads. Counts are fixed (not time-bounded) so that
// every engine answers exactly the same queries and their Check values can
// be compared.
type Config struct {
	Spec gengraph.Spec
	// Only restricts the reported workloads; nil or empty means all. The
	// bulk load always runs since the other workloads need its data.
	Only map[string]bool

	ViewOps    int // empty read transactions
	GetOps     int // point reads
	RangeOps   int // range scans
	RangeWidth int // ids per range scan
	FullIters  int // full scans
	Hop1Ops    int
	Hop2Ops    int
	FsyncOps   int // iterations of the raw 4 KiB write+fdatasync loop
	DurableOps int // sequential durable commits
	GroupOps   int // durable commits in total across the group-commit workers
	Workers    int // group-commit goroutines (16)
	// GroupInterval is passed to EnableGroupCommit.
	GroupInterval time.Duration
	// QuerySeed seeds the ids of the read queries.
	QuerySeed uint64
}

// DefaultConfig returns workload sizes fit for a graph of spec's size on a
// small machine.
func DefaultConfig(spec gengraph.Spec) Config {
	return Config{
		Spec:          spec,
		ViewOps:       200_000,
		GetOps:        100_000,
		RangeOps:      1_000,
		RangeWidth:    1_000,
		FullIters:     10,
		Hop1Ops:       20_000,
		Hop2Ops:       2_000,
		FsyncOps:      500,
		DurableOps:    200,
		GroupOps:      16 * 50,
		Workers:       16,
		GroupInterval: time.Millisecond,
		QuerySeed:     0x5eed,
	}
}

// Result is one measured workload.
type Result struct {
	Engine   string `json:"engine"`
	Workload string `json:"workload"`
	Ops      int64  `json:"ops"`
	Nanos    int64  `json:"ns"`
	// Check is a workload-specific total (nodes found, ids scanned,
	// neighbours counted) that must match across engines.
	Check int64 `json:"check"`
	// PeakRSSKiB is the process's peak resident set size during this
	// workload alone (0: unknown); see ResetPeakRSS.
	PeakRSSKiB int64 `json:"phase_peak_rss_kib,omitempty"`
}

// NsPerOp returns the mean time per operation.
func (r Result) NsPerOp() float64 {
	if r.Ops == 0 {
		return 0
	}
	return float64(r.Nanos) / float64(r.Ops)
}

// OpsPerSec returns the throughput.
func (r Result) OpsPerSec() float64 {
	if r.Nanos == 0 {
		return 0
	}
	return float64(r.Ops) / (float64(r.Nanos) / 1e9)
}

func (c Config) want(w string) bool { return len(c.Only) == 0 || c.Only[w] }

// RunEngine loads the graph into s and runs the selected workloads in order,
// calling report after each. Workloads the store does not support are
// skipped. It returns the disk usage of dir right after the bulk load.
func RunEngine(name string, s Store, dir string, cfg Config, report func(Result)) (diskBytes int64, err error) {
	nodes, edges := int64(cfg.Spec.Nodes), int64(cfg.Spec.Edges)
	// Each workload's peak RSS is its own: the kernel's high-water mark is
	// reset before it and read after it.
	phaseRSS := func(r Result) Result {
		r.PeakRSSKiB, _ = PeakRSSKiB()
		ResetPeakRSS()
		return r
	}
	ResetPeakRSS()
	t0 := time.Now()
	if err := s.BulkLoad(SpecSource(cfg.Spec)); err != nil {
		return 0, fmt.Errorf("%s: bulk load: %w", name, err)
	}
	el := time.Since(t0)
	if cfg.want(WBulkInsert) {
		report(phaseRSS(Result{Engine: name, Workload: WBulkInsert, Ops: nodes + edges, Nanos: el.Nanoseconds(), Check: nodes + edges}))
	}
	ResetPeakRSS()
	diskBytes, _ = DirSize(dir)

	run := func(w string, ops int, fn func(i int) (int, error)) error {
		return runWorkload(name, cfg, w, ops, fn, func(r Result) { report(phaseRSS(r)) })
	}
	if err := RunReads(name, s, cfg, func(r Result) { report(phaseRSS(r)) }); err != nil {
		return diskBytes, err
	}
	if _, gen := s.(genStore); !gen && cfg.want(WFsync) && cfg.FsyncOps > 0 {
		r, err := RawFsync(dir, cfg.FsyncOps)
		if err != nil {
			return diskBytes, fmt.Errorf("%s: %s: %w", name, WFsync, err)
		}
		r.Engine = name
		report(r)
	}
	if err := run(WDurableCommit, cfg.DurableOps, func(int) (int, error) { return 1, s.DurableSingleCommit() }); err != nil {
		return diskBytes, err
	}

	if cfg.want(WGroupCommit) && cfg.GroupOps > 0 && cfg.Workers > 0 {
		err := s.EnableGroupCommit(cfg.Workers, cfg.GroupInterval)
		if errors.Is(err, ErrUnsupported) {
			return diskBytes, nil
		}
		if err != nil {
			return diskBytes, fmt.Errorf("%s: enable group commit: %w", name, err)
		}
		per := cfg.GroupOps / cfg.Workers
		total := per * cfg.Workers
		var wg sync.WaitGroup
		errs := make(chan error, cfg.Workers)
		start := make(chan struct{})
		for range cfg.Workers {
			wg.Go(func() {
				<-start
				for range per {
					if err := s.GroupCommitOne(); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		el := time.Since(t0)
		close(errs)
		if err := <-errs; err != nil {
			return diskBytes, fmt.Errorf("%s: %s: %w", name, WGroupCommit, err)
		}
		report(Result{Engine: name, Workload: WGroupCommit, Ops: int64(total), Nanos: el.Nanoseconds(), Check: int64(total)})
	}
	return diskBytes, nil
}

// RawFsync measures the device's durable-write rate: it overwrites 4 KiB
// blocks of a preallocated 1 MiB file in dir, calling fdatasync after each
// write, as a preallocated write-ahead log would. It is the ceiling for
// sequential durable commits that need one sync each.
func RawFsync(dir string, ops int) (Result, error) {
	f, err := os.CreateTemp(dir, "fsync-*.tmp")
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	const block, blocks = 4096, 256
	buf := make([]byte, block)
	for i := range blocks {
		if _, err := f.WriteAt(buf, int64(i)*block); err != nil {
			return Result{}, err
		}
	}
	if err := f.Sync(); err != nil {
		return Result{}, err
	}
	t0 := time.Now()
	for i := range ops {
		buf[0] = byte(i)
		if _, err := f.WriteAt(buf, int64(i%blocks)*block); err != nil {
			return Result{}, err
		}
		if err := fdatasync(f); err != nil {
			return Result{}, err
		}
	}
	return Result{Engine: "raw", Workload: WFsync, Ops: int64(ops), Nanos: time.Since(t0).Nanoseconds(), Check: int64(ops)}, nil
}

// DirSize returns the disk usage of the regular files under dir (allocated
// blocks where the OS reports them, like du).
func DirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += diskUsage(info)
		}
		return nil
	})
	return total, err
}

// runWorkload runs fn ops times as workload w (if selected) and reports
// the result; a store that does not support w is skipped.
func runWorkload(name string, cfg Config, w string, ops int, fn func(i int) (int, error), report func(Result)) error {
	if !cfg.want(w) || ops <= 0 {
		return nil
	}
	var check int64
	t0 := time.Now()
	for i := 0; i < ops; i++ {
		c, err := fn(i)
		if errors.Is(err, ErrUnsupported) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %s: %w", name, w, err)
		}
		check += int64(c)
	}
	report(Result{Engine: name, Workload: w, Ops: int64(ops), Nanos: time.Since(t0).Nanoseconds(), Check: check})
	return nil
}

// RunReads runs the selected read workloads (empty_view to neighbors_2hop)
// on a loaded store, calling report after each. cmd/readprobe calls it
// alone to profile the reads without the load.
func RunReads(name string, s Store, cfg Config, report func(Result)) error {
	nodes := int64(cfg.Spec.Nodes)
	run := func(w string, ops int, fn func(i int) (int, error)) error {
		return runWorkload(name, cfg, w, ops, fn, report)
	}
	// randomIDs draws the same query ids for every engine.
	randomIDs := func(stream uint64, n int, hi int64) []int64 {
		r := rand.New(rand.NewPCG(cfg.QuerySeed, stream))
		ids := make([]int64, n)
		for i := range ids {
			ids[i] = 1 + r.Int64N(max(hi, 1))
		}
		return ids
	}
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}

	if ev, ok := s.(EmptyViewer); ok {
		if err := run(WEmptyView, cfg.ViewOps, func(int) (int, error) { return 1, ev.EmptyView() }); err != nil {
			return err
		}
	}
	if nodes > 0 {
		ids := randomIDs(1, cfg.GetOps, nodes)
		if err := run(WGetNode, len(ids), func(i int) (int, error) {
			found, err := s.GetNode(ids[i])
			return b2i(found), err
		}); err != nil {
			return err
		}
		width := int64(min(cfg.RangeWidth, int(nodes)))
		los := randomIDs(2, cfg.RangeOps, nodes-width+1)
		if err := run(WRangeScan, len(los), func(i int) (int, error) {
			return s.RangeScan(los[i], los[i]+width-1)
		}); err != nil {
			return err
		}
		if err := run(WFullIterate, cfg.FullIters, func(int) (int, error) { return s.FullIterate() }); err != nil {
			return err
		}
		ids = randomIDs(3, cfg.Hop1Ops, nodes)
		if err := run(WNeighbors1Hop, len(ids), func(i int) (int, error) { return s.Neighbors1Hop(ids[i]) }); err != nil {
			return err
		}
		ids = randomIDs(4, cfg.Hop2Ops, nodes)
		if err := run(WNeighbors2Hop, len(ids), func(i int) (int, error) { return s.Neighbors2Hop(ids[i]) }); err != nil {
			return err
		}
	}
	return nil
}
