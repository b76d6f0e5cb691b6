package integrity

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// TestCheckCancelled: a check whose context is cancelled in mid-run stops
// with an error matching context.Canceled, not a report of the pages it
// did not read and not an "I/O error".
func TestCheckCancelled(t *testing.T) {
	path := build(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := CheckContext(ctx, path, Options{Full: true, Progress: func(done, _ int64) {
		if done > 0 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if strings.Contains(err.Error(), "I/O error") {
		t.Errorf("a cancelled check reported as an I/O error: %v", err)
	}
}

// TestCheckProgressTotal: progress ends at the file's size, in both modes
// (a full check reads pages in three passes; the total is still the file).
func TestCheckProgressTotal(t *testing.T) {
	path := build(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, full := range []bool{false, true} {
		var last [2]int64
		calls := 0
		rep, err := Check(path, Options{Full: full, Progress: func(d, tot int64) { last = [2]int64{d, tot}; calls++ }})
		if err != nil || !rep.IsHealthy() {
			t.Fatalf("full=%v: %v %+v", full, err, rep)
		}
		if last != [2]int64{st.Size(), st.Size()} || calls < 1 {
			t.Errorf("full=%v: last progress %v after %d calls, want [%d %d]", full, last, calls, st.Size(), st.Size())
		}
	}
}
