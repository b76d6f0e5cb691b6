package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/sombradb/sombra/engine"
)

// backupJSON is the part of `sombra-backup --json` the benchmark reads.
type backupJSON struct {
	Size         int64   `json:"file_size"`
	PagesCopied  uint64  `json:"pages_copied"`
	PagesRead    uint64  `json:"pages_read"`
	PageCount    uint64  `json:"page_count"`
	ChangeSource string  `json:"change_source"`
	DurationMS   float64 `json:"duration_ms"`
	Throughput   int64   `json:"throughput_bytes_per_sec"`
	Type         string  `json:"type"`
}

// restoreJSON is the part of `sombra-backup restore --json` the benchmark reads.
type restoreJSON struct {
	Chain        []string `json:"chain"`
	PagesWritten uint64   `json:"pages_written"`
	Bytes        int64    `json:"file_size"`
	DurationMS   float64  `json:"duration_ms"`
	Replay       *struct {
		Transactions int  `json:"transactions"`
		Frames       int  `json:"frames"`
		ArchiveEnd   bool `json:"archive_end"`
	} `json:"replay"`
}

// sqliteBackupOut is what sqlite-backup-child prints.
type sqliteBackupOut struct {
	Pages   int   `json:"pages"`
	StepNS  int64 `json:"step_ns"`  // Step(-1)
	TotalNS int64 `json:"total_ns"` // open to close of the destination (fsynced)
}

// cmdSQLiteBackupChild copies SRC into a new DST with SQLite's online backup
// API (sqlite3_backup_init/step(-1)/finish via mattn/go-sqlite3), the
// destination with synchronous=FULL so the copy is durable when it returns.
// It runs in its own process so its peak RSS is its own.
func cmdSQLiteBackupChild(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: sqlite-backup-child SRC DST")
	}
	src, dst := args[0], args[1]
	t0 := time.Now()
	sdb, err := sql.Open("sqlite3", "file:"+src+"?mode=ro")
	if err != nil {
		return err
	}
	defer sdb.Close()
	ddb, err := sql.Open("sqlite3", "file:"+dst+"?_synchronous=FULL")
	if err != nil {
		return err
	}
	ctx := context.Background()
	sc, err := sdb.Conn(ctx)
	if err != nil {
		return err
	}
	defer sc.Close()
	dc, err := ddb.Conn(ctx)
	if err != nil {
		return err
	}
	var out sqliteBackupOut
	err = dc.Raw(func(d any) error {
		return sc.Raw(func(s any) error {
			bk, err := d.(*sqlite3.SQLiteConn).Backup("main", s.(*sqlite3.SQLiteConn), "main")
			if err != nil {
				return err
			}
			ts := time.Now()
			done, err := bk.Step(-1)
			out.StepNS = time.Since(ts).Nanoseconds()
			out.Pages = bk.PageCount()
			if err == nil && !done {
				err = fmt.Errorf("backup step(-1) not done")
			}
			if ferr := bk.Finish(); err == nil {
				err = ferr
			}
			return err
		})
	})
	if cerr := dc.Close(); err == nil {
		err = cerr
	}
	if cerr := ddb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	out.TotalNS = time.Since(t0).Nanoseconds()
	return json.NewEncoder(os.Stdout).Encode(out)
}

