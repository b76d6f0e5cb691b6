// Package maint holds what the maintenance packages (repair, recovery,
// health) share before they open a database: the check that the path is a
// database file to work on, and the guard that turns an engine panic on a
// damaged page into an error.
package maint

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/vfs"
)

// CheckFile fails with common.ErrNotFound for a missing path and
// common.ErrNotADatabase for anything but a regular file on fsys (nil:
// vfs.OS), so that a tool asked to repair or recover a file never creates
// one.
func CheckFile(fsys vfs.FS, path string) error {
	if fsys == nil {
		fsys = vfs.OS
	}
	st, err := fsys.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", path, common.ErrNotFound)
	case err != nil:
		return fmt.Errorf("%s: %w", path, err)
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file: %w", path, common.ErrNotADatabase)
	}
	return nil
}

// Guard, deferred with the named error of a maintenance operation, turns
// a panic into an error matching common.ErrCorrupt. The engine's readers
// trust a page whose checksum holds; garbage written behind a valid
// checksum (a bug, not a disk) can still make them fail, and a repair tool
// must report that, not crash. Nothing is committed by then: a write
// transaction that panics is never committed. It must be deferred itself
// (defer maint.Guard(path, &err)): recover works only there.
func Guard(path string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%s: the engine failed on a damaged page (%v): %w", path, p, common.ErrCorrupt)
	}
}
