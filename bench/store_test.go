package bench

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sombradb/sombra/internal/gengraph"
)

var tinySpec = gengraph.Spec{Nodes: 300, Edges: 1500, Seed: 5}

// reference computes the expected answers from the generator directly.
type reference struct {
	nodes int64
	out   map[int64][]int64
}

func newReference(t *testing.T, spec gengraph.Spec) reference {
	t.Helper()
	ref := reference{nodes: int64(spec.Nodes), out: map[int64][]int64{}}
	if err := gengraph.Generate(spec, nil, func(e gengraph.Edge) error {
		ref.out[int64(e.From)+1] = append(ref.out[int64(e.From)+1], int64(e.To)+1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ref
}

func (r reference) twoHop(id int64) int {
	n, _ := twoHop(id, func(id int64, visit func(int64)) error {
		for _, x := range r.out[id] {
			visit(x)
		}
		return nil
	})
	return n
}

func realEngines() []string {
	return slices.DeleteFunc(Engines(), func(n string) bool { return n == GenOnly })
}

func TestStores(t *testing.T) {
	ref := newReference(t, tinySpec)
	for _, name := range realEngines() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(name, dir, Options{CacheBytes: 4 << 20, BatchSize: 256})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { s.Close() }()
			if err := s.BulkLoad(SpecSource(tinySpec)); err != nil {
				t.Fatal(err)
			}
			N := ref.nodes
			for id := int64(1); id <= N; id++ {
				if ok, err := s.GetNode(id); err != nil || !ok {
					t.Fatalf("GetNode(%d) = %v, %v", id, ok, err)
				}
			}
			if ok, err := s.GetNode(N + 1); err != nil || ok {
				t.Fatalf("GetNode(missing) = %v, %v", ok, err)
			}
			for _, r := range [][3]int64{{1, 1, 1}, {1, 10, 10}, {50, 149, 100}, {N - 4, N + 100, 5}, {N + 1, N + 9, 0}} {
				if n, err := s.RangeScan(r[0], r[1]); err != nil || int64(n) != r[2] {
					t.Errorf("RangeScan(%d,%d) = %d, %v; want %d", r[0], r[1], n, err, r[2])
				}
			}
			if n, err := s.FullIterate(); err != nil || int64(n) != N {
				t.Fatalf("FullIterate = %d, %v; want %d", n, err, N)
			}
			for id := int64(1); id <= N; id++ {
				if n, err := s.Neighbors1Hop(id); err != nil || n != len(ref.out[id]) {
					t.Fatalf("Neighbors1Hop(%d) = %d, %v; want %d", id, n, err, len(ref.out[id]))
				}
				if n, err := s.Neighbors2Hop(id); err != nil || n != ref.twoHop(id) {
					t.Fatalf("Neighbors2Hop(%d) = %d, %v; want %d", id, n, err, ref.twoHop(id))
				}
			}

			if err := s.DurableSingleCommit(); err != nil {
				t.Fatal(err)
			}
			if ok, err := s.GetNode(N + 1); err != nil || !ok {
				t.Fatalf("GetNode(new) = %v, %v", ok, err)
			}
			const workers, per = 4, 5
			if err := s.EnableGroupCommit(workers, time.Millisecond); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, workers*per)
			for range workers {
				wg.Go(func() {
					for range per {
						if err := s.GroupCommitOne(); err != nil {
							errs <- err
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			want := N + 1 + workers*per
			if n, err := s.FullIterate(); err != nil || int64(n) != want {
				t.Fatalf("FullIterate after commits = %d, %v; want %d", n, err, want)
			}

			// Committed data survives a reopen.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(name, dir, Options{CacheBytes: 4 << 20}); err != nil {
				t.Fatal(err)
			}
			if n, err := s.FullIterate(); err != nil || int64(n) != want {
				t.Fatalf("FullIterate after reopen = %d, %v; want %d", n, err, want)
			}
			if err := s.DurableSingleCommit(); err != nil {
				t.Fatal(err)
			}
			if n, err := s.FullIterate(); err != nil || int64(n) != want+1 {
				t.Fatalf("FullIterate after reopen+commit = %d, %v; want %d", n, err, want+1)
			}
		})
	}
}

// TestRunEngineChecksAgree runs the whole workload on every engine with tiny
// counts and checks the engines agree on every read result.
func TestRunEngineChecksAgree(t *testing.T) {
	cfg := DefaultConfig(tinySpec)
	cfg.GetOps, cfg.RangeOps, cfg.RangeWidth, cfg.FullIters = 200, 20, 50, 1
	cfg.Hop1Ops, cfg.Hop2Ops, cfg.DurableOps, cfg.GroupOps, cfg.Workers, cfg.FsyncOps = 200, 50, 3, 8, 4, 3
	checks := map[string]map[string]int64{}
	for _, name := range Engines() {
		dir := t.TempDir()
		s, err := Open(name, dir, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		_, err = RunEngine(name, s, dir, cfg, func(r Result) {
			seen[r.Workload] = true
			if r.Ops <= 0 || r.Nanos <= 0 {
				t.Errorf("%s %s: bad result %+v", name, r.Workload, r)
			}
			if CheckedWorkloads[r.Workload] {
				if checks[r.Workload] == nil {
					checks[r.Workload] = map[string]int64{}
				}
				checks[r.Workload][name] = r.Check
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if name == GenOnly {
			if len(seen) != 1 || !seen[WBulkInsert] {
				t.Errorf("gen reported %v", seen)
			}
			continue
		}
		for _, w := range Workloads {
			if !seen[w] {
				t.Errorf("%s: workload %s not reported", name, w)
			}
		}
	}
	for w, byEngine := range checks {
		var first int64 = -1
		for e, c := range byEngine {
			if first == -1 {
				first = c
			} else if c != first {
				t.Errorf("%s: engines disagree: %v (at %s)", w, byEngine, e)
			}
		}
	}
	if checks[WGetNode]["sqlite"] != int64(cfg.GetOps) {
		t.Errorf("get_node found %d of %d", checks[WGetNode]["sqlite"], cfg.GetOps)
	}
}

func TestPropsRoundTrip(t *testing.T) {
	spec := gengraph.Spec{Nodes: 500, Edges: 500, Seed: 11}
	check := func(p map[string]gengraph.Value) error {
		got, err := DecodeProps(AppendProps(nil, p))
		if err != nil {
			return err
		}
		if len(got) != len(p) {
			t.Fatalf("len %d vs %d", len(got), len(p))
		}
		for k, v := range p {
			if !got[k].Equal(v) {
				t.Fatalf("%s: %#v vs %#v", k, got[k], v)
			}
		}
		return nil
	}
	if err := gengraph.Generate(spec,
		func(_ int, n gengraph.Node) error { return check(n.Props) },
		func(e gengraph.Edge) error { return check(e.Props) }); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeProps([]byte{3, 1}); err == nil {
		t.Error("truncated encoding accepted")
	}
}

func TestRawFsync(t *testing.T) {
	r, err := RawFsync(t.TempDir(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if r.Ops != 5 || r.Nanos <= 0 {
		t.Fatalf("%+v", r)
	}
}

func TestPeakRSS(t *testing.T) {
	kib, err := PeakRSSKiB()
	if err != nil {
		t.Skip(err)
	}
	if kib <= 0 {
		t.Fatalf("peak RSS %d KiB", kib)
	}
}
