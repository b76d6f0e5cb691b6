package backup_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sombradb/sombra/engine"
)

// TestRestoreForceKillPoints SIGKILLs a real `sombra-backup restore
// --force` at every call of each syscall that moves, removes, truncates or
// syncs a file (strace's inject=…:signal=SIGKILL:when=N), over a target
// whose last 50 of 200 commits are still in its WAL. After every kill the
// target is either the old database whole (200 commits) or the backup
// whole (100), never a mix, and sombra-repair finds nothing wrong with it.
func TestRestoreForceKillPoints(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("strace is not installed")
	}
	if out, err := exec.Command("strace", "-o", "/dev/null", "true").CombinedOutput(); err != nil {
		t.Skipf("strace cannot trace here: %v %s", err, out)
	}
	bin := binaries(t)
	dir := t.TempDir()
	golden := filepath.Join(dir, "golden.db")
	bdir := filepath.Join(dir, "backups")
	buildRestoreKillFixture(t, bin, golden, bdir)

	syscalls := []string{"renameat", "renameat2", "rename", "unlinkat", "unlink", "ftruncate", "fsync", "fdatasync"}
	kills, outcomes := 0, map[int]int{}
	for _, sc := range syscalls {
		for n := 1; ; n++ {
			if n > 100 {
				t.Fatalf("%s: still killed at call %d", sc, n)
			}
			run := filepath.Join(dir, fmt.Sprintf("%s-%d", sc, n))
			if err := os.Mkdir(run, 0o755); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(run, "target.db")
			for _, s := range []string{"", "-wal"} {
				copyTestFile(t, golden+s, target+s)
			}
			trace := filepath.Join(run, "strace.out")
			cmd := exec.Command("strace", "-f", "-o", trace, "-e", "trace="+sc,
				"-e", fmt.Sprintf("inject=%s:signal=SIGKILL:when=%d", sc, n),
				filepath.Join(bin, "sombra-backup"), "restore", "--dir", bdir, "--name", "full", "--db", target, "--force")
			out, err := cmd.CombinedOutput()
			tr, _ := os.ReadFile(trace)
			killed := strings.Contains(string(tr), "killed by SIGKILL")
			if !killed && err != nil {
				t.Fatalf("%s call %d: restore failed without being killed: %v\n%s", sc, n, err, out)
			}
			got := checkRestoreOutcome(t, bin, target, fmt.Sprintf("%s call %d", sc, n))
			if !killed {
				if got != 100 {
					t.Fatalf("%s: a finished restore left %d commits", sc, got)
				}
				// strace counts calls per thread: calls made on two
				// threads would leave some never reached as "the Nth".
				if th := callThreads(string(tr), sc); len(th) > 1 {
					t.Fatalf("%s: calls made on %d threads %v; the kill points do not cover them all", sc, len(th), th)
				}
				t.Logf("%s: %d calls, killed at each", sc, n-1)
				break
			}
			kills++
			outcomes[got]++
			os.RemoveAll(run)
		}
	}
	t.Logf("%d kills: %d left the old database (200), %d the backup (100)", kills, outcomes[200], outcomes[100])
	// Both sides of the rename are covered: kills before it leave the old
	// database, kills after it the backup. (strace counts calls per
	// thread; the restore runs on one, so every call is reached.)
	if outcomes[200] == 0 || outcomes[100] == 0 {
		t.Fatalf("the kill points never hit one side of the rename: %v", outcomes)
	}
}

// callThreads lists the threads (strace -f's first column) that made the
// system call sc in trace. Only sc's own lines count: a thread caught in
// another call by the exit shows up as "???( <unfinished ...>", and
// signals and exits have lines of their own.
func callThreads(trace, sc string) []string {
	var out []string
	for _, line := range strings.Split(trace, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[1], sc+"(") {
			continue
		}
		if !slices.Contains(out, f[0]) {
			out = append(out, f[0])
		}
	}
	return out
}

// buildRestoreKillFixture writes a database at golden with 200 commits, the
// first 150 checkpointed into the file and the last 50 only in its WAL
// (copied while the writer had it open, as a crash would leave it), and a
// full backup "full" of its first 100 commits in bdir.
func buildRestoreKillFixture(t *testing.T, bin, golden, bdir string) {
	t.Helper()
	work := filepath.Join(filepath.Dir(golden), "work.db")
	db, err := engine.OpenWithConfig(work, engine.Config{WALAutoCheckpoint: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	commit := func(from, to int) {
		for i := from; i <= to; i++ {
			err := db.Update(func(tx *engine.Tx) error {
				_, err := tx.CreateNode("C", engine.Properties{"seq": engine.IntValue(int64(i))})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	commit(1, 100)
	if out, err := exec.Command(filepath.Join(bin, "sombra-backup"), "--type", "full", "--db", work,
		"--output", filepath.Join(bdir, "full")).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	commit(101, 150)
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	commit(151, 200)
	for _, s := range []string{"", "-wal"} {
		copyTestFile(t, work+s, golden+s)
	}
	if st, err := os.Stat(golden + "-wal"); err != nil || st.Size() == 0 {
		t.Fatalf("the fixture's WAL is empty: %v", err)
	}
}

// checkRestoreOutcome runs sombra-repair's check on target, then counts its
// commits; anything but exactly commits 1..100 or 1..200 fails the test.
func checkRestoreOutcome(t *testing.T, bin, target, what string) int {
	t.Helper()
	if out, err := exec.Command(filepath.Join(bin, "sombra-repair"), "--db", target).CombinedOutput(); err != nil {
		t.Fatalf("%s: sombra-repair: %v\n%s", what, err, out)
	}
	db, err := engine.OpenWithConfig(target, engine.Config{ReadOnly: true})
	if err != nil {
		t.Fatalf("%s: open: %v", what, err)
	}
	defer db.Close()
	var seqs []int64
	err = db.View(func(tx *engine.Tx) error {
		for n, err := range tx.Nodes() {
			if err != nil {
				return err
			}
			v, _ := n.Properties["seq"].Int()
			seqs = append(seqs, v)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: read: %v", what, err)
	}
	slices.Sort(seqs)
	for i, v := range seqs {
		if v != int64(i+1) {
			t.Fatalf("%s: commits are not a prefix: %d at %d", what, v, i)
		}
	}
	if n := len(seqs); n != 100 && n != 200 {
		t.Fatalf("%s: the target holds %d commits, neither the old 200 nor the backup's 100", what, n)
	}
	return len(seqs)
}

func copyTestFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCallThreads: a thread the exit caught in some other call is not one
// that made the traced call (CI once failed on exactly this trace).
func TestCallThreads(t *testing.T) {
	trace := `10237 --- SIGURG {si_signo=SIGURG, si_code=SI_TKILL, si_pid=10234, si_uid=0} ---
10237 unlinkat(AT_FDCWD, "/t/target.db-changes", 0) = -1 ENOENT (No such file or directory)
10238 unlinkat(AT_FDCWD, "/t/target.db-wal", 0 <unfinished ...>
10238 <... unlinkat resumed>) = 0
10241 ???( <unfinished ...>
10237 +++ exited with 0 +++
10241 +++ exited with 0 +++
`
	if got := callThreads(trace, "unlinkat"); !slices.Equal(got, []string{"10237", "10238"}) {
		t.Fatalf("callThreads = %v, want [10237 10238]", got)
	}
	if got := callThreads(trace, "unlink"); len(got) != 0 {
		t.Fatalf("callThreads(unlink) = %v, want none", got)
	}
}
