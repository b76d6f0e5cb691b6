package backup_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/internal/cli/clitest"
)

// TestBusyTargetFailsAtOnce (issue 7 #8, issue 12 #8, #10): restore --force
// onto a database another process has open, and archive-wal --enable
// while another process holds the writer lock, exit 3 at once without
// --wait (and with --wait 0s), naming the live holder's pid and name, not
// the stale pid of a process that has exited.
func TestBusyTargetFailsAtOnce(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full"))
	target := filepath.Join(dir, "target.db")
	ok(t, "restore", "--dir", bdir, "--db", target)
	// A process that restored over the target before and has exited: its
	// pid stays recorded in the coordination file.
	ghost := exitedPID(t)
	recordExclusivePID(t, target, ghost)

	holder := clitest.Hold(t, target, "open")
	for _, wait := range [][]string{nil, {"--wait", "0s"}} {
		start := time.Now()
		args := append([]string{"restore", "--dir", bdir, "--db", target, "--force"}, wait...)
		_, errOut, code := run(t, args...)
		took := time.Since(start)
		if code != 3 || !strings.Contains(errOut, fmt.Sprintf("pid %d (", holder)) {
			t.Errorf("%v: code=%d stderr=%q", wait, code, errOut)
		}
		if strings.Contains(errOut, fmt.Sprintf("pid %d", ghost)) {
			t.Errorf("%v names the exited pid %d: %q", wait, ghost, errOut)
		}
		if took > 2*time.Second {
			t.Errorf("%v: took %v, want an immediate failure", wait, took)
		}
	}
	_, src := newDB(t)
	writer := clitest.Hold(t, src, "write")
	start := time.Now()
	_, errOut, code := run(t, "archive-wal", "--db", src, "--dir", filepath.Join(dir, "b2"), "--enable")
	if code != 3 || !strings.Contains(errOut, fmt.Sprintf("pid %d", writer)) || time.Since(start) > 2*time.Second {
		t.Errorf("archive-wal --enable under a writer: code=%d took %v stderr=%q", code, time.Since(start), errOut)
	}
}

// exitedPID returns the pid of a process that has exited.
func exitedPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	return p.Pid
}

// recordExclusivePID writes pid as the last exclusive holder (offset 40
// of NAME.db-shm, see engine/internal/shm) and the last writer (32), as a
// restore or compaction by that process would have left them.
func recordExclusivePID(t *testing.T, db string, pid int) {
	t.Helper()
	f, err := os.OpenFile(db+"-shm", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [8]byte
	for i := range b {
		b[i] = byte(uint64(pid) >> (8 * i))
	}
	for _, off := range []int64{32, 40} {
		if _, err := f.WriteAt(b[:], off); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLockHoldersNamed (issue 12 #8): with a process holding the database
// open (idle) and a stale pid left in the coordination file by one that
// exited, compact and repair --fix name the live holder with its process
// name and never the exited pid, and health-check's locks check names it.
func TestLockHoldersNamed(t *testing.T) {
	bin := binaries(t)
	_, path := newDB(t)
	ghost := exitedPID(t)
	holder := clitest.Hold(t, path, "open")
	recordExclusivePID(t, path, ghost)
	want := fmt.Sprintf("pid %d (backup.test)", holder)
	for _, args := range [][]string{
		{"sombra-compact", "--db", path},
		{"sombra-repair", "--db", path, "--fix"},
	} {
		cmd := exec.Command(filepath.Join(bin, args[0]), args[1:]...)
		out, err := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		if err == nil || code != 3 || !strings.Contains(string(out), want) || strings.Contains(string(out), fmt.Sprintf("pid %d", ghost)) {
			t.Errorf("%v: code=%d (want 3) output=%q, want it to name %q and not pid %d", args, code, out, want, ghost)
		}
	}
	out, _ := exec.Command(filepath.Join(bin, "sombra-health-check"), "--db", path, "--json").Output()
	var doc struct {
		Checks []struct {
			Name    string `json:"name"`
			Message string `json:"message"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("health-check --json: %v\n%s", err, out)
	}
	found := false
	for _, c := range doc.Checks {
		if c.Name == "locks" {
			found = true
			if !strings.Contains(c.Message, "open in "+want) || strings.Contains(c.Message, fmt.Sprintf("pid %d", ghost)) {
				t.Errorf("locks check: %q, want it to name %s", c.Message, want)
			}
		}
	}
	if !found {
		t.Errorf("no locks check in %s", out)
	}
}
