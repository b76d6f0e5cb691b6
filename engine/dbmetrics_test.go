package engine

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine/internal/shm"
	"github.com/sombradb/sombra/engine/internal/wal"
)

// childLocal is what a writer child did, by its own connection's counters.
type childLocal struct {
	Commits, Rollbacks, Reads, Writes, Frames, CacheAccesses uint64
	PageSize                                                 int
}

// TestDatabaseMetricsChild is the child process of the tests below: a
// writer (mp-metrics-writer) or a reader of the database-wide metrics
// (mp-metrics-reader).
func TestDatabaseMetricsChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if !strings.HasPrefix(mode, "mp-metrics-") {
		t.Skip("helper process for another test")
	}
	childMode(t, mode)
	path := os.Getenv("SOMBRA_CHILD_DB")
	db, err := OpenWithConfig(path, Config{WALAutoCheckpoint: -1, BusyTimeout: 10 * time.Second})
	if err != nil {
		childFail("open: %v", err)
	}
	if mode == "mp-metrics-reader" {
		m, err := db.DatabaseMetrics()
		if err != nil {
			childFail("metrics: %v", err)
		}
		b, _ := json.Marshal(m)
		childSay("METRICS %s", b)
		db.Close()
		return
	}
	childSay("READY")
	var held *Tx
	for {
		switch cmd := childReadLine(); cmd {
		case "WORK":
			// 40 commits of 3 nodes, 5 rollbacks, 10 read transactions,
			// interleaved with the other writer's.
			for i := range 40 { // i also schedules the rollbacks and reads
				if err := db.Update(func(tx *Tx) error {
					for range 3 {
						if _, err := tx.CreateNode("W", nil); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					childFail("commit: %v", err)
				}
				if i%8 == 0 {
					tx, err := db.BeginTransaction()
					if err != nil {
						childFail("begin: %v", err)
					}
					if _, err := tx.CreateNode("Gone", nil); err != nil {
						childFail("create: %v", err)
					}
					tx.Rollback()
				}
				if i%4 == 0 {
					if err := db.View(func(tx *Tx) error { _ = tx.NodeCount(); return nil }); err != nil {
						childFail("view: %v", err)
					}
				}
			}
			childSay("WORKED")
		case "HOLD": // take the writer lock and keep it
			if held, err = db.BeginTransaction(); err != nil {
				childFail("begin: %v", err)
			}
			if _, err := held.CreateNode("Held", nil); err != nil {
				childFail("create: %v", err)
			}
			childSay("HELD")
		case "RELEASE":
			if err := held.Commit(); err != nil {
				childFail("commit: %v", err)
			}
			childSay("RELEASED")
		case "WRITE": // one commit, waiting for the writer lock if needed
			if err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("Late", nil); return err }); err != nil {
				childFail("commit: %v", err)
			}
			childSay("WROTE")
		case "CKPT":
			if _, err := db.Checkpoint(); err != nil {
				childFail("checkpoint: %v", err)
			}
			childSay("CKPTED")
		case "REPORT":
			db.publishShared()
			m := db.GetPerformanceMetrics()
			b, _ := json.Marshal(childLocal{Commits: m.TransactionsCommitted, Rollbacks: m.Rollbacks,
				Reads: m.ReadTransactions, Writes: m.WriteOperations, Frames: db.metrics.pages.Load(),
				CacheAccesses: m.CacheHits + m.CacheMisses, PageSize: db.p.PageSize()})
			childSay("LOCAL %s", b)
		case "EXIT":
			db.Close()
			return
		}
	}
}

func readMetricsInChild(t *testing.T, path string) DatabaseMetrics {
	t.Helper()
	r := startChild(t, "TestDatabaseMetricsChild", "mp-metrics-reader", "SOMBRA_CHILD_DB="+path)
	var m DatabaseMetrics
	if err := json.Unmarshal([]byte(r.expect("METRICS ", 30*time.Second)), &m); err != nil {
		t.Fatal(err)
	}
	r.wait(30 * time.Second)
	return m
}