// cmdBackup: full backup vs cp+sync vs SQLite's backup API, peak RSS,
// incremental after ~1% of pages changed, restore throughput.
func cmdBackup(args []string) error {
	fs := flag.NewFlagSet("backup", flag.ExitOnError)
	bin := fs.String("bin", "", "directory with the sombra-* binaries")
	db := fs.String("db", "", "Sombra database (about 1 GiB, checkpointed); its page LSNs are changed by the incremental step")
	sq := fs.String("sqlite", "", "SQLite database with the same logical graph (sqlite-load)")
	work := fs.String("work", "", "scratch directory on the same disk (gets copies up to 2x the database)")
	runs := fs.Int("runs", 3, "warm rounds (each method once per round, interleaved)")
	coldRound := fs.Bool("cold", true, "one more round with the source file evicted from the page cache before each method")
	pct := fs.Float64("change-pct", 1, "percent of the database's pages to change before the incremental backup")
	fs.Parse(args)
	if *bin == "" || *db == "" || *sq == "" {
		return fmt.Errorf("-bin, -db and -sqlite are required")
	}
	if err := mustDir(*work); err != nil {
		return err
	}
	dbSize, sqSize := fileSize(*db), fileSize(*sq)
	logf("# opsbench backup: sombra %s (%s, WAL %d bytes), sqlite %s (%s, WAL %d bytes)",
		*db, mib(dbSize), walSize(*db), *sq, mib(sqSize), walSize(*sq))
	self, err := os.Executable()
	if err != nil {
		return err
	}
	backup := tool(*bin, "sombra-backup")

	type method struct {
		name  string
		bytes int64 // bytes of source data the throughput is computed on
		src   string
		argv  func(i int) []string
		clean func(i int)
		rss   int64
		walls []time.Duration
		cold  []time.Duration
		extra string
	}
	cpDst := filepath.Join(*work, "cp.db")
	sqDst := filepath.Join(*work, "sqlite-backup.sqlite")
	fullDir := func(kind string, i int) string { return filepath.Join(*work, fmt.Sprintf("bk-%s-%d", kind, i)) }
	methods := []*method{
		{name: "cp+sync (sombra file)", bytes: dbSize, src: *db,
			argv:  func(int) []string { return []string{"sh", "-c", `cp "$1" "$2" && sync "$2"`, "sh", *db, cpDst} },
			clean: func(int) { os.Remove(cpDst) }},
		{name: "sombra-backup --type full", bytes: dbSize, src: *db,
			argv: func(i int) []string {
				return []string{backup, "--type", "full", "--db", *db, "--output", filepath.Join(fullDir("hash", i), "full"), "--json"}
			},
			clean: func(i int) { os.RemoveAll(fullDir("hash", i)) }},
		{name: "sombra-backup --type full --no-hash", bytes: dbSize, src: *db,
			argv: func(i int) []string {
				return []string{backup, "--type", "full", "--db", *db, "--output", filepath.Join(fullDir("nohash", i), "full"), "--no-hash", "--json"}
			},
			clean: func(i int) { os.RemoveAll(fullDir("nohash", i)) }},
		{name: "cp+sync (sqlite file)", bytes: sqSize, src: *sq,
			argv:  func(int) []string { return []string{"sh", "-c", `cp "$1" "$2" && sync "$2"`, "sh", *sq, sqDst} },
			clean: func(int) { os.Remove(sqDst) }},
		{name: "sqlite3_backup_step(-1) (mattn Backup)", bytes: sqSize, src: *sq,
			argv:  func(int) []string { return []string{self, "sqlite-backup-child", *sq, sqDst} },
			clean: func(int) { os.Remove(sqDst); os.Remove(sqDst + "-journal") }},
	}
	for _, m := range methods {
		m.clean(0)
	}
	keepChain := -1 // the run whose full backup (with hash) is kept as the chain's base
	total := *runs
	if *coldRound {
		total++
	}
	for i := 1; i <= total; i++ {
		cold := *coldRound && i == total
		kind := "warm"
		if cold {
			kind = "cold (source evicted from page cache)"
		}
		logf("\n## round %d/%d, %s   [load %s, %s]", i, total, kind, loadavg(), time.Now().Format("15:04:05"))
		for _, m := range methods {
			argv := m.argv(i)
			if i == 1 || cold {
				logf("$ %s", shellJoin(argv))
			}
			if cold {
				if err := dropFileCache(m.src); err != nil {
					return err
				}
			}
			r, err := runCmd(argv)
			if err != nil {
				return err
			}
			if cold {
				m.cold = append(m.cold, r.wall)
			} else {
				m.walls = append(m.walls, r.wall)
				m.rss = max(m.rss, r.maxRSSKiB)
			}
			line := fmt.Sprintf("%-42s %9s  %7.1f MiB/s  peak RSS %s", m.name, ms(r.wall), mibps(m.bytes, r.wall), mib(r.maxRSSKiB*1024))
			if len(r.stdout) > 0 && r.stdout[0] == '{' {
				if filepath.Base(argv[0]) == "sombra-backup" {
					var j backupJSON
					if err := decodeJSON(r.stdout, &j); err != nil {
						return err
					}
					line += fmt.Sprintf("  [json: %s, size %s, pages %d, duration %.0f ms]", j.Type, mib(j.Size), j.PagesCopied, j.DurationMS)
				} else {
					var j sqliteBackupOut
					if err := decodeJSON(r.stdout, &j); err != nil {
						return err
					}
					line += fmt.Sprintf("  [pages %d, step(-1) %s]", j.Pages, ms(time.Duration(j.StepNS)))
				}
			}
			logf("%s", line)
			if m.name == "sombra-backup --type full" && !cold && keepChain < 0 && i == *runs {
				keepChain = i // keep the last warm full backup as the base of the chain
				continue
			}
			m.clean(i)
		}
	}
	cpS, fullS, noHashS, cpSq, sqS := methods[0], methods[1], methods[2], methods[3], methods[4]

	// Incremental: change ~pct% of the pages, checkpoint, back up.
	chain := fullDir("hash", keepChain)
	header(fmt.Sprintf("change %.1f%% of the pages (random nodes' age property, one transaction, then checkpoint truncate)", *pct), nil)
	pagesChanged, pageCount, err := touchPages(*db, *pct)
	if err != nil {
		return err
	}
	logf("pages changed (WAL frames of the transaction): %d of %d (%.2f%%)", pagesChanged, pageCount, 100*float64(pagesChanged)/float64(pageCount))
	type incRun struct {
		wall time.Duration
		j    backupJSON
	}
	incr := map[string][]incRun{}
	for _, variant := range []string{"hash", "no-hash"} {
		for i := 1; i <= *runs; i++ {
			name := fmt.Sprintf("inc-%s-%d", variant, i)
			argv := []string{backup, "--type", "incremental", "--db", *db, "--output", filepath.Join(chain, name), "--base", "full", "--json"}
			if variant == "no-hash" {
				argv = append(argv, "--no-hash")
			}
			if i == 1 {
				header("incremental backup, "+variant, argv)
			}
			r, err := runCmd(argv)
			if err != nil {
				return err
			}
			var j backupJSON
			if err := decodeJSON(r.stdout, &j); err != nil {
				return err
			}
			incr[variant] = append(incr[variant], incRun{r.wall, j})
			logf("incremental %-8s %9s  pages copied %d of %d (%.2f%%), pages read %d, change source %s, size %s, peak RSS %s",
				variant, ms(r.wall), j.PagesCopied, j.PageCount, 100*float64(j.PagesCopied)/float64(j.PageCount), j.PagesRead, j.ChangeSource, mib(j.Size), mib(r.maxRSSKiB*1024))
		}
	}

	// Restore: the full backup alone, and the chain full + incremental.
	restored := filepath.Join(*work, "restored.db")
	var restFull, restChain []time.Duration
	var restBytes int64
	for _, name := range []string{"full", "inc-hash-1"} {
		for i := 1; i <= *runs; i++ {
			argv := []string{backup, "restore", "--dir", chain, "--name", name, "--db", restored, "--json"}
			if i == 1 {
				header("restore "+name, argv)
			}
			r, err := runCmd(argv)
			if err != nil {
				return err
			}
			var j restoreJSON
			if err := decodeJSON(r.stdout, &j); err != nil {
				return err
			}
			restBytes = j.Bytes
			logf("restore %-10s %9s  %7.1f MiB/s  chain %v, pages %d, %s, peak RSS %s",
				name, ms(r.wall), mibps(j.Bytes, r.wall), j.Chain, j.PagesWritten, mib(j.Bytes), mib(r.maxRSSKiB*1024))
			if name == "full" {
				restFull = append(restFull, r.wall)
			} else {
				restChain = append(restChain, r.wall)
			}
			for _, p := range []string{restored, restored + "-wal", restored + "-shm"} {
				os.Remove(p)
			}
		}
	}
	os.RemoveAll(chain)

	// Summary.
	logf("\n## summary   [load %s]", loadavg())
	cps := summarize(cpS.walls)
	logf("%-42s %12s %12s %12s %12s %10s", "method", "median", "MiB/s", "cold", "cold MiB/s", "peak RSS")
	for _, m := range methods {
		s, c := summarize(m.walls), summarize(m.cold)
		logf("%-42s %12s %12.1f %12s %12.1f %10s", m.name, ms(s.median), mibps(m.bytes, s.median), ms(c.median), mibps(m.bytes, c.median), mib(m.rss*1024))
	}
	ratio := func(m *method) float64 {
		return mibps(m.bytes, summarize(m.walls).median) / mibps(cpS.bytes, cps.median)
	}
	ratioCold := func(m *method) float64 {
		return mibps(m.bytes, summarize(m.cold).median) / mibps(cpS.bytes, summarize(cpS.cold).median)
	}
	logf("target full backup >= 80%% of cp+sync throughput:")
	logf("  sombra-backup (default, with logical hash): %.0f%% of cp (cold %.0f%%)  %s", 100*ratio(fullS), 100*ratioCold(fullS), metNot(ratio(fullS) >= 0.8))
	logf("  sombra-backup --no-hash:                    %.0f%% of cp (cold %.0f%%)  %s", 100*ratio(noHashS), 100*ratioCold(noHashS), metNot(ratio(noHashS) >= 0.8))
	sqRatio := mibps(sqS.bytes, summarize(sqS.walls).median) / mibps(cpSq.bytes, summarize(cpSq.walls).median)
	logf("  (SQLite backup API: %.0f%% of cp+sync of its own file; same logical data in %s vs sombra %s / %s no-hash)",
		100*sqRatio, ms(summarize(sqS.walls).median), ms(summarize(fullS.walls).median), ms(summarize(noHashS.walls).median))
	logf("memory: sombra-backup peak RSS %s (--no-hash %s) with the CLI's page cache of 64 MiB (engine default); database %s",
		mib(fullS.rss*1024), mib(noHashS.rss*1024), mib(dbSize))
	for _, v := range []struct {
		variant string
		full    *method
	}{{"hash", fullS}, {"no-hash", noHashS}} {
		var ws []time.Duration
		for _, r := range incr[v.variant] {
			ws = append(ws, r.wall)
		}
		is, fs := summarize(ws), summarize(v.full.walls)
		j := incr[v.variant][0].j
		x := float64(is.median) / float64(fs.median)
		logf("incremental (%s) after %.2f%% of pages changed: %s = %.1f%% of the full backup's %s (target <= 5%%: %s; change source %s)",
			v.variant, 100*float64(j.PagesCopied)/float64(j.PageCount), ms(is.median), 100*x, ms(fs.median), metNot(x <= 0.05), j.ChangeSource)
	}
	rf, rc := summarize(restFull), summarize(restChain)
	logf("restore full backup: %s, %.1f MiB/s (%.0f%% of cp+sync);  restore full+incremental chain: %s, %.1f MiB/s",
		ms(rf.median), mibps(restBytes, rf.median), 100*mibps(restBytes, rf.median)/mibps(cpS.bytes, cps.median), ms(rc.median), mibps(restBytes, rc.median))
	return nil
}

// touchPages sets the age property of random nodes in one transaction so
// that about pct% of the database's pages change, checkpoints (truncate)
// and returns the pages the checkpoint wrote and the page count.
func touchPages(path string, pct float64) (written int, pages uint64, err error) {
	db, err := engine.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}()
	in, err := db.Info()
	if err != nil {
		return 0, 0, err
	}
	k := int(float64(in.PageCount) * pct / 100)
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	t0 := time.Now()
	err = db.Update(func(tx *engine.Tx) error {
		for range k {
			id := engine.NodeID(1 + rng.Int64N(int64(in.NodeCount)))
			if err := tx.SetNodeProperty(id, "age", engine.IntValue(int64(18+rng.IntN(60)))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	cr, err := db.CheckpointWithMode(engine.CheckpointTruncate)
	if err != nil {
		return 0, 0, err
	}
	// The commit's own auto-checkpoint may already have copied the frames;
	// the WAL still holds them (one frame per changed page) until reset.
	logf("%d property updates committed and checkpointed in %s (WAL frames %d)", k, time.Since(t0).Round(time.Millisecond), cr.WALFrames)
	return cr.WALFrames, in.PageCount, nil
}
