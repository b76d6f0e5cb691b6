package commands_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/internal/cli/clitest"
	"github.com/sombradb/sombra/internal/commands/fixture"
)

// interruptSpec is big enough for every tool to have a few hundred pages
// or thousands of records to go through, small enough to build in well
// under a second. The tools are slowed down by the engine's test-only
// step delay (SOMBRA_TEST_STEP_DELAY, slept at every page or record), so
// that each operation runs for seconds and the signal lands mid-run; the
// signal itself is real, sent to the real process.
var interruptSpec = fixture.Spec{Nodes: 2000, Edges: 4000, Seed: 5, Indexes: []string{"email"}, Checkpoint: "truncate"}

const stepDelay = "SOMBRA_TEST_STEP_DELAY=10ms"

// interrupted is what one interrupted run left behind.
type interrupted struct {
	code   int
	took   time.Duration // from the signal to the exit
	stderr string
}

// interruptRun starts bin/tool with args, waits until ready() says the
// operation is under way (a temporary file exists, the database is open),
// sends sig and waits for the exit.
func interruptRun(t *testing.T, bin string, sig syscall.Signal, ready func(pid int) bool, tool string, args ...string) interrupted {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, tool), args...)
	cmd.Env = append(os.Environ(), stepDelay, "NO_COLOR=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for !ready(cmd.Process.Pid) {
		select {
		case err := <-exited:
			t.Fatalf("%s %v finished before it could be interrupted (%v): %s", tool, args, err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("%s %v: never got under way: %s", tool, args, stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // mid-run, not at the first step
	sent := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("%s %v ignored %v for 15 s: %s", tool, args, sig, stderr.String())
	}
	res := interrupted{took: time.Since(sent), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode() // -1 when killed by the signal itself
	case err != nil:
		t.Fatal(err)
	}
	return res
}

// check asserts the common contract: exit 130 within a second, one line
// on stderr saying it was interrupted.
func (r interrupted) check(t *testing.T, what string) {
	t.Helper()
	t.Logf("%s: exit %d %v after the signal: %s", what, r.code, r.took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
	if r.code != 130 {
		t.Errorf("%s: exit %d, want 130 (stderr %q)", what, r.code, r.stderr)
	}
	if r.took > time.Second {
		t.Errorf("%s: exited %v after the signal, want within 1s", what, r.took)
	}
	if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 || !strings.Contains(r.stderr, "interrupt") {
		t.Errorf("%s: stderr %q, want one line saying it was interrupted", what, r.stderr)
	}
}

// tree returns every file under the dirs with its SHA-256 (the -shm
// coordination file, whose read marks change with any open, by name only).
func tree(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			if strings.HasSuffix(p, "-shm") {
				out[p] = "shm"
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[p] = hex.EncodeToString(sum[:8])
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sameTree fails unless after equals before: nothing created (no
// temporary file left), removed or changed.
func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	var diffs []string
	for p, h := range before {
		if a, ok := after[p]; !ok {
			diffs = append(diffs, "removed "+p)
		} else if a != h {
			diffs = append(diffs, "changed "+p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			diffs = append(diffs, "left "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s: %s", what, strings.Join(diffs, "; "))
	}
}

// globExists is a ready() that waits for a file matching pattern: the
// temporary file whose removal is part of the test.
func globExists(pattern string) func(int) bool {
	return func(int) bool {
		m, _ := filepath.Glob(pattern)
		return len(m) > 0
	}
}

// opened is a ready() that waits until process pid has path open.
func opened(path string) func(int) bool {
	want, _ := filepath.Abs(path)
	return func(pid int) bool {
		fds, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
		for _, fd := range fds {
			if l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name()); err == nil && l == want {
				return true
			}
		}
		return false
	}
}

// interruptSetup builds the database and a first full backup of it (the
// earlier output every interrupted run must leave alone).
func interruptSetup(t *testing.T, bin string) (dir, db, bdir string) {
	t.Helper()
	dir = t.TempDir()
	db = filepath.Join(dir, "data", "graph.db")
	bdir = filepath.Join(dir, "backups")
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		t.Fatal(err)
	}
	fixture.Create(t, db, interruptSpec)
	out, err := exec.Command(filepath.Join(bin, "sombra-backup"), "--type", "full", "--db", db,
		"--output", filepath.Join(bdir, "full_1")).CombinedOutput()
	if err != nil {
		t.Fatalf("first backup: %v: %s", err, out)
	}
	return dir, db, bdir
}

// TestInterruptBackup: SIGINT in the middle of a full backup, of a verify
// and of a restore over an existing database, SIGTERM in the middle of an
// incremental one.
func TestInterruptBackup(t *testing.T) {
	bin := binaries(t)
	dir, db, bdir := interruptSetup(t, bin)
	data := filepath.Dir(db)
	_ = dir

	t.Run("full", func(t *testing.T) {
		before := tree(t, data, bdir)
		r := interruptRun(t, bin, syscall.SIGINT, globExists(filepath.Join(bdir, "full_2.backup.tmp-*")),
			"sombra-backup", "--type", "full", "--db", db, "--output", filepath.Join(bdir, "full_2"))
		r.check(t, "backup --type full")
		sameTree(t, "backup --type full", before, tree(t, data, bdir))
	})

	t.Run("incremental-sigterm", func(t *testing.T) {
		// Every node rewritten after the full backup, so that the
		// incremental has most pages to copy.
		touchAll(t, db)
		before := tree(t, data, bdir)
		r := interruptRun(t, bin, syscall.SIGTERM, opened(db),
			"sombra-backup", "--type", "incremental", "--db", db, "--output", filepath.Join(bdir, "inc_1"))
		// The incremental may find nothing to copy and finish first on a
		// fast machine; only an interrupted one is checked.
		if r.code == 0 {
			t.Skip("the incremental backup finished before the signal")
		}
		r.check(t, "backup --type incremental")
		sameTree(t, "backup --type incremental", before, tree(t, data, bdir))
	})

	t.Run("verify", func(t *testing.T) {
		scratch := t.TempDir()
		before := tree(t, data, bdir, scratch)
		r := interruptRun(t, bin, syscall.SIGINT, globExists(filepath.Join(scratch, "*")),
			"sombra-backup", "verify", filepath.Join(bdir, "full_1.backup"), "--tmpdir", scratch)
		r.check(t, "verify")
		// The catalog keeps the backup's last verdict: an interrupted
		// verify is not a failed one.
		sameTree(t, "verify", before, tree(t, data, bdir, scratch))
	})

	t.Run("restore", func(t *testing.T) {
		target := filepath.Join(dir, "restored", "graph.db")
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		fixture.Create(t, target, fixture.Spec{Nodes: 10, Edges: 5, Seed: 9, Checkpoint: "truncate"})
		before := tree(t, data, bdir, filepath.Dir(target))
		r := interruptRun(t, bin, syscall.SIGINT, globExists(filepath.Join(filepath.Dir(target), ".graph.db.restore*")),
			"sombra-backup", "restore", "--dir", bdir, "--name", "full_1", "--db", target, "--force")
		r.check(t, "restore")
		sameTree(t, "restore", before, tree(t, data, bdir, filepath.Dir(target)))
	})
}

// touchAll sets a property on every node of db and checkpoints.
func touchAll(t *testing.T, db string) {
	t.Helper()
	d, err := engine.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ids, err := d.NodesInRange(0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := d.SetNodeProperty(id, "touched", engine.IntValue(1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
}

// TestInterruptCompact: SIGINT while the compacted copy is being written.
func TestInterruptCompact(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "graph.db")
	fixture.Create(t, db, fixture.Spec{Nodes: 3000, Edges: 3000, Seed: 11, KeepEvery: 2, Checkpoint: "truncate"})
	before := tree(t, dir)
	r := interruptRun(t, bin, syscall.SIGINT, globExists(db+".compact"),
		"sombra-compact", "--db", db, "--threshold", "0")
	r.check(t, "compact")
	sameTree(t, "compact", before, tree(t, dir))
}

// TestInterruptRepair: SIGINT during a verification, and during a
// salvage's write phase with an earlier output in place (--force).
func TestInterruptRepair(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "graph.db")
	fixture.Create(t, db, interruptSpec)

	t.Run("verify", func(t *testing.T) {
		before := tree(t, dir)
		r := interruptRun(t, bin, syscall.SIGINT, opened(db), "sombra-repair", "--db", db)
		r.check(t, "repair (verify)")
		sameTree(t, "repair (verify)", before, tree(t, dir))
	})

	t.Run("salvage", func(t *testing.T) {
		out := filepath.Join(dir, "salvaged.db")
		fixture.Create(t, out, fixture.Spec{Nodes: 10, Edges: 5, Seed: 9, Checkpoint: "truncate"})
		before := tree(t, dir)
		r := interruptRun(t, bin, syscall.SIGINT, globExists(out+".salvage-tmp"),
			"sombra-repair", "--db", db, "--salvage-to", out, "--force")
		r.check(t, "salvage")
		sameTree(t, "salvage", before, tree(t, dir))
	})
}

// TestInterruptHealthCheckDeep: SIGINT during --deep; nothing recorded as
// verified (health-check's own exit codes do not apply to an interrupt).
func TestInterruptHealthCheckDeep(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "graph.db")
	fixture.Create(t, db, interruptSpec)
	// An earlier check leaves its records (graph.db-verified, the change
	// log); the interrupted one must leave them as they were.
	if out, err := exec.Command(filepath.Join(bin, "sombra-health-check"), "--db", db).CombinedOutput(); err != nil {
		t.Fatalf("first health check: %v: %s", err, out)
	}
	if _, err := os.Stat(db + "-verified"); err != nil {
		t.Fatalf("the first check recorded nothing: %v", err)
	}
	before := tree(t, dir)
	r := interruptRun(t, bin, syscall.SIGINT, opened(db), "sombra-health-check", "--db", db, "--deep")
	r.check(t, "health-check --deep")
	sameTree(t, "health-check --deep", before, tree(t, dir))
}

// TestInterruptCheckpointWait: SIGTERM while a truncate checkpoint waits
// (--wait 60s) for a reader in another process.
func TestInterruptCheckpointWait(t *testing.T) {
	bin := binaries(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "graph.db")
	fixture.Create(t, db, fixture.Spec{Nodes: 200, Edges: 200, Seed: 3, Checkpoint: "truncate"})
	// A reader of the file as it is, then commits it does not see: no
	// checkpoint may copy them into the file under it, so a truncate waits.
	clitest.Hold(t, db, "read")
	d, err := engine.OpenWithConfig(db, engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		err := d.Update(func(tx *engine.Tx) error {
			_, err := tx.CreateNode("Late", engine.Properties{"i": engine.IntValue(int64(i))})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	r := interruptRun(t, bin, syscall.SIGTERM, opened(db), "sombra-checkpoint", "--db", db, "--mode", "truncate", "--wait", "60s")
	r.check(t, "checkpoint --wait 60s")
}
