package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// CrashFS is a file system that knows what a power cut would leave on disk.
//
// SIGKILL leaves the kernel's page cache intact: every write a process made
// before it died reaches the disk eventually. Power loss does not: only what
// was made durable survives. CrashFS passes every operation through to an
// inner FS (normally the OS, so locks, mmap and other processes behave as in
// production) and keeps, beside it, the durable state of every file and
// directory under its root:
//
//   - a file's durable contents change only when it is fsynced or
//     fdatasynced: writes and truncations since then are pending;
//   - a directory's durable listing changes only when the directory itself
//     is fsynced (SyncDir): a create, rename, remove or mkdir in it since
//     then is pending; fsyncing a file does not make its name durable.
//
// Crash writes into a new directory what the disk would hold if the power
// were cut at that moment, while the workload carries on, so one run of a
// workload yields many cut points. What happens to pending state at a cut is
// chosen by a CrashMode: dropped (the strict model), the last write torn, or
// any subset of it reaching the disk.
//
// Volatile files (by default every "-shm": the engine's shared-memory
// coordination file, which it maps with mmap and rebuilds from the WAL, so
// it is not durable state) are not tracked at all: their writes through
// the mapping never pass through the FS. At a cut each is either missing
// (its directory entry never reached the disk) or holds whatever it held at
// that moment (the kernel wrote the mapping back), chosen at random; the
// engine must open correctly either way.
//
// Files already under the root when the CrashFS is made count as durable.
// Paths outside the root pass through untracked.
type CrashFS struct {
	inner FS
	root  string
	// Volatile reports whether a file is volatile (see above).
	Volatile func(name string) bool
	// RealSync passes fsyncs down to the inner FS. Off by default: the
	// CrashFS keeps the durable state itself, and a real fsync per commit
	// would only slow a test down.
	RealSync bool

	mu       sync.Mutex
	cur, dur map[string]*centry // path relative to root -> entry
	// pend holds, per directory, the changes to its listing since it was
	// last synced, in order (entry nil: removed).
	pend map[string][]nsOp
	ops  int64
	hook func(CrashEvent)
}

// CrashEvent describes an operation about to be applied, for a hook that
// picks cut points.
type CrashEvent struct {
	Seq  int64  // 1-based count of mutating operations so far, this one included
	Op   string // "write", "truncate", "sync", "create", "remove", "rename", "mkdir", "syncdir"
	Name string
}

// nsOp is one change to a directory's listing: entries set (nil: removed)
// together, as a rename within the directory is.
type nsOp []nsChange

type nsChange struct {
	name string
	e    *centry
}

type centry struct {
	dir bool
	ino *inode
}

type inode struct {
	durable []byte
	pending []pendingOp
}

// pendingOp is a write (data != nil) or a truncation to size.
type pendingOp struct {
	off  int64
	data []byte
	size int64
}

// CrashMode says what becomes of pending (unsynced) state at a cut.
type CrashMode int

const (
	// DropUnsynced keeps exactly what was made durable: every pending write,
	// truncation and directory change is lost.
	DropUnsynced CrashMode = iota
	// TearLast is DropUnsynced, except that a random whole number of
	// sectors from the start of each file's most recent pending write
	// reaches the disk (a write torn by the cut).
	TearLast
	// Scramble lets every pending truncation reach the disk or not and
	// every sector of every pending write reach the disk or not, each
	// chosen independently, and a random prefix (in the order they were
	// made) of each directory's pending changes reach it: any state the
	// page cache, the disk's write cache and an ordered journal may leave.
	Scramble
)

func (m CrashMode) String() string {
	switch m {
	case DropUnsynced:
		return "drop"
	case TearLast:
		return "tear"
	case Scramble:
		return "scramble"
	}
	return fmt.Sprintf("CrashMode(%d)", int(m))
}

// SectorSize is the unit a write can be torn at: disks write a sector
// whole or not at all.
const SectorSize = 512

