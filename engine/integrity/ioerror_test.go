package integrity

import (
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/vfs"
)

// eioOnRead fails database-file reads with EIO: the nth read after arm is
// called, and every later one too when sticky.
type eioOnRead struct {
	mu     sync.Mutex
	armed  bool
	count  int
	nth    int
	sticky bool
	failed int
}

func (e *eioOnRead) arm(nth int, sticky bool) {
	e.mu.Lock()
	e.armed, e.count, e.nth, e.sticky, e.failed = true, 0, nth, sticky, 0
	e.mu.Unlock()
}

func (e *eioOnRead) rule(op vfs.Op, name string, _ int) *vfs.Fault {
	if op != vfs.OpRead || !strings.HasSuffix(name, ".db") {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.armed {
		return nil
	}
	e.count++
	if e.count == e.nth || (e.sticky && e.count > e.nth) {
		e.failed++
		return &vfs.Fault{Err: &os.PathError{Op: "read", Path: name, Err: syscall.EIO}}
	}
	return nil
}

// TestReadErrorIsNotCorruption: a page read failing with EIO (a transient
// disk error, the data intact) must come back as that I/O error, not as a
// checksum issue in a report that calls the database corrupt.
func TestReadErrorIsNotCorruption(t *testing.T) {
	path := build(t)
	for _, tc := range []struct {
		name   string
		opts   Options
		nth    int
		sticky bool
	}{
		{"quick, one read", Options{}, 3, false},
		{"full, one read", Options{Full: true}, 3, false},
		{"full, every read from the 20th", Options{Full: true}, 20, true}, // of ~36 (read-ahead reads 8 pages at a time)
		{"sampled, one read", Options{SamplePages: 10}, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fault := &eioOnRead{}
			ffs := vfs.NewFaultFS(vfs.OS)
			ffs.SetRule(fault.rule)
			db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true, FS: ffs})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			fault.arm(tc.nth, tc.sticky)
			rep, err := CheckDB(db, tc.opts)
			if fault.failed == 0 {
				t.Fatalf("no read was failed (%d reads)", fault.count)
			}
			if !errors.Is(err, syscall.EIO) || errors.Is(err, engine.ErrCorrupt) {
				t.Fatalf("err = %v, want the EIO and not ErrCorrupt; report %+v", err, rep)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("err %q does not name %s", err, path)
			}
			// The disk recovered: the same database checks healthy.
			ffs.SetRule(nil)
			rep, err = CheckDB(db, tc.opts)
			if err != nil || !rep.IsHealthy() {
				t.Fatalf("after the fault: report %+v, %v", rep, err)
			}
		})
	}
}
