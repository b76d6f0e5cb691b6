package backup

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine"
)

type ack struct{ seq, lsn int64 }

// writerChild is the test binary re-executed as a process that commits
// continuously to path.
type writerChild struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	acks []ack
	done chan struct{}
	stop func() error
}

func startWriter(t *testing.T, path string) *writerChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SOMBRA_BACKUP_TEST_CHILD=writer", "SOMBRA_BACKUP_TEST_DB="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &writerChild{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var a ack
			if _, err := fmt.Sscanf(sc.Text(), "ack %d %d", &a.seq, &a.lsn); err == nil {
				w.mu.Lock()
				w.acks = append(w.acks, a)
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	w.stop = func() error {
		stdin.Close()
		<-w.done
		return cmd.Wait()
	}
	return w
}

func (w *writerChild) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acks)
}

func (w *writerChild) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for w.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("writer child acked only %d of %d commits", w.count(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkPrefix asserts the restored file holds exactly the acked commits
// with LSN <= end.
func checkPrefix(t *testing.T, path string, acks []ack, end uint64) {
	t.Helper()
	got := map[int64]bool{}
	for _, s := range seqs(t, path) {
		got[s] = true
	}
	before, after := 0, 0
	for _, a := range acks {
		in := uint64(a.lsn) <= end
		if in {
			before++
		} else {
			after++
		}
		if got[a.seq] != in {
			t.Fatalf("%s: commit seq %d (LSN %d) present=%v, backup ends at LSN %d", filepath.Base(path), a.seq, a.lsn, got[a.seq], end)
		}
	}
	if len(got) != before {
		t.Fatalf("%s: %d nodes restored, %d acked commits up to LSN %d", filepath.Base(path), len(got), before, end)
	}
	if before == 0 || after == 0 {
		t.Fatalf("the backup did not happen in the middle of the writes (%d before, %d after)", before, after)
	}
}

func TestBackupWhileAnotherProcessWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a writer process")
	}
	tmp := t.TempDir()
	dbPath := filepath.Join(tmp, "live.db")
	dir := filepath.Join(tmp, "backups")
	db := openDB(t, dbPath, engine.Config{WALAutoCheckpoint: 25})
	defer db.Close()
	m := NewBackupManager(db, dir)
	// Some bulk that the writer does not touch, so that an incremental
	// backup proportional to the change is visibly smaller than a full one.
	err := db.Update(func(tx *engine.Tx) error {
		for i := 0; i < 2000; i++ {
			if _, err := tx.CreateNode("Bulk", engine.Properties{"pad": engine.StringValue(fmt.Sprintf("%0300d", i))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	w := startWriter(t, dbPath)
	w.waitFor(t, 150)
	full, err := m.CreateFullBackup("full")
	if err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, w.count()+150) // many checkpoints and WAL restarts in the child
	inc, err := m.CreateIncrementalBackup("inc")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("full: LSN %d, %d pages; incremental: LSN %d, %d of %d pages via %s, read %d", full.EndLSN, full.Pages, inc.EndLSN, inc.Pages, inc.PageCount, inc.ChangeSource, inc.PagesRead)
	if inc.Pages*4 > inc.PageCount {
		t.Errorf("incremental holds %d of %d pages", inc.Pages, inc.PageCount)
	}
	if inc.ChangeSource == ChangeScan {
		t.Errorf("incremental scanned: the child's checkpoints were not recorded in the change log")
	}
	w.waitFor(t, w.count()+50)
	if err := w.stop(); err != nil {
		t.Fatalf("writer child: %v", err)
	}
	acks := w.acks

	r1 := filepath.Join(tmp, "full.db")
	if _, err := m.RestoreFromBackup("full", r1); err != nil {
		t.Fatal(err)
	}
	checkPrefix(t, r1, acks, full.EndLSN)
	r2 := filepath.Join(tmp, "inc.db")
	if _, err := m.RestoreFromBackup("inc", r2); err != nil {
		t.Fatal(err)
	}
	checkPrefix(t, r2, acks, inc.EndLSN)
	if h := hashOf(t, r2); h != inc.LogicalHash {
		t.Fatalf("restored hash %s, recorded %s", h, inc.LogicalHash)
	}
	if v, err := m.VerifyBackup("inc"); err != nil || !v.OK {
		t.Fatalf("verify: %+v %v", v, err)
	}
}

// TestArchivingAcrossProcesses: archiving enabled from this process is
// honoured by a writer process that resets its WAL, so a point-in-time
// restore reaches every commit of the writer.
func TestArchivingAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a writer process")
	}
	tmp := t.TempDir()
	dbPath := filepath.Join(tmp, "live.db")
	dir := filepath.Join(tmp, "backups")
	db := openDB(t, dbPath, engine.Config{WALAutoCheckpoint: -1})
	defer db.Close()
	m := NewBackupManager(db, dir)
	if err := m.EnableWALArchiving(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateFullBackup("full"); err != nil {
		t.Fatal(err)
	}
	w := startWriter(t, dbPath)
	w.waitFor(t, 200) // the writer resets its WAL every 40 commits
	if err := w.stop(); err != nil {
		t.Fatalf("writer child: %v", err)
	}
	if _, err := m.ArchiveWAL(); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(tmp, "pitr.db")
	r, err := m.RestoreToTime(time.Now().Add(time.Hour), target)
	if err != nil {
		t.Fatal(err)
	}
	got := seqs(t, target)
	if len(got) != len(w.acks) || got[len(got)-1] != w.acks[len(w.acks)-1].seq {
		t.Fatalf("restored %d commits up to LSN %d, the writer acked %d", len(got), r.EndLSN, len(w.acks))
	}
}
