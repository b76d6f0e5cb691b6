package backup_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sombradb/sombra/internal/commands/backup"
)

// mountTmpfs mounts a tmpfs of size bytes at a new directory (root only;
// CI runs as root) and returns it; it is unmounted when the test ends.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestVerifyOutOfScratchSpace (issue 12 #6): a verify whose trial restore
// has no room is "could not verify" (exit 1), not a FAILED backup (exit
// 4), and is not recorded: list keeps the last verdict. --tmpdir chooses
// where the trial restore goes; the free space is checked first.
func TestVerifyOutOfScratchSpace(t *testing.T) {
	small := mountTmpfs(t, 64<<10)
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full"))
	ok(t, "verify", "--dir", bdir, "full", "--tmpdir", dir)
	out, errOut, code := run(t, "verify", "--dir", bdir, "full", "--tmpdir", small)
	if code != 1 || !strings.Contains(errOut, "could not verify full") || !strings.Contains(errOut, "--tmpdir") ||
		strings.Contains(out, "FAILED") {
		t.Errorf("code=%d stdout=%q stderr=%q", code, out, errOut)
	}
	out = ok(t, "list", "--dir", bdir, "--json")
	var l backup.ListResult
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Backups) != 1 || l.Backups[0].Verified == nil || !l.Backups[0].Verified.OK {
		t.Errorf("the good verdict was not kept: %s", out)
	}
	if ents, _ := os.ReadDir(small); len(ents) != 0 {
		t.Errorf("left in --tmpdir: %v", ents)
	}
}

// TestVerifyReadOnlyDir (issue 7 #10): a backup directory on a read-only
// file system verifies (the trial restore goes to the temporary
// directory), with a warning that the verdict could not be recorded.
func TestVerifyReadOnlyDir(t *testing.T) {
	ro := mountTmpfs(t, 64<<20)
	dir, path := newDB(t)
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(ro, "full"))
	if out, err := exec.Command("mount", "-o", "remount,ro", ro).CombinedOutput(); err != nil {
		t.Skipf("remount ro: %v %s", err, out)
	}
	out, errOut, code := run(t, "verify", filepath.Join(ro, "full.backup"), "--tmpdir", dir)
	if code != 0 || !strings.Contains(out, "result\tok") || !strings.Contains(out, "verification not recorded") {
		t.Errorf("code=%d stdout=%q stderr=%q", code, out, errOut)
	}
}

// TestVerifyStoppedEarlyMessage (issue 12 #6): a verify that stops before
// comparing the logical hash does not claim the backup was taken with
// --no-hash.
func TestVerifyStoppedEarlyMessage(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full"))
	corruptRecord(t, filepath.Join(bdir, "full.backup"), 2, 4096)
	out, _, code := run(t, "verify", "--dir", bdir, "full")
	if code != 4 || strings.Contains(out, "--no-hash") || !strings.Contains(out, "not compared") {
		t.Errorf("code=%d stdout=%q", code, out)
	}
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "nohash"), "--no-hash")
	if out := ok(t, "verify", "--dir", bdir, "nohash"); !strings.Contains(out, "taken with --no-hash") {
		t.Errorf("verify of a --no-hash backup: %q", out)
	}
}

// TestStaleTempFilesRemoved (issue 7 #10): the temporary files of killed
// restores and backups (their pid gone) are removed by the next restore to
// the same target and the next backup into the same directory; those of a
// live process are left alone.
func TestStaleTempFilesRemoved(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full"))
	dead, live := exitedPID(t), os.Getppid()
	files := map[string]bool{ // name -> should survive
		fmt.Sprintf(".r.db.restore-%d-1.tmp", dead):      false,
		fmt.Sprintf(".r.db.restore-%d-1.tmp", live):      true,
		fmt.Sprintf(".other.db.restore-%d-1.tmp", dead):  true, // another target
		fmt.Sprintf("b/inc.backup.tmp-%d-12345", dead):   false,
		fmt.Sprintf("b/catalog.json.tmp-%d-12345", dead): false,
		fmt.Sprintf("b/inc2.backup.tmp-%d-12345", live):  true,
		fmt.Sprintf("b/notes.tmp-%d-12345", dead):        true, // not ours
	}
	for name := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ok(t, "restore", "--dir", bdir, "--db", filepath.Join(dir, "r.db"))
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full2"))
	for name, survive := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if survive != (err == nil) {
			t.Errorf("%s: exists=%v, want %v", name, err == nil, survive)
		}
	}
}

// TestVerifyByName (issue 12 #12): verify names a backup as the other
// subcommands do, --dir DIR --name NAME, and still takes DIR/NAME.backup
// or --dir DIR NAME as its argument.
func TestVerifyByName(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full"))
	for _, args := range [][]string{
		{"verify", "--dir", bdir, "--name", "full", "--json"},
		{"verify", filepath.Join(bdir, "full.backup"), "--json"},
		{"verify", "--dir", bdir, "full", "--json"},
	} {
		var r backup.VerifyResult
		if out := ok(t, args...); json.Unmarshal([]byte(out), &r) != nil || !r.OK || r.Name != "full" {
			t.Errorf("%v: %s", args, out)
		}
	}
}
