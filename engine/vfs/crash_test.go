package vfs

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func readOr(t *testing.T, path string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func mustWrite(t *testing.T, fs FS, path, data string, off int64, sync, syncDir bool) File {
	t.Helper()
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(data), off); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if syncDir {
		if err := SyncParent(fs, path); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestCrashFSDropsWhatWasNotSynced(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "old"), []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := NewCrashFS(OS, root)
	if err != nil {
		t.Fatal(err)
	}
	p := func(n string) string { return filepath.Join(root, n) }
	mustWrite(t, c, p("a"), "synced", 0, true, true).Close()
	f := mustWrite(t, c, p("a"), "XX", 2, false, false) // pending
	mustWrite(t, c, p("c"), "no file sync", 0, false, true).Close()
	mustWrite(t, c, p("d"), "renamed", 0, true, true).Close()
	mustWrite(t, c, p("b"), "no dir sync", 0, true, false).Close()
	if err := c.Rename(p("d"), p("e")); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(p("old")); err != nil {
		t.Fatal(err)
	}
	// what the running process sees is the current state
	if got, _ := readOr(t, p("a")); got != "syXXed" {
		t.Fatalf("live a = %q", got)
	}
	out := filepath.Join(t.TempDir(), "cut")
	if err := c.Crash(out, DropUnsynced, nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "synced", "c": "", "d": "renamed", "old": "before"}
	for _, n := range []string{"a", "b", "c", "d", "e", "old"} {
		got, ok := readOr(t, filepath.Join(out, n))
		w, wok := want[n]
		if ok != wok || got != w {
			t.Errorf("after the cut %s = %q (present %v), want %q (present %v)", n, got, ok, w, wok)
		}
	}
	// syncing the file and the directory makes everything durable
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := c.SyncDir(root); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "cut")
	if err := c.Crash(out2, DropUnsynced, nil); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"a": "syXXed", "b": "no dir sync", "c": "", "e": "renamed"}
	for _, n := range []string{"a", "b", "c", "d", "e", "old"} {
		got, ok := readOr(t, filepath.Join(out2, n))
		w, wok := want[n]
		if ok != wok || got != w {
			t.Errorf("after sync and cut %s = %q (present %v), want %q (present %v)", n, got, ok, w, wok)
		}
	}
}

func TestCrashFSDirectories(t *testing.T) {
	root := t.TempDir()
	c, err := NewCrashFS(OS, root)
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(root, "x", "y")
	if err := c.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, c, filepath.Join(sub, "f"), "data", 0, true, true).Close()
	out := filepath.Join(t.TempDir(), "cut")
	if err := c.Crash(out, DropUnsynced, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "x")); !os.IsNotExist(err) {
		t.Fatalf("a directory whose parent was never synced survived the cut: %v", err)
	}
	if err := MkdirAllDurable(c, sub); err != nil { // exists: nothing to do
		t.Fatal(err)
	}
	sub2 := filepath.Join(root, "p", "q")
	if err := MkdirAllDurable(c, sub2); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, c, filepath.Join(sub2, "f"), "data", 0, true, true).Close()
	out2 := filepath.Join(t.TempDir(), "cut")
	if err := c.Crash(out2, DropUnsynced, nil); err != nil {
		t.Fatal(err)
	}
	if got, ok := readOr(t, filepath.Join(out2, "p", "q", "f")); !ok || got != "data" {
		t.Fatalf("file in a durably made directory: %q %v", got, ok)
	}
}

func TestCrashFSTearAndScramble(t *testing.T) {
	root := t.TempDir()
	c, err := NewCrashFS(OS, root)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "f")
	base := bytes.Repeat([]byte{'a'}, 4*SectorSize)
	f, err := c.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(base, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := c.SyncDir(root); err != nil {
		t.Fatal(err)
	}
	over := bytes.Repeat([]byte{'b'}, 4*SectorSize)
	if _, err := f.WriteAt(over, 0); err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for i := 0; i < 40; i++ {
		for _, mode := range []CrashMode{TearLast, Scramble} {
			out := filepath.Join(t.TempDir(), "cut")
			if err := c.Crash(out, mode, rand.New(rand.NewPCG(uint64(i), 0))); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(out, "f"))
			if len(got) != len(base) {
				t.Fatalf("%v: length %d", mode, len(got))
			}
			nb := 0
			for s := 0; s < 4; s++ {
				sec := got[s*SectorSize : (s+1)*SectorSize]
				switch {
				case bytes.Equal(sec, base[:SectorSize]):
				case bytes.Equal(sec, over[:SectorSize]):
					nb++
					if mode == TearLast && s > 0 && got[(s-1)*SectorSize] != 'b' {
						t.Fatalf("torn write is not a prefix: %q", got)
					}
				default:
					t.Fatalf("%v: sector %d is neither old nor new", mode, s)
				}
			}
			seen[nb] = true
		}
	}
	if len(seen) != 5 {
		t.Fatalf("cuts kept %v sectors of the pending write; want every count 0..4", seen)
	}
}

