package checkpoint_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sombradb/sombra/internal/cli/clitest"
)

func TestMain(m *testing.M) {
	clitest.RunHolderIfChild()
	os.Exit(m.Run())
}

// TestNoWaitByDefault (issue 12 #10): --wait defaults to 0s, and full,
// restart and truncate honour it: with another process holding the writer
// lock they exit 3 at once (not after five seconds) naming that process,
// with no --wait and with --wait 0s; --wait still waits.
func TestNoWaitByDefault(t *testing.T) {
	_, path, w := pending(t, 3)
	w.Close()
	holder := clitest.Hold(t, path, "write")
	want := fmt.Sprintf("writer lock held by pid %d (checkpoint.test)", holder)
	for _, mode := range []string{"full", "restart", "truncate"} {
		for _, wait := range [][]string{nil, {"--wait", "0s"}} {
			start := time.Now()
			_, errOut, code := run(t, append([]string{"--db", path, "--mode", mode}, wait...)...)
			took := time.Since(start)
			if code != 3 || !strings.Contains(errOut, want) {
				t.Errorf("%s %v: code=%d stderr=%q, want %q", mode, wait, code, errOut, want)
			}
			if took > 2*time.Second {
				t.Errorf("%s %v: took %v, want an immediate failure", mode, wait, took)
			}
		}
	}
	start := time.Now()
	if _, _, code := run(t, "--db", path, "--mode", "full", "--wait", "1500ms"); code != 3 || time.Since(start) < 1400*time.Millisecond {
		t.Errorf("--wait 1500ms: code=%d after %v", code, time.Since(start))
	}
}

// TestCheckpointLSNAgreesWithStatus (issue 12 #9): a full checkpoint with
// nothing left to copy (an earlier checkpoint did it) reports the LSN the
// file holds, as --status does, not 0.
func TestCheckpointLSNAgreesWithStatus(t *testing.T) {
	_, path, w := pending(t, 5)
	if _, err := w.Checkpoint(); err != nil { // passive: copies all, leaves the WAL
		t.Fatal(err)
	}
	w.Close()
	out, errOut, code := run(t, "--db", path, "--mode", "full", "--json")
	var r struct {
		CheckpointLSN uint64 `json:"checkpoint_lsn"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("code=%d out=%s stderr=%s", code, out, errOut)
	}
	out, _, _ = run(t, "--db", path, "--status", "--json")
	var s struct {
		LastCheckpointLSN uint64 `json:"last_checkpoint_lsn"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if r.CheckpointLSN == 0 || r.CheckpointLSN != s.LastCheckpointLSN {
		t.Errorf("checkpoint_lsn %d, --status last_checkpoint_lsn %d", r.CheckpointLSN, s.LastCheckpointLSN)
	}
}
