package engine

// Engine benchmarks. Each benchmark that needs a prepared database builds it
// once in the parent benchmark (in b.TempDir) and measures in a
// sub-benchmark, so the build is not repeated for every b.N.
//
//	go test -run '^$' -bench . -benchtime 1x ./engine          # smoke
//	go test -run '^$' -bench . -benchtime 2s ./engine          # figures

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// buildBench creates a database with n nodes (label User, two properties)
// and deg outgoing edges per node to random other nodes, in transactions of
// 20K nodes. It reports the build rate.
func buildBench(b *testing.B, n, deg int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.db")
	db, err := OpenWithConfig(path, Config{CacheSize: 256 << 20, WALAutoCheckpoint: 20000})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(n), uint64(deg)))
	start := time.Now()
	const batchSize = 20000
	for lo := 1; lo <= n; lo += batchSize {
		hi := min(lo+batchSize-1, n)
		err := db.Update(func(tx *Tx) error {
			for i := lo; i <= hi; i++ {
				if _, err := tx.CreateNode("User", Properties{"i": IntValue(int64(i)), "name": StringValue(fmt.Sprintf("user-%08d", i))}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if deg > 0 {
		// Random endpoints dirty most adjacency pages in every transaction,
		// so edges go in larger transactions (fewer full-page WAL images).
		const perTx = 200_000
		for lo := 1; lo <= n; lo += perTx / deg {
			hi := min(lo+perTx/deg-1, n)
			err := db.Update(func(tx *Tx) error {
				for i := lo; i <= hi; i++ {
					for range deg {
						if _, err := tx.CreateEdge(NodeID(i), NodeID(1+rng.IntN(n)), "KNOWS", nil); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := db.CheckpointWithMode(CheckpointTruncate); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d nodes, %d edges in %v", n, n*deg, time.Since(start).Round(time.Millisecond))
	return path
}

func openBench(b *testing.B, path string) *DB {
	b.Helper()
	db, err := OpenWithConfig(path, Config{CacheSize: 512 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// warm reads every node once so the page cache holds the node tree.
func warm(b *testing.B, tx *Tx) {
	b.Helper()
	for _, err := range tx.Nodes() {
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchPointLookup(b *testing.B, n int) {
	path := buildBench(b, n, 0)
	b.Run("warm", func(b *testing.B) {
		db := openBench(b, path)
		tx, err := db.BeginReadTransaction()
		if err != nil {
			b.Fatal(err)
		}
		defer tx.Rollback()
		warm(b, tx)
		rng := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			id := NodeID(1 + rng.IntN(n))
			nd, err := tx.GetNode(id)
			if err != nil || nd.ID != id {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPointLookup10K(b *testing.B) { benchPointLookup(b, 10_000) }
func BenchmarkPointLookup1M(b *testing.B)  { benchPointLookup(b, 1_000_000) }

const benchGraphNodes = 100_000

func BenchmarkFullIteration(b *testing.B) {
	path := buildBench(b, benchGraphNodes, 0)
	db := openBench(b, path)
	tx, err := db.BeginReadTransaction()
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	warm(b, tx)
	b.Run("nodes-decoded", func(b *testing.B) {
		for b.Loop() {
			cnt := 0
			for _, err := range tx.Nodes() {
				if err != nil {
					b.Fatal(err)
				}
				cnt++
			}
			if cnt != benchGraphNodes {
				b.Fatal(cnt)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchGraphNodes), "ns/node")
	})
	b.Run("ids-ordered", func(b *testing.B) {
		for b.Loop() {
			ids, err := tx.AllNodeIDsOrdered()
			if err != nil || len(ids) != benchGraphNodes {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchGraphNodes), "ns/node")
	})
}

func BenchmarkRangeScan(b *testing.B) {
	path := buildBench(b, benchGraphNodes, 0)
	db := openBench(b, path)
	tx, err := db.BeginReadTransaction()
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	warm(b, tx)
	const width = 1000
	rng := rand.New(rand.NewPCG(3, 4))
	b.Run("1000-ids", func(b *testing.B) {
		for b.Loop() {
			lo := NodeID(1 + rng.IntN(benchGraphNodes-width))
			ids, err := tx.NodesInRange(lo, lo+width-1)
			if err != nil || len(ids) != width {
				b.Fatal(err, len(ids))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*width), "ns/node")
	})
}

func benchNeighbors(b *testing.B, hops int) {
	const deg = 10
	path := buildBench(b, benchGraphNodes, deg)
	b.Run(fmt.Sprintf("deg%d", deg), func(b *testing.B) {
		db := openBench(b, path)
		tx, err := db.BeginReadTransaction()
		if err != nil {
			b.Fatal(err)
		}
		defer tx.Rollback()
		rng := rand.New(rand.NewPCG(5, 6))
		// warm the adjacency tree
		for i := 1; i <= benchGraphNodes; i += 50 {
			if _, err := tx.Neighbors(NodeID(i)); err != nil {
				b.Fatal(err)
			}
		}
		visited := 0
		b.ResetTimer()
		for b.Loop() {
			start := NodeID(1 + rng.IntN(benchGraphNodes))
			nb, err := tx.Neighbors(start)
			if err != nil {
				b.Fatal(err)
			}
			visited += len(nb)
			if hops == 2 {
				seen := make(map[NodeID]struct{}, deg*deg)
				for _, n := range nb {
					nb2, err := tx.Neighbors(n)
					if err != nil {
						b.Fatal(err)
					}
					for _, m := range nb2 {
						seen[m] = struct{}{}
					}
				}
				visited += len(seen)
			}
		}
		b.ReportMetric(float64(visited)/float64(b.N), "nodes/op")
	})
}

func BenchmarkNeighbors1Hop(b *testing.B) { benchNeighbors(b, 1) }
func BenchmarkNeighbors2Hop(b *testing.B) { benchNeighbors(b, 2) }

func BenchmarkDurableCommit(b *testing.B) {
	db, err := OpenWithConfig(filepath.Join(b.TempDir(), "commit.db"), Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for b.Loop() {
		if err := db.Update(func(tx *Tx) error {
			_, err := tx.CreateNode("Event", Properties{"v": IntValue(1)})
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

func BenchmarkGroupCommit16(b *testing.B) {
	db, err := OpenWithConfig(filepath.Join(b.TempDir(), "group.db"), Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.EnableGroupCommit(2*time.Millisecond, 64); err != nil {
		b.Fatal(err)
	}
	var commits atomic.Int64
	// 16 committing goroutines whatever GOMAXPROCS is
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((16 + procs - 1) / procs)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := db.Update(func(tx *Tx) error {
				_, err := tx.CreateNode("Event", Properties{"v": IntValue(1)})
				return err
			}); err != nil {
				b.Error(err)
				return
			}
			commits.Add(1)
		}
	})
	b.ReportMetric(float64(commits.Load())/b.Elapsed().Seconds(), "commits/s")
}

func BenchmarkBulkInsert(b *testing.B) {
	// b.N counts nodes; every node also gets one edge. 10K nodes per
	// transaction.
	db, err := OpenWithConfig(filepath.Join(b.TempDir(), "bulk.db"), Config{CacheSize: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const per = 10_000
	b.ResetTimer()
	done := 0
	for done < b.N {
		k := min(per, b.N-done)
		err := db.Update(func(tx *Tx) error {
			for i := 0; i < k; i++ {
				id, err := tx.CreateNode("User", Properties{"i": IntValue(int64(done + i)), "name": StringValue("user")})
				if err != nil {
					return err
				}
				if id > 1 {
					to := NodeID(max(1, int(id)-1-i%7))
					if _, err := tx.CreateEdge(id, to, "NEXT", nil); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		done += k
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "nodes/s")
}

// BenchmarkEmptyView is the fixed cost of a read transaction: db.View with
// an empty body (issue 8: no system call in the steady state).
func BenchmarkEmptyView(b *testing.B) {
	path := buildBench(b, 1000, 0)
	db := openBench(b, path)
	noop := func(*Tx) error { return nil }
	if err := db.View(noop); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := db.View(noop); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDBGetNode is db.GetNode outside an explicit transaction, as an
// application calls it: one read transaction per lookup.
func BenchmarkDBGetNode(b *testing.B) {
	const n = 200_000
	path := buildBench(b, n, 0)
	b.Run("warm", func(b *testing.B) {
		db := openBench(b, path)
		if err := db.View(func(tx *Tx) error { warm(b, tx); return nil }); err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			id := NodeID(1 + rng.IntN(n))
			nd, err := db.GetNode(id)
			if err != nil || nd.ID != id {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTwoHopFunc is the bench/ 2-hop workload through the public API:
// one db.View per query, NeighborsFunc for both hops, a map of distinct
// second-hop nodes.
func BenchmarkTwoHopFunc(b *testing.B) {
	const n, deg = 20_000, 5
	path := buildBench(b, n, deg)
	db := openBench(b, path)
	rng := rand.New(rand.NewPCG(7, 8))
	seen := make(map[NodeID]struct{}, 256)
	var first []NodeID
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := NodeID(1 + rng.IntN(n))
		clear(seen)
		first = first[:0]
		err := db.View(func(tx *Tx) error {
			if err := tx.NeighborsFunc(start, func(x NodeID) bool { first = append(first, x); return true }); err != nil {
				return err
			}
			for _, f := range first {
				if err := tx.NeighborsFunc(f, func(x NodeID) bool { seen[x] = struct{}{}; return true }); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
