package commands_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sombradb/sombra/internal/commands/fixture"
)

// snapshot is every file of a directory: bytes and modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = st.ModTime().Format(time.RFC3339Nano) + " " + string(b)
	}
	return out
}

func unchanged(t *testing.T, what, dir string, before map[string]string) {
	t.Helper()
	after := snapshot(t, dir)
	for n, b := range before {
		if a, ok := after[n]; !ok {
			t.Errorf("%s: removed %s", what, n)
		} else if a != b {
			t.Errorf("%s: modified %s (bytes or mtime)", what, n)
		}
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			t.Errorf("%s: created %s", what, n)
		}
	}
}

// runTool runs a tool, as the unprivileged user nobody when asNobody.
func runTool(t *testing.T, bin, dir string, asNobody bool, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, args[0]), args[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "HOME=/nonexistent")
	if asNobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// Issue 7 item 7: the read-only tools work on a database in a directory
// the user cannot write, with no -shm (none can be created) or with a -shm
// the user cannot write, as long as no other process has the database
// open; and they modify nothing. The tools run as nobody (root is not
// stopped by permissions); the database belongs to root.
func TestReadOnlyDirectoryTools(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("runs the tools as another user: needs root")
	}
	bin := binaries(t)
	top, err := os.MkdirTemp("", "sombra-rodir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	ro, out := filepath.Join(top, "ro"), filepath.Join(top, "out")
	for _, d := range []string{ro, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	db := filepath.Join(ro, "g.db")
	spec := fixture.Default
	spec.Checkpoint = "" // leave the transactions in the WAL
	fixture.Create(t, db, spec)
	if st, err := os.Stat(db + "-wal"); err != nil || st.Size() == 0 {
		t.Fatalf("fixture has no WAL: %v", err)
	}
	for d, mode := range map[string]os.FileMode{top: 0o755, ro: 0o555, out: 0o777} {
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
	}
	wantInfo, _, code := runTool(t, bin, top, false, "sombra-info", "--db", db, "--json")
	if code != 0 {
		t.Fatalf("sombra-info as root: exit %d", code)
	}
	for _, withShm := range []bool{true, false} {
		name := "no-shm"
		if withShm {
			name = "unwritable-shm"
		}
		t.Run(name, func(t *testing.T) {
			if !withShm {
				if err := os.Remove(db + "-shm"); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			} else if _, err := os.Stat(db + "-shm"); err != nil {
				t.Fatalf("the -shm of the fixture: %v", err)
			}
			before := snapshot(t, ro)
			bk := filepath.Join(out, name)
			for _, args := range [][]string{
				{"sombra-info", "--db", db, "--json"},
				{"sombra-health-check", "--db", db},
				{"sombra-repair", "--db", db},
				{"sombra-backup", "--type", "full", "--output", bk, "--db", db},
				{"sombra-backup", "verify", bk},
			} {
				stdout, stderr, code := runTool(t, bin, top, true, args...)
				if code != 0 {
					t.Errorf("%s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
				}
				if args[0] == "sombra-info" && stdout != wantInfo {
					t.Errorf("sombra-info as nobody differs from as root:\n%s\nwant\n%s", stdout, wantInfo)
				}
				unchanged(t, args[0], ro, before)
			}
		})
	}
}

// Issue 7 item 7: a health check on a full disk with no -shm yet reports
// disk_space unhealthy (it used to exit 3, unknown) and leaves no -shm (it
// used to leave an empty one, which every later open then tripped on).
func TestHealthCheckFullDisk(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounts a tmpfs: needs root")
	}
	bin := binaries(t)
	src := filepath.Join(t.TempDir(), "g.db")
	fixture.Create(t, src, fixture.Default)
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	size := (len(b)/4096 + 8) * 4096
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	db := filepath.Join(dir, "g.db")
	fixture.MustWrite(t, db, b)
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 4096); ; {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	before := snapshot(t, dir)
	stdout, stderr, code := runTool(t, bin, dir, false, "sombra-health-check", "--db", db, "--json")
	if code != 2 {
		t.Errorf("health check on a full disk: exit %d, want 2 (unhealthy)\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, `"disk_space"`) {
		t.Errorf("no disk_space check in the report:\n%s", stdout)
	}
	unchanged(t, "sombra-health-check", dir, before)
	if _, err := os.Stat(db + "-shm"); err == nil {
		t.Error("a -shm was left behind")
	}
}
