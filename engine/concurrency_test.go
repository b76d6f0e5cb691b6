package engine

// In-process concurrency: one connection shared by writers (with group
// commit), readers, checkpointers of every mode and the introspection calls,
// plus a second connection in the same process. Run under -race this finds
// unsynchronised state in the pager; without it, it checks that every read
// sees a consistent prefix of the writes.

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConcurrentConnectionUse(t *testing.T) {
	path := tempDB(t)
	db := mustOpen(t, path, Config{BusyTimeout: 20 * time.Millisecond, WALAutoCheckpoint: 30, CacheSize: 256 << 10})
	defer db.Close()
	db2 := mustOpen(t, path, Config{BusyTimeout: 20 * time.Millisecond, CacheSize: 1})
	defer db2.Close()
	if err := db.EnableGroupCommit(time.Millisecond, 4); err != nil {
		t.Fatal(err)
	}
	dur := 1500 * time.Millisecond
	if testing.Short() {
		dur = 500 * time.Millisecond
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Value
	fail := func(err error) {
		failed.CompareAndSwap(nil, err)
	}
	run := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := fn(); err != nil {
					fail(fmt.Errorf("%s: %w", name, err))
					return
				}
			}
		}()
	}
	var commits atomic.Int64
	for w := 0; w < 3; w++ {
		run(fmt.Sprintf("writer %d", w), func() error {
			err := db.Update(mpWriterTx)
			if errors.Is(err, ErrBusy) {
				return nil // the other writers hold the lock
			}
			if err == nil {
				commits.Add(1)
			}
			return err
		})
	}
	var seen atomic.Int64
	for r, conn := range []*DB{db, db, db2} {
		run(fmt.Sprintf("reader %d", r), func() error {
			return conn.View(func(tx *Tx) error {
				n, err := mpCheck(tx)
				if err != nil {
					return err
				}
				for {
					old := seen.Load()
					if n <= old || seen.CompareAndSwap(old, n) {
						break
					}
				}
				return nil
			})
		})
	}
	modes := []CheckpointMode{CheckpointPassive, CheckpointFull, CheckpointRestart, CheckpointTruncate}
	for c, conn := range []*DB{db, db2} {
		i := 0
		run(fmt.Sprintf("checkpointer %d", c), func() error {
			i++
			_, err := conn.CheckpointWithMode(modes[i%len(modes)])
			if errors.Is(err, ErrBusy) {
				err = nil
			}
			time.Sleep(2 * time.Millisecond)
			return err
		})
	}
	run("introspection", func() error {
		if _, err := db.Info(); err != nil {
			return err
		}
		if _, err := db.CheckpointStatus(); err != nil {
			return err
		}
		_ = db.GetPerformanceMetrics()
		if _, err := db.IndexStatistics(); err != nil {
			return err
		}
		if err := db.UpdateCacheSize(int64(64<<10) * (1 + time.Now().UnixNano()%8)); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
		return nil
	})
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	if commits.Load() == 0 {
		t.Fatal("no commits")
	}
	if err := db.View(func(tx *Tx) error {
		n, err := mpCheck(tx)
		if err == nil && n != commits.Load() {
			err = fmt.Errorf("%d transactions visible, %d committed", n, commits.Load())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d commits, readers saw up to %d", commits.Load(), seen.Load())
}

// Turning group commit on and off while commits are in flight: a commit
// that picked the old syncer must still become durable and return (it used
// to wait forever on a syncer that had exited, and the swap was a data race).
func TestGroupCommitToggle(t *testing.T) {
	db := mustOpen(t, tempDB(t), Config{})
	defer db.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var commits atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("x", nil); return err }); err != nil {
					t.Error(err)
					return
				}
				commits.Add(1)
			}
		}()
	}
	for i := 0; i < 150; i++ {
		if i%2 == 0 {
			db.EnableGroupCommit(time.Millisecond, 3)
		} else {
			db.EnableGroupCommit(0, 0)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("committers hung after group commit was switched off")
	}
	var n uint64
	db.View(func(tx *Tx) error { n = tx.NodeCount(); return nil })
	if n != uint64(commits.Load()) {
		t.Fatalf("%d nodes, %d commits", n, commits.Load())
	}
}

// A connection with two snapshots, one reading WAL frames and one (begun
// after a checkpoint) that could read the database file alone, must still
// keep other connections from restarting the WAL under the first one. The
// connection publishes a single read mark (the minimum); a 0 there once
// let another connection truncate the log the first snapshot was reading.
func TestSnapshotPinsWALAcrossConnections(t *testing.T) {
	path := tempDB(t)
	db := mustOpen(t, path, Config{CacheSize: 1, WALAutoCheckpoint: -1, BusyTimeout: 50 * time.Millisecond})
	defer db.Close()
	db2 := mustOpen(t, path, Config{CacheSize: 1, WALAutoCheckpoint: -1, BusyTimeout: 50 * time.Millisecond})
	defer db2.Close()
	for i := 0; i < 3; i++ {
		if err := db.Update(func(tx *Tx) error { return batch(tx, "A", 200) }); err != nil {
			t.Fatal(err)
		}
	}
	a, err := db.BeginReadTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Rollback()
	want, err := txDump(a)
	if err != nil {
		t.Fatal(err)
	}
	// every frame is copied back (a's mark is the end of the log)...
	if _, err := db2.CheckpointWithMode(CheckpointFull); err != nil {
		t.Fatal(err)
	}
	// ...so a new snapshot could read the database file alone
	b, err := db.BeginReadTransaction()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Rollback()
	// a still reads the log: another connection must not reset it
	if _, err := db2.CheckpointWithMode(CheckpointTruncate); !errors.Is(err, ErrBusy) {
		t.Fatalf("truncate checkpoint under a snapshot reading the WAL = %v, want ErrBusy", err)
	}
	for i := 0; i < 3; i++ {
		err := db2.Update(func(tx *Tx) error {
			ids, err := tx.NodesByLabel("A")
			if err != nil {
				return err
			}
			for _, id := range ids[:100] {
				if err := tx.SetNodeProperty(id, "i", IntValue(-1)); err != nil {
					return err
				}
			}
			return batch(tx, "B", 100)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := txDump(a)
	if err != nil {
		t.Fatalf("old snapshot: %v", err)
	}
	if got != want {
		t.Fatal("old snapshot changed")
	}
}
