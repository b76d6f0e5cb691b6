package backup_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/commands/backup"
)

// TestScheduleRunOnce drives single scheduled runs: an incremental run on
// an empty directory takes (and names) a full backup, the next one an
// incremental; each is verified; --keep-days prunes by the clock.
func TestScheduleRunOnce(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	runOnce := func(at time.Time, kind string, extra ...string) backup.ScheduleResult {
		t.Helper()
		args := append([]string{"schedule", "--db", path, "--dir", bdir, "--run-once", kind, "--json"}, extra...)
		out, errOut, code := runAt(t, at, args...)
		var res backup.ScheduleResult
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Runs) != 1 || !res.Runs[0].OK {
			t.Fatalf("%v: code=%d\nstdout %s\nstderr %s", args, code, out, errOut)
		}
		// Each run is logged (at info by default for schedule).
		if !strings.Contains(errOut, `msg="backup run done"`) || !strings.Contains(errOut, "name="+res.Runs[0].Name) {
			t.Errorf("run not logged: %s", errOut)
		}
		return res
	}
	r := runOnce(t0, "incremental").Runs[0]
	if r.Name != "full_20250115_120000" || r.Backup == nil || r.Backup.Type != "full" || !r.Verified || r.Pruned != nil {
		t.Errorf("first run: %+v", r)
	}
	addNodes(t, path, 5)
	r = runOnce(t0.Add(24*time.Hour), "incremental").Runs[0]
	if r.Name != "inc_20250116_120000" || r.Backup.Type != "incremental" || r.Backup.Parent == nil || *r.Backup.Parent != "full_20250115_120000" || !r.Verified {
		t.Errorf("second run: %+v", r)
	}
	// Forty days on, a full run with --keep-days 30 leaves only itself.
	r = runOnce(t0.Add(40*24*time.Hour), "full", "--keep-days", "30").Runs[0]
	if r.Pruned == nil || strings.Join(r.Pruned.Deleted, ",") != "full_20250115_120000,inc_20250116_120000" {
		t.Errorf("prune in run: %+v", r.Pruned)
	}
	out := ok(t, "list", "--dir", bdir, "--json")
	var l backup.ListResult
	if json.Unmarshal([]byte(out), &l) != nil || len(l.Backups) != 1 || l.Backups[0].Verified == nil || !l.Backups[0].Verified.OK {
		t.Errorf("after the runs: %s", out)
	}

	// A failed run-once exits with the failure's code and reports it.
	if err := os.WriteFile(path, []byte(strings.Repeat("garbage ", 2000)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := run(t, "schedule", "--db", path, "--dir", bdir, "--run-once", "full")
	if code != 1 || !strings.Contains(errOut, "not a sombra database") {
		t.Errorf("run-once on garbage: code=%d stderr=%q", code, errOut)
	}
}

// TestScheduleDaemon runs the real cron loop with a one-second schedule:
// a run that fails (the database is gone) is logged and the daemon goes
// on; the next run succeeds; cancelling the context (what SIGINT/SIGTERM
// do) stops it cleanly with exit status 0 and a summary.
func TestScheduleDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for cron runs")
	}
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	s, _, out, _ := cli.Test()
	errOut := &syncBuffer{}
	s.ErrOut = errOut
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// cli.Main cancels the command's context on SIGINT/SIGTERM; here
		// the test cancels it.
		cmd := backup.NewCmd(&backup.Options{IO: s}, nil)
		cmd.SetArgs([]string{"schedule", "--db", path, "--dir", bdir, "--full", "@every 1s", "--keep-days", "30", "--json"})
		done <- cmd.ExecuteContext(ctx)
	}()

	waitLog := func(what string, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(errOut.String(), what) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %d× %q in the log after 20s:\n%s", n, what, errOut.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLog(`msg="backup schedule started"`, 1)
	waitLog(`msg="backup run done"`, 1)
	hidden := path + ".away"
	if err := os.Rename(path, hidden); err != nil {
		t.Fatal(err)
	}
	waitLog(`msg="backup run failed"`, 1)
	if err := os.Rename(hidden, path); err != nil {
		t.Fatal(err)
	}
	n := strings.Count(errOut.String(), `msg="backup run done"`)
	waitLog(`msg="backup run done"`, n+1)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("schedule returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("schedule did not stop after its context was cancelled")
	}
	if !strings.Contains(errOut.String(), `msg="backup schedule stopped"`) {
		t.Errorf("no stop in the log:\n%s", errOut.String())
	}
	var res backup.ScheduleResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.RunsFailed < 1 || res.RunsTotal < 3 || res.RunsTotal != len(res.Runs) {
		t.Fatalf("summary %s (%v)", out, err)
	}
	var failed, verified int
	for _, r := range res.Runs {
		if !r.OK {
			failed++
			if r.Error == nil || !strings.Contains(*r.Error, "no such file") {
				t.Errorf("failed run: %+v", r)
			}
		} else if r.Verified {
			verified++
		}
	}
	if failed != res.RunsFailed || verified != res.RunsTotal-res.RunsFailed {
		t.Errorf("runs %+v", res.Runs)
	}
	l := ok(t, "list", "--dir", bdir, "--json")
	var lr backup.ListResult
	if json.Unmarshal([]byte(l), &lr) != nil || len(lr.Backups) != verified {
		t.Errorf("%d verified runs, list: %s", verified, l)
	}
}
