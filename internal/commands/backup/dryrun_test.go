package backup_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/cli/clitest"
	"github.com/sombradb/sombra/internal/commands/backup"
	"github.com/sombradb/sombra/internal/commands/fixture"
)

// snapshot is tree plus every entry's modification time, so a dry run
// that rewrites a file with the same bytes (the catalog) is caught too.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(tree(t, dir))
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d\n", p, info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestPruneDryRun (issue 12 #18): prune --dry-run reports what it would
// delete, the same list a real prune then deletes, and changes no byte or
// mtime in the backup directory.
func TestPruneDryRun(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full1"))
	if _, errOut, code := runAt(t, t0.Add(time.Hour), "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full2")); code != 0 {
		t.Fatal(errOut)
	}
	stale := filepath.Join(bdir, "x.backup.tmp123")
	if err := os.WriteFile(stale, []byte("left by a killed backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := t0.Add(-48 * time.Hour) // prune measures ages with the command's clock
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, bdir)
	out, errOut, code := run(t, "prune", "--dir", bdir, "--keep-full", "1", "--dry-run", "--json")
	var dry backup.PruneResult
	if code != 0 || json.Unmarshal([]byte(out), &dry) != nil {
		t.Fatalf("dry run: code=%d out=%s stderr=%s", code, out, errOut)
	}
	if !dry.DryRun || fmt.Sprint(dry.Deleted) != "[full1]" || fmt.Sprint(dry.TempDeleted) != "[x.backup.tmp123]" || dry.BytesFreed == 0 {
		t.Errorf("dry run reported %+v", dry)
	}
	if after := snapshot(t, bdir); after != before {
		t.Errorf("--dry-run changed the directory:\nbefore\n%s\nafter\n%s", before, after)
	}
	human := ok(t, "prune", "--dir", bdir, "--keep-full", "1", "--dry-run")
	if !strings.Contains(human, "to delete\t1 (full1)") || !strings.Contains(human, "dry run: nothing was deleted") {
		t.Errorf("human dry run:\n%s", human)
	}
	var real backup.PruneResult
	if out := ok(t, "prune", "--dir", bdir, "--keep-full", "1", "--json"); json.Unmarshal([]byte(out), &real) != nil ||
		real.DryRun || fmt.Sprint(real.Deleted) != fmt.Sprint(dry.Deleted) || real.BytesFreed != dry.BytesFreed {
		t.Errorf("real prune %+v differs from the dry run %+v", real, dry)
	}
	if _, err := os.Stat(filepath.Join(bdir, "full1.backup")); !os.IsNotExist(err) {
		t.Errorf("the real prune kept full1: %v", err)
	}
}

// onTerminal runs args as if stdin and stderr were a terminal on which the
// operator types answer.
func onTerminal(t *testing.T, answer string, args ...string) (string, string, int) {
	t.Helper()
	return clitest.RunCommand(t, func(s cli.IOStreams) *cobra.Command {
		s.In, s.InIsTTY, s.ErrIsTTY = strings.NewReader(answer), true, true
		return build(s)
	}, args...)
}

// TestRestoreForceConfirms (issue 12 #18): restore --force onto an
// existing database asks on a terminal; "n" (or nothing) leaves it
// untouched, "y" or --yes replaces it; without a terminal --force works
// without asking, as scripts expect.
func TestRestoreForceConfirms(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full"))
	target := filepath.Join(dir, "target.db")
	if err := os.WriteFile(target, []byte("the operator's precious file"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := fixture.DirState(t, dir)
	for _, answer := range []string{"n\n", "\n", ""} {
		_, errOut, code := onTerminal(t, answer, "restore", "--dir", bdir, "--name", "full", "--db", target, "--force")
		if code != 1 || !strings.Contains(errOut, "target.db exists (") || !strings.Contains(errOut, "replace it with the restored database? [y/N]") ||
			!strings.Contains(errOut, "not replaced (restore cancelled") {
			t.Errorf("answer %q: code=%d stderr=%q", answer, code, errOut)
		}
	}
	if after := fixture.DirState(t, dir); after != before {
		t.Errorf("a declined restore changed files:\nbefore\n%s\nafter\n%s", before, after)
	}
	if _, errOut, code := onTerminal(t, "y\n", "restore", "--dir", bdir, "--name", "full", "--db", target, "--force"); code != 0 {
		t.Errorf("answer y: code=%d stderr=%q", code, errOut)
	}
	if _, errOut, code := onTerminal(t, "", "restore", "--dir", bdir, "--name", "full", "--db", target, "--force", "--yes"); code != 0 ||
		strings.Contains(errOut, "[y/N]") {
		t.Errorf("--yes: code=%d stderr=%q", code, errOut)
	}
	if _, errOut, code := run(t, "restore", "--dir", bdir, "--name", "full", "--db", target, "--force"); code != 0 || errOut != "" {
		t.Errorf("not a terminal: code=%d stderr=%q", code, errOut)
	}
}
