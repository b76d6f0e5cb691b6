// Package common holds the small vocabulary shared by every layer of the
// storage engine: identifier types, the checksum, and the error kinds.
package common

import (
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// PageID numbers a page in the database file; page 0 is the header page.
type PageID uint64

// LSN is a log sequence number. Every committed write transaction gets the
// next LSN; every page it writes carries that LSN in its header.
type LSN uint64

// TxID identifies a write transaction. Sombra gives a transaction the LSN it
// commits with, so TxID and LSN coincide; they are kept apart as types
// because they answer different questions.
type TxID uint64

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is CRC32C (Castagnoli), used for pages, WAL frames and backups.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// ChecksumUpdate extends a running CRC32C.
func ChecksumUpdate(crc uint32, b []byte) uint32 { return crc32.Update(crc, castagnoli, b) }

// Sentinel errors. The engine package re-exports them; callers test with errors.Is.
var (
	ErrNotFound     = errors.New("not found")
	ErrNotADatabase = errors.New("not a sombra database")
	ErrVersion      = errors.New("unsupported format version")
	ErrCorrupt      = errors.New("database corrupt")
	ErrBusy         = errors.New("database is locked")
	ErrTxClosed     = errors.New("transaction closed")
	ErrReadOnly     = errors.New("database opened read-only")
	ErrExists       = errors.New("already exists")
	ErrInvalid      = errors.New("invalid argument")
	ErrEncryption   = errors.New("encryption error")
	ErrPoisoned     = errors.New("connection unusable after a failed fsync; reopen the database")
)

// CorruptionError describes damage found at a known place. It matches
// ErrCorrupt under errors.Is.
type CorruptionError struct {
	Path   string // file the damage was found in
	Page   PageID // page number (for WAL damage, the page the frame carries)
	Offset int64  // byte offset in the file, -1 when unknown
	Reason string

	logged bool // FirstReport has been called
}

// FirstReport returns true the first time it is called on e, so the layer
// that logs detected corruption logs each error once however far it travels.
func (e *CorruptionError) FirstReport() bool {
	if e.logged {
		return false
	}
	e.logged = true
	return true
}

func (e *CorruptionError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("%s: corrupt page %d at offset %d: %s", e.Path, e.Page, e.Offset, e.Reason)
	}
	return fmt.Sprintf("%s: corrupt page %d: %s", e.Path, e.Page, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }

// LockKind names a lock of the database (or of a backup directory).
type LockKind int

// The locks.
const (
	LockWriter      LockKind = iota + 1 // the one writer
	LockCheckpoint                      // the one checkpointer
	LockReader                          // a reader that a checkpoint must wait for
	LockExclusive                       // the database held exclusively (compaction, restore, recovery) keeps an open out
	LockOpen                            // connections holding the database open keep exclusive use out
	LockPrivateRead                     // a read without the coordination file, kept out by a writer
	LockDirectory                       // a backup directory in use by another backup
)

var lockNames = [...]string{LockWriter: "writer", LockCheckpoint: "checkpoint", LockReader: "reader",
	LockExclusive: "exclusive", LockOpen: "open", LockPrivateRead: "private read", LockDirectory: "directory"}

func (k LockKind) String() string {
	if k > 0 && int(k) < len(lockNames) {
		return lockNames[k]
	}
	return fmt.Sprintf("LockKind(%d)", int(k))
}

// BusyError says who holds the lock that could not be taken.
type BusyError struct {
	Path string
	What LockKind
	PID  int // 0 when unknown; the first of Holders when they are known
	// Holders are the live processes holding the lock, when they could be
	// found (see engine/internal/procs): a process holding the database
	// open may be idle and so named nowhere in the coordination file.
	Holders []Holder
}

// Holder is a live process holding a lock.
type Holder struct {
	PID  int    `json:"pid"`
	Name string `json:"name,omitempty"` // command name from /proc, "" when unknown
}

func (h Holder) String() string {
	if h.Name == "" {
		return fmt.Sprintf("pid %d", h.PID)
	}
	return fmt.Sprintf("pid %d (%s)", h.PID, h.Name)
}

func (e *BusyError) Error() string {
	if len(e.Holders) > 0 {
		names := make([]string, len(e.Holders))
		for i, h := range e.Holders {
			names[i] = h.String()
		}
		return fmt.Sprintf("%s: database is locked (%s lock held by %s)", e.Path, e.What, strings.Join(names, ", "))
	}
	if e.PID > 0 {
		return fmt.Sprintf("%s: database is locked (%s lock held by pid %d)", e.Path, e.What, e.PID)
	}
	return fmt.Sprintf("%s: database is locked (%s lock held by another process)", e.Path, e.What)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }
