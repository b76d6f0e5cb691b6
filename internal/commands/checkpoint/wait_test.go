package checkpoint_test

import (
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
