package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/changelog"
	"github.com/sombradb/sombra/engine/vfs"
)

func TestFullIncrementalRestoreRoundTrip(t *testing.T) {
	tmp := t.TempDir()
	dbPath := filepath.Join(tmp, "prod.db")
	dir := filepath.Join(tmp, "backups")
	db := openDB(t, dbPath, engine.Config{WALAutoCheckpoint: 40})
	defer db.Close()
	m := NewBackupManager(db, dir)

	addNodes(t, db, 1, 300)
	addBatch(t, db, 10000, 400)
	full, err := m.CreateFullBackup(filepath.Join(dir, "full_1")) // no extension: appended
	if err != nil {
		t.Fatal(err)
	}
	if full.Path != filepath.Join(dir, "full_1.backup") || full.Pages != full.PageCount || full.ChangeSource != ChangeFull {
		t.Fatalf("full = %+v", full)
	}
	h0, _ := db.LogicalHash()
	if full.LogicalHash != h0 {
		t.Fatalf("full hash %s, db %s", full.LogicalHash, h0)
	}

	// Change a little, forcing the changes through checkpoints and a WAL
	// restart so that the change log, not the WAL, has to find them.
	addNodes(t, db, 301, 60)
	if err := db.SetNodeProperty(5, "seq", engine.IntValue(5)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckpointWithMode(engine.CheckpointRestart); err != nil {
		t.Fatal(err)
	}
	addNodes(t, db, 361, 5)
	inc1, err := m.CreateIncrementalBackup("inc_1") // bare name: manager's directory
	if err != nil {
		t.Fatal(err)
	}
	if inc1.Parent != "full_1" || inc1.BaseLSN != full.EndLSN || inc1.ChangeSource != ChangeWALChangelog {
		t.Fatalf("inc1 = %+v", inc1)
	}
	if inc1.Pages == 0 || inc1.Pages >= inc1.PageCount/2 || inc1.PagesRead > 3*inc1.Pages {
		t.Fatalf("incremental copied %d of %d pages, read %d: not proportional to the change", inc1.Pages, inc1.PageCount, inc1.PagesRead)
	}
	h1, _ := db.LogicalHash()

	// A second incremental whose change log is gone falls back to a scan.
	addNodes(t, db, 366, 20)
	if _, err := db.CheckpointWithMode(engine.CheckpointRestart); err != nil {
		t.Fatal(err)
	}
	changelog.Remove(vfs.OS, dbPath)
	inc2, err := m.CreateIncrementalBackup(filepath.Join(dir, "inc_2.backup"))
	if err != nil {
		t.Fatal(err)
	}
	if inc2.Parent != "inc_1" || inc2.ChangeSource != ChangeScan || inc2.PagesRead != inc2.PageCount {
		t.Fatalf("inc2 = %+v", inc2)
	}
	h2, _ := db.LogicalHash()
	// Nothing changed: an empty incremental is still a valid link.
	inc3, err := m.CreateIncrementalBackup("inc_3")
	if err != nil {
		t.Fatal(err)
	}
	if inc3.BaseLSN != inc2.EndLSN || inc3.EndLSN != inc2.EndLSN || inc3.Pages != 0 {
		t.Fatalf("inc3 = %+v", inc3)
	}

	for _, c := range []struct {
		name string
		hash string
		last int64
	}{{"full_1", h0, 300}, {"inc_1", h1, 365}, {"inc_2", h2, 385}, {"inc_3", h2, 385}} {
		target := filepath.Join(tmp, "restored_"+c.name+".db")
		r, err := m.RestoreFromBackup(c.name, target)
		if err != nil {
			t.Fatalf("restore %s: %v", c.name, err)
		}
		if got := hashOf(t, target); got != c.hash {
			t.Fatalf("restore %s: hash %s, want %s", c.name, got, c.hash)
		}
		s := seqs(t, target)
		if !slices.Contains(s, c.last) || slices.Contains(s, c.last+1) {
			t.Fatalf("restore %s: wrong content (chain %v)", c.name, r.Chain)
		}
		if _, err := os.Stat(target + "-wal"); err == nil {
			// opening leaves an empty WAL; a restore itself must not
			if st, _ := os.Stat(target + "-wal"); st.Size() > 0 {
				t.Fatalf("restore %s left a WAL", c.name)
			}
		}
		v, err := m.VerifyBackup(c.name)
		if err != nil || !v.OK || !v.HashChecked {
			t.Fatalf("verify %s: %+v, %v", c.name, v, err)
		}
	}
	list, err := m.ListBackups()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 4 {
		t.Fatalf("list = %+v", list)
	}
	for _, b := range list {
		if b.Chain != "ok" || b.Verified == nil || !b.Verified.OK || b.Size <= 0 {
			t.Fatalf("listed %+v", b)
		}
	}
	if list[0].Name != "full_1" || list[1].Type != "incremental" || list[1].Parent != "full_1" {
		t.Fatalf("order: %+v", list)
	}
	if _, err := os.Stat(filepath.Join(dir, CatalogFile)); err != nil {
		t.Fatal(err)
	}
	// No temporary files left behind by verification or restores.
	for _, n := range append(dirFiles(t, dir), dirFiles(t, tmp)...) {
		if strings.Contains(n, ".tmp") {
			t.Fatalf("left %s", n)
		}
	}
}

func TestIncrementalWithoutBase(t *testing.T) {
	tmp := t.TempDir()
	db := openDB(t, filepath.Join(tmp, "a.db"), engine.Config{})
	defer db.Close()
	addNodes(t, db, 1, 3)
	m := NewBackupManager(db, filepath.Join(tmp, "b"))
	_, err := m.CreateIncrementalBackup("inc")
	if !errors.Is(err, ErrNoBase) || !strings.Contains(err.Error(), "holds no full backup") {
		t.Fatalf("err = %v", err)
	}
	// A full backup of another database does not qualify either.
	other := openDB(t, filepath.Join(tmp, "other.db"), engine.Config{})
	defer other.Close()
	if _, err := NewBackupManager(other, filepath.Join(tmp, "b")).CreateFullBackup("other_full"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateIncrementalBackup("inc"); !errors.Is(err, ErrNoBase) || !strings.Contains(err.Error(), "another database") {
		t.Fatalf("err = %v", err)
	}
	// The error says what is wrong, and no tool's flags: the tool adds
	// those (sombra-backup: "use --type full, or --full-if-no-base").
	if _, err := m.CreateIncrementalBackup("inc"); strings.Contains(err.Error(), "--") || strings.Contains(err.Error(), "sombra-") {
		t.Fatalf("ErrNoBase names a tool or flag: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "b", "inc.backup")); !os.IsNotExist(err) {
		t.Fatal("a failed incremental left a file")
	}
	// Asked to, it takes a full backup instead.
	r, err := NewBackupManagerWithOptions(db, filepath.Join(tmp, "b"), Options{FullIfNoBase: true}).CreateIncrementalBackup("inc")
	if err != nil || r.Type != "full" || len(r.Warnings) == 0 {
		t.Fatalf("fallback: %+v, %v", r, err)
	}
	// The warning gives the reason once; what to do is moot (it was done).
	if w := r.Warnings[0]; strings.Contains(w, "CreateFullBackup") || strings.Contains(w, ErrNoBase.Error()) || !strings.Contains(w, "another database file") {
		t.Errorf("fallback warning: %q", w)
	}
}

func TestOutputExistsRefused(t *testing.T) {
	tmp := t.TempDir()
	db := openDB(t, filepath.Join(tmp, "a.db"), engine.Config{})
	defer db.Close()
	addNodes(t, db, 1, 3)
	dir := filepath.Join(tmp, "b")
	m := NewBackupManager(db, dir)
	if _, err := m.CreateFullBackup("x"); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "x.backup"))
	addNodes(t, db, 4, 1)
	if _, err := m.CreateFullBackup("x.backup"); !errors.Is(err, engine.ErrExists) || strings.Contains(err.Error(), "--force") { // the tool adds its flag
		t.Fatalf("err = %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "x.backup"))
	if string(before) != string(after) {
		t.Fatal("refused backup changed the existing file")
	}
	forced := NewBackupManagerWithOptions(db, dir, Options{Force: true})
	r, err := forced.CreateFullBackup("x")
	if err != nil {
		t.Fatal(err)
	}
	if r.EndLSN != 4 {
		t.Fatalf("forced backup at LSN %d", r.EndLSN)
	}
	// Restore refuses an existing target too.
	target := filepath.Join(tmp, "t.db")
	os.WriteFile(target, []byte("keep me"), 0o644)
	if _, err := m.RestoreFromBackup("x", target); !errors.Is(err, engine.ErrExists) {
		t.Fatalf("restore over existing: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep me" {
		t.Fatal("refused restore changed the target")
	}
	if _, err := forced.RestoreFromBackup("x", target); err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, target); len(got) != 4 {
		t.Fatalf("restored %v", got)
	}
}

func TestRestoreRefusesOpenTarget(t *testing.T) {
	tmp := t.TempDir()
	db := openDB(t, filepath.Join(tmp, "a.db"), engine.Config{})
	defer db.Close()
	addNodes(t, db, 1, 3)
	m := NewBackupManagerWithOptions(db, filepath.Join(tmp, "b"), Options{Force: true, BusyTimeout: 50 * time.Millisecond})
	if _, err := m.CreateFullBackup("x"); err != nil {
		t.Fatal(err)
	}
	// Restoring over the live database while it is open must fail.
	_, err := m.RestoreFromBackup("x", db.Path())
	if !errors.Is(err, engine.ErrBusy) {
		t.Fatalf("err = %v", err)
	}
	if got := seqs(t, db.Path()); len(got) != 3 {
		t.Fatal("live database damaged")
	}
}

func TestCorruptBackupPage(t *testing.T) {
	tmp := t.TempDir()
	db := openDB(t, filepath.Join(tmp, "a.db"), engine.Config{})
	defer db.Close()
	addNodes(t, db, 1, 200)
	dir := filepath.Join(tmp, "b")
	m := NewBackupManager(db, dir)
	r, err := m.CreateFullBackup("full")
	if err != nil {
		t.Fatal(err)
	}
	// Flip one byte in the image of page 3.
	const pg = 3
	off := int64(HeaderSize) + pg*int64(recHdrSize+4096) + recHdrSize + 1000
	f, err := os.OpenFile(r.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0x40
	f.WriteAt(b, off)
	f.Close()

	check := func(what string, err error) {
		t.Helper()
		var ce *engine.CorruptionError
		if !errors.As(err, &ce) || ce.Path != r.Path || ce.Page != pg || !errors.Is(err, engine.ErrCorrupt) {
			t.Fatalf("%s: err = %v", what, err)
		}
		if !strings.Contains(err.Error(), "full.backup") || !strings.Contains(err.Error(), "page 3") {
			t.Fatalf("%s: message %q does not name the file and page", what, err)
		}
	}
	v, err := m.VerifyBackup("full")
	check("verify", err)
	if v == nil || v.OK {
		t.Fatalf("verify result %+v", v)
	}
	target := filepath.Join(tmp, "r.db")
	_, err = m.RestoreFromBackup("full", target)
	check("restore", err)
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatal("failed restore left a target")
	}
	list, _ := m.ListBackups()
	if len(list) != 1 || list[0].Verified == nil || list[0].Verified.OK || !strings.Contains(list[0].Verified.Error, "page 3") {
		t.Fatalf("catalog: %+v", list[0].Verified)
	}
}

func TestENOSPCLeavesNoBackup(t *testing.T) {
	tmp := t.TempDir()
	db := openDB(t, filepath.Join(tmp, "a.db"), engine.Config{})
	defer db.Close()
	addNodes(t, db, 1, 100)
	dir := filepath.Join(tmp, "b")
	ffs := vfs.NewFaultFS(vfs.OS)
	ffs.SetRule(vfs.NthOp(vfs.OpWrite, ".backup.tmp", 1, true, vfs.Fault{Err: vfs.ENOSPC}))
	m := NewBackupManagerWithOptions(db, dir, Options{FS: ffs})
	_, err := m.CreateFullBackup("full")
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("err = %v", err)
	}
	if names := listNames(t, dir); len(names) != 0 {
		t.Fatalf("listed %v after ENOSPC", names)
	}
	for _, n := range dirFiles(t, dir) {
		if strings.Contains(n, ".backup") {
			t.Fatalf("left %s", n)
		}
	}
	// The database is unaffected and the next backup works.
	ffs.SetRule(nil)
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	// ENOSPC while restoring: no target appears.
	ffs.SetRule(vfs.NthOp(vfs.OpWrite, "restore", 2, true, vfs.Fault{Err: vfs.ENOSPC}))
	target := filepath.Join(tmp, "r.db")
	if _, err := m.RestoreFromBackup("full", target); err == nil {
		t.Fatal("restore succeeded on a full disk")
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatal("failed restore left a target")
	}
	for _, n := range dirFiles(t, tmp) {
		if strings.Contains(n, ".tmp") {
			t.Fatalf("left %s", n)
		}
	}
}

func TestKilledBackupNeverListed(t *testing.T) {
	tmp := t.TempDir()
	db := openDB(t, filepath.Join(tmp, "a.db"), engine.Config{})
	defer db.Close()
	addNodes(t, db, 1, 50)
	dir := filepath.Join(tmp, "b")
	m := NewBackupManager(db, dir)
	r, err := m.CreateFullBackup("good")
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := os.ReadFile(r.Path)
	// A backup killed mid-write leaves only its temporary file.
	os.WriteFile(filepath.Join(dir, "killed.backup.tmp-999-1"), whole[:len(whole)/2], 0o644)
	if names := listNames(t, dir); !slices.Equal(names, []string{"good"}) {
		t.Fatalf("listed %v", names)
	}
	// A file with the final name but cut short (copied by hand, say) is
	// listed as unreadable, never as a usable backup.
	os.WriteFile(filepath.Join(dir, "cut.backup"), whole[:len(whole)-100], 0o644)
	list, _ := ListBackups(dir)
	for _, b := range list {
		if b.Name == "cut" && (b.Error == "" || b.ChainOK()) {
			t.Fatalf("cut backup listed as %+v", b)
		}
	}
	if _, err := m.RestoreFromBackup("cut", filepath.Join(tmp, "x.db")); !errors.Is(err, engine.ErrCorrupt) {
		t.Fatalf("restore of a cut backup: %v", err)
	}
}

func TestBrokenChainAfterDelete(t *testing.T) {
	tmp := t.TempDir()
	db := openDB(t, filepath.Join(tmp, "a.db"), engine.Config{})
	defer db.Close()
	dir := filepath.Join(tmp, "b")
	m := NewBackupManager(db, dir)
	addNodes(t, db, 1, 10)
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	addNodes(t, db, 11, 10)
	if _, err := m.CreateIncrementalBackup("inc1"); err != nil {
		t.Fatal(err)
	}
	addNodes(t, db, 21, 10)
	if _, err := m.CreateIncrementalBackup("inc2"); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "full.backup")) // find -delete
	list, err := ListBackups(dir)
	if err != nil || len(list) != 2 {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if !strings.Contains(list[0].Chain, "parent full is missing") || !strings.Contains(list[1].Chain, "broken") {
		t.Fatalf("chains: %q, %q", list[0].Chain, list[1].Chain)
	}
	if _, err := m.RestoreFromBackup("inc2", filepath.Join(tmp, "r.db")); !errors.Is(err, ErrBrokenChain) {
		t.Fatalf("restore: %v", err)
	}
	if _, err := m.VerifyBackup("inc2"); !errors.Is(err, ErrBrokenChain) {
		t.Fatalf("verify: %v", err)
	}
	// An incremental is never based on a broken chain: it fails naming
	// the broken chain, or with FullIfNoBase becomes a full backup with a
	// warning saying why, which verifies.
	if _, err := m.CreateIncrementalBackup("inc3"); !errors.Is(err, ErrNoBase) || !strings.Contains(err.Error(), "inc2, has a broken chain") {
		t.Fatalf("incremental on a broken chain: %v", err)
	}
	mf := NewBackupManagerWithOptions(db, dir, Options{FullIfNoBase: true})
	res, err := mf.CreateIncrementalBackup("inc3")
	if err != nil || res.Type != "full" || len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], "broken chain") {
		t.Fatalf("incremental with FullIfNoBase on a broken chain: %+v, %v", res, err)
	}
	if _, err := mf.VerifyBackup("inc3"); err != nil {
		t.Fatalf("verify the full backup taken instead: %v", err)
	}
}

