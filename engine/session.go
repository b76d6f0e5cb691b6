package engine

import (
	"context"
	"time"
)

// Session is a DB seen as one user: the transactions it begins carry the
// user, whose permissions the installed AccessChecker checks and whose name
// the Auditor records. It is as safe for concurrent use as the DB, and
// costs nothing to create: db.AsUser("alice").Update(...) is fine.
type Session struct {
	db   *DB
	user string
}

// AsUser returns a Session acting as user.
func (db *DB) AsUser(user string) *Session { return &Session{db: db, user: user} }

// User returns the session's user.
func (s *Session) User() string { return s.user }

// DB returns the session's database.
func (s *Session) DB() *DB { return s.db }

// User returns the user the transaction runs as ("" when it was begun
// without one).
func (tx *Tx) User() string { return tx.sec.user }

// BeginTransactionAs starts a write transaction run as user. Beginning
// needs no permission; each operation is checked as it is made.
func (db *DB) BeginTransactionAs(user string) (*Tx, error) {
	tx, err := db.BeginTransaction()
	if err != nil {
		return nil, err
	}
	tx.sec.user = user
	return tx, nil
}

// BeginReadTransactionAs starts a read transaction run as user.
func (db *DB) BeginReadTransactionAs(user string) (*Tx, error) {
	tx, err := db.BeginReadTransaction()
	if err != nil {
		return nil, err
	}
	tx.sec.user = user
	return tx, nil
}

// ViewAs runs fn in a read transaction run as user.
func (db *DB) ViewAs(user string, fn func(*Tx) error) error {
	tx, err := db.BeginReadTransactionAs(user)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}

// UpdateAs runs fn in a write transaction run as user and commits it if fn
// returns nil. A denied operation makes fn fail (when fn passes its error
// on), so the transaction is rolled back.
func (db *DB) UpdateAs(user string, fn func(*Tx) error) error {
	tx, err := db.BeginTransactionAs(user)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// BeginTransaction starts a write transaction run as the session's user.
func (s *Session) BeginTransaction() (*Tx, error) { return s.db.BeginTransactionAs(s.user) }

// BeginReadTransaction starts a read transaction run as the session's user.
func (s *Session) BeginReadTransaction() (*Tx, error) { return s.db.BeginReadTransactionAs(s.user) }

// View runs fn in a read transaction run as the session's user.
func (s *Session) View(fn func(*Tx) error) error { return s.db.ViewAs(s.user, fn) }

// Update runs fn in a write transaction run as the session's user.
func (s *Session) Update(fn func(*Tx) error) error { return s.db.UpdateAs(s.user, fn) }

// Authorize checks that the session's user holds p (see DB.Authorize).
func (s *Session) Authorize(p Permission) error { return s.db.Authorize(s.user, p) }

// CreatePropertyIndex creates a property index; needs Configure.
func (s *Session) CreatePropertyIndex(name string) error {
	return s.db.createPropertyIndex(s.user, name)
}

// DropPropertyIndex removes a property index; needs Configure.
func (s *Session) DropPropertyIndex(name string) error { return s.db.dropPropertyIndex(s.user, name) }

// RebuildPropertyIndex rebuilds a property index; needs Configure.
func (s *Session) RebuildPropertyIndex(name string) error {
	return s.db.rebuildPropertyIndex(s.user, name, nil)
}

// RebuildLabelIndex rebuilds one label's index entries; needs Configure.
func (s *Session) RebuildLabelIndex(label string) error {
	return s.db.rebuildLabelIndex(s.user, label, nil)
}

// RebuildAllIndexes rebuilds every index and counter; needs Configure.
func (s *Session) RebuildAllIndexes() error { return s.db.rebuildAllIndexes(s.user, nil) }

// UpdateCacheSize changes the page cache budget; needs Configure.
func (s *Session) UpdateCacheSize(bytes int64) error { return s.db.updateCacheSize(s.user, bytes) }

// EnableGroupCommit configures group commit; needs Configure.
func (s *Session) EnableGroupCommit(interval time.Duration, maxTx int) error {
	return s.db.enableGroupCommit(s.user, interval, maxTx)
}

// Checkpoint runs a passive checkpoint; needs Configure and is audited as
// "checkpoint".
func (s *Session) Checkpoint() (CheckpointResult, error) {
	return s.CheckpointWithMode(CheckpointPassive)
}

// CheckpointWithMode runs a checkpoint (see DB.CheckpointWithMode); needs
// Configure and is audited as "checkpoint".
func (s *Session) CheckpointWithMode(mode CheckpointMode) (CheckpointResult, error) {
	return s.db.checkpoint(context.Background(), s.user, mode)
}

// SetWALArchiveDir turns WAL archiving on or off (see
// DB.SetWALArchiveDir); needs Configure.
func (s *Session) SetWALArchiveDir(dir string) error { return s.db.setWALArchiveDir(s.user, dir) }
