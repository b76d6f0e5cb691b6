package cli_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sombradb/sombra/internal/cli"
	"github.com/sombradb/sombra/internal/cli/clitest"
)

// completions runs cobra's hidden __complete command (what the shell
// scripts call) and returns the candidates and the directive line.
func completions(t *testing.T, build func(cli.IOStreams) *cobra.Command, args ...string) ([]string, string) {
	t.Helper()
	out, _, code := clitest.RunCommand(t, build, append([]string{"__complete"}, args...)...)
	if code != 0 {
		t.Fatalf("__complete %v: exit %d: %s", args, code, out)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return lines[:len(lines)-1], lines[len(lines)-1]
}

func touch(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCompleteDB: --db offers databases and directories, not the WAL,
// shared-memory, change-log or lock files beside them.
func TestCompleteDB(t *testing.T) {
	dir := t.TempDir()
	touch(t, filepath.Join(dir, "app.db"), filepath.Join(dir, "app.db-wal"), filepath.Join(dir, "app.db-shm"),
		filepath.Join(dir, "app.db-changes"), filepath.Join(dir, "app.db.backup.lock"), filepath.Join(dir, "other.sombra"))
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, directive := completions(t, newTestCommand, "--db", dir+"/")
	want := []string{dir + "/app.db", dir + "/other.sombra", dir + "/sub/"}
	if !slices.Equal(got, want) {
		t.Errorf("--db %s/ completes %q, want %q", dir, got, want)
	}
	if directive != ":6" { // NoSpace|NoFileComp: a directory is completed into
		t.Errorf("directive %q", directive)
	}
	got, _ = completions(t, newTestCommand, "--db", dir+"/ap")
	if !slices.Equal(got, []string{dir + "/app.db"}) {
		t.Errorf("--db %s/ap completes %q", dir, got)
	}
	// In a subcommand too (--db is a global flag).
	got, _ = completions(t, newTestCommand, "list", "--db", dir+"/app")
	if !slices.Equal(got, []string{dir + "/app.db"}) {
		t.Errorf("list --db completes %q", got)
	}
}

// TestCompleteBackupNames: a name flag completes the backups found in
// --dir, without the .backup suffix.
func TestCompleteBackupNames(t *testing.T) {
	dir := t.TempDir()
	touch(t, filepath.Join(dir, "full_1.backup"), filepath.Join(dir, "inc_2.backup"), filepath.Join(dir, "catalog.json"))
	build := func(s cli.IOStreams) *cobra.Command {
		var g cli.Globals
		root := cli.NewRoot("sombra-test", "t", "t", "", &g, s)
		var d, name string
		restore := &cobra.Command{Use: "restore", RunE: func(*cobra.Command, []string) error { return nil }}
		restore.Flags().StringVar(&d, "dir", "", "backup `DIR`")
		restore.Flags().StringVar(&name, "name", "", "backup `NAME`")
		_ = restore.RegisterFlagCompletionFunc("name", cli.CompleteBackupNames("dir"))
		root.AddCommand(restore)
		return root
	}
	got, directive := completions(t, build, "restore", "--dir", dir, "--name", "")
	if !slices.Equal(got, []string{"full_1", "inc_2"}) || directive != ":4" {
		t.Errorf("--name completes %q %s", got, directive)
	}
	got, _ = completions(t, build, "restore", "--dir", dir, "--name", "inc")
	if !slices.Equal(got, []string{"inc_2"}) {
		t.Errorf("--name inc completes %q", got)
	}
}
