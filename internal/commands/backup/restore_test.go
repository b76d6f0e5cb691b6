package backup_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/commands/backup"
)

// corruptRecord flips bytes in the page image of record n of a backup
// file (page n of a full backup), as a bad disk would.
func corruptRecord(t *testing.T, path string, n int64, pageSize int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := int64(bk.HeaderSize) + n*int64(16+pageSize) + 16 + int64(pageSize)/2
	b := make([]byte, 8)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0x5A
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptBackup: a flipped page in a backup is found by verify (exit
// 4, the page named, the result printed with ok false), by restore (exit
// 4, nothing left at the target), and through the chain of a good
// incremental built on it.
func TestCorruptBackup(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full"))
	addNodes(t, path, 10)
	ok(t, "--type", "incremental", "--db", path, "--output", filepath.Join(bdir, "inc"))
	ok(t, "verify", filepath.Join(bdir, "inc.backup"))
	corruptRecord(t, filepath.Join(bdir, "full.backup"), 7, 4096)

	for _, name := range []string{"full", "inc"} {
		out, errOut, code := run(t, "verify", filepath.Join(bdir, name+".backup"))
		if code != 4 || !strings.Contains(errOut, "full.backup: corrupt page 7") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("verify %s: code=%d stderr=%q", name, code, errOut)
		}
		if !strings.Contains(out, "result\tFAILED") {
			t.Errorf("verify %s printed %q", name, out)
		}
		out, errOut, code = run(t, "verify", filepath.Join(bdir, name+".backup"), "--json")
		var res backup.VerifyResult
		if code != 4 || json.Unmarshal([]byte(out), &res) != nil || res.OK || res.Error == nil || !strings.Contains(*res.Error, "corrupt page 7") {
			t.Errorf("verify %s --json: code=%d out=%s", name, code, out)
		}
		var doc struct {
			Error struct {
				Code int    `json:"code"`
				Kind string `json:"kind"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(errOut), &doc) != nil || doc.Error.Code != 4 || doc.Error.Kind != "corrupt" {
			t.Errorf("verify %s --json stderr %q", name, errOut)
		}
	}

	target := filepath.Join(dir, "restored.db")
	for _, args := range [][]string{
		{"restore", "--dir", bdir, "--db", target},
		{"restore", "--dir", bdir, "--name", "full", "--db", target},
	} {
		out, errOut, code := run(t, args...)
		if code != 4 || out != "" || !strings.Contains(errOut, "full.backup: corrupt page 7") {
			t.Errorf("%v: code=%d stdout=%q stderr=%q", args, code, out, errOut)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("%v left %s behind", args, target)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".restored.db*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// list records the failed verification.
	out := ok(t, "list", "--dir", bdir, "--json")
	var l backup.ListResult
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Backups) != 2 {
		t.Fatalf("list: %s", out)
	}
	for _, b := range l.Backups {
		if b.Verified == nil || b.Verified.OK {
			t.Errorf("%s: verification not recorded as failed: %+v", b.Name, b.Verified)
		}
	}
}

// TestBrokenChain: an incremental whose parent is deleted is flagged by
// list, fails verify and restore with exit 4, and is not chosen as the
// latest restorable backup.
func TestBrokenChain(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full1"))
	addNodes(t, path, 10)
	ok(t, "--type", "incremental", "--db", path, "--output", filepath.Join(bdir, "inc1"))
	addNodes(t, path, 10)
	ok(t, "--type", "incremental", "--db", path, "--output", filepath.Join(bdir, "inc2"))
	if err := os.Remove(filepath.Join(bdir, "inc1.backup")); err != nil {
		t.Fatal(err)
	}
	out := ok(t, "list", "--dir", bdir)
	if !strings.Contains(out, "inc2\tincremental") || !strings.Contains(out, "BROKEN: parent inc1 is missing") {
		t.Errorf("list:\n%s", out)
	}
	_, errOut, code := run(t, "verify", "--dir", bdir, "inc2")
	if code != 4 || !strings.Contains(errOut, "parent inc1 of inc2 is missing") {
		t.Errorf("verify: code=%d stderr=%q", code, errOut)
	}
	_, errOut, code = run(t, "restore", "--dir", bdir, "--name", "inc2", "--db", filepath.Join(dir, "r.db"))
	if code != 4 || !strings.Contains(errOut, "inc1") {
		t.Errorf("restore inc2: code=%d stderr=%q", code, errOut)
	}
	out = ok(t, "restore", "--dir", bdir, "--db", filepath.Join(dir, "r.db"), "--json")
	var r backup.RestoreResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Backup != "full1" {
		t.Errorf("latest restorable: %s", out)
	}
}

// TestUnreadableBackupInList: list exits 4 when a backup file is corrupt,
// and still prints the list.
func TestUnreadableBackupInList(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full"))
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full2"))
	f, err := os.OpenFile(filepath.Join(bdir, "full2.backup"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("XXXX"), 40) // the end LSN: the header checksum no longer matches
	f.Close()
	out, errOut, code := run(t, "list", "--dir", bdir)
	if code != 4 || !strings.Contains(out, "UNREADABLE") || !strings.Contains(errOut, "full2.backup: unreadable backup") {
		t.Errorf("code=%d stdout=%q stderr=%q", code, out, errOut)
	}
}

// TestPointInTime: with WAL archiving on, restore --until lands between
// two commits; a time before the oldest backup is refused naming it.
func TestPointInTime(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	out := ok(t, "archive-wal", "--db", path, "--dir", bdir, "--enable", "--json")
	var a backup.ArchiveWALResult
	if err := json.Unmarshal([]byte(out), &a); err != nil || !a.ArchivingEnabled || a.Action != "enabled" || a.Archive == nil {
		t.Fatalf("archive-wal --enable: %s", out)
	}
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full"))

	w, err := engine.OpenWithConfig(path, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	commit := func(label string) time.Time {
		if err := w.Update(func(tx *engine.Tx) error { _, err := tx.CreateNode(label, nil); return err }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		return time.Now()
	}
	afterA := commit("A")
	commit("B")
	w.Close()
	out = ok(t, "archive-wal", "--db", path, "--dir", bdir, "--json")
	if err := json.Unmarshal([]byte(out), &a); err != nil || !a.ArchivingEnabled || a.Action != "archived" {
		t.Fatalf("archive-wal: %s", out)
	}

	target := filepath.Join(dir, "pitr.db")
	out = ok(t, "restore", "--dir", bdir, "--until", afterA.UTC().Format(time.RFC3339Nano), "--db", target, "--json")
	var r backup.RestoreResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Replay == nil || r.Replay.Transactions != 1 || r.Until == nil {
		t.Fatalf("restore --until: %s", out)
	}
	labels := func(p string) map[string]uint64 {
		db, err := engine.OpenWithConfig(p, engine.Config{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		in, err := db.Info()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]uint64{}
		for _, l := range in.Labels {
			m[l.Label] = l.Count
		}
		return m
	}
	if l := labels(target); l["A"] != 1 || l["B"] != 0 {
		t.Errorf("restored as of A: labels %v", l)
	}

	// Before the oldest full backup: a clear error naming it.
	_, errOut, code := run(t, "restore", "--dir", bdir, "--until", "2001-01-01T00:00:00Z", "--db", filepath.Join(dir, "early.db"))
	if code != 1 || !strings.Contains(errOut, "is before the oldest full backup full") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("too early: code=%d stderr=%q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "early.db")); !os.IsNotExist(err) {
		t.Error("a failed restore left its target")
	}

	// After the end of the archive: everything archived, with a warning.
	out = ok(t, "restore", "--dir", bdir, "--until", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--db", filepath.Join(dir, "late.db"))
	if !strings.Contains(out, "warning: the archive") {
		t.Errorf("restore past the archive:\n%s", out)
	}
	if l := labels(filepath.Join(dir, "late.db")); l["A"] != 1 || l["B"] != 1 {
		t.Errorf("restored to the end: labels %v", l)
	}

	out = ok(t, "archive-wal", "--db", path, "--dir", bdir, "--disable", "--json")
	if err := json.Unmarshal([]byte(out), &a); err != nil || a.ArchivingEnabled || a.Archive != nil {
		t.Errorf("archive-wal --disable: %s", out)
	}
}

// TestPrune: --keep-days deletes old backups but never one that a kept
// incremental depends on; the times are the backups' own (from the
// command's clock), so the test moves the clock instead of waiting.
func TestPrune(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full1"))
	if _, errOut, code := runAt(t, t0.Add(time.Hour), "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full2")); code != 0 {
		t.Fatal(errOut)
	}
	addNodes(t, path, 5)
	ok(t, "--type", "incremental", "--db", path, "--output", filepath.Join(bdir, "inc2")) // parent: full2, the newer

	out, _, code := runAt(t, t0.Add(10*24*time.Hour), "prune", "--dir", bdir, "--keep-days", "30")
	if code != 0 || !strings.Contains(out, "deleted\tnone") {
		t.Errorf("prune ten days later: code=%d\n%s", code, out)
	}
	// Forty days later a new incremental builds on inc2: keeping it keeps
	// its whole chain (inc2, full2) although they are old.
	later := t0.Add(40 * 24 * time.Hour)
	addNodes(t, path, 5)
	if _, errOut, code := runAt(t, later, "--type", "incremental", "--db", path, "--output", filepath.Join(bdir, "inc3")); code != 0 {
		t.Fatalf("inc3: %s", errOut)
	}
	out, errOut, code := runAt(t, later, "prune", "--dir", bdir, "--keep-days", "30", "--json")
	var p backup.PruneResult
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil {
		t.Fatalf("prune: code=%d out=%s stderr=%s", code, out, errOut)
	}
	if fmt.Sprint(p.Deleted) != "[full1]" || fmt.Sprint(p.Kept) != "[full2 inc2 inc3]" || p.BytesFreed == 0 || p.SchemaVersion != 2 {
		t.Errorf("prune --keep-days 30: %+v", p)
	}
	ok(t, "verify", filepath.Join(bdir, "inc3.backup"))
}

// TestRestorePicksNewestGood (issue 12 #3): without --name, restore skips
// the newest backup when its last verification failed (or when it turns
// out damaged while restoring), restores the next older good one, and
// says which it skipped and why.
func TestRestorePicksNewestGood(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full1"))
	addNodes(t, path, 10)
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full2"))
	addNodes(t, path, 10)
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full3"))
	corruptRecord(t, filepath.Join(bdir, "full3.backup"), 3, 4096)
	if _, _, code := run(t, "verify", "--dir", bdir, "full3"); code != 4 {
		t.Fatalf("verify of the damaged backup: code %d", code)
	}
	corruptRecord(t, filepath.Join(bdir, "full2.backup"), 3, 4096) // damaged, not verified since

	out, errOut, code := run(t, "restore", "--dir", bdir, "--db", filepath.Join(dir, "r.db"), "--json")
	var r backup.RestoreResult
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("code=%d out=%s stderr=%s", code, out, errOut)
	}
	w := strings.Join(r.Warnings, "\n")
	if r.Backup != "full1" || !strings.Contains(w, "skipped full3: its last verification") ||
		!strings.Contains(w, "skipped full2:") || !strings.Contains(w, "corrupt page 3") {
		t.Errorf("restored %s, warnings:\n%s", r.Backup, w)
	}
	out = ok(t, "restore", "--dir", bdir, "--db", filepath.Join(dir, "r2.db"))
	if !strings.Contains(out, "warning: skipped full3") {
		t.Errorf("human output does not name the skipped backup:\n%s", out)
	}
}

// TestUntilUnreachable (issue 12 #2): with WAL archiving off, restore
// --until a time after the newest backup cannot reach it: exit 1, saying
// that archiving is off and naming the backup that can be restored, and no
// target is left; --allow-earlier restores that backup with a warning.
func TestUntilUnreachable(t *testing.T) {
	dir, path := newDB(t)
	bdir := filepath.Join(dir, "b")
	ok(t, "--type", "full", "--db", path, "--output", filepath.Join(bdir, "full"))
	addNodes(t, path, 10) // committed after the backup, never archived
	target := filepath.Join(dir, "pitr.db")
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	_, errOut, code := run(t, "restore", "--dir", bdir, "--until", until, "--db", target)
	if code != 1 || !strings.Contains(errOut, "WAL archiving is off") || !strings.Contains(errOut, "newest restorable point is backup full") ||
		!strings.Contains(errOut, "restore it with --name full, or pass --allow-earlier") {
		t.Errorf("code=%d stderr=%q", code, errOut)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a failed restore left %s", target)
	}
	out := ok(t, "restore", "--dir", bdir, "--until", until, "--db", target, "--allow-earlier", "--json")
	var r backup.RestoreResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Backup != "full" || len(r.Warnings) == 0 || !strings.Contains(r.Warnings[0], "WAL archiving is off") {
		t.Errorf("--allow-earlier: %s", out)
	}
}
