package engine

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine/vfs"
)

// walSyncCounter counts the WAL's fsyncs, each made to take at least
// delay (a slow disk), without failing any.
func walSyncCounter(delay time.Duration, n *atomic.Int64) vfs.Rule {
	return func(op vfs.Op, name string, _ int) *vfs.Fault {
		if op == vfs.OpSync && strings.HasSuffix(name, "-wal") {
			n.Add(1)
			time.Sleep(delay)
		}
		return nil
	}
}

// TestGroupCommitNoTimerWait: a commit under group commit is durable after
// one fsync, started at once, not after the group-commit interval (the
// syncer used to fsync on a ticker, so a lone committer waited for it).
func TestGroupCommitNoTimerWait(t *testing.T) {
	ffs := vfs.NewFaultFS(vfs.OS)
	db := mustOpen(t, tempDB(t), Config{FS: ffs, WALAutoCheckpoint: -1})
	defer db.Close()
	if err := db.EnableGroupCommit(time.Second, 64); err != nil {
		t.Fatal(err)
	}
	var syncs atomic.Int64
	ffs.SetRule(walSyncCounter(0, &syncs))
	start := time.Now()
	const n = 5
	for i := 0; i < n; i++ {
		if err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("x", nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("%d sequential commits took %v under a 1 s group-commit interval: commits wait for a timer", n, d)
	}
	if s := syncs.Load(); s < n {
		t.Fatalf("%d commits made durable by %d fsyncs", n, s)
	}
}

// TestGroupCommitSharesFsyncs: 16 committers on a slow disk share fsyncs
// (each fsync covers the commits written while the one before it ran),
// and every commit is durable when it returns.
func TestGroupCommitSharesFsyncs(t *testing.T) {
	ffs := vfs.NewFaultFS(vfs.OS)
	path := tempDB(t)
	db := mustOpen(t, path, Config{FS: ffs, WALAutoCheckpoint: -1})
	if err := db.EnableGroupCommit(time.Millisecond, 16); err != nil {
		t.Fatal(err)
	}
	var syncs atomic.Int64
	ffs.SetRule(walSyncCounter(5*time.Millisecond, &syncs))
	const workers, each = 16, 10
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("g", nil); return err }); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ffs.SetRule(nil)
	if s := syncs.Load(); s > workers*each/3 {
		t.Fatalf("%d commits took %d fsyncs: committers do not share them", workers*each, s)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2 := mustOpen(t, path, Config{})
	defer db2.Close()
	if n := countLabel(t, db2, "g"); n != workers*each {
		t.Fatalf("%d nodes after reopen, want %d", n, workers*each)
	}
}
