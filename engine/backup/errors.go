package backup

import (
	"errors"

	"github.com/sombradb/sombra/engine/internal/walarchive"
)

// Sentinel errors. Test with errors.Is; the returned error wraps one of
// them (or an engine error: ErrExists, ErrNotFound, ErrBusy, ErrCorrupt with
// a *engine.CorruptionError naming the backup file and page) with context.
var (
	// ErrNoBase is returned by an incremental backup when the backup
	// directory holds no usable parent (no full backup of this database).
	ErrNoBase = errors.New("no base backup for an incremental backup")
	// ErrBrokenChain is returned when a backup's parent is missing or does
	// not end where the child begins.
	ErrBrokenChain = errors.New("backup chain is broken")
	// ErrTooEarly is returned by point-in-time restore when the requested
	// time lies before every usable backup (or before the target's state).
	ErrTooEarly = errors.New("no backup at or before the requested time")
	// ErrUnreachable is returned by point-in-time restore when the
	// requested time is after the newest usable backup and the WAL archive
	// holds no transaction after it (archiving is off): the restore would
	// stop at the backup, not at the requested time.
	ErrUnreachable = errors.New("requested point in time cannot be reached")
	// ErrArchiveGap is returned by point-in-time restore when the WAL
	// archive misses transactions before the requested time. The error is a
	// *walarchive.GapError naming the last reachable LSN and time.
	ErrArchiveGap = errors.New("WAL archive has a gap")
	// ErrVerifyFailed is returned when a trial restore does not match the
	// backup (integrity problems or a different logical hash).
	ErrVerifyFailed = errors.New("backup verification failed")
	// ErrCannotVerify is returned by Verify when the verification could
	// not be carried out (no room for the trial restore): the backup is not
	// known to be bad, and the verdict is not recorded.
	ErrCannotVerify = errors.New("backup could not be verified")
	// ErrInterrupted is returned for a target left half-replayed by an
	// interrupted ReplayWALUntil: restore it again.
	ErrInterrupted = errors.New("target was left by an interrupted WAL replay")
	// ErrRemote is returned when object storage (an s3:// backup
	// directory) refused or failed a request: unreachable server, refused
	// credentials, missing bucket (which also matches engine.ErrNotFound).
	ErrRemote = errors.New("object storage request failed")
	// ErrTimeline is returned when the database has diverged from the
	// archived history (it was restored to an earlier point and written).
	ErrTimeline = walarchive.ErrTimeline
	// ErrMixedArchive is returned when the WAL archive and the backup chain
	// (or the database) are not both sealed or both plaintext, or the
	// archive mixes both for one database: an encrypted file takes sealed
	// pages only, a plaintext file plaintext ones. It matches
	// engine.ErrEncryption too.
	ErrMixedArchive = walarchive.ErrMixed
	// ErrKeyRequired is returned when sealed archive segments are to be
	// read or verified without the database's key (Options.Encryption,
	// SOMBRA_ENCRYPTION_KEY). It matches engine.ErrEncryption too.
	ErrKeyRequired = walarchive.ErrKeyRequired
)

// UnreachableError is ErrUnreachable with the backup that can be restored
// instead: Newest, the newest restorable point before the requested time.
type UnreachableError struct {
	Newest string
	msg    string
}

func (e *UnreachableError) Error() string { return e.msg + ": " + ErrUnreachable.Error() }
func (e *UnreachableError) Unwrap() error { return ErrUnreachable }

// gapError wraps a *walarchive.GapError so that it matches ErrArchiveGap.
type gapError struct {
	*walarchive.GapError
	hint string
}

func (e *gapError) Error() string {
	if e.hint == "" {
		return e.GapError.Error()
	}
	return e.GapError.Error() + "; " + e.hint
}

func (e *gapError) Is(target error) bool { return target == ErrArchiveGap }

func (e *gapError) Unwrap() error { return e.GapError }