func TestPrune(t *testing.T) {
	tmp := t.TempDir()
	db := openDB(t, filepath.Join(tmp, "a.db"), engine.Config{})
	defer db.Close()
	dir := filepath.Join(tmp, "b")
	day0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	now := day0
	m := NewBackupManagerWithOptions(db, dir, Options{Now: func() time.Time { return now }})
	step := func(name string, days int, full bool) {
		now = day0.Add(time.Duration(days) * 24 * time.Hour)
		addNodes(t, db, days*10+1, 2)
		var err error
		if full {
			_, err = m.CreateFullBackup(name)
		} else {
			_, err = m.CreateIncrementalBackup(name)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	step("full_a", 0, true)
	step("inc_a1", 1, false)
	step("full_b", 10, true)
	step("inc_b1", 11, false)
	step("inc_b2", 38, false) // recent, so its whole chain back to full_b stays
	step("full_c", 39, true)
	now = day0.Add(45 * 24 * time.Hour)
	res, err := m.Prune(30, 1)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Deleted)
	if !slices.Equal(res.Deleted, []string{"full_a", "inc_a1"}) {
		t.Fatalf("deleted %v, kept %v", res.Deleted, res.Kept)
	}
	if names := listNames(t, dir); len(names) != 4 {
		t.Fatalf("left %v", names)
	}
	if _, err := m.Prune(0, 0); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("prune everything: %v", err)
	}
	// keepFull keeps the newest full backups even when all are old.
	now = day0.Add(400 * 24 * time.Hour)
	res, err = m.Prune(30, 1)
	if err != nil {
		t.Fatal(err)
	}
	if names := listNames(t, dir); !slices.Equal(names, []string{"full_c"}) {
		t.Fatalf("left %v (deleted %v)", names, res.Deleted)
	}
}

