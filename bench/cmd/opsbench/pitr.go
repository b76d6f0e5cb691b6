package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sombradb/sombra/engine"
	bk "github.com/sombradb/sombra/engine/backup"
)

// cmdPITR measures point-in-time recovery: a database with WAL archiving on
// takes a full backup, then commits many small transactions (16 writers
// with group commit, each commit one node), archives the WAL and closes.
// The full backup is restored and the archive replayed up to a time
// (engine/backup Restore + ReplayWALUntil, timed separately), then the same
// is done end to end with `sombra-backup restore --until`.
func cmdPITR(args []string) error {
	fs := flag.NewFlagSet("pitr", flag.ExitOnError)
	bin := fs.String("bin", "", "directory with the sombra-* binaries")
	work := fs.String("work", "", "scratch directory")
	nodes := fs.Int("nodes", 20000, "nodes in the database before the backup")
	commits := fs.Int("commits", 20000, "small transactions committed after the backup (split in two halves)")
	workers := fs.Int("workers", 16, "committing goroutines (group commit)")
	fs.Parse(args)
	if *bin == "" {
		return fmt.Errorf("-bin is required")
	}
	if err := mustDir(*work); err != nil {
		return err
	}
	dbPath := filepath.Join(*work, "pitr.db")
	bdir := filepath.Join(*work, "pitr-backups")
	for _, p := range []string{dbPath, dbPath + "-wal", dbPath + "-shm", dbPath + "-changes", bdir} {
		os.RemoveAll(p)
	}
	header(fmt.Sprintf("PITR: %d nodes, archiving on, full backup, then %d one-node commits by %d writers (group commit)", *nodes, *commits, *workers), nil)
	db, err := engine.Create(dbPath)
	if err != nil {
		return err
	}
	err = db.Update(func(tx *engine.Tx) error {
		for i := range *nodes {
			if _, err := tx.CreateNode("User", engine.Properties{"i": engine.IntValue(int64(i)), "name": engine.StringValue(fmt.Sprintf("user-%08d", i))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	m := bk.NewBackupManager(db, bdir)
	if err := m.EnableWALArchiving(); err != nil {
		return err
	}
	if _, err := m.CreateFullBackup("base"); err != nil {
		return err
	}
	if err := db.EnableGroupCommit(time.Millisecond, *workers); err != nil {
		return err
	}
	commitN := func(n int) (time.Duration, error) {
		var wg sync.WaitGroup
		errs := make(chan error, *workers)
		t0 := time.Now()
		for w := range *workers {
			per := n / *workers
			if w < n%*workers {
				per++
			}
			wg.Go(func() {
				for j := range per {
					err := db.Update(func(tx *engine.Tx) error {
						_, err := tx.CreateNode("Event", engine.Properties{"w": engine.IntValue(int64(w)), "j": engine.IntValue(int64(j))})
						return err
					})
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return time.Since(t0), <-errs
	}
	half := *commits / 2
	d1, err := commitN(half)
	if err != nil {
		return err
	}
	time.Sleep(20 * time.Millisecond)
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	d2, err := commitN(*commits - half)
	if err != nil {
		return err
	}
	time.Sleep(20 * time.Millisecond)
	end := time.Now()
	logf("committed %d transactions in %s (%.0f commits/s, durable, group commit)", *commits, (d1 + d2).Round(time.Millisecond), float64(*commits)/(d1+d2).Seconds())
	ar, err := m.ArchiveWAL()
	if err != nil {
		return err
	}
	logf("final archive-wal: %d transactions, %d frames", ar.Transactions, ar.Frames)
	if err := db.Close(); err != nil {
		return err
	}
	archBytes, _ := dirBytes(filepath.Join(bdir, "wal"))
	logf("archive %s: %s", filepath.Join(bdir, "wal"), mib(archBytes))

	// Engine API: restore, then replay timed on its own.
	for _, tc := range []struct {
		name  string
		until time.Time
		want  uint64
	}{{"all", end, uint64(*nodes + *commits)}, {"half", mid, uint64(*nodes + half)}} {
		target := filepath.Join(*work, "pitr-restored-"+tc.name+".db")
		os.Remove(target)
		header(fmt.Sprintf("engine/backup: Restore(base) then ReplayWALUntil(%s) [%s]", tc.until.Format(time.RFC3339Nano), tc.name), nil)
		t0 := time.Now()
		rr, err := bk.Restore(bdir, "base", target, bk.Options{})
		if err != nil {
			return err
		}
		dRestore := time.Since(t0)
		t1 := time.Now()
		rp, err := bk.ReplayWALUntil(bdir, target, tc.until, bk.Options{})
		if err != nil {
			return err
		}
		dReplay := time.Since(t1)
		got, err := nodeCount(target)
		if err != nil {
			return err
		}
		ok := "OK"
		if got != tc.want {
			ok = fmt.Sprintf("WRONG (want %d)", tc.want)
		}
		logf("restore %s (%s); replay %d transactions, %d frames in %s = %.0f commits/s, %.0f frames/s; nodes after %d %s",
			ms(dRestore), mib(rr.Bytes), rp.Transactions, rp.Frames, ms(dReplay), float64(rp.Transactions)/dReplay.Seconds(),
			float64(rp.Frames)/dReplay.Seconds(), got, ok)
		for _, p := range []string{target, target + "-wal", target + "-shm"} {
			os.Remove(p)
		}
	}

	// End to end with the CLI (restore of the base included).
	target := filepath.Join(*work, "pitr-cli.db")
	os.Remove(target)
	until := end.UTC().Add(time.Second).Truncate(time.Second) // --until takes RFC 3339 seconds
	for time.Now().Before(until) {
		time.Sleep(50 * time.Millisecond)
	}
	argv := []string{tool(*bin, "sombra-backup"), "restore", "--dir", bdir, "--until", until.Format(time.RFC3339), "--db", target, "--json"}
	header("end to end: restore --until (base restore + replay)", argv)
	r, err := runCmd(argv)
	if err != nil {
		return err
	}
	var j restoreJSON
	if err := decodeJSON(r.stdout, &j); err != nil {
		return err
	}
	if j.Replay == nil {
		return fmt.Errorf("restore --until: no replay in %s", r.stdout)
	}
	got, err := nodeCount(target)
	if err != nil {
		return err
	}
	logf("wall %s: replayed %d transactions (%d frames), %.0f commits/s including the base restore; nodes %d (want %d); peak RSS %s",
		ms(r.wall), j.Replay.Transactions, j.Replay.Frames, float64(j.Replay.Transactions)/r.wall.Seconds(), got, *nodes+*commits, mib(r.maxRSSKiB*1024))
	for _, p := range []string{target, target + "-wal", target + "-shm", dbPath, dbPath + "-wal", dbPath + "-shm", dbPath + "-changes", bdir} {
		os.RemoveAll(p)
	}
	return nil
}

func nodeCount(path string) (uint64, error) {
	db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	in, err := db.Info()
	return in.NodeCount, err
}

func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return err
	})
	return n, err
}