// Two writer processes work on the database at once while a third process,
// which did nothing itself, reads the database-wide metrics: every count
// is the sum of what the writers did (before, a new connection's metrics
// were its own: zeros).
func TestDatabaseMetricsAddUpAcrossProcesses(t *testing.T) {
	path := tempDB(t)
	mustOpen(t, path, Config{}).Close()
	a := startChild(t, "TestDatabaseMetricsChild", "mp-metrics-writer", "SOMBRA_CHILD_DB="+path)
	b := startChild(t, "TestDatabaseMetricsChild", "mp-metrics-writer", "SOMBRA_CHILD_DB="+path)
	defer a.kill()
	defer b.kill()
	a.expect("READY", 30*time.Second)
	b.expect("READY", 30*time.Second)
	a.send("WORK")
	b.send("WORK")
	a.expect("WORKED", 60*time.Second)
	b.expect("WORKED", 60*time.Second)
	// A forced busy wait: b waits for the writer lock a holds.
	a.send("HOLD")
	a.expect("HELD", 10*time.Second)
	b.send("WRITE")
	time.Sleep(150 * time.Millisecond)
	a.send("RELEASE")
	a.expect("RELEASED", 10*time.Second)
	b.expect("WROTE", 10*time.Second)
	a.send("CKPT")
	a.expect("CKPTED", 10*time.Second)
	b.send("CKPT")
	b.expect("CKPTED", 10*time.Second)

	var sum childLocal
	for _, c := range []*childProc{a, b} {
		c.send("REPORT")
		var l childLocal
		if err := json.Unmarshal([]byte(c.expect("LOCAL ", 10*time.Second)), &l); err != nil {
			t.Fatal(err)
		}
		sum.Commits += l.Commits
		sum.Rollbacks += l.Rollbacks
		sum.Reads += l.Reads
		sum.Writes += l.Writes
		sum.Frames += l.Frames
		sum.CacheAccesses += l.CacheAccesses
		sum.PageSize = l.PageSize
	}
	if sum.Commits != 2*41 || sum.Rollbacks != 2*5 || sum.Reads != 2*10 {
		t.Fatalf("writers' own counts %+v", sum)
	}
	m := readMetricsInChild(t, path)
	if m.TransactionsCommitted != sum.Commits || m.Rollbacks != sum.Rollbacks || m.ReadTransactions != sum.Reads ||
		m.WriteOperations != sum.Writes || m.WALFramesWritten != sum.Frames || m.TransactionsFailed != 0 {
		t.Errorf("database-wide %+v\nwriters' sum %+v", m, sum)
	}
	fs := uint64(wal.FrameSize(sum.PageSize))
	if m.WALBytesWritten < sum.Frames*fs || m.WALBytesWritten > sum.Frames*fs+sum.Commits*wal.FrameHeaderSize {
		t.Errorf("WAL bytes %d for %d frames of %d bytes", m.WALBytesWritten, sum.Frames, fs)
	}
	if m.CommitLatency.Count() != sum.Commits || m.CommitLatency.SumSeconds <= 0 {
		t.Errorf("latency histogram holds %d commits (sum %gs), want %d", m.CommitLatency.Count(), m.CommitLatency.SumSeconds, sum.Commits)
	}
	if m.Checkpoints != 2 || m.CheckpointPages == 0 || m.CheckpointSeconds <= 0 {
		t.Errorf("checkpoints %d, pages %d, %gs", m.Checkpoints, m.CheckpointPages, m.CheckpointSeconds)
	}
	// The reader's own open reads pages too, after the writers reported.
	if m.CacheHits+m.CacheMisses < sum.CacheAccesses || m.CacheMisses == 0 {
		t.Errorf("cache %d hits + %d misses, writers made %d accesses", m.CacheHits, m.CacheMisses, sum.CacheAccesses)
	}
	if m.BusyWaits < 1 || m.BusyWaitSeconds < 0.1 || m.BusyTimeouts != 0 {
		t.Errorf("busy waits %d (%gs), timeouts %d", m.BusyWaits, m.BusyWaitSeconds, m.BusyTimeouts)
	}

	// The counters outlive any one connection while the database is open
	// (the reader came and went), and are reset only once everyone closed it.
	if again := readMetricsInChild(t, path); again.TransactionsCommitted != sum.Commits || !again.CountersSince.Equal(m.CountersSince) {
		t.Errorf("a second reader sees %d commits since %v, want %d since %v", again.TransactionsCommitted, again.CountersSince, sum.Commits, m.CountersSince)
	}
	a.send("EXIT")
	a.wait(10 * time.Second)
	b.send("EXIT")
	b.wait(10 * time.Second)
	fresh := readMetricsInChild(t, path)
	if fresh.TransactionsCommitted != 0 || fresh.WALFramesWritten != 0 || !fresh.CountersSince.After(m.CountersSince) {
		t.Errorf("after everyone closed: %d commits since %v (before: since %v)", fresh.TransactionsCommitted, fresh.CountersSince, m.CountersSince)
	}
}