func TestCrashFSVolatileShm(t *testing.T) {
	root := t.TempDir()
	c, err := NewCrashFS(OS, root)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, c, filepath.Join(root, "d.db-shm"), "coordination", 0, false, false).Close()
	kept, lost := 0, 0
	for i := 0; i < 20; i++ {
		out := filepath.Join(t.TempDir(), "cut")
		if err := c.Crash(out, DropUnsynced, rand.New(rand.NewPCG(uint64(i), 1))); err != nil {
			t.Fatal(err)
		}
		got, ok := readOr(t, filepath.Join(out, "d.db-shm"))
		switch {
		case !ok:
			lost++
		case got == "coordination":
			kept++
		default:
			t.Fatalf("shm = %q", got)
		}
	}
	if kept == 0 || lost == 0 {
		t.Fatalf("the -shm was kept %d and lost %d times in 20 cuts; want both", kept, lost)
	}
}

// Directory changes not yet synced reach the disk as an ordered prefix
// under Scramble: removing the WAL and then renaming a new file over the
// database can leave the WAL gone and the old database in place, but never
// the new database beside the old WAL.
func TestCrashFSScrambleKeepsDirectoryOrder(t *testing.T) {
	root := t.TempDir()
	for _, n := range []string{"db", "db-wal", "tmp"} {
		if err := os.WriteFile(filepath.Join(root, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := NewCrashFS(OS, root)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(filepath.Join(root, "db-wal")); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename(filepath.Join(root, "tmp"), filepath.Join(root, "db")); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := 0; i < 60; i++ {
		out := filepath.Join(t.TempDir(), "cut")
		if err := c.Crash(out, Scramble, rand.New(rand.NewPCG(uint64(i), 3))); err != nil {
			t.Fatal(err)
		}
		db, _ := readOr(t, filepath.Join(out, "db"))
		_, wal := readOr(t, filepath.Join(out, "db-wal"))
		_, tmp := readOr(t, filepath.Join(out, "tmp"))
		state := fmt.Sprintf("db=%s wal=%v tmp=%v", db, wal, tmp)
		seen[state] = true
	}
	want := map[string]bool{
		"db=db wal=true tmp=true":    true, // nothing reached the disk
		"db=db wal=false tmp=true":   true, // the removal did
		"db=tmp wal=false tmp=false": true, // both did
	}
	for s := range seen {
		if !want[s] {
			t.Errorf("impossible state after a cut: %s", s)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("states seen %v, want all of %v", seen, want)
	}
}

// Each change to a directory's listing is lost at a power cut until the
// directory is fsynced, and kept after: a create, a rename, a remove, a
// mkdir and a link alike (as on ext4 without dirsync).
func TestCrashFSNamespaceNeedsSyncDir(t *testing.T) {
	for _, c := range []struct {
		name   string
		do     func(t *testing.T, c *CrashFS, root string)
		before []string // the root's listing after a cut before SyncDir
		after  []string // ... and after it
	}{
		{"create", func(t *testing.T, c *CrashFS, root string) {
			mustWrite(t, c, filepath.Join(root, "new"), "x", 0, true, false).Close()
		}, []string{"old"}, []string{"new", "old"}},
		{"rename", func(t *testing.T, c *CrashFS, root string) {
			if err := c.Rename(filepath.Join(root, "old"), filepath.Join(root, "moved")); err != nil {
				t.Fatal(err)
			}
		}, []string{"old"}, []string{"moved"}},
		{"rename over", func(t *testing.T, c *CrashFS, root string) {
			mustWrite(t, c, filepath.Join(root, "tmp"), "new", 0, true, false).Close()
			if err := c.Rename(filepath.Join(root, "tmp"), filepath.Join(root, "old")); err != nil {
				t.Fatal(err)
			}
		}, []string{"old"}, []string{"old"}},
		{"remove", func(t *testing.T, c *CrashFS, root string) {
			if err := c.Remove(filepath.Join(root, "old")); err != nil {
				t.Fatal(err)
			}
		}, []string{"old"}, nil},
		{"mkdir", func(t *testing.T, c *CrashFS, root string) {
			if err := c.MkdirAll(filepath.Join(root, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, []string{"old"}, []string{"d/", "old"}},
		{"link", func(t *testing.T, c *CrashFS, root string) {
			if err := c.Link(filepath.Join(root, "old"), filepath.Join(root, "second")); err != nil {
				t.Fatal(err)
			}
		}, []string{"old"}, []string{"old", "second"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "old"), []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			cfs, err := NewCrashFS(OS, root)
			if err != nil {
				t.Fatal(err)
			}
			c.do(t, cfs, root)
			// old's contents after a cut: the old file's until the
			// rename over it is durable
			wantOld := []string{"old", "old"}
			if c.name == "rename over" {
				wantOld[1] = "new"
			}
			for i, synced := range []bool{false, true} {
				if synced {
					if err := cfs.SyncDir(root); err != nil {
						t.Fatal(err)
					}
				}
				dir := filepath.Join(t.TempDir(), "cut")
				if err := cfs.Crash(dir, DropUnsynced, nil); err != nil {
					t.Fatal(err)
				}
				want := [][]string{c.before, c.after}[i]
				if got := names(t, OS, dir); !slices.Equal(got, want) {
					t.Fatalf("cut (directory synced: %v): %v, want %v", synced, got, want)
				}
				if got, ok := readOr(t, filepath.Join(dir, "old")); ok && got != wantOld[i] {
					t.Fatalf("cut (directory synced: %v): old holds %q, want %q", synced, got, wantOld[i])
				}
			}
		})
	}
}

// WriteFileAtomic (the policy file, the backup catalog, the health
// sidecar, the replica's divergence marker) leaves, at a power cut at any
// of its operations and in any mode, the old contents whole or the new
// contents whole; once it returns, the new ones.
func TestCrashFSWriteFileAtomic(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "policy.json")
	old := bytes.Repeat([]byte("old "), 300) // a few sectors, so a torn write shows
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := NewCrashFS(OS, root)
	if err != nil {
		t.Fatal(err)
	}
	var cuts []string
	var cutErr error
	rng := rand.New(rand.NewPCG(5, 5))
	c.SetHook(func(ev CrashEvent) {
		for _, m := range []CrashMode{DropUnsynced, TearLast, Scramble, Scramble, Scramble} {
			dir := filepath.Join(t.TempDir(), "cut")
			if err := c.Crash(dir, m, rand.New(rand.NewPCG(rng.Uint64(), 0))); err != nil {
				cutErr = err
			}
			cuts = append(cuts, dir)
		}
	})
	nw := bytes.Repeat([]byte("new!"), 400)
	if err := WriteFileAtomic(c, path, nw, 0o600); err != nil {
		t.Fatal(err)
	}
	c.SetHook(nil)
	if cutErr != nil {
		t.Fatal(cutErr)
	}
	last := filepath.Join(t.TempDir(), "cut")
	if err := c.Crash(last, Scramble, rng); err != nil {
		t.Fatal(err)
	}
	sawOld := false
	for _, dir := range cuts {
		got, ok := readOr(t, filepath.Join(dir, "policy.json"))
		switch {
		case !ok:
			t.Fatalf("cut %s: the file is gone", dir)
		case got == string(old):
			sawOld = true
		case got == string(nw):
		default:
			t.Fatalf("cut %s: the file is neither old nor new (%d bytes)", dir, len(got))
		}
	}
	if got, _ := readOr(t, filepath.Join(last, "policy.json")); got != string(nw) {
		t.Fatalf("after WriteFileAtomic returned, a cut leaves %d bytes, not the new file", len(got))
	}
	if !sawOld || len(cuts) < 20 {
		t.Fatalf("%d cuts, old seen %v", len(cuts), sawOld)
	}
}
