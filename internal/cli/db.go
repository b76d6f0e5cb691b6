package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/sombradb/sombra/engine"
)

// DefaultBusyTimeout is the engine busy timeout when --wait is not given
// (or is 0s): fail at once, as --wait's help says. It is one millisecond,
// not zero, because the engine reads a zero timeout as its own default of
// five seconds.
const DefaultBusyTimeout = time.Millisecond

// DBPath returns --db, or a usage error when it is missing.
func (g *Globals) DBPath() (string, error) {
	if g.DB == "" {
		return "", Usagef("--db is required")
	}
	return g.DB, nil
}

// BusyTimeout is the engine busy timeout for this invocation: --wait when
// given and positive, def otherwise.
func (g *Globals) BusyTimeout(def time.Duration) time.Duration {
	if g.Wait > 0 {
		return g.Wait
	}
	return def
}

// fileError is a problem with the database file itself, worded for a
// person ("x.db: no such file") and matching an engine sentinel so the
// exit code and JSON error kind follow.
type fileError struct {
	path, msg string
	kind      error
}

func (e *fileError) Error() string        { return e.path + ": " + e.msg }
func (e *fileError) Is(target error) bool { return target == e.kind }

// CheckDBFile fails unless path names an existing regular file: missing
// files match engine.ErrNotFound, directories engine.ErrNotADatabase.
// Commands call it before opening a database writably, which would
// otherwise create an empty one.
func CheckDBFile(path string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &fileError{path: path, msg: "no such file", kind: engine.ErrNotFound}
	case err != nil:
		return fmt.Errorf("%s: %w", path, err)
	case st.IsDir():
		return &fileError{path: path, msg: "is a directory, not a database file", kind: engine.ErrNotADatabase}
	case !st.Mode().IsRegular():
		return &fileError{path: path, msg: "not a regular file", kind: engine.ErrNotADatabase}
	}
	return nil
}

// OpenDB opens the database named by --db with cfg after CheckDBFile, so
// that a missing file is reported, never created.
func OpenDB(g *Globals, cfg engine.Config) (*engine.DB, error) {
	path, err := g.DBPath()
	if err != nil {
		return nil, err
	}
	if err := CheckDBFile(path); err != nil {
		return nil, err
	}
	return engine.OpenWithConfig(path, cfg)
}