// NewCrashFS tracks root (an existing directory) over inner; everything
// under it now counts as durable.
func NewCrashFS(inner FS, root string) (*CrashFS, error) {
	abs, err := filepath.Abs(root)
	if err == nil {
		// the engine opens databases by their real path
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, err
	}
	c := &CrashFS{inner: inner, root: abs, cur: map[string]*centry{}, dur: map[string]*centry{}, pend: map[string][]nsOp{},
		Volatile: func(name string) bool { return strings.HasSuffix(name, "-shm") }}
	c.cur["."] = &centry{dir: true}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(abs, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			c.cur[rel] = &centry{dir: true}
			return nil
		}
		if c.Volatile(p) {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("crash fs: %s is not a regular file or directory", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		c.cur[rel] = &centry{ino: &inode{durable: b}}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("crash fs: scan %s: %w", root, err)
	}
	for k, v := range c.cur {
		c.dur[k] = v
	}
	return c, nil
}

// setCur changes the current listing (an entry nil: remove) and remembers
// the changes as pending in their directories; changes in one directory
// are one atomic step.
func (c *CrashFS) setCur(chs ...nsChange) {
	byDir := map[string]nsOp{}
	var order []string
	for _, ch := range chs {
		if ch.e == nil {
			delete(c.cur, ch.name)
		} else {
			c.cur[ch.name] = ch.e
		}
		d := filepath.Dir(ch.name)
		if byDir[d] == nil {
			order = append(order, d)
		}
		byDir[d] = append(byDir[d], ch)
	}
	for _, d := range order {
		c.pend[d] = append(c.pend[d], byDir[d])
	}
}

// adoptDirs enters into the current listing the directories above r that
// exist but were made behind the FS's back (os.MkdirAll), as pending in
// their parents: a power cut loses them unless their parents are synced.
func (c *CrashFS) adoptDirs(r string) {
	for d := filepath.Dir(r); d != "." && c.cur[d] == nil; d = filepath.Dir(d) {
		if st, err := c.inner.Stat(filepath.Join(c.root, d)); err == nil && st.IsDir() {
			c.setCur(nsChange{d, &centry{dir: true}})
		}
	}
}

// SetHook installs fn, called before every mutating operation (outside the
// FS's lock, so it may call Crash). nil removes it.
func (c *CrashFS) SetHook(fn func(CrashEvent)) {
	c.mu.Lock()
	c.hook = fn
	c.mu.Unlock()
}

// Ops is the number of mutating operations so far.
func (c *CrashFS) Ops() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops
}

func (c *CrashFS) event(op, name string) {
	c.mu.Lock()
	c.ops++
	ev := CrashEvent{Seq: c.ops, Op: op, Name: name}
	h := c.hook
	c.mu.Unlock()
	if h != nil {
		h(ev)
	}
}

// rel returns name relative to the root, or ok false when it is outside.
func (c *CrashFS) rel(name string) (string, bool) {
	abs, err := filepath.Abs(name)
	if err != nil {
		return "", false
	}
	r, err := filepath.Rel(c.root, abs)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", false
	}
	return r, true
}

func (c *CrashFS) tracked(name string) (string, bool) {
	r, ok := c.rel(name)
	if !ok || c.Volatile(name) {
		return "", false
	}
	return r, true
}

