package engine_test

import (
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/compact"
	"github.com/sombradb/sombra/engine/vfs"
)

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

// Compaction on an open handle (DatabaseCompactor), which then carries on
// committing to the new file: at every cut the database is the old file or
// the new one, whole, with every acknowledged commit.
func TestPowerLossCompactionOnHandle(t *testing.T) {
	seed := plSeed(t)
	for round := range 2 * plScale() {
		fs, db, _ := plOpen(t, engine.Config{WALAutoCheckpoint: 8})
		if err := db.CreatePropertyIndex("seq"); err != nil {
			t.Fatal(err)
		}
		var acked atomic.Int64
		acked.Store(plCommits(t, db, 40))
		cut := newCutter(t, fs, seed+uint64(round), 6, 150, func() any { return acked.Load() })
		plNamespaceCuts(fs, cut)
		rep, err := compact.NewDatabaseCompactor(db).Compact()
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
		ns := 0
		for _, c := range cuts {
			if c.ev.Op == "rename" || c.ev.Op == "syncdir" || c.ev.Op == "remove" || c.ev.Op == "link" {
				ns++
			}
			if _, err := plCheckDB(filepath.Join(c.dir, "crash.db"), c.ack.(int64), 1); err != nil {
				t.Fatalf("round %d, %s, %d acknowledged: %v", round, c, c.ack.(int64), err)
			}
		}
		t.Logf("round %d: compaction on the handle %d -> %d pages, %d cuts (%d at a rename, remove or directory fsync)",
			round, rep.PagesBefore, rep.PagesAfter, len(cuts), ns)
	}
}
