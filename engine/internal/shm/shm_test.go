package shm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"

	"github.com/sombradb/sombra/engine/vfs"
)

// A log restart stores a new salt and a zero checkpoint count. Another
// process reading (salt, count), or the disk receiving the mapping, between
// the two stores must never see the new salt beside the old log's count:
// it would take the new log's frames as already in the database file. The
// observer reads as Backfill does, salt first; with the stores in the
// wrong order it sees generation s with generation s-1's count.
func TestSetBackfillNeverPairsNewSaltWithOldCount(t *testing.T) {
	s, err := Open(vfs.OS, filepath.Join(t.TempDir(), "x.db-shm"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for gen := uint64(1); !stop.Load(); gen++ {
			_ = s.SetBackfill(gen, 0)
			_ = s.SetBackfill(gen, int(1000+gen))
		}
	}()
	deadline := time.Now().Add(500 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		salt := s.ReadU64(offSalt)
		count := s.ReadU64(offBackfill)
		if salt > 1 && count == 1000+salt-1 {
			stop.Store(true)
			<-done
			t.Fatalf("after %d reads: salt %d beside the previous log's count %d", n, salt, count)
		}
	}
	stop.Store(true)
	<-done
}

// A coordination file that cannot be initialised (the disk is full) is not
// left behind: Open used to create it and fail writing it, leaving an empty
// file that every later open tripped on.
func TestOpenOnFullDiskLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	ffs := vfs.NewFaultFS(vfs.OS)
	ffs.SetRule(vfs.NthOp(vfs.OpWrite, "-shm", 1, true, vfs.Fault{Err: syscall.ENOSPC}))
	_, err := Open(ffs, filepath.Join(dir, "x.db-shm"))
	if !errors.Is(err, syscall.ENOSPC) || !CannotShare(err) {
		t.Fatalf("open on a full disk: %v, want ENOSPC", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

// Table of the states Open finds the file in.
func TestOpenStates(t *testing.T) {
	deadPID := func(t *testing.T) int {
		cmd := exec.Command("true")
		if err := cmd.Run(); err != nil {
			t.Skip(err)
		}
		return cmd.Process.Pid
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
		check func(t *testing.T, path string)
	}{
		{"absent", nil, nil},
		{"empty, left by an older version", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"short", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("SOMBRSHM\x01"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"stale temporary of a killed creator", func(t *testing.T, path string) {
			dead := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+strconv.Itoa(deadPID(t))+"-1.tmp-shm")
			live := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+strconv.Itoa(os.Getppid())+"-1.tmp-shm")
			for _, n := range []string{dead, live} {
				if err := os.WriteFile(n, make([]byte, mapSize), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, func(t *testing.T, path string) {
			ents, _ := os.ReadDir(filepath.Dir(path))
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			want := []string{"." + filepath.Base(path) + "." + strconv.Itoa(os.Getppid()) + "-1.tmp-shm", filepath.Base(path)}
			if !slices.Equal(names, want) {
				t.Errorf("files %v, want %v (the dead creator's temporary removed, the live one's kept)", names, want)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db-shm")
			if tc.setup != nil {
				tc.setup(t, path)
			}
			s, err := Open(vfs.OS, path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			b, err := os.ReadFile(path)
			if err != nil || len(b) != mapSize || string(b[:8]) != "SOMBRSHM" {
				t.Fatalf("file after open: %d bytes, %q, %v", len(b), b[:min(8, len(b))], err)
			}
			if tc.check != nil {
				tc.check(t, path)
			}
		})
	}
}

// Creators racing for a new file all end up sharing one.
func TestOpenConcurrentCreators(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db-shm")
	const n = 8
	files := make([]*File, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			files[i], errs[i] = Open(vfs.OS, path)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		defer files[i].Close()
	}
	files[0].BumpCounter()
	for i := range n {
		if files[i].Counter() != 1 {
			t.Fatalf("opener %d does not share the file", i)
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Fatalf("files left: %v", ents)
	}
}

// A private file keeps its state in memory: locks always succeed (there
// is nobody to exclude), fields read back, nothing touches the disk.
func TestOpenPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db-shm")
	s := OpenPrivate(path)
	if !s.Private() {
		t.Fatal("not private")
	}
	for _, b := range []int64{LockWriter, LockCkpt, LockGate, LockOpen, SlotLock(3)} {
		if ok, err := s.TryLock(b, true); !ok || err != nil {
			t.Fatalf("lock %d: %v %v", b, ok, err)
		}
	}
	if err := s.LockTimeout(LockOpen, true, time.Millisecond, common.LockOpen, 0, "x.db"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBackfill(7, 42); err != nil || s.Backfill(7) != 42 || s.Backfill(8) != 0 {
		t.Fatalf("backfill: %d", s.Backfill(7))
	}
	if m, err := s.ActiveMarks(-1); err != nil || len(m) != 0 {
		t.Fatalf("marks of a private file: %v %v", m, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a private file reached the disk: %v", err)
	}
}
