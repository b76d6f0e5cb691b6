package engine_test

// Power-loss tests: the crash test's workload, checkpoints of every mode,
// compaction, backup and restore run through a vfs.CrashFS, which at many
// pseudo-random operations writes out what the disk would hold had the
// power been cut there (unsynced writes and directory changes dropped,
// torn or scrambled; see vfs.CrashFS). Each image is then opened with the
// real file system: every commit acknowledged before the cut must be there,
// whole, and the integrity check must find nothing corrupt.
//
// SOMBRA_POWERLOSS_SEED fixes the seed (it is logged) and
// SOMBRA_POWERLOSS_SCALE multiplies the number of cuts (make crash-long).
// With one worker the operation sequence, and so every cut, is a function
// of the seed.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/engine/compact"
	"github.com/sombradb/sombra/engine/integrity"
	"github.com/sombradb/sombra/engine/vfs"
)

func plSeed(t *testing.T) uint64 {
	seed := rand.Uint64()
	if s, err := strconv.ParseUint(os.Getenv("SOMBRA_POWERLOSS_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (SOMBRA_POWERLOSS_SEED=%d reproduces)", seed, seed)
	return seed
}

func plScale() int {
	if s, err := strconv.Atoi(os.Getenv("SOMBRA_POWERLOSS_SCALE")); err == nil && s > 0 {
		return s
	}
	return 1
}

// plCut is one simulated power cut: the image's directory, what had been
// acknowledged when it was taken, and where.
type plCut struct {
	dir  string
	mode vfs.CrashMode
	ev   vfs.CrashEvent
	ack  any
}

func (c plCut) String() string {
	return fmt.Sprintf("cut at op %d (%s %s, mode %v)", c.ev.Seq, c.ev.Op, filepath.Base(c.ev.Name), c.mode)
}

// cutter takes a cut before roughly every gap-th operation of fs, at most
// limit of them. ack is read before each image is written, so whatever it
// reports was acknowledged before the cut.
type cutter struct {
	fs    *vfs.CrashFS
	out   string
	ack   func() any
	mu    sync.Mutex
	rng   *rand.Rand
	gap   int
	next  int64
	limit int
	cuts  []plCut
	err   error
}

func newCutter(t *testing.T, fs *vfs.CrashFS, seed uint64, gap, limit int, ack func() any) *cutter {
	out := t.TempDir()
	if keep := os.Getenv("SOMBRA_POWERLOSS_KEEP"); keep != "" {
		// keep the images for a post-mortem
		var err error
		if out, err = os.MkdirTemp(keep, "cuts-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("cut images in %s", out)
	}
	c := &cutter{fs: fs, out: out, ack: ack, rng: rand.New(rand.NewPCG(seed, 11)), gap: gap, limit: limit}
	c.next = fs.Ops() + 1 + int64(c.rng.IntN(gap))
	fs.SetHook(c.hook)
	return c
}

func (c *cutter) hook(ev vfs.CrashEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Seq < c.next || len(c.cuts) >= c.limit || c.err != nil {
		return
	}
	c.next = ev.Seq + 1 + int64(c.rng.IntN(2*c.gap))
	c.cutLocked(ev)
}

func (c *cutter) cutLocked(ev vfs.CrashEvent) {
	cut := plCut{dir: filepath.Join(c.out, strconv.Itoa(len(c.cuts))), mode: vfs.CrashMode(c.rng.IntN(3)), ev: ev, ack: c.ack()}
	if err := c.fs.Crash(cut.dir, cut.mode, rand.New(rand.NewPCG(c.rng.Uint64(), 0))); err != nil {
		c.err = err
		return
	}
	c.cuts = append(c.cuts, cut)
}

// final takes one last cut now (after the workload finished) and stops.
func (c *cutter) final(t *testing.T) []plCut {
	t.Helper()
	c.fs.SetHook(nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit++
	c.cutLocked(vfs.CrashEvent{Seq: c.fs.Ops(), Op: "end"})
	if c.err != nil {
		t.Fatalf("taking a cut: %v", c.err)
	}
	return c.cuts
}

// plCheckDB checks a database image after a cut: at least acked commits of
// the crash workload, at most inflight more, and no corruption.
func plCheckDB(path string, acked int64, inflight int) (int64, error) {
	maxSeq, err := engine.CrashVerify(path)
	if err != nil {
		return maxSeq, err
	}
	if maxSeq < acked {
		return maxSeq, fmt.Errorf("%d commits acknowledged, %d survived", acked, maxSeq)
	}
	if maxSeq > acked+int64(inflight) {
		return maxSeq, fmt.Errorf("%d commits acknowledged, %d present: more than %d in flight", acked, maxSeq, inflight)
	}
	if err := plIntegrity(path); err != nil {
		return maxSeq, err
	}
	return maxSeq, nil
}

func plIntegrity(path string) error {
	rep, err := integrity.Check(path, integrity.Options{Full: true})
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if rep.HasCorruption() {
		return fmt.Errorf("integrity check: %d issues, first %+v", len(rep.Issues), rep.Issues[0])
	}
	return nil
}

// plCommit runs one transaction of the crash workload.
func plCommit(db *engine.DB) (int64, error) {
	var s int64
	err := db.Update(func(tx *engine.Tx) error {
		var err error
		s, err = engine.CrashTx(tx)
		return err
	})
	return s, err
}

type plWorkload struct {
	name    string
	workers int
	group   bool
	auto    int                     // WALAutoCheckpoint
	ckpt    []engine.CheckpointMode // run in turn every few commits, concurrently
	commits int64
	gap     int
	cuts    int
}

func TestPowerLossCrashWorkload(t *testing.T) {
	seed := plSeed(t)
	scale := plScale()
	ws := []plWorkload{
		{name: "one-writer", workers: 1, auto: 1000, commits: 40, gap: 3, cuts: 30},
		{name: "passive-auto", workers: 1, auto: 6, commits: 40, gap: 12, cuts: 30},
		{name: "full-restart-truncate", workers: 1, auto: 1000, ckpt: []engine.CheckpointMode{engine.CheckpointFull, engine.CheckpointRestart, engine.CheckpointTruncate}, commits: 40, gap: 8, cuts: 30},
		{name: "group-commit", workers: 3, group: true, auto: 8, ckpt: []engine.CheckpointMode{engine.CheckpointTruncate, engine.CheckpointPassive}, commits: 40, gap: 6, cuts: 30},
	}
	for i, w := range ws {
		t.Run(w.name, func(t *testing.T) {
			runPowerLossWorkload(t, w, seed+uint64(i), scale)
		})
	}
}

func runPowerLossWorkload(t *testing.T, w plWorkload, seed uint64, scale int) {
	root := t.TempDir()
	fs, err := vfs.NewCrashFS(vfs.OS, root)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "crash.db")
	var acked atomic.Int64
	// Cuts start once the database exists: TestPowerLossDuringCreate cuts
	// at every operation of the creation.
	db, err := engine.OpenWithConfig(path, engine.Config{FS: fs, WALAutoCheckpoint: w.auto})
	if err != nil {
		t.Fatal(err)
	}
	cut := newCutter(t, fs, seed, w.gap, w.cuts*scale, func() any { return acked.Load() })
	if err := db.CreatePropertyIndex("seq"); err != nil {
		t.Fatal(err)
	}
	if w.group {
		if err := db.EnableGroupCommit(2*time.Millisecond, w.workers); err != nil {
			t.Fatal(err)
		}
	}
	commits := w.commits * int64(scale)
	var wg sync.WaitGroup
	errs := make(chan error, w.workers+1)
	done := make(chan struct{})
	if len(w.ckpt) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := int64(0)
			for i := 0; ; {
				select {
				case <-done:
					return
				case <-time.After(time.Millisecond):
				}
				if a := acked.Load(); a < last+3 {
					continue
				} else {
					last = a
				}
				if _, err := db.CheckpointWithMode(w.ckpt[i%len(w.ckpt)]); err != nil && !errors.Is(err, engine.ErrBusy) {
					errs <- fmt.Errorf("checkpoint: %w", err)
					return
				}
				i++
			}
		}()
	}
	var ww sync.WaitGroup
	for range w.workers {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for acked.Load() < commits {
				s, err := plCommit(db)
				if err != nil {
					errs <- fmt.Errorf("commit: %w", err)
					return
				}
				for {
					a := acked.Load()
					if s <= a || acked.CompareAndSwap(a, s) {
						break
					}
				}
			}
		}()
	}
	ww.Wait()
	close(done)
	wg.Wait()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cuts := cut.final(t)
	for i, c := range cuts {
		// Every transaction reads the counter the one before it wrote,
		// so commit s acknowledged means 1..s are durable (the WAL is
		// replayed in order); up to one per worker may be in flight.
		a := c.ack.(int64)
		got, err := plCheckDB(filepath.Join(c.dir, "crash.db"), a, w.workers)
		if err != nil {
			t.Fatalf("%s, %s, %d acknowledged: %v", w.name, c, a, err)
		}
		if i%8 == 0 {
			plSecondCut(t, c, got, seed+uint64(i))
		}
	}
	t.Logf("%s: %d commits, %d operations, %d cuts", w.name, acked.Load(), fs.Ops(), len(cuts))
}

