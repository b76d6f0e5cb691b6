package engine

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sombradb/sombra/engine/vfs"
)

// fullShmFS fails every write to a file whose name holds "-shm" with
// ENOSPC: a disk with room for nothing more, as far as the coordination
// file is concerned.
func fullShmFS() *vfs.FaultFS {
	ffs := vfs.NewFaultFS(vfs.OS)
	ffs.SetRule(vfs.NthOp(vfs.OpWrite, "-shm", 1, true, vfs.Fault{Err: syscall.ENOSPC}))
	return ffs
}

// denyShmFS refuses to create or write any file whose name holds "-shm",
// as the file permissions of a user who may only read do (tests run as
// root, which permissions do not stop).
type denyShmFS struct{ vfs.FS }

func (d denyShmFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	if strings.Contains(name, "-shm") && flag&(os.O_RDWR|os.O_WRONLY|os.O_CREATE) != 0 {
		if _, err := os.Stat(name); errors.Is(err, os.ErrNotExist) && flag&os.O_CREATE == 0 {
			return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
		}
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EACCES}
	}
	return d.FS.OpenFile(name, flag, perm)
}

// fileState is a file's bytes and modification time.
type fileState struct {
	data  string
	mtime time.Time
}

// dirState records every file of dir.
func dirState(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]fileState{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fileState{string(b), st.ModTime()}
	}
	return out
}

func sameDir(t *testing.T, dir string, before map[string]fileState) {
	t.Helper()
	after := dirState(t, dir)
	for n, b := range before {
		a, ok := after[n]
		switch {
		case !ok:
			t.Errorf("%s was removed", n)
		case a.data != b.data:
			t.Errorf("%s was modified", n)
		case !a.mtime.Equal(b.mtime):
			t.Errorf("%s: mtime changed from %v to %v", n, b.mtime, a.mtime)
		}
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			t.Errorf("%s was created", n)
		}
	}
}

// A read-only connection that cannot create the coordination file (here:
// the disk is full) reads the database, WAL included, without one, and
// leaves no file behind — in particular no empty -shm, which is what a
// failed creation used to leave.
func TestPrivateReadWhenShmCannotBeCreated(t *testing.T) {
	path, want := buildReadDB(t, false) // everything in the WAL
	if err := os.Remove(path + "-shm"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	before := dirState(t, dir)
	if _, ok := before[filepath.Base(path)+"-wal"]; !ok {
		t.Fatal("fixture has no WAL")
	}
	db, err := OpenWithConfig(path, Config{ReadOnly: true, FS: fullShmFS()})
	if err != nil {
		t.Fatal(err)
	}
	if !db.p.Private() {
		t.Error("connection is not in private mode")
	}
	got, err := readAll(db)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Error("private read differs from what the writer committed")
	}
	if _, err := db.Info(); err != nil {
		t.Fatal(err)
	}
	// Its exclusive hold would be a lock nobody else sees: refused, so
	// compaction or restore never replace the file under another reader.
	if err := db.p.ExclusiveLock(0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("exclusive lock of a private reader: %v, want ErrReadOnly", err)
	}
	db.Close()
	sameDir(t, dir, before)

	// A read-write connection on the full disk fails, and leaves nothing.
	_, err = OpenWithConfig(path, Config{FS: fullShmFS()})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("read-write open on a full disk: %v, want ENOSPC", err)
	}
	sameDir(t, dir, before)
}

// A private reader and a writer exclude each other: the writer cannot
// start while the private reader reads (it could checkpoint the file under
// it), and a private reader cannot start while any connection has the
// database open (it would not see that connection's read marks, nor it
// the reader's). Both fail naming the holder.
func TestPrivateReaderExcludesWriters(t *testing.T) {
	path, _ := buildReadDB(t, false)
	if err := os.Remove(path + "-shm"); err != nil {
		t.Fatal(err)
	}
	priv, err := OpenWithConfig(path, Config{ReadOnly: true, FS: denyShmFS{vfs.OS}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenWithConfig(path, Config{BusyTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "private read lock held by pid") {
		t.Fatalf("writer open during a private read: %v, want busy naming the reader", err)
	}
	t.Logf("writer refused: %v", err)
	// Shared-memory readers may read alongside: neither changes a file.
	ro, err := OpenWithConfig(path, Config{ReadOnly: true})
	if err != nil {
		t.Fatalf("shared-memory reader beside a private one: %v", err)
	}
	ro.Close()
	priv.Close()

	w, err := OpenWithConfig(path, Config{BusyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("writer after the private reader closed: %v", err)
	}
	if err := w.Update(func(tx *Tx) error { return batch(tx, "B", 5) }); err != nil {
		t.Fatal(err)
	}
	_, err = OpenWithConfig(path, Config{ReadOnly: true, FS: denyShmFS{vfs.OS}, BusyTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "cannot use its coordination file") {
		t.Fatalf("private open while a writer has the database open: %v, want busy", err)
	}
	t.Logf("private reader refused: %v", err)
	w.Close()
	// Once the writer is gone, the private reader sees its commit.
	priv, err = OpenWithConfig(path, Config{ReadOnly: true, FS: denyShmFS{vfs.OS}})
	if err != nil {
		t.Fatal(err)
	}
	defer priv.Close()
	if ok, err := batchState(priv, "B", 5); err != nil || !ok {
		t.Fatalf("private reader after the writer: batch present %v, err %v", ok, err)
	}
}

// The same on real file systems: a read-only mount (EROFS), and a full
// one, mounted as small tmpfs file systems. Needs root (mount).
func TestPrivateReadOnRealFileSystems(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	src, want := buildReadDB(t, false)
	srcBytes := map[string][]byte{}
	for _, sfx := range []string{"", "-wal"} {
		b, err := os.ReadFile(src + sfx)
		if err != nil {
			t.Fatal(err)
		}
		srcBytes[sfx] = b
	}
	size := 0
	for _, b := range srcBytes {
		size += len(b)
	}
	mount := func(t *testing.T) string {
		dir := t.TempDir()
		// Room for the files, rounded up to whole pages, and no more.
		opt := "size=" + strconv.Itoa((size/4096+4)*4096)
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opt, "tmpfs", dir).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a tmpfs: %v %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
		for sfx, b := range srcBytes {
			if err := os.WriteFile(filepath.Join(dir, "g.db"+sfx), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	check := func(t *testing.T, dir string) {
		before := dirState(t, dir)
		db, err := OpenWithConfig(filepath.Join(dir, "g.db"), Config{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if !db.p.Private() {
			t.Error("connection is not in private mode")
		}
		got, err := readAll(db)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Error("private read differs from what the writer committed")
		}
		db.Close()
		sameDir(t, dir, before)
	}
	t.Run("readonly", func(t *testing.T) {
		dir := mount(t)
		if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
			t.Skipf("cannot remount read-only: %v %s", err, out)
		}
		check(t, dir)
	})
	t.Run("full", func(t *testing.T) {
		dir := mount(t)
		// Fill what is left.
		f, err := os.Create(filepath.Join(dir, "filler"))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		for {
			if _, err := f.Write(buf); err != nil {
				break
			}
		}
		f.Close()
		check(t, dir)
	})
}
