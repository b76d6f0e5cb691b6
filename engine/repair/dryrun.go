package repair

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/maint"
)

// renamedError is err with another message.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// DryRun reports what Repair would do, without changing the database: it
// copies the database file and its WAL (under a read transaction, so no
// checkpoint can rewrite them half-way through the copy) into a new
// directory under tmpDir (default os.TempDir()), runs Repair on the copy,
// removes the copy and returns the copy's report with the original's
// path. Running the real repair on a copy gives the exact actions, not an
// estimate; the price is room for one copy of the database in tmpDir.
func (r *DatabaseRepair) DryRun(tmpDir string) (_ *RepairReport, err error) {
	return r.DryRunContext(context.Background(), tmpDir)
}

// DryRunContext is DryRun, whose repair of the copy stops when ctx is
// cancelled (see RepairContext); the copy is removed either way.
func (r *DatabaseRepair) DryRunContext(ctx context.Context, tmpDir string) (_ *RepairReport, err error) {
	if err := maint.CheckFile(r.fs(), r.path); err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp(tmpDir, "sombra-repair-dry-run-")
	if err != nil {
		return nil, fmt.Errorf("repair dry run: %w", err)
	}
	defer os.RemoveAll(scratch)
	cp := filepath.Join(scratch, filepath.Base(r.path))
	if err := r.copyConsistent(cp); err != nil {
		return nil, fmt.Errorf("repair dry run: copying %s: %w", r.path, err)
	}
	c := *r
	c.path = cp
	rep, err := c.RepairContext(ctx)
	if err != nil {
		// The copy's path means nothing to the caller; the error's kind
		// (busy, corrupt, I/O) is kept for errors.Is.
		return nil, &renamedError{msg: strings.ReplaceAll(err.Error(), cp, r.path), err: err}
	}
	rep.Path = r.path
	rep.Advice = strings.ReplaceAll(rep.Advice, cp, r.path)
	for i, a := range rep.Actions {
		rep.Actions[i] = strings.ReplaceAll(a, cp, r.path)
	}
	return rep, nil
}

// copyConsistent copies the database and its WAL to dst and dst-wal. A
// read transaction on the original holds its snapshot, so checkpoints by
// other processes cannot restart the WAL meanwhile; a database that does
// not open (damaged header) is copied as it is.
func (r *DatabaseRepair) copyConsistent(dst string) error {
	db, err := engine.OpenWithConfig(r.path, r.config(true))
	if err == nil {
		defer db.Close()
		tx, err := db.BeginReadTransaction()
		if err != nil {
			return err
		}
		defer tx.Rollback()
	}
	if err := copyFile(r.path, dst); err != nil {
		return err
	}
	if err := copyFile(r.path+"-wal", dst+"-wal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
