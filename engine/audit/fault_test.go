package audit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sombradb/sombra/engine/vfs"
)

// TestNewAuditLoggerFaults: a new log whose creation, lock or directory
// fsync fails is not opened, the error is returned wrapped, and no file is
// left; an existing log that fails to open is left as it was.
func TestNewAuditLoggerFaults(t *testing.T) {
	eio := &os.PathError{Op: "x", Path: "y", Err: syscall.EIO}
	for _, c := range []struct {
		name     string
		existing bool
		rule     vfs.Rule
	}{
		{"create", false, vfs.NthOp(vfs.OpCreate, "audit.log", 1, false, vfs.Fault{Err: eio})},
		{"lock", false, vfs.NthOp(vfs.OpLock, "audit.log", 1, false, vfs.Fault{Err: eio})},
		{"directory fsync", false, vfs.NthOp(vfs.OpSyncDir, "", 1, false, vfs.Fault{Err: eio})},
		{"open existing", true, vfs.NthOp(vfs.OpOpen, "audit.log", 1, false, vfs.Fault{Err: eio})},
		{"read existing", true, vfs.NthOp(vfs.OpRead, "audit.log", 1, false, vfs.Fault{Err: eio})},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			var before []byte
			if c.existing {
				a, err := NewAuditLogger(path)
				must(t, err)
				a.Record("node_create", "alice", "node:1", nil)
				must(t, a.Close())
				before, err = os.ReadFile(path)
				must(t, err)
			}
			ffs := vfs.NewFaultFS(vfs.OS)
			ffs.SetRule(c.rule)
			a, err := NewAuditLoggerWithOptions(path, Options{FS: ffs})
			if err == nil {
				a.Close()
				t.Fatal("opened despite the fault")
			}
			if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "audit log") {
				t.Fatalf("error %v, want the EIO wrapped", err)
			}
			after, rerr := os.ReadFile(path)
			if !c.existing {
				if !errors.Is(rerr, os.ErrNotExist) {
					t.Fatalf("a log that failed to open was left: %v", rerr)
				}
				return
			}
			if string(after) != string(before) {
				t.Fatal("the existing log changed")
			}
		})
	}
}

// TestAuditRecordFaults: a record whose write fails (whole or torn) or
// whose fsync fails is reported by Err and Sync, wrapped; the file never
// holds a partial record, later records continue the chain, and the log
// verifies. A kill during a write leaves a torn tail that the next logger
// cuts off.
func TestAuditRecordFaults(t *testing.T) {
	for _, c := range []struct {
		name  string
		fault vfs.Fault
		op    vfs.Op
		kept  bool // the failing record is in the file
	}{
		{"write", vfs.Fault{Err: syscall.ENOSPC}, vfs.OpWrite, false},
		{"torn write", vfs.Fault{Err: syscall.ENOSPC, Tear: 20}, vfs.OpWrite, false},
		{"fsync", vfs.Fault{Err: syscall.EIO}, vfs.OpSync, true},
		{"crash in a write", vfs.Fault{Tear: 20, Crash: true}, vfs.OpWrite, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			ffs := vfs.NewFaultFS(vfs.OS)
			a, err := NewAuditLoggerWithOptions(path, Options{FS: ffs})
			must(t, err)
			defer a.Close()
			a.Record("node_create", "alice", "node:1", nil)
			a.Record("transaction_commit", "alice", "", nil)
			must(t, a.Err())
			ffs.SetRule(vfs.NthOp(c.op, "audit.log", 1, false, c.fault))
			a.Record("transaction_rollback", "bob", "", nil) // a boundary: written and fsynced
			want := syscall.Errno(syscall.ENOSPC)
			if c.fault.Crash {
				want = 0
			} else if c.op == vfs.OpSync {
				want = syscall.EIO
			}
			if want != 0 {
				if err := a.Err(); !errors.Is(err, want) || !strings.HasPrefix(err.Error(), "audit log "+path) {
					t.Fatalf("Err after a failed %s: %v", c.name, err)
				}
				if err := a.Sync(); !errors.Is(err, want) {
					t.Fatalf("Sync after a failed %s: %v", c.name, err)
				}
			} else if err := a.Err(); !errors.Is(err, vfs.ErrCrashed) {
				t.Fatalf("Err after the crash: %v", err)
			}
			if c.fault.Crash {
				a.Close()
				ffs.Revive()
				if res, err := VerifyFile(path); err != nil || !res.TornTail || res.Records != 2 {
					t.Fatalf("after the kill: %+v %v, want 2 records and a torn tail", res, err)
				}
				b, err := NewAuditLogger(path) // cuts the torn tail
				must(t, err)
				b.Record("node_delete", "bob", "node:1", nil)
				must(t, b.Close())
			} else {
				a.Record("edge_create", "bob", "edge:1", nil)
				if err := a.Close(); !errors.Is(err, want) {
					t.Fatalf("Close after a failed %s: %v", c.name, err)
				}
			}
			res, err := VerifyFile(path)
			if err != nil || res.TornTail {
				t.Fatalf("the log after a failed %s: %+v %v", c.name, res, err)
			}
			wantN := uint64(3)
			if c.kept && !c.fault.Crash {
				wantN = 4
			}
			if res.Records != wantN {
				t.Fatalf("%d records, want %d", res.Records, wantN)
			}
		})
	}
}