func TestNamesAndPaths(t *testing.T) {
	for _, c := range []struct{ dir, arg, wantDir, wantName string }{
		{"/b", "x", "/b", "x"},
		{"/b", "x.backup", "/b", "x"},
		{"/b", "/other/full_20240115", "/other", "full_20240115"},
		{"", "rel/inc_1.backup", "rel", "inc_1"},
	} {
		d, n, err := splitName(c.dir, c.arg)
		if err != nil || d != c.wantDir || n != c.wantName {
			t.Errorf("splitName(%q, %q) = %q, %q, %v", c.dir, c.arg, d, n, err)
		}
	}
	for _, bad := range []string{"", ".backup", "/b/", ".hidden"} {
		if _, _, err := splitName("/b", bad); err == nil {
			t.Errorf("splitName(%q) accepted", bad)
		}
	}
}

func TestForcedOverwriteNeverBasesOnItself(t *testing.T) {
	tmp := t.TempDir()
	db := openDB(t, filepath.Join(tmp, "a.db"), engine.Config{})
	defer db.Close()
	dir := filepath.Join(tmp, "b")
	m := NewBackupManagerWithOptions(db, dir, Options{Force: true})
	addNodes(t, db, 1, 5)
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	addNodes(t, db, 6, 5)
	if _, err := m.CreateIncrementalBackup("inc_1"); err != nil {
		t.Fatal(err)
	}
	addNodes(t, db, 11, 5)
	if _, err := m.CreateIncrementalBackup("inc_2"); err != nil {
		t.Fatal(err)
	}
	addNodes(t, db, 16, 5)
	r, err := m.CreateIncrementalBackup("inc_1") // redo inc_1: based on full, not on itself or inc_2
	if err != nil {
		t.Fatal(err)
	}
	if r.Parent != "full" {
		t.Fatalf("parent %s", r.Parent)
	}
	target := filepath.Join(tmp, "r.db")
	if _, err := m.RestoreFromBackup("inc_1", target); err != nil {
		t.Fatal(err)
	}
	if got := seqs(t, target); !slices.Equal(got, span(1, 20)) {
		t.Fatalf("restored %v", got)
	}
	list, _ := ListBackups(dir)
	for _, b := range list {
		if b.Name == "inc_2" && b.ChainOK() {
			t.Fatal("inc_2 still claims an intact chain after its parent was replaced")
		}
	}
}

