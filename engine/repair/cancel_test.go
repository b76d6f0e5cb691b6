package repair

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sombradb/sombra/internal/fixtures"
)

// TestSalvageCancelled: a salvage cancelled while scanning and while
// writing returns context.Canceled, leaves no temporary file and leaves an
// existing output (Overwrite) as it was.
func TestSalvageCancelled(t *testing.T) {
	src := fixture(t, fixtures.Healthy)
	for _, phase := range []string{"scan", "write", "check"} {
		t.Run(phase, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.db")
			old := []byte("an earlier output, not to be touched")
			if err := os.WriteFile(out, old, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stop := func(done, _ int64) {
				if done > 0 {
					cancel()
				}
			}
			opts := SalvageOptions{Overwrite: true}
			switch phase {
			case "scan":
				opts.Progress = stop
			case "write":
				opts.WriteProgress = stop
			case "check":
				opts.CheckProgress = stop
			}
			_, err := NewDatabaseRepair(src).SalvageToContext(ctx, out, opts)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if b, err := os.ReadFile(out); err != nil || string(b) != string(old) {
				t.Errorf("the earlier output changed: %q %v", b, err)
			}
			left, _ := filepath.Glob(out + ".*")
			left2, _ := filepath.Glob(out + "-*")
			if len(left)+len(left2) > 0 {
				t.Errorf("left behind: %v %v", left, left2)
			}
		})
	}
}

// TestSalvageProgressTotal: the scan's progress ends at the source's size.
// It counted every page twice (all pages, then the leaves again, each as
// page-size bytes against a total of twice the file): 648 MB for a 324 MB
// file.
func TestSalvageProgressTotal(t *testing.T) {
	src := fixture(t, fixtures.Healthy)
	st, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	var last [2]int64
	var writes [2]int64
	out := filepath.Join(t.TempDir(), "out.db")
	rep, err := NewDatabaseRepair(src).SalvageToWithOptions(out, SalvageOptions{
		Progress:      func(d, tot int64) { last = [2]int64{d, tot} },
		WriteProgress: func(d, tot int64) { writes = [2]int64{d, tot} },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(rep.PagesScanned) * int64(rep.PageSize); last != [2]int64{want, want} || want > st.Size() {
		t.Errorf("scan progress ended at %v, want [%d %d] (file %d bytes)", last, want, want, st.Size())
	}
	if n := int64(rep.NodesFound + rep.EdgesFound); writes != [2]int64{n, n} {
		t.Errorf("write progress ended at %v, want [%d %d] records", writes, n, n)
	}
}
