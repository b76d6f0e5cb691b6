package commands_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sombradb/sombra/internal/cli/clitest"
	"github.com/sombradb/sombra/internal/commands/fixture"
)

// TestErrorWording runs every tool on the same bad inputs and pins what
// each says (testdata/errors.golden): one wording for one case, each part
// said once ("d.db: permission denied", not "open d.db: open d.db:
// permission denied"). The unreadable file is read by an unprivileged
// user (root reads it anyway); the rest as whoever runs the test.
func TestErrorWording(t *testing.T) {
	bin := binaries(t)
	// Not t.TempDir(): its parent is private to root.
	top, err := os.MkdirTemp("", "sombra-errors-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	dir := filepath.Join(top, "run")
	out := filepath.Join(top, "out")
	for _, d := range []string{dir, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The unprivileged user needs to reach the files and write backups.
	for d, mode := range map[string]os.FileMode{top: 0o755, out: 0o777} {
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
	}
	good := filepath.Join(dir, "good.db")
	fixture.Create(t, good, fixture.Default)
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	b[4096+200] ^= 0xff // page 1's checksum fails
	fixture.MustWrite(t, filepath.Join(dir, "corrupt.db"), b)
	fixture.MustWrite(t, filepath.Join(dir, "notes.db"), bytes.Repeat([]byte("not a database\n"), 400))
	fixture.MustWrite(t, filepath.Join(dir, "secret.db"), b)
	if err := os.Chmod(filepath.Join(dir, "secret.db"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "adir.db"), 0o755); err != nil {
		t.Fatal(err)
	}
	tools := [][]string{
		{"sombra-info", "--db"},
		{"sombra-health-check", "--db"},
		{"sombra-repair", "--db"},
		{"sombra-checkpoint", "--db"},
		{"sombra-compact", "--db"},
		{"sombra-backup", "--type", "full", "--output", filepath.Join(out, "b"), "--db"},
	}
	var got strings.Builder
	for _, name := range []string{"missing.db", "adir.db", "notes.db", "corrupt.db", "secret.db"} {
		for _, tool := range tools {
			args := append(append([]string(nil), tool[1:]...), filepath.Join("run", name))
			cmd := exec.Command(filepath.Join(bin, tool[0]), args...)
			cmd.Dir = top
			cmd.Env = append(os.Environ(), "NO_COLOR=1")
			if name == "secret.db" && os.Getuid() == 0 {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			}
			var errOut bytes.Buffer
			cmd.Stderr = &errOut
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			line := strings.TrimSpace(errOut.String())
			if code == 0 || name == "corrupt.db" && (tool[0] == "sombra-health-check" || tool[0] == "sombra-repair") {
				line = "(a report on stdout)"
			}
			fmt.Fprintf(&got, "%-20s %-11s exit %d  %s\n", tool[0], name, code, line)
		}
	}
	clitest.Golden(t, "testdata/errors.golden", []byte(got.String()))
}
