package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine/logging"
)

// The guide's calls, as a reader types them (issue 7 item 17).

// EnableGroupCommit(5, 50) is 5ns: refused, with the unit named.
func TestGroupCommitRefusesNanosecondInterval(t *testing.T) {
	db := mustOpen(t, tempDB(t), Config{})
	defer db.Close()
	for _, d := range []time.Duration{5, 50 * time.Microsecond, MinGroupCommitInterval - 1} {
		err := db.EnableGroupCommit(d, 50)
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("EnableGroupCommit(%v): %v, want ErrInvalid", d, err)
		}
		if !strings.Contains(err.Error(), "nanoseconds") {
			t.Errorf("message does not say why: %v", err)
		}
	}
	if db.GroupCommit().Enabled {
		t.Fatal("group commit turned on by a refused call")
	}
	for _, d := range []time.Duration{MinGroupCommitInterval, 5 * time.Millisecond, 0} {
		if err := db.EnableGroupCommit(d, 50); err != nil {
			t.Fatalf("EnableGroupCommit(%v): %v", d, err)
		}
	}
}

// logging.InitLogging alone makes the engine log (no Config.Logger). Run
// in a child process: InitLogging changes process-wide state.
func TestInitLoggingReachesEngine(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "sombra.log")
	c := startChild(t, "TestInitLoggingChild", "initlogging", "SOMBRA_TEST_DIR="+dir)
	c.expect("OK", 30*time.Second)
	c.wait(30 * time.Second)
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"msg":"database opened"`, `"msg":"transaction begin"`, `"msg":"database closed"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log lacks %s:\n%s", want, b)
		}
	}
}

func TestInitLoggingChild(t *testing.T) {
	if !childMode(t, "initlogging") {
		return
	}
	dir := os.Getenv("SOMBRA_TEST_DIR")
	if _, err := logging.InitLogging("debug,json,file=" + filepath.Join(dir, "sombra.log")); err != nil {
		childFail("%v", err)
	}
	db, err := Open(filepath.Join(dir, "g.db"))
	if err != nil {
		childFail("%v", err)
	}
	if err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
		childFail("%v", err)
	}
	if err := db.Close(); err != nil {
		childFail("%v", err)
	}
	childSay("OK")
}

// Rates are over the last minute, not since open: after a burst and a
// quiet minute the rate is zero while the totals remain.
func TestMetricsRatesOverRecentWindow(t *testing.T) {
	db := mustOpen(t, tempDB(t), Config{})
	defer db.Close()
	for range 20 {
		if err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
	m := db.GetPerformanceMetrics()
	if m.TransactionsPerSecond <= 0 || m.WritesPerSecond <= 0 || m.TransactionsCommitted != 20 {
		t.Fatalf("busy: %+v", m)
	}
	// Replay the sampler over a quiet minute and a half after the burst.
	ms := db.metrics
	start := time.Now()
	for i := 1; i <= 90; i++ {
		ms.sample(start.Add(time.Duration(i) * time.Second))
	}
	tps, rps, wps, span := ms.rates(start.Add(90 * time.Second))
	if tps != 0 || rps != 0 || wps != 0 {
		t.Fatalf("a minute after the last commit: %v commits/s, %v reads/s, %v writes/s (want 0)", tps, rps, wps)
	}
	if span < 59 || span > 60 {
		t.Errorf("window %vs, want 60", span)
	}
	// Ten more commits in the last second of the window: 10/60 per second.
	for range 10 {
		if err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("N", nil); return err }); err != nil {
			t.Fatal(err)
		}
	}
	tps, _, _, span = ms.rates(start.Add(90 * time.Second))
	if want := 10 / span; tps < want*0.99 || tps > want*1.01 {
		t.Errorf("rate %v commits/s over %vs, want %v", tps, span, want)
	}
}
