package debug

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
)

func open(t *testing.T, cfg engine.Config) *engine.DB {
	t.Helper()
	db, err := engine.OpenWithConfig(filepath.Join(t.TempDir(), "d.db"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func commit(t *testing.T, db *engine.DB) {
	t.Helper()
	if err := db.Update(func(tx *engine.Tx) error {
		_, err := tx.CreateNode("User", engine.Properties{"name": engine.StringValue("x")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

func TestTraceAndDetailedLogging(t *testing.T) {
	db := open(t, engine.Config{}) // Config.Logger discards
	d, err := Enable(db)
	if err != nil {
		t.Fatal(err)
	}
	commit(t, db)                                          // nothing traced yet
	if err := d.SetSampleInterval(time.Hour); err != nil { // samples taken by hand below
		t.Fatal(err)
	}
	if err := d.TraceOperations([]string{"transaction_commit", "page_read"}); err != nil {
		t.Fatal(err)
	}
	if err := d.TraceOperations([]string{"transaction_commit", "node_teleport"}); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("unknown op: %v", err)
	}
	if got := d.Traced(); strings.Join(got, ",") != "page_read,transaction_commit" {
		t.Fatalf("traced = %v (an invalid call must change nothing)", got)
	}
	logPath := filepath.Join(t.TempDir(), "debug.log")
	if err := d.EnableDetailedLogging(logPath); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		commit(t, db)
	}
	evs := d.Events()
	if len(evs) != 3 || d.Counts()[OpTransactionCommit] != 3 {
		t.Fatalf("events = %+v, counts %v", evs, d.Counts())
	}
	for i, ev := range evs {
		lsn, ok := ev.Attr("lsn")
		if ev.Op != OpTransactionCommit || !ok || (i > 0 && lsn.Uint64() <= evs[i-1].Attrs[0].Value.Uint64()) {
			t.Errorf("event %d = %+v", i, ev)
		}
	}
	// Page reads: sampled from the cache counters.
	// A checkpoint moves the pages into the database file, under new cache
	// keys: the next reads miss the cache.
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	d.SamplePageReads() // the checkpoint's own reads
	for range 5 {
		if _, err := db.GetNode(1); err != nil {
			t.Fatal(err)
		}
	}
	ev, ok := d.SamplePageReads()
	if !ok || ev.Op != OpPageRead {
		t.Fatalf("page_read sample = %+v %v", ev, ok)
	}
	if v, _ := ev.Attr("from_disk"); v.Uint64() == 0 {
		t.Errorf("from_disk = 0 after a checkpoint: %+v", ev)
	}
	if v, _ := ev.Attr("from_cache"); v.Uint64() == 0 {
		t.Errorf("from_cache = 0 reading the same node 5 times: %+v", ev)
	}
	if _, ok := d.SamplePageReads(); ok {
		t.Error("a sample with no reads since the previous one")
	}
	// Tracing nothing: commits are no longer recorded.
	traced := len(d.Events()) // 3 commits, 1 or 2 page_read samples
	if err := d.TraceOperations(nil); err != nil {
		t.Fatal(err)
	}
	commit(t, db)
	if n := len(d.Events()); n != traced {
		t.Errorf("%d events after tracing stopped, want %d", n, traced)
	}

	if err := d.Disable(); err != nil {
		t.Fatal(err)
	}
	if db.Tracer() != nil {
		t.Error("tracer left installed")
	}
	commit(t, db) // not in the log any more
	recs := readJSONLines(t, logPath)
	var traces, engineCommits, begins int
	for _, r := range recs {
		if r["level"] != "DEBUG" && r["level"] != "INFO" {
			continue
		}
		switch r["msg"] {
		case "trace":
			traces++
		case "transaction commit":
			engineCommits++
		case "transaction begin":
			begins++
		}
	}
	// Every traced event; the engine's own debug records for the 3 commits
	// made while tracing and the one after tracing stopped (the log was
	// still on), though Config.Logger discards them.
	if traces != traced || engineCommits != 4 || begins != 4 {
		t.Errorf("log has %d traces, %d engine commit and %d begin records; want %d, 4, 4\n%v", traces, engineCommits, begins, traced, recs)
	}
}

func TestEnableTwiceAndClose(t *testing.T) {
	db := open(t, engine.Config{})
	d, err := Enable(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Enable(db); !errors.Is(err, ErrAlreadyEnabled) {
		t.Fatalf("second Enable: %v", err)
	}
	if err := d.TraceOperations([]string{OpPageRead}); err != nil { // starts the sampler
		t.Fatal(err)
	}
	if err := d.EnableDetailedLogging(filepath.Join(t.TempDir(), "x.log")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing the database ended debug mode.
	if db.Tracer() != nil || d.DetailedLogPath() != "" {
		t.Error("debug mode survived Close")
	}
	if err := d.TraceOperations([]string{OpPageRead}); err == nil {
		t.Error("TraceOperations after Close succeeded")
	}
	if _, err := Enable(db); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("Enable on a closed db: %v", err)
	}
	if _, err := Enable(nil); err == nil {
		t.Error("Enable(nil) succeeded")
	}
}

func TestBackgroundPageReadSampler(t *testing.T) {
	db := open(t, engine.Config{})
	commit(t, db)
	d, err := Enable(db)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Disable()
	d.SetSampleInterval(5 * time.Millisecond)
	d.TraceOperations([]string{OpPageRead})
	deadline := time.Now().Add(10 * time.Second)
	for d.Counts()[OpPageRead] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no page_read event from the sampler")
		}
		db.GetNode(1)
		time.Sleep(2 * time.Millisecond)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var sink uint64

//go:noinline
func burnCPU(n int) uint64 {
	x := uint64(1)
	for i := range n {
		x = x*6364136223846793005 + uint64(i)
	}
	return x
}

func TestProfiling(t *testing.T) {
	db := open(t, engine.Config{})
	d, err := Enable(db)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Disable()
	if _, err := d.StopProfiling(); !errors.Is(err, ErrNotProfiling) {
		t.Fatalf("stop before start: %v", err)
	}
	if err := d.StartProfiling(); err != nil {
		t.Fatal(err)
	}
	if err := d.StartProfiling(); err == nil {
		t.Fatal("second StartProfiling succeeded")
	}
	// Burn at least 300ms of CPU (the machine may be loaded: measure CPU
	// time, not wall time).
	start, wall := cpuTime(), time.Now()
	for cpuTime()-start < 300*time.Millisecond && time.Since(wall) < 20*time.Second {
		sink += burnCPU(1 << 20)
	}
	commit(t, db)
	p, err := d.StopProfiling()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Remove()
	if p.Samples < 10 || p.CPUTime < 100*time.Millisecond || len(p.Functions) == 0 {
		t.Fatalf("empty CPU profile: %+v", p)
	}
	found := false
	for _, f := range p.Functions {
		if strings.HasSuffix(f.Name, ".burnCPU") && f.Flat > 0 {
			found = true
		}
	}
	if !found || !strings.HasSuffix(p.Functions[0].Name, ".burnCPU") {
		t.Errorf("burnCPU is not the top function:\n%s", p.Summary())
	}
	for _, path := range []string{p.CPUProfilePath, p.HeapProfilePath} {
		if st, err := os.Stat(path); err != nil || st.Size() == 0 {
			t.Errorf("profile file %s: %v", path, err)
		}
	}
	if p.HeapInUseBytes <= 0 || len(p.HeapFunctions) == 0 {
		t.Errorf("heap: %d bytes, %d sites", p.HeapInUseBytes, len(p.HeapFunctions))
	}
	s := p.Summary()
	if !strings.Contains(s, "burnCPU") || !strings.Contains(s, "Top ") || !strings.Contains(s, "in use") {
		t.Errorf("summary:\n%s", s)
	}
	t.Logf("\n%s", s)
	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.CPUProfilePath); !errors.Is(err, os.ErrNotExist) {
		t.Error("Remove left the CPU profile")
	}
	// Profiling can run again.
	if err := d.StartProfiling(); err != nil {
		t.Fatal(err)
	}
	p2, err := d.StopProfiling()
	if err != nil {
		t.Fatal(err)
	}
	p2.Remove()
}