// OpenFile opens name; O_CREATE of a new file adds a pending directory
// entry, O_TRUNC a pending truncation.
func (c *CrashFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	r, ok := c.tracked(name)
	if !ok {
		return c.inner.OpenFile(name, flag, perm)
	}
	if flag&os.O_CREATE != 0 {
		c.event("create", name)
	}
	if flag&os.O_TRUNC != 0 {
		c.event("truncate", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := c.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	c.adoptDirs(r)
	e := c.cur[r]
	if e == nil || e.dir {
		// Not known: created now (a file that existed but was not
		// tracked was made behind the FS's back; it starts with no
		// durable contents, which is what a crash would see of it).
		e = &centry{ino: &inode{}}
		if st, err := f.Stat(); err == nil && st.Size() > 0 {
			b := make([]byte, st.Size())
			n, _ := f.ReadAt(b, 0)
			e.ino.pending = append(e.ino.pending, pendingOp{off: 0, data: b[:n]})
		}
		c.setCur(nsChange{r, e})
	}
	if flag&os.O_TRUNC != 0 {
		e.ino.pending = append(e.ino.pending, pendingOp{size: 0})
	}
	return &crashFile{File: f, c: c, ino: e.ino}, nil
}

// Remove removes name; the removal is pending until its directory is synced.
func (c *CrashFS) Remove(name string) error {
	r, ok := c.tracked(name)
	if !ok {
		return c.inner.Remove(name)
	}
	c.event("remove", name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.inner.Remove(name); err != nil {
		return err
	}
	c.setCur(nsChange{r, nil})
	return nil
}

// Rename renames oldpath; pending until both directories are synced.
func (c *CrashFS) Rename(oldpath, newpath string) error {
	ro, ok1 := c.tracked(oldpath)
	rn, ok2 := c.tracked(newpath)
	if !ok1 && !ok2 {
		return c.inner.Rename(oldpath, newpath)
	}
	if ok1 != ok2 {
		return fmt.Errorf("crash fs: rename %s to %s crosses the tracked root: %w", oldpath, newpath, os.ErrInvalid)
	}
	c.event("rename", newpath)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.inner.Rename(oldpath, newpath); err != nil {
		return err
	}
	e := c.cur[ro]
	if e == nil {
		return nil
	}
	c.setCur(nsChange{ro, nil}, nsChange{rn, e})
	if e.dir {
		// (Children of a renamed directory move with it in the current
		// listing only: the engine never renames directories.)
		pre := ro + string(filepath.Separator)
		for k, v := range c.cur {
			if strings.HasPrefix(k, pre) {
				delete(c.cur, k)
				c.cur[rn+string(filepath.Separator)+k[len(pre):]] = v
			}
		}
	}
	return nil
}

// Link gives oldname's file a second name (link(2), never replacing a
// file), pending in newname's directory. It needs an inner FS that can.
func (c *CrashFS) Link(oldname, newname string) error {
	l, ok := c.inner.(interface {
		Link(oldname, newname string) error
	})
	if !ok {
		return fmt.Errorf("crash fs: link %s: %w", newname, errors.ErrUnsupported)
	}
	ro, ok1 := c.tracked(oldname)
	rn, ok2 := c.tracked(newname)
	if !ok1 && !ok2 {
		return l.Link(oldname, newname)
	}
	if ok1 != ok2 {
		return fmt.Errorf("crash fs: link %s to %s crosses the tracked root: %w", oldname, newname, os.ErrInvalid)
	}
	c.event("link", newname)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := l.Link(oldname, newname); err != nil {
		return err
	}
	if e := c.cur[ro]; e != nil {
		c.setCur(nsChange{rn, e})
	}
	return nil
}

// Stat passes through.
func (c *CrashFS) Stat(name string) (os.FileInfo, error) { return c.inner.Stat(name) }

// ReadDir passes through: the running process sees the current state.
func (c *CrashFS) ReadDir(name string) ([]os.DirEntry, error) { return c.inner.ReadDir(name) }

// MkdirAll creates the missing directories; each is pending in its parent.
func (c *CrashFS) MkdirAll(path string, perm os.FileMode) error {
	r, ok := c.rel(path)
	if !ok {
		return c.inner.MkdirAll(path, perm)
	}
	c.event("mkdir", path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.inner.MkdirAll(path, perm); err != nil {
		return err
	}
	for d := r; d != "."; d = filepath.Dir(d) {
		if c.cur[d] == nil {
			c.setCur(nsChange{d, &centry{dir: true}})
		}
	}
	return nil
}

// SyncDir makes dir's current listing durable.
func (c *CrashFS) SyncDir(dir string) error {
	r, ok := c.rel(dir)
	if !ok {
		return c.inner.SyncDir(dir)
	}
	c.event("syncdir", dir)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.RealSync {
		if err := c.inner.SyncDir(dir); err != nil {
			return err
		}
	} else if st, err := c.inner.Stat(dir); err != nil {
		return err
	} else if !st.IsDir() {
		return &os.PathError{Op: "fsync", Path: dir, Err: syscall.ENOTDIR}
	}
	if r != "." {
		c.adoptDirs(filepath.Join(r, "x"))
	}
	for k := range c.dur {
		if k != "." && filepath.Dir(k) == r && c.cur[k] == nil {
			delete(c.dur, k)
		}
	}
	for k, v := range c.cur {
		if k != "." && filepath.Dir(k) == r {
			c.dur[k] = v
		}
	}
	delete(c.pend, r)
	return nil
}

type crashFile struct {
	File
	c   *CrashFS
	ino *inode
}

func (f *crashFile) WriteAt(p []byte, off int64) (int, error) {
	f.c.event("write", f.Name())
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	n, err := f.File.WriteAt(p, off)
	if n > 0 {
		f.ino.pending = append(f.ino.pending, pendingOp{off: off, data: slices.Clone(p[:n])})
	}
	return n, err
}

func (f *crashFile) Truncate(size int64) error {
	f.c.event("truncate", f.Name())
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.File.Truncate(size); err != nil {
		return err
	}
	f.ino.pending = append(f.ino.pending, pendingOp{size: size})
	return nil
}

func (f *crashFile) Sync() error     { return f.sync(f.File.Sync) }
func (f *crashFile) Datasync() error { return f.sync(f.File.Datasync) }

func (f *crashFile) sync(do func() error) error {
	f.c.event("sync", f.Name())
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if f.c.RealSync {
		if err := do(); err != nil {
			return err
		}
	}
	for _, op := range f.ino.pending {
		f.ino.durable = op.apply(f.ino.durable)
	}
	f.ino.pending = nil
	return nil
}

func (op pendingOp) apply(b []byte) []byte {
	if op.data == nil {
		if op.size <= int64(len(b)) {
			return b[:op.size]
		}
		return append(b, make([]byte, op.size-int64(len(b)))...)
	}
	if end := op.off + int64(len(op.data)); end > int64(len(b)) {
		if end <= int64(cap(b)) {
			b = b[:end]
		} else {
			nb := make([]byte, end, end+end/4)
			copy(nb, b)
			b = nb
		}
	}
	copy(b[op.off:], op.data)
	return b
}

// Crash writes into dst (which must not exist) the files and directories
// under the root as a power cut now would leave them, with pending state
// treated as mode says; rng makes the choices (it may be nil for
// DropUnsynced). The workload may carry on meanwhile.
func (c *CrashFS) Crash(dst string, mode CrashMode, rng *rand.Rand) error {
	if rng == nil {
		rng = rand.New(rand.NewPCG(1, 2))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.Mkdir(dst, 0o755); err != nil {
		return fmt.Errorf("crash fs: %w", err)
	}
	// The listing of each directory: the durable one, or under Scramble
	// possibly the current one.
	children := map[string][]string{}
	listing := func(m map[string]*centry, d string) []string {
		var out []string
		for k := range m {
			if k != "." && filepath.Dir(k) == d {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}
	var dirs []string
	for k, e := range c.cur {
		if e.dir {
			dirs = append(dirs, k)
		}
	}
	for k, e := range c.dur {
		if e.dir && c.cur[k] == nil {
			dirs = append(dirs, k)
		}
	}
	slices.Sort(dirs)
	entry := map[string]*centry{}
	for _, d := range dirs {
		src := c.dur
		if ops := c.pend[d]; mode == Scramble && len(ops) > 0 {
			// Directory changes reach the disk in order (the file
			// system's journal), so some prefix of them did.
			src = map[string]*centry{}
			for _, k := range listing(c.dur, d) {
				src[k] = c.dur[k]
			}
			for _, op := range ops[:rng.IntN(len(ops)+1)] {
				for _, ch := range op {
					if ch.e == nil {
						delete(src, ch.name)
					} else {
						src[ch.name] = ch.e
					}
				}
			}
		}
		children[d] = listing(src, d)
		for _, k := range children[d] {
			entry[k] = src[k]
		}
	}
	var walk func(d string) error
	walk = func(d string) error {
		for _, k := range children[d] {
			e := entry[k]
			out := filepath.Join(dst, k)
			if e.dir {
				if err := os.Mkdir(out, 0o755); err != nil {
					return err
				}
				if err := walk(k); err != nil {
					return err
				}
				continue
			}
			if err := os.WriteFile(out, e.ino.image(mode, rng), 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("."); err != nil {
		return fmt.Errorf("crash fs: write image: %w", err)
	}
	return c.copyVolatile(dst, entry, rng)
}

// copyVolatile carries each volatile file whose directory reached dst
// over as it is now, or leaves it out.
func (c *CrashFS) copyVolatile(dst string, entry map[string]*centry, rng *rand.Rand) error {
	return filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walk
			}
			return err
		}
		if d.IsDir() || !c.Volatile(p) {
			return nil
		}
		r, _ := filepath.Rel(c.root, p)
		if dir := filepath.Dir(r); dir != "." && (entry[dir] == nil || !entry[dir].dir) {
			return nil
		}
		if rng.IntN(2) == 0 {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer src.Close()
		out, err := os.Create(filepath.Join(dst, r))
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, src); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// image is what the file holds after a cut.
func (ino *inode) image(mode CrashMode, rng *rand.Rand) []byte {
	b := slices.Clone(ino.durable)
	switch mode {
	case TearLast:
		for i := len(ino.pending) - 1; i >= 0; i-- {
			op := ino.pending[i]
			if op.data == nil {
				continue
			}
			secs := sectors(op)
			keep := rng.IntN(len(secs) + 1)
			for _, s := range secs[:keep] {
				b = s.apply(b)
			}
			break
		}
	case Scramble:
		for _, op := range ino.pending {
			if op.data == nil {
				if rng.IntN(2) == 0 {
					b = op.apply(b)
				}
				continue
			}
			for _, s := range sectors(op) {
				if rng.IntN(2) == 0 {
					b = s.apply(b)
				}
			}
		}
	}
	return b
}

// sectors splits a write at sector boundaries of the file.
func sectors(op pendingOp) []pendingOp {
	var out []pendingOp
	off, data := op.off, op.data
	for len(data) > 0 {
		n := SectorSize - int(off%SectorSize)
		n = min(n, len(data))
		out = append(out, pendingOp{off: off, data: data[:n]})
		off += int64(n)
		data = data[n:]
	}
	return out
}