// plCutNow cuts the power now, with mode and seed, and returns the image.
func plCutNow(t *testing.T, fs *vfs.CrashFS, mode vfs.CrashMode, seed uint64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cut")
	if err := fs.Crash(dir, mode, rand.New(rand.NewPCG(seed, 0))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// plOpen makes a crash file system over a new directory and opens (creates)
// crash.db in it.
func plOpen(t *testing.T, cfg engine.Config) (*vfs.CrashFS, *engine.DB, string) {
	t.Helper()
	root := t.TempDir()
	fs, err := vfs.NewCrashFS(vfs.OS, root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.FS = fs
	path := filepath.Join(root, "crash.db")
	db, err := engine.OpenWithConfig(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fs, db, path
}

func plCommits(t *testing.T, db *engine.DB, n int) int64 {
	t.Helper()
	var s int64
	for range n {
		var err error
		if s, err = plCommit(db); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// The WAL of a new database was created and fsynced, but its directory was
// never synced: at a power cut the WAL's name, and every commit in it, was
// lost ("5 commits acknowledged, 0 survived").
func TestPowerLossNewWALNameIsDurable(t *testing.T) {
	fs, db, _ := plOpen(t, engine.Config{WALAutoCheckpoint: -1})
	defer db.Close()
	acked := plCommits(t, db, 5)
	img := plCutNow(t, fs, vfs.DropUnsynced, 1)
	if _, err := plCheckDB(filepath.Join(img, "crash.db"), acked, 0); err != nil {
		t.Fatal(err)
	}
}

// plReopen opens path through fs (after the workload closed it).
func plReopen(t *testing.T, fs vfs.FS, path string) *engine.DB {
	t.Helper()
	db, err := engine.OpenWithConfig(path, engine.Config{FS: fs, WALAutoCheckpoint: 8})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// Compaction rewrites the file under a new name and renames it over the
// old one; at every cut the database holds every commit (old file or new),
// and commits after the compaction survive too: those of a new connection
// after a compaction of the closed file, and those of the very handle that
// compacted (DatabaseCompactor), which carries on with the new file.
// Besides the cutter's random cuts, every rename, link, remove and
// directory fsync gets three (see plNamespaceCuts).
func TestPowerLossCompaction(t *testing.T) {
	seed := plSeed(t)
	for _, onHandle := range []bool{false, true} {
		name := map[bool]string{false: "closed-file", true: "open-handle"}[onHandle]
		t.Run(name, func(t *testing.T) {
			for round := range 2 * plScale() {
				fs, db, path := plOpen(t, engine.Config{WALAutoCheckpoint: 8})
				if err := db.CreatePropertyIndex("seq"); err != nil {
					t.Fatal(err)
				}
				var acked atomic.Int64
				acked.Store(plCommits(t, db, 40))
				cut := newCutter(t, fs, seed+uint64(round), 6, 150, func() any { return acked.Load() })
				plNamespaceCuts(fs, cut)
				var rep *compact.Report
				var err error
				if onHandle {
					rep, err = compact.NewDatabaseCompactor(db).Compact()
				} else {
					if err := db.Close(); err != nil {
						t.Fatal(err)
					}
					rep, err = compact.Compact(path, compact.Options{FS: fs})
					db = plReopen(t, fs, path)
				}
				if err != nil {
					t.Fatal(err)
				}
				for range 10 {
					s, err := plCommit(db)
					if err != nil {
						t.Fatal(err)
					}
					acked.Store(s)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				cuts := cut.final(t)
				for _, c := range cuts {
					if _, err := plCheckDB(filepath.Join(c.dir, "crash.db"), c.ack.(int64), 1); err != nil {
						t.Fatalf("round %d, %s, %d acknowledged: %v", round, c, c.ack.(int64), err)
					}
				}
				t.Logf("round %d: compaction %d -> %d pages, %d cuts", round, rep.PagesBefore, rep.PagesAfter, len(cuts))
			}
		})
	}
}

// plNamespaceCuts wraps the cutter's hook so that, besides its random
// cuts, every rename, link, remove and directory fsync gets three cuts (in
// random modes): the moments a file is replaced are few among the writes,
// and they are where old-or-new can go wrong.
func plNamespaceCuts(fs *vfs.CrashFS, c *cutter) {
	fs.SetHook(func(ev vfs.CrashEvent) {
		switch ev.Op {
		case "rename", "link", "remove", "syncdir":
			c.mu.Lock()
			for range 3 {
				c.cutLocked(ev)
			}
			c.mu.Unlock()
		}
		c.hook(ev)
	})
}

// plBackups is what the backup test had acknowledged at a cut: the commits
// and each finished backup with the sequence it holds.
type plBackups struct {
	acked   int64
	backups map[string]int64
}

// Backups (full and incremental, with checkpoints between them) taken
// while cuts land: at every cut the database holds every acknowledged
// commit, every backup that was acknowledged verifies and restores to
// exactly its commits, and any backup file present under its final name
// verifies.
func TestPowerLossBackup(t *testing.T) {
	seed := plSeed(t)
	for round := range 2 * plScale() {
		fs, db, path := plOpen(t, engine.Config{WALAutoCheckpoint: 8})
		root := filepath.Dir(path)
		if err := db.CreatePropertyIndex("seq"); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		st := plBackups{backups: map[string]int64{}}
		snapshot := func() any {
			mu.Lock()
			defer mu.Unlock()
			b := plBackups{acked: st.acked, backups: map[string]int64{}}
			for k, v := range st.backups {
				b.backups[k] = v
			}
			return b
		}
		cut := newCutter(t, fs, seed+uint64(round), 25, 35, snapshot)
		bdir := filepath.Join(root, "backups")
		m := backup.NewBackupManagerWithOptions(db, bdir, backup.Options{FS: fs})
		commit := func(n int) {
			for range n {
				s, err := plCommit(db)
				if err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				st.acked = s
				mu.Unlock()
			}
		}
		for i := range 4 {
			commit(8)
			if i == 2 {
				if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
					t.Fatal(err)
				}
			}
			name := fmt.Sprintf("b%d", i)
			var err error
			if i == 0 {
				_, err = m.CreateFullBackup(name)
			} else {
				_, err = m.CreateIncrementalBackup(name)
			}
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			st.backups[name] = st.acked
			mu.Unlock()
		}
		commit(4)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		cuts := cut.final(t)
		for _, c := range cuts {
			b := c.ack.(plBackups)
			if _, err := plCheckDB(filepath.Join(c.dir, "crash.db"), b.acked, 1); err != nil {
				t.Fatalf("round %d, %s: database: %v", round, c, err)
			}
			plCheckBackups(t, c, b.backups)
			plIncrementalAfterCut(t, c, len(b.backups) > 0)
		}
		t.Logf("round %d: %d cuts", round, len(cuts))
	}
}

// plCheckBackups verifies and restores every backup in the image's backup
// directory: the acknowledged ones must be there.
func plCheckBackups(t *testing.T, c plCut, acked map[string]int64) {
	t.Helper()
	bdir := filepath.Join(c.dir, "backups")
	ents, err := os.ReadDir(bdir)
	if err != nil && !(os.IsNotExist(err) && len(acked) == 0) {
		t.Fatalf("%s: backup directory: %v", c, err)
	}
	present := map[string]bool{}
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".backup"); ok {
			present[name] = true
		}
	}
	newest, newestSeq := "", int64(-1)
	for name, seq := range acked {
		if !present[name] {
			t.Fatalf("%s: backup %s was acknowledged but is gone (have %v)", c, name, ents)
		}
		if seq > newestSeq {
			newest, newestSeq = name, seq
		}
	}
	if newest != "" {
		target := filepath.Join(t.TempDir(), "restored.db")
		if _, err := backup.Restore(bdir, newest, target, backup.Options{}); err != nil {
			t.Fatalf("%s: restore %s: %v", c, newest, err)
		}
		if got, err := engine.CrashVerify(target); err != nil || got != newestSeq {
			t.Fatalf("%s: backup %s restores to %d commits (%v), want %d", c, newest, got, err, newestSeq)
		}
	}
	for name := range present {
		if _, err := backup.Verify(bdir, name, backup.Options{TempDir: t.TempDir()}); err != nil {
			t.Fatalf("%s: backup %s is present but does not verify: %v", c, name, err)
		}
	}
}

// plRestore is what the restore test had acknowledged at a cut.
type plRestore struct {
	restored bool
	acked    int64
}

// A restore over an existing database (its WAL holding commits) while cuts
// land: before the restore is acknowledged the target is whole, either the
// old database with every commit or the backup's content; after it, the
// backup's content plus the commits made since.
func TestPowerLossRestore(t *testing.T) {
	seed := plSeed(t)
	for round := range 3 * plScale() {
		fs, db, path := plOpen(t, engine.Config{WALAutoCheckpoint: 8})
		root := filepath.Dir(path)
		if err := db.CreatePropertyIndex("seq"); err != nil {
			t.Fatal(err)
		}
		s0 := plCommits(t, db, 20)
		bdir := filepath.Join(root, "backups")
		if _, err := backup.NewBackupManagerWithOptions(db, bdir, backup.Options{FS: fs}).CreateFullBackup("b0"); err != nil {
			t.Fatal(err)
		}
		s1 := plCommits(t, db, 13)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var st plRestore
		cut := newCutter(t, fs, seed+uint64(round), 3, 40, func() any {
			mu.Lock()
			defer mu.Unlock()
			return st
		})
		if _, err := backup.Restore(bdir, "b0", path, backup.Options{FS: fs, Force: true}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		st = plRestore{restored: true, acked: s0}
		mu.Unlock()
		db = plReopen(t, fs, path)
		for range 5 {
			s, err := plCommit(db)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			st.acked = s
			mu.Unlock()
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		cuts := cut.final(t)
		for _, c := range cuts {
			r := c.ack.(plRestore)
			img := filepath.Join(c.dir, "crash.db")
			if !r.restored {
				got, err := engine.CrashVerify(img)
				if err == nil && got != s0 && got != s1 {
					err = fmt.Errorf("%d commits: neither the old database (%d) nor the backup (%d)", got, s1, s0)
				}
				if err == nil {
					err = plIntegrity(img)
				}
				if err != nil {
					t.Fatalf("round %d, %s, during the restore: %v", round, c, err)
				}
				continue
			}
			if _, err := plCheckDB(img, r.acked, 1); err != nil {
				t.Fatalf("round %d, %s, after the restore, %d acknowledged: %v", round, c, r.acked, err)
			}
		}
		t.Logf("round %d: %d cuts", round, len(cuts))
	}
}

// plSecondCut cuts the power again while the image of cut c (holding have
// commits, already checked) is recovered: opened, written to (a commit and
// a full checkpoint) and closed through a new CrashFS.
func plSecondCut(t *testing.T, c plCut, have int64, seed uint64) {
	t.Helper()
	fs, err := vfs.NewCrashFS(vfs.OS, c.dir)
	if err != nil {
		t.Fatal(err)
	}
	var acked atomic.Int64
	acked.Store(have)
	cut := newCutter(t, fs, seed, 2, 8, func() any { return acked.Load() })
	path := filepath.Join(c.dir, "crash.db")
	db := plReopen(t, fs, path)
	s, err := plCommit(db)
	if err != nil {
		t.Fatalf("%s: commit after recovery: %v", c, err)
	}
	acked.Store(s)
	if _, err := db.CheckpointWithMode(engine.CheckpointFull); err != nil {
		t.Fatalf("%s: checkpoint after recovery: %v", c, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c2 := range cut.final(t) {
		if _, err := plCheckDB(filepath.Join(c2.dir, "crash.db"), c2.ack.(int64), 1); err != nil {
			t.Fatalf("%s, then during recovery %s, %d acknowledged: %v", c, c2, c2.ack.(int64), err)
		}
	}
}

// A power cut while a new database is created must leave either no
// database or a whole one: the name used to appear (O_CREATE, then the
// directory synced) before the header was written and synced, and a cut in
// between left an empty or half-written file that no later Open accepted
// ("file is empty: not a sombra database"). Every cut point of the
// creation, in every mode, with a few seeds.
func TestPowerLossDuringCreate(t *testing.T) {
	if _, ok := vfs.OS.(interface {
		Link(oldname, newname string) error
	}); !ok {
		// The fix (publish a whole header by link(2)) arrives with the
		// dataloss branch's creation change; until it is merged this
		// test fails, as it did before the fix.
		t.Skip("the file system layer cannot link(2) yet: creation is not power-safe")
	}
	root := t.TempDir()
	fs, err := vfs.NewCrashFS(vfs.OS, root)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var cuts []plCut
	fs.SetHook(func(ev vfs.CrashEvent) {
		for _, mode := range []vfs.CrashMode{vfs.DropUnsynced, vfs.TearLast, vfs.Scramble} {
			for seed := range uint64(4) {
				c := plCut{dir: filepath.Join(out, strconv.Itoa(len(cuts))), mode: mode, ev: ev}
				if err := fs.Crash(c.dir, mode, rand.New(rand.NewPCG(seed, 5))); err != nil {
					t.Error(err)
					return
				}
				cuts = append(cuts, c)
			}
		}
	})
	db, err := engine.OpenWithConfig(filepath.Join(root, "crash.db"), engine.Config{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	fs.SetHook(nil)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cuts {
		if _, err := plCheckDB(filepath.Join(c.dir, "crash.db"), 0, 0); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
}

// plIncrementalAfterCut takes a backup of the recovered image (an
// incremental one on top of what the image's backup directory holds, so it
// relies on the change log that survived the cut) and checks that it
// restores to exactly the database's commits.
func plIncrementalAfterCut(t *testing.T, c plCut, haveBackup bool) {
	t.Helper()
	path := filepath.Join(c.dir, "crash.db")
	db, err := engine.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want, err := engine.CrashVerify(path)
	if err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(c.dir, "backups")
	m := backup.NewBackupManagerWithOptions(db, bdir, backup.Options{FullIfNoBase: true})
	res, err := m.CreateIncrementalBackup("after-cut")
	if err != nil {
		t.Fatalf("%s: incremental backup of the recovered database: %v", c, err)
	}
	target := filepath.Join(t.TempDir(), "restored.db")
	if _, err := backup.Restore(bdir, "after-cut", target, backup.Options{}); err != nil {
		t.Fatalf("%s: restore the %s backup taken after the cut: %v", c, res.Type, err)
	}
	if got, err := engine.CrashVerify(target); err != nil || got != want {
		t.Fatalf("%s: the %s backup (pages from %s) taken after the cut restores to %d commits (%v), the database has %d",
			c, res.Type, res.ChangeSource, got, err, want)
	}
}

// The change log (NAME.db-changes), which lets an incremental backup find
// the pages checkpoints copied without reading the whole file, was never
// fsynced: after a power cut it was gone and every incremental backup
// scanned the database. It survives now, and what it says is right.
func TestPowerLossChangeLogSurvives(t *testing.T) {
	fs, db, path := plOpen(t, engine.Config{WALAutoCheckpoint: -1})
	if err := db.CreatePropertyIndex("seq"); err != nil {
		t.Fatal(err)
	}
	plCommits(t, db, 10)
	bdir := filepath.Join(filepath.Dir(path), "backups")
	if _, err := backup.NewBackupManagerWithOptions(db, bdir, backup.Options{FS: fs}).CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	plCommits(t, db, 10)
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		t.Fatal(err)
	}
	acked := plCommits(t, db, 3)
	img := plCutNow(t, fs, vfs.DropUnsynced, 1)
	db.Close()
	c := plCut{dir: img, ev: vfs.CrashEvent{Op: "end"}}
	ipath := filepath.Join(img, "crash.db")
	if _, err := plCheckDB(ipath, acked, 0); err != nil {
		t.Fatal(err)
	}
	idb, err := engine.Open(ipath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.NewBackupManager(idb, filepath.Join(img, "backups")).CreateIncrementalBackup("inc")
	idb.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.ChangeSource != "wal+changelog" {
		t.Fatalf("incremental backup after the cut found its pages by %q, want wal+changelog", res.ChangeSource)
	}
	plCheckBackups(t, c, map[string]int64{"full": 10, "inc": acked})
}

// plArchive is what the point-in-time test had acknowledged at a cut.
type plArchive struct {
	acked, archived int64
}

// WAL archiving (at every log restart and on ArchiveWAL) while cuts land:
// at every cut a point-in-time restore from the image's backup directory
// reaches at least every transaction whose archiving was acknowledged, and
// the database itself holds every acknowledged commit.
func TestPowerLossWALArchive(t *testing.T) {
	seed := plSeed(t)
	for round := range 2 * plScale() {
		fs, db, path := plOpen(t, engine.Config{WALAutoCheckpoint: -1})
		if err := db.CreatePropertyIndex("seq"); err != nil {
			t.Fatal(err)
		}
		bdir := filepath.Join(filepath.Dir(path), "backups")
		m := backup.NewBackupManagerWithOptions(db, bdir, backup.Options{FS: fs})
		if err := m.EnableWALArchiving(); err != nil {
			t.Fatal(err)
		}
		s0 := plCommits(t, db, 10)
		if _, err := m.CreateFullBackup("b0"); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		st := plArchive{acked: s0, archived: s0}
		cut := newCutter(t, fs, seed+uint64(round), 6, 30, func() any {
			mu.Lock()
			defer mu.Unlock()
			return st
		})
		for i := range 4 {
			for range 5 {
				s, err := plCommit(db)
				if err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				st.acked = s
				mu.Unlock()
			}
			if i%2 == 0 {
				// a restart archives the log before reusing it
				if _, err := db.CheckpointWithMode(engine.CheckpointRestart); err != nil {
					t.Fatal(err)
				}
			} else if _, err := m.ArchiveWAL(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			st.archived = st.acked
			mu.Unlock()
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		cuts := cut.final(t)
		for _, c := range cuts {
			a := c.ack.(plArchive)
			target := filepath.Join(t.TempDir(), "pitr.db")
			// An hour ahead is past the end of any archive: restore as far as
			// it reaches (a cut may leave it at the backup itself); the check
			// below holds it to every segment archived before the cut.
			if _, err := backup.RestoreToTime(filepath.Join(c.dir, "backups"), time.Now().Add(time.Hour), target, backup.Options{AllowEarlier: true}); err != nil {
				t.Fatalf("round %d, %s: point-in-time restore: %v", round, c, err)
			}
			got, err := engine.CrashVerify(target)
			if err == nil && (got < a.archived || got > a.acked+1) {
				err = fmt.Errorf("%d commits; %d were archived, %d acknowledged", got, a.archived, a.acked)
			}
			if err != nil {
				t.Fatalf("round %d, %s: point-in-time restore: %v", round, c, err)
			}
			if _, err := plCheckDB(filepath.Join(c.dir, "crash.db"), a.acked, 1); err != nil {
				t.Fatalf("round %d, %s: database: %v", round, c, err)
			}
		}
		t.Logf("round %d: %d cuts", round, len(cuts))
	}
}

// The -shm is memory-mapped, so a power cut (or a SIGKILL) can leave it as
// it was between two stores. Restarting the log stored the new salt before
// zeroing the old log's checkpoint count, and the first connection to open
// the database afterwards trusted what it found: with the new salt beside
// the old count, it took the new log's frames as already copied into the
// database file and read the file alone, losing the commits since the
// restart (and a checkpoint would have skipped them for good). The image
// here is a DropUnsynced cut whose -shm holds that torn state.
func TestPowerLossTornShmIsNotTrusted(t *testing.T) {
	fs, db, path := plOpen(t, engine.Config{WALAutoCheckpoint: -1})
	if err := db.CreatePropertyIndex("seq"); err != nil {
		t.Fatal(err)
	}
	plCommits(t, db, 10)
	if _, err := db.CheckpointWithMode(engine.CheckpointFull); err != nil {
		t.Fatal(err)
	}
	shmBytes := func() []byte {
		b, err := os.ReadFile(path + "-shm")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const offBackfill = 16 // engine/internal/shm
	old := shmBytes()[offBackfill : offBackfill+8]
	if _, err := db.CheckpointWithMode(engine.CheckpointRestart); err != nil {
		t.Fatal(err)
	}
	acked := plCommits(t, db, 3)
	img := plCutNow(t, fs, vfs.DropUnsynced, 1)
	db.Close()
	torn := shmBytes()
	copy(torn[offBackfill:], old) // new salt, old count
	if err := os.WriteFile(filepath.Join(img, "crash.db-shm"), torn, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := plCheckDB(filepath.Join(img, "crash.db"), acked, 0); err != nil {
		t.Fatal(err)
	}
}

// SetWALArchiveDir created the archive directory (and any missing parent)
// without syncing their parents: segments fsynced into it were lost at a
// power cut together with the directory.
func TestPowerLossNewArchiveDirIsDurable(t *testing.T) {
	fs, db, path := plOpen(t, engine.Config{WALAutoCheckpoint: -1})
	defer db.Close()
	arch := filepath.Join(filepath.Dir(path), "arch", "wal")
	if err := db.SetWALArchiveDir(arch); err != nil {
		t.Fatal(err)
	}
	plCommits(t, db, 5)
	if _, err := db.CheckpointWithMode(engine.CheckpointRestart); err != nil { // archives the log
		t.Fatal(err)
	}
	live, err := os.ReadDir(arch)
	if err != nil || len(live) == 0 {
		t.Fatalf("nothing archived: %v %v", live, err)
	}
	img := plCutNow(t, fs, vfs.DropUnsynced, 1)
	got, _ := os.ReadDir(filepath.Join(img, "arch", "wal"))
	var want, have []string
	for _, e := range live {
		if !strings.HasPrefix(e.Name(), ".") {
			want = append(want, e.Name())
		}
	}
	for _, e := range got {
		if !strings.HasPrefix(e.Name(), ".") {
			have = append(have, e.Name())
		}
	}
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Fatalf("archive after the cut holds %v, before it %v", have, want)
	}
}
