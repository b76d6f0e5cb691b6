package vfs

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// fsCase makes one of the three file systems over a fresh directory.
type fsCase struct {
	name string
	make func(t *testing.T, root string) FS
}

var allFS = []fsCase{
	{"os", func(t *testing.T, root string) FS { return OS }},
	{"fault", func(t *testing.T, root string) FS { return NewFaultFS(OS) }},
	{"crash", func(t *testing.T, root string) FS {
		c, err := NewCrashFS(OS, root)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}},
}

func names(t *testing.T, fs FS, dir string) []string {
	t.Helper()
	ents, err := fs.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		out = append(out, n)
	}
	return out
}

func create(t *testing.T, fs FS, path, data string) {
	t.Helper()
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(data), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// The directory operations behave alike on every FS: what the running
// process sees is the OS's current state.
func TestDirectoryOps(t *testing.T) {
	steps := []struct {
		name string
		do   func(t *testing.T, fs FS, root string) error
		want []string // root's listing after the step (nil: unchanged from before)
		is   error    // the error the step must return (nil: success)
	}{
		{"mkdirall nested", func(t *testing.T, fs FS, root string) error {
			return fs.MkdirAll(filepath.Join(root, "a", "b", "c"), 0o755)
		}, []string{"a/"}, nil},
		{"mkdirall existing is no error", func(t *testing.T, fs FS, root string) error {
			return fs.MkdirAll(filepath.Join(root, "a", "b"), 0o755)
		}, []string{"a/"}, nil},
		{"mkdirall over a file", func(t *testing.T, fs FS, root string) error {
			create(t, fs, filepath.Join(root, "f"), "x")
			return fs.MkdirAll(filepath.Join(root, "f", "g"), 0o755)
		}, []string{"a/", "f"}, syscall.ENOTDIR},
		{"readdir sorted", func(t *testing.T, fs FS, root string) error {
			for _, n := range []string{"z", "m", "c"} {
				create(t, fs, filepath.Join(root, "a", n), n)
			}
			if got := names(t, fs, filepath.Join(root, "a")); !slices.Equal(got, []string{"b/", "c", "m", "z"}) {
				t.Errorf("ReadDir a = %v", got)
			}
			return nil
		}, nil, nil},
		{"readdir missing", func(t *testing.T, fs FS, root string) error {
			_, err := fs.ReadDir(filepath.Join(root, "nope"))
			return err
		}, nil, os.ErrNotExist},
		{"syncdir", func(t *testing.T, fs FS, root string) error {
			return fs.SyncDir(filepath.Join(root, "a"))
		}, nil, nil},
		{"syncdir missing", func(t *testing.T, fs FS, root string) error {
			return fs.SyncDir(filepath.Join(root, "nope"))
		}, nil, os.ErrNotExist},
		{"syncdir of a file", func(t *testing.T, fs FS, root string) error {
			return fs.SyncDir(filepath.Join(root, "f"))
		}, nil, syscall.ENOTDIR},
		{"rename replaces", func(t *testing.T, fs FS, root string) error {
			create(t, fs, filepath.Join(root, "g"), "new")
			return fs.Rename(filepath.Join(root, "g"), filepath.Join(root, "f"))
		}, []string{"a/", "f"}, nil},
		{"rename missing", func(t *testing.T, fs FS, root string) error {
			return fs.Rename(filepath.Join(root, "nope"), filepath.Join(root, "f"))
		}, nil, os.ErrNotExist},
		{"remove", func(t *testing.T, fs FS, root string) error {
			return fs.Remove(filepath.Join(root, "f"))
		}, []string{"a/"}, nil},
		{"remove missing", func(t *testing.T, fs FS, root string) error {
			return fs.Remove(filepath.Join(root, "f"))
		}, nil, os.ErrNotExist},
		{"link never replaces", func(t *testing.T, fs FS, root string) error {
			create(t, fs, filepath.Join(root, "h"), "h")
			create(t, fs, filepath.Join(root, "i"), "i")
			return fs.(Linker).Link(filepath.Join(root, "h"), filepath.Join(root, "i"))
		}, []string{"a/", "h", "i"}, os.ErrExist},
		{"link", func(t *testing.T, fs FS, root string) error {
			return fs.(Linker).Link(filepath.Join(root, "h"), filepath.Join(root, "j"))
		}, []string{"a/", "h", "i", "j"}, nil},
	}
	for _, fc := range allFS {
		t.Run(fc.name, func(t *testing.T) {
			root := t.TempDir()
			fs := fc.make(t, root)
			for _, st := range steps {
				err := st.do(t, fs, root)
				if st.is == nil && err != nil || st.is != nil && !errors.Is(err, st.is) {
					t.Fatalf("%s: error %v, want %v", st.name, err, st.is)
				}
				if st.want != nil {
					if got := names(t, fs, root); !slices.Equal(got, st.want) {
						t.Fatalf("%s: root holds %v, want %v", st.name, got, st.want)
					}
				}
			}
			if b, err := os.ReadFile(filepath.Join(root, "j")); err != nil || string(b) != "h" {
				t.Fatalf("linked file: %q %v", b, err)
			}
		})
	}
}

// Lock excludes other open files of the same file, in this process as in
// others, until Unlock or Close.
func TestLock(t *testing.T) {
	for _, fc := range allFS {
		t.Run(fc.name, func(t *testing.T) {
			root := t.TempDir()
			fs := fc.make(t, root)
			path := filepath.Join(root, "lock")
			open := func() File {
				f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			a, b := open(), open()
			defer b.Close()
			if err := a.Lock(); err != nil {
				t.Fatal(err)
			}
			if err := b.Lock(); !errors.Is(err, ErrLocked) {
				t.Fatalf("second Lock while held: %v, want ErrLocked", err)
			}
			if err := a.Unlock(); err != nil {
				t.Fatal(err)
			}
			if err := b.Lock(); err != nil {
				t.Fatalf("Lock after Unlock: %v", err)
			}
			if err := a.Lock(); !errors.Is(err, ErrLocked) {
				t.Fatalf("Lock while the other holds it: %v", err)
			}
			b.Close()
			if err := a.Lock(); err != nil {
				t.Fatalf("Lock after the holder closed: %v", err)
			}
			a.Close()
		})
	}
}

// Every kind of operation can be failed, and a failed operation changes
// nothing.
func TestFaultEveryOp(t *testing.T) {
	cases := []struct {
		op   Op
		name string // what the rule must see (a suffix)
		do   func(fs FS, root string) error
	}{
		{OpCreate, "/new", func(fs FS, root string) error {
			_, err := fs.OpenFile(filepath.Join(root, "new"), os.O_RDWR|os.O_CREATE, 0o644)
			return err
		}},
		{OpOpen, "/f", func(fs FS, root string) error {
			_, err := fs.OpenFile(filepath.Join(root, "f"), os.O_RDONLY, 0)
			return err
		}},
		{OpRename, "/f -> " + "ROOT/g", func(fs FS, root string) error {
			return fs.Rename(filepath.Join(root, "f"), filepath.Join(root, "g"))
		}},
		{OpRemove, "/f", func(fs FS, root string) error { return fs.Remove(filepath.Join(root, "f")) }},
		{OpSyncDir, "/d", func(fs FS, root string) error { return fs.SyncDir(filepath.Join(root, "d")) }},
		{OpMkdir, "/d/e", func(fs FS, root string) error { return fs.MkdirAll(filepath.Join(root, "d", "e"), 0o755) }},
		{OpReadDir, "/d", func(fs FS, root string) error { _, err := fs.ReadDir(filepath.Join(root, "d")); return err }},
		{OpLink, "/f -> ROOT/l", func(fs FS, root string) error {
			return fs.(Linker).Link(filepath.Join(root, "f"), filepath.Join(root, "l"))
		}},
		{OpLock, "/f", func(fs FS, root string) error {
			f, err := fs.OpenFile(filepath.Join(root, "f"), os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Lock()
		}},
	}
	for _, c := range cases {
		t.Run(c.op.String(), func(t *testing.T) {
			root := t.TempDir()
			create(t, OS, filepath.Join(root, "f"), "data")
			if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			before := names(t, OS, root)
			ffs := NewFaultFS(OS)
			var seen []string
			eio := &os.PathError{Op: "x", Path: "y", Err: syscall.EIO}
			ffs.SetRule(func(op Op, name string, _ int) *Fault {
				if op != c.op {
					return nil
				}
				seen = append(seen, name)
				return &Fault{Err: eio}
			})
			err := c.do(ffs, root)
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("%v with a fault: %v", c.op, err)
			}
			want := c.name
			if i := len(want) - len("ROOT/g"); i > 0 && want[i:i+4] == "ROOT" {
				want = want[:i] + root + want[i+4:]
			}
			if len(seen) != 1 || len(seen[0]) < len(want) || seen[0][len(seen[0])-len(want):] != want {
				t.Fatalf("the rule saw %q, want one name ending %q", seen, want)
			}
			if got := names(t, OS, root); !slices.Equal(got, before) {
				t.Fatalf("a failed %v changed the directory: %v, was %v", c.op, got, before)
			}
			if got := names(t, OS, filepath.Join(root, "d")); len(got) != 0 {
				t.Fatalf("a failed %v changed d: %v", c.op, got)
			}
			ffs.SetRule(nil)
			if err := c.do(ffs, root); err != nil {
				t.Fatalf("%v without the fault: %v", c.op, err)
			}
		})
	}
}

// A Crash fault kills the simulated process at one operation: nothing
// after it reaches the files, until Revive. Over a CrashFS the rule can
// take the power cut's image at that very point.
func TestFaultCrashHere(t *testing.T) {
	root := t.TempDir()
	create(t, OS, filepath.Join(root, "db"), "old")
	cfs, err := NewCrashFS(OS, root)
	if err != nil {
		t.Fatal(err)
	}
	ffs := NewFaultFS(cfs)
	cut := filepath.Join(t.TempDir(), "cut")
	ffs.SetRule(func(op Op, name string, _ int) *Fault {
		if op != OpSyncDir {
			return nil
		}
		if _, err := os.Stat(cut); err != nil {
			if err := cfs.Crash(cut, DropUnsynced, rand.New(rand.NewPCG(1, 1))); err != nil {
				t.Error(err)
			}
		}
		return &Fault{Crash: true}
	})
	// replace db the way compaction does: write, fsync, rename, fsync dir
	tmp := filepath.Join(root, "db.tmp")
	f, err := ffs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("new"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := ffs.Rename(tmp, filepath.Join(root, "db")); err != nil {
		t.Fatal(err)
	}
	if err := ffs.SyncDir(root); !errors.Is(err, ErrCrashed) {
		t.Fatalf("SyncDir at the crash point: %v", err)
	}
	if !ffs.Crashed() {
		t.Fatal("not crashed")
	}
	// the dead process can do nothing more
	for what, err := range map[string]error{
		"remove": ffs.Remove(filepath.Join(root, "db")),
		"create": func() error {
			_, err := ffs.OpenFile(filepath.Join(root, "x"), os.O_CREATE|os.O_RDWR, 0o644)
			return err
		}(),
		"mkdir": ffs.MkdirAll(filepath.Join(root, "dir"), 0o755),
		"stat":  func() error { _, err := ffs.Stat(root); return err }(),
	} {
		if !errors.Is(err, ErrCrashed) {
			t.Errorf("%s after the crash: %v", what, err)
		}
	}
	if got := names(t, OS, root); !slices.Equal(got, []string{"db"}) {
		t.Fatalf("after the crash the directory holds %v", got)
	}
	// SIGKILL here: the rename stands (the kernel has it); a power cut
	// here: the rename was never made durable, the old file is whole.
	if b, _ := os.ReadFile(filepath.Join(root, "db")); string(b) != "new" {
		t.Fatalf("db after the kill = %q", b)
	}
	if got := names(t, OS, cut); !slices.Equal(got, []string{"db"}) { // db.tmp's entry was never synced either
		t.Fatalf("after the power cut: %v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(cut, "db")); string(b) != "old" {
		t.Fatalf("db after the power cut = %q", b)
	}
	ffs.Revive()
	if err := ffs.SyncDir(root); !errors.Is(err, ErrCrashed) {
		// the rule still says crash
		t.Fatalf("the rule fires again after Revive: %v", err)
	}
	ffs.SetRule(nil)
	ffs.Revive()
	if err := ffs.SyncDir(root); err != nil {
		t.Fatal(err)
	}
}

// A torn write under a Crash fault leaves its prefix, as a kill during a
// large write(2) can.
func TestFaultCrashTornWrite(t *testing.T) {
	root := t.TempDir()
	ffs := NewFaultFS(OS)
	ffs.SetRule(NthOp(OpWrite, "f", 1, false, Fault{Tear: 3, Crash: true}))
	f, err := ffs.OpenFile(filepath.Join(root, "f"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := f.WriteAt([]byte("abcdef"), 0); n != 3 || !errors.Is(err, ErrCrashed) {
		t.Fatalf("torn write: %d %v", n, err)
	}
	if err := f.Sync(); !errors.Is(err, ErrCrashed) {
		t.Fatalf("sync after the crash: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "f")); string(b) != "abc" {
		t.Fatalf("file = %q", b)
	}
}

// After arms its rule only once the trigger has been seen.
func TestFaultAfter(t *testing.T) {
	root := t.TempDir()
	ffs := NewFaultFS(OS)
	ffs.SetRule(After(func(op Op, name string) bool { return op == OpRename },
		NthOp(OpSyncDir, "", 1, false, Fault{})))
	if err := ffs.SyncDir(root); err != nil {
		t.Fatalf("fsync before the trigger: %v", err)
	}
	create(t, ffs, filepath.Join(root, "a"), "a")
	if err := ffs.Rename(filepath.Join(root, "a"), filepath.Join(root, "b")); err != nil {
		t.Fatal(err)
	}
	if err := ffs.SyncDir(root); !errors.Is(err, ErrInjected) {
		t.Fatalf("fsync after the trigger: %v", err)
	}
	if err := ffs.SyncDir(root); err != nil {
		t.Fatalf("the second fsync after the trigger: %v", err)
	}
}
