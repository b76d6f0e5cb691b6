package main

import (
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sombradb/sombra/engine"
)

type compactJSON struct {
	Action   string `json:"action"`
	Analysis struct {
		FileSize      int64   `json:"file_size"`
		PageCount     uint64  `json:"page_count"`
		FreePages     uint64  `json:"free_pages"`
		Fragmentation float64 `json:"fragmentation_percent"`
		Reclaimable   int64   `json:"reclaimable_bytes"`
	} `json:"analysis"`
	Compaction *struct {
		PagesBefore    uint64  `json:"pages_before"`
		PagesAfter     uint64  `json:"pages_after"`
		PagesMoved     uint64  `json:"pages_moved"`
		SizeBefore     int64   `json:"size_before"`
		SizeAfter      int64   `json:"size_after"`
		BytesReclaimed int64   `json:"bytes_reclaimed"`
		DurationMS     float64 `json:"duration_ms"`
	} `json:"compaction"`
}

// cmdCompact copies a Sombra database and its SQLite twin into the work
// directory, deletes the same 30% of the nodes (ids with id%10 < 3, and so
// every edge touching them) from both, then times sombra-compact and
// SQLite's VACUUM (+ the WAL checkpoint that brings the file down to size).
func cmdCompact(args []string) error {
	fs := flag.NewFlagSet("compact", flag.ExitOnError)
	bin := fs.String("bin", "", "directory with the sombra-* binaries")
	db := fs.String("db", "", "Sombra database (copied, not modified)")
	sq := fs.String("sqlite", "", "SQLite database with the same logical graph (copied, not modified)")
	work := fs.String("work", "", "scratch directory")
	pct := fs.Int("delete-pct", 30, "percent of nodes to delete (a multiple of 10: ids with id%10 < pct/10)")
	batch := fs.Int("batch", 5000, "Sombra node deletions per transaction")
	fs.Parse(args)
	if *bin == "" || *db == "" || *sq == "" || *pct%10 != 0 {
		return fmt.Errorf("-bin, -db, -sqlite are required and -delete-pct must be a multiple of 10")
	}
	if err := mustDir(*work); err != nil {
		return err
	}
	k := int64(*pct / 10)
	sdb := filepath.Join(*work, "compact.db")
	ssq := filepath.Join(*work, "compact.sqlite")
	for _, p := range []string{sdb, sdb + "-wal", sdb + "-shm", sdb + "-changes", ssq, ssq + "-wal", ssq + "-shm"} {
		os.Remove(p)
	}
	for _, c := range [][2]string{{*db, sdb}, {*sq, ssq}} {
		if _, err := runCmd([]string{"cp", c[0], c[1]}); err != nil {
			return err
		}
	}

	// Sombra: delete, checkpoint.
	header(fmt.Sprintf("sombra: DeleteNode for every id with id%%10 < %d (%d per transaction), then checkpoint truncate", k, *batch), nil)
	before, after, dDel, err := sombraDelete(sdb, k, *batch)
	if err != nil {
		return err
	}
	logf("nodes %d -> %d (-%.1f%%), edges %d -> %d (-%.1f%%) in %s",
		before.NodeCount, after.NodeCount, pctDrop(before.NodeCount, after.NodeCount),
		before.EdgeCount, after.EdgeCount, pctDrop(before.EdgeCount, after.EdgeCount), dDel.Round(time.Millisecond))

	// SQLite: delete, checkpoint.
	dsn := "file:" + ssq + "?_journal_mode=WAL&_synchronous=FULL"
	del := []string{
		fmt.Sprintf("DELETE FROM edges WHERE src %% 10 < %d OR dst %% 10 < %d", k, k),
		fmt.Sprintf("DELETE FROM nodes WHERE id %% 10 < %d", k),
	}
	header("sqlite: "+del[0]+"; "+del[1]+" (one transaction), then PRAGMA wal_checkpoint(TRUNCATE)", nil)
	sqlDB, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	sqlDB.SetMaxOpenConns(1)
	count := func() (n, e int64, err error) {
		if err = sqlDB.QueryRow(`SELECT count(*) FROM nodes`).Scan(&n); err != nil {
			return
		}
		err = sqlDB.QueryRow(`SELECT count(*) FROM edges`).Scan(&e)
		return
	}
	n0, e0, err := count()
	if err != nil {
		return err
	}
	t0 := time.Now()
	tx, err := sqlDB.Begin()
	if err != nil {
		return err
	}
	for _, q := range del {
		if _, err := tx.Exec(q); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if _, err := sqlDB.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return err
	}
	n1, e1, err := count()
	if err != nil {
		return err
	}
	logf("nodes %d -> %d, edges %d -> %d in %s", n0, n1, e0, e1, time.Since(t0).Round(time.Millisecond))
	if uint64(n1) != after.NodeCount || uint64(e1) != after.EdgeCount {
		logf("WARNING: the engines disagree after the delete: sombra %d/%d, sqlite %d/%d", after.NodeCount, after.EdgeCount, n1, e1)
	}

	// sombra-compact.
	argv := []string{tool(*bin, "sombra-compact"), "--db", sdb, "--analyze", "--json"}
	header("sombra-compact --analyze", argv)
	r, err := runCmd(argv)
	if err != nil {
		return err
	}
	var an compactJSON
	if err := decodeJSON(r.stdout, &an); err != nil {
		return err
	}
	logf("file %s, %d pages, %d free, fragmentation %.1f%%, reclaimable %s (%s)",
		mib(an.Analysis.FileSize), an.Analysis.PageCount, an.Analysis.FreePages, an.Analysis.Fragmentation, mib(an.Analysis.Reclaimable), ms(r.wall))
	sBefore := fileSize(sdb) + walSize(sdb)
	argv = []string{tool(*bin, "sombra-compact"), "--db", sdb, "--json"}
	header("sombra-compact", argv)
	r, err = runCmd(argv)
	if err != nil {
		return err
	}
	var cj compactJSON
	if err := decodeJSON(r.stdout, &cj); err != nil {
		return err
	}
	if cj.Compaction == nil {
		return fmt.Errorf("sombra-compact did not compact: %s", r.stdout)
	}
	sAfter := fileSize(sdb) + walSize(sdb)
	c := cj.Compaction
	logf("wall %s (tool's duration %.0f ms), peak RSS %s: %s -> %s (-%.1f%%), pages %d -> %d, moved %d",
		ms(r.wall), c.DurationMS, mib(r.maxRSSKiB*1024), mib(sBefore), mib(sAfter), pctDrop(uint64(sBefore), uint64(sAfter)),
		c.PagesBefore, c.PagesAfter, c.PagesMoved)
	if in, err := sombraInfo(sdb); err == nil {
		logf("after compaction: %d nodes, %d edges", in.NodeCount, in.EdgeCount)
	}

	// SQLite VACUUM.
	qBefore := fileSize(ssq) + walSize(ssq)
	var freelist, pages int64
	sqlDB.QueryRow(`PRAGMA freelist_count`).Scan(&freelist)
	sqlDB.QueryRow(`PRAGMA page_count`).Scan(&pages)
	header("sqlite: VACUUM; PRAGMA wal_checkpoint(TRUNCATE)  (WAL mode, synchronous=FULL, mattn/go-sqlite3)", nil)
	logf("before: %s, %d pages, %d on the free list (%.1f%%)", mib(qBefore), pages, freelist, 100*float64(freelist)/float64(max(pages, 1)))
	t0 = time.Now()
	if _, err := sqlDB.Exec(`VACUUM`); err != nil {
		return err
	}
	dVac := time.Since(t0)
	walAfterVacuum := walSize(ssq)
	t1 := time.Now()
	if _, err := sqlDB.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return err
	}
	dCk := time.Since(t1)
	qAfter := fileSize(ssq) + walSize(ssq)
	logf("VACUUM %s (WAL then %s) + checkpoint %s = %s: %s -> %s (-%.1f%%)",
		ms(dVac), mib(walAfterVacuum), ms(dCk), ms(dVac+dCk), mib(qBefore), mib(qAfter), pctDrop(uint64(qBefore), uint64(qAfter)))

	logf("\n## summary   [load %s]", loadavg())
	logf("%-34s %12s %12s %12s %10s", "", "before", "after", "time", "MiB/s(after)")
	logf("%-34s %12s %12s %12s %10.1f", "sombra-compact", mib(sBefore), mib(sAfter), ms(r.wall), mibps(sAfter, r.wall))
	logf("%-34s %12s %12s %12s %10.1f", "SQLite VACUUM + wal_checkpoint", mib(qBefore), mib(qAfter), ms(dVac+dCk), mibps(qAfter, dVac+dCk))
	logf("sombra-compact / VACUUM time = %.2fx", float64(r.wall)/float64(dVac+dCk))
	for _, p := range []string{sdb, sdb + "-wal", sdb + "-shm", sdb + "-changes", ssq, ssq + "-wal", ssq + "-shm"} {
		os.Remove(p)
	}
	return nil
}

func pctDrop(a, b uint64) float64 {
	if a == 0 {
		return 0
	}
	return 100 * (float64(a) - float64(b)) / float64(a)
}

func sombraInfo(path string) (engine.Info, error) {
	db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
	if err != nil {
		return engine.Info{}, err
	}
	defer db.Close()
	return db.Info()
}

func sombraDelete(path string, k int64, batch int) (before, after engine.Info, d time.Duration, err error) {
	db, err := engine.Open(path)
	if err != nil {
		return
	}
	defer func() {
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}()
	if before, err = db.Info(); err != nil {
		return
	}
	t0 := time.Now()
	n := int64(before.NodeCount)
	for lo := int64(1); lo <= n; lo += int64(batch) * 10 / k {
		hi := min(n, lo+int64(batch)*10/k-1)
		err = db.Update(func(tx *engine.Tx) error {
			for id := lo; id <= hi; id++ {
				if id%10 < k {
					if err := tx.DeleteNode(engine.NodeID(id)); err != nil {
						return fmt.Errorf("delete node %d: %w", id, err)
					}
				}
			}
			return nil
		})
		if err != nil {
			return
		}
	}
	if _, err = db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		return
	}
	d = time.Since(t0)
	after, err = db.Info()
	return
}
