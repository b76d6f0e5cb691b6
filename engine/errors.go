package engine

import (
	"errors"

	"github.com/sombradb/sombra/engine/internal/common"
)

// Sentinel errors returned by the engine. Test for them with errors.Is; the
// concrete error usually wraps one of them with the file and page concerned.
var (
	// ErrNotFound is returned when a node, edge, property or file does not exist.
	ErrNotFound = common.ErrNotFound
	// ErrNotADatabase is returned when a file is not a Sombra database
	// (wrong magic, zero length, a directory).
	ErrNotADatabase = common.ErrNotADatabase
	// ErrVersion is returned when the file was written by a newer format version.
	ErrVersion = common.ErrVersion
	// ErrCorrupt is returned when a checksum or structure check fails. The
	// error is a *CorruptionError naming the file and page.
	ErrCorrupt = common.ErrCorrupt
	// ErrBusy is returned when a lock could not be taken within
	// Config.BusyTimeout. The error is a *BusyError naming the holder's pid
	// when known.
	ErrBusy = common.ErrBusy
	// ErrTxClosed is returned when a transaction is used after Commit or Rollback.
	ErrTxClosed = common.ErrTxClosed
	// ErrReadOnly is returned by writes on a read-only database or transaction.
	ErrReadOnly = common.ErrReadOnly
	// ErrExists is returned when a file that must not exist does.
	ErrExists = common.ErrExists
	// ErrInvalid is returned for an invalid argument (an empty label, a key
	// that is too long, a label containing a NUL byte).
	ErrInvalid = common.ErrInvalid
	// ErrEncryption is returned when an encrypted database is opened
	// without its key or with another key, when a plaintext database is
	// opened with a key, and by tools that cannot work on an encrypted
	// database (backup, salvage without the key).
	ErrEncryption = common.ErrEncryption
	// ErrMetricsUnavailable is returned by DB.DatabaseMetrics when the
	// connection cannot see the database-wide counters: it has no
	// coordination file (-shm), or the file's counters region was laid out
	// by another build. The error says which; it is never a reading of
	// zeros.
	ErrMetricsUnavailable = errors.New("database-wide metrics unavailable")
	// ErrPermissionDenied is matched by every error the engine returns
	// because the access policy denied an operation; the error is a
	// *PermissionError saying who was denied what.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrClosed is returned when registering work on a closed connection.
	ErrClosed = errors.New("database is closed")
	// ErrNotPrimary is returned by writes on a connection that replication
	// does not let write: a replica, or a primary whose lease lapsed or
	// whose publish was fenced off by a newer primary. The error names the
	// primary when it is known.
	ErrNotPrimary = errors.New("not the primary")
	// ErrPoisoned is returned by every write on a connection after an
	// fsync (or a truncation or directory sync the log depends on) failed:
	// the kernel may have dropped the dirty pages, so retrying could report
	// success for lost data. Close the connection and open the database
	// again; recovery replays what reached the disk.
	ErrPoisoned = common.ErrPoisoned
)

// CorruptionError carries the file, page and offset where damage was found.
type CorruptionError = common.CorruptionError

// BusyError says which lock could not be taken (What) and, when known, by
// whom (PID, Holders).
type BusyError = common.BusyError

// LockKind names the lock of a BusyError.
type LockKind = common.LockKind

// The locks a BusyError can name.
const (
	LockWriter      = common.LockWriter
	LockCheckpoint  = common.LockCheckpoint
	LockReader      = common.LockReader
	LockExclusive   = common.LockExclusive
	LockOpen        = common.LockOpen
	LockPrivateRead = common.LockPrivateRead
	LockDirectory   = common.LockDirectory
)