// Issue 12 #1: --keep-full 1 keeps the newest full backup's whole chain,
// not only the full backup (the newest restore points are its
// incrementals).
func TestPruneKeepFullKeepsItsChain(t *testing.T) {
	tmp := t.TempDir()
	db := openDB(t, filepath.Join(tmp, "a.db"), engine.Config{})
	defer db.Close()
	dir := filepath.Join(tmp, "b")
	day0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	now := day0
	m := NewBackupManagerWithOptions(db, dir, Options{Now: func() time.Time { return now }})
	seq := 1
	for _, c := range []string{"A", "B", "C"} {
		for i := 0; i < 4; i++ {
			addNodes(t, db, seq, 2)
			seq += 2
			now = now.Add(time.Hour)
			var err error
			if i == 0 {
				_, err = m.CreateFullBackup("full" + c)
			} else {
				_, err = m.CreateIncrementalBackup(fmt.Sprintf("inc%s%d", c, i))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	res, err := m.Prune(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Kept)
	if want := []string{"fullC", "incC1", "incC2", "incC3"}; !slices.Equal(res.Kept, want) {
		t.Fatalf("kept %v, want %v (deleted %v)", res.Kept, want, res.Deleted)
	}
	if names := listNames(t, dir); !slices.Contains(names, "incC3") {
		t.Fatalf("left %v", names)
	}
}

// TestFailedStepLeavesNothing (issue 12 #5): an fsync error on the
// backup directory after the rename, or on the catalog's temporary file,
// fails the backup and leaves no backup behind (list would show it as
// complete, and a retry would be refused as existing); the retry works.
func TestFailedStepLeavesNothing(t *testing.T) {
	eio := &os.PathError{Op: "fsync", Err: syscall.EIO}
	for _, c := range []struct {
		name string
		rule vfs.Rule
	}{
		{"directory fsync", func(op vfs.Op, name string, n int) *vfs.Fault {
			if op == vfs.OpSyncDir && strings.HasSuffix(name, "/b") {
				return &vfs.Fault{Err: eio}
			}
			return nil
		}},
		{"catalog temp fsync", vfs.NthOp(vfs.OpSync, "catalog.json.tmp", 1, true, vfs.Fault{Err: eio})},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			db := openDB(t, filepath.Join(tmp, "a.db"), engine.Config{})
			defer db.Close()
			addNodes(t, db, 1, 10)
			dir := filepath.Join(tmp, "b")
			if _, err := NewBackupManager(db, dir).CreateFullBackup("full0"); err != nil {
				t.Fatal(err)
			}
			ffs := vfs.NewFaultFS(vfs.OS)
			ffs.SetRule(c.rule)
			_, err := NewBackupManagerWithOptions(db, dir, Options{FS: ffs}).CreateFullBackup("full1")
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("backup with an fsync EIO: %v", err)
			}
			if names := listNames(t, dir); !slices.Equal(names, []string{"full0"}) {
				t.Fatalf("left %v", names)
			}
			if _, err := NewBackupManager(db, dir).CreateFullBackup("full1"); err != nil {
				t.Fatalf("retry: %v", err)
			}
		})
	}
}
