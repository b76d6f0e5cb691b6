package engine

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// A run of slow transactions (a salvage, an import) gives one warning and
// a count, not one warning each.
func TestSlowOperationWarningsAreRateLimited(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	db := mustOpen(t, tempDB(t), Config{Logger: log, SlowOperation: time.Nanosecond})
	const n = 240
	for i := 0; i < n; i++ {
		err := db.Update(func(tx *Tx) error { _, err := tx.CreateNode("N", nil); return err })
		if err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if c := strings.Count(out, `msg="slow operation"`); c == 0 || c > 3 {
		t.Fatalf("%d slow-operation warnings for %d slow transactions, want 1 to 3:\n%s", c, n, out)
	}
	if !strings.Contains(out, `msg="slow operations not logged one by one"`) {
		t.Fatalf("no summary of the warnings left out:\n%s", out)
	}
}