// Rates come from two readings: a quiet interval has zero rates whatever
// happened before it, and a reset between the readings (everyone closed
// the database) counts from the reset rather than going negative.
func TestDatabaseRatesFromTwoReadings(t *testing.T) {
	path := tempDB(t)
	db := mustOpen(t, path, Config{})
	defer db.Close()
	for range 10 {
		if err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
	m1, err := db.DatabaseMetrics()
	if err != nil {
		t.Fatal(err)
	}
	m2 := m1
	m2.ReadAt = m1.ReadAt.Add(2 * time.Second)
	if r := m2.RatesSince(m1); r.TransactionsPerSecond != 0 || r.IntervalSeconds != 2 {
		t.Errorf("quiet interval: %+v", r)
	}
	for range 4 {
		if err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
	m3, err := db.DatabaseMetrics()
	if err != nil {
		t.Fatal(err)
	}
	m3.ReadAt = m1.ReadAt.Add(2 * time.Second)
	if r := m3.RatesSince(m1); r.TransactionsPerSecond != 2 || r.WritesPerSecond != 2 || r.CommitLatencyP99Ms <= 0 {
		t.Errorf("4 commits in 2s: %+v", r)
	}
	reset := m3
	reset.CountersSince = m1.ReadAt.Add(time.Second)
	reset.TransactionsCommitted = 3
	if r := reset.RatesSince(m1); r.IntervalSeconds != 1 || r.TransactionsPerSecond != 3 {
		t.Errorf("after a reset: %+v", r)
	}
}

// A connection that cannot see the counters says so (ErrMetricsUnavailable
// and why), never reports zeros: here the region was laid out by another
// build (a process of it initialised the -shm).
func TestDatabaseMetricsUnavailable(t *testing.T) {
	path := tempDB(t)
	first := mustOpen(t, path, Config{})
	defer first.Close()
	f, err := os.OpenFile(path+"-shm", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{99, 0, 0, 0, 0, 0, 0, 0}, 2048); err != nil {
		t.Fatal(err)
	}
	f.Close()
	second := mustOpen(t, path, Config{})
	defer second.Close()
	_, err = second.DatabaseMetrics()
	if !errors.Is(err, ErrMetricsUnavailable) || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("second connection: %v", err)
	}
	// Its commits must not write into a region it does not understand.
	if err := second.Update(func(tx *Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
		t.Fatal(err)
	}
	if _, err := first.DatabaseMetrics(); !errors.Is(err, ErrMetricsUnavailable) {
		t.Errorf("first connection after the layout changed: %v", err)
	}
	var nilShm *shm.File
	nilShm.Add(shm.CtrCommits, 1) // a connection without a -shm counts nothing, and does not crash
	nilShm.ObserveCommit(time.Millisecond)
	if nilShm.Counting() {
		t.Error("nil coordination file counting")
	}
}

func TestCommitLatencyQuantile(t *testing.T) {
	h := CommitLatencyHistogram{BoundsSeconds: []float64{0.001, 0.01, 0.1}, Counts: []uint64{0, 10, 0, 0}}
	if q := h.Quantile(0.5); q < 0.0054 || q > 0.0056 {
		t.Errorf("median %g, want 0.0055 (middle of the (1ms,10ms] bucket)", q)
	}
	h.Counts = []uint64{0, 0, 0, 5}
	if q := h.Quantile(0.99); q != 0.1 {
		t.Errorf("p99 in +Inf bucket = %g, want the highest bound", q)
	}
	if q := (CommitLatencyHistogram{BoundsSeconds: []float64{1}, Counts: []uint64{0, 0}}).Quantile(0.5); q != 0 {
		t.Errorf("empty = %g", q)
	}
}

// After Close the -shm is unmapped: DatabaseMetrics says the connection is
// closed instead of touching it.
func TestDatabaseMetricsAfterClose(t *testing.T) {
	db := mustOpen(t, tempDB(t), Config{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DatabaseMetrics(); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v", err)
	}
}

// A read-only connection that cannot use the coordination file (here the
// disk is full) reads in private mode, with a stand-in -shm in its own
// memory: its metrics would be its own, so it says they are unavailable
// rather than report them (or zeros) as the database's.
func TestDatabaseMetricsPrivateReader(t *testing.T) {
	path, _ := buildReadDB(t, false)
	if err := os.Remove(path + "-shm"); err != nil {
		t.Fatal(err)
	}
	db, err := OpenWithConfig(path, Config{ReadOnly: true, FS: fullShmFS()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !db.p.Private() {
		t.Fatal("connection is not in private mode")
	}
	if _, err := readAll(db); err != nil {
		t.Fatal(err)
	}
	_, err = db.DatabaseMetrics()
	if !errors.Is(err, ErrMetricsUnavailable) || !strings.Contains(err.Error(), "without the coordination file") {
		t.Fatalf("private reader: %v", err)
	}
}
