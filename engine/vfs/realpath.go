package vfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// maxLinks bounds the symbolic links followed for one path (as the kernel's
// ELOOP limit does), so a cycle of dangling links ends in an error.
const maxLinks = 40

// RealPath returns path with every symbolic link in it resolved. A
// database's companion files (-wal, -shm, -changes) and the temporary
// files of compaction and restore are named after the database's real
// path, so that processes that reach one file through different names
// (a link and its target) share one WAL and one lock file, and so that a
// file replaced by rename replaces the link's target, never the link.
//
// A path that does not exist yet resolves through its directory (and
// through a dangling link to where that link points): a database created
// through a link is created at the link's target. A path whose directory
// does not exist either is returned unchanged, for the open that follows
// to report. Symbolic links are an operating-system notion, so this looks
// at the real file system whatever FS the engine is given.
func RealPath(path string) (string, error) {
	p := path
	for range maxLinks {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return real, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("resolve %s: %w", path, err)
		}
		// p itself, or a link it names, does not exist yet.
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			dir, derr := filepath.EvalSymlinks(filepath.Dir(p))
			if derr != nil {
				return path, nil
			}
			return filepath.Join(dir, filepath.Base(p)), nil
		}
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", path, err)
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			// A directory on the way is missing; let the open say so.
			return path, nil
		}
		dest, err := os.Readlink(p)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", path, err)
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(p), dest)
		}
		p = dest
	}
	return "", fmt.Errorf("resolve %s: too many levels of symbolic links", path)
}

// Linker is implemented by file systems that can give an existing file a
// second name without ever replacing a file already there (link(2)). New
// databases are published that way: written and fsynced under a temporary
// name, then linked into place, so no other process ever sees the name
// with an incomplete file behind it.
type Linker interface {
	Link(oldname, newname string) error
}

// Link gives oldname the second name newname (os.Link); it fails with an
// error matching os.ErrExist if newname exists.
func (osFS) Link(oldname, newname string) error { return os.Link(oldname, newname) }

// Link forwards to the wrapped file system when it can link.
func (f *FaultFS) Link(oldname, newname string) error {
	if fl := f.check(OpLink, pair(oldname, newname), 0); fl != nil {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: errors.Unwrap(fl.fail(OpLink, newname))}
	}
	l, ok := f.Inner.(Linker)
	if !ok {
		return fmt.Errorf("link %s: %w", newname, errors.ErrUnsupported)
	}
	return l.Link(oldname, newname)
}
