// Package backup takes online full and incremental backups of a Sombra
// database, keeps a catalog of them, verifies and restores them, archives
// the WAL and restores to a point in time (the operations guide's
// BackupManager).
//
// # Backups
//
// A backup is one self-describing file NAME.backup (see format.go): a
// header (type, page size, page count, LSN range, parent, database file id,
// creation time, logical hash), page records and a trailer with a checksum
// of the whole body. It is written to a temporary name, fsynced and renamed,
// so a killed backup never leaves a file that looks complete.
//
// A backup copies one read snapshot: it never blocks the writer (it only
// holds a read mark, which keeps checkpoints from copying frames past it
// while the backup runs), and it holds exactly the transactions with
// LSN <= its end LSN. Pages are read around the page cache and streamed, so
// memory stays bounded whatever the database size.
//
// # Incremental cost
//
// An incremental backup holds the pages whose page LSN is above its
// parent's end LSN. It finds them without reading the database when it can:
//
//   - pages changed by transactions still in the WAL come from the
//     snapshot's WAL index (no I/O);
//   - pages changed by transactions already checkpointed into the database
//     file come from the change log NAME.db-changes, to which every
//     checkpoint (in any process) appends the pages it copied and their LSN
//     range once the first backup has created the log.
//
// The cost is then proportional to the change: reading the change log
// entries since the parent (8 bytes per copied page) plus reading and
// writing the changed pages. When the log does not cover the whole LSN range
// (the log was created after the parent, a record was lost in a crash, it
// rotated past the parent, or another tool checkpointed the file), the
// backup falls back to reading every page's LSN sequentially: still a
// read-only, bounded-memory pass, but proportional to the database size.
// Result.ChangeSource says which was used ("wal", "wal+changelog", "scan").
// A full backup (and an incremental that scans) computes the logical hash
// in its pass over the pages, which it reads in 1 MiB chunks around the
// page cache; an incremental that copies only the changed pages walks the
// node and edge trees for it (proportional to the data).
// Options.NoLogicalHash skips it. Memory is bounded by the page cache plus
// a chunk and a bit per page, whatever the file size.
//
// # Catalog
//
// catalog.json in the backup directory lists the backups and the last
// verification of each. It is a cache: ListBackups rebuilds the list from
// the *.backup files present, so files deleted by `find -delete` simply
// disappear, and a chain whose base is gone is reported as broken.
//
// # WAL archive and point-in-time restore
//
// With archiving enabled (EnableWALArchiving), every connection copies the
// WAL's committed transactions into DIR/wal/ before the log is reset, and
// ArchiveWAL (run before every backup) copies what the live log holds.
// RestoreToTime restores the newest backup chain that ends at or before a
// time and replays archived transactions up to the last commit at or
// before it.
package backup

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/progress"
	"github.com/sombradb/sombra/engine/vfs"
)

// Options tune backup operations. The zero value is the default.
type Options struct {
	// FS is the file layer used for every file the package writes or reads
	// (default: the operating system), directory listings included.
	FS vfs.FS
	// Force overwrites an existing backup or restore target.
	Force bool
	// Base names the parent of an incremental backup (default: the backup
	// of this database with the highest end LSN in the directory).
	Base string
	// FullIfNoBase makes an incremental backup with no usable parent take
	// a full backup instead (reported in Result.Type and Warnings) rather
	// than fail with ErrNoBase: what a cron script that only ever asks for
	// incrementals wants on its first run.
	FullIfNoBase bool
	// NoLogicalHash skips recording the logical hash (an incremental
	// backup that copies only the changed pages walks the node and edge
	// trees for it); verification then checks structure only.
	NoLogicalHash bool
	// NewFileID gives a restored database a new file id, so that it starts
	// a new history: incremental backups of the old chain, the old WAL
	// archive and later point-in-time replays no longer apply to it. Leave
	// it off when you will replay archived WAL into the restored file.
	NewFileID bool
	// AllowEarlier lets RestoreToTime restore the newest backup before the
	// requested time when the WAL archive cannot take it further (instead
	// of failing with ErrUnreachable).
	AllowEarlier bool
	// ArchiveDir is the WAL archive directory (default: DIR/wal).
	ArchiveDir string
	// TempDir holds trial restores made by Verify (default: os.TempDir(),
	// so that a read-only backup directory can be verified). Verify checks
	// first that it has room for the restored database.
	TempDir string
	// BusyTimeout bounds waits for locks held by others (default 5s).
	BusyTimeout time.Duration
	// Now is the clock (default time.Now); tests inject one.
	Now func() time.Time
	// DryRun makes Prune report what it would delete and change nothing.
	DryRun bool
	// Logger receives progress and warnings (default: discarded).
	Logger *slog.Logger
	// User is who takes the backup when the database has access control
	// (a stored policy or db.SetAccessControl): the user needs the Backup
	// and Read permissions. Default: the connection's user (Config.User).
	User string
	// S3 says how to reach object storage for a backup directory named
	// s3://bucket/prefix (see S3Config; every field defaults from the
	// environment).
	S3 S3Config
	// Encryption is the key of a sealed backup (one of an encrypted
	// database), needed to verify and restore it, and to replay or verify
	// the sealed segments of its WAL archive; default: the engine's
	// fallback key (engine.SetFallbackEncryption, which the tools set from
	// SOMBRA_ENCRYPTION_KEY). Taking a backup needs no key beyond the open
	// database's: its pages are copied sealed as they are.
	Encryption engine.PageCipher
	// Progress, if set, is called as a backup, verification, restore or
	// replay goes with the bytes done and the total (0 while unknown):
	// database bytes read for a backup, backup bytes read and then
	// database bytes checked for a verification, backup bytes read for a
	// restore, archive bytes read for a replay. Calls are throttled (about
	// 20 a second) and come from the operation's goroutine.
	Progress func(done, total int64)

	// ctx is the context of the ...Context call running (nil: none). It
	// travels in the copy of the options each call makes, so that every
	// step of the operation can check it without a parameter of its own.
	ctx context.Context
}

// tracker returns the operation's progress tracker against total.
func (o Options) tracker(total int64) *progress.Tracker {
	return progress.New(o.ctx, o.Progress, total)
}

// withContext returns the options of a ...Context call: ctx travels in
// them, and requests to object storage are made under it (an interrupt
// stops a transfer, not only the next step).
func (o Options) withContext(ctx context.Context) Options {
	o.ctx = ctx
	if r, ok := o.FS.(*routeFS); ok {
		o.FS = r.withContext(ctx)
	}
	return o
}

// context returns the call's context (Background when none).
func (o Options) context() context.Context {
	if o.ctx == nil {
		return context.Background()
	}
	return o.ctx
}

// canceled returns the context's error, wrapped, once the call's context
// is cancelled.
func (o Options) canceled() error { return progress.New(o.ctx, nil, 0).Err() }

// cipher returns the key for sealed backups, or nil.
func (o Options) cipher() engine.PageCipher {
	if o.Encryption != nil {
		return o.Encryption
	}
	return engine.FallbackEncryption()
}

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.OS
	}
	if _, ok := o.FS.(*routeFS); !ok {
		o.FS = newRouteFS(o.FS, o.S3) // s3:// paths to object storage
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func (o Options) archiveDir(dir string) string {
	if o.ArchiveDir != "" {
		return o.ArchiveDir
	}
	return joinPath(dir, "wal")
}

// BackupManager takes and manages the backups of one open database in one
// backup directory.
type BackupManager struct {
	db   *engine.DB
	dir  string
	opts Options
}

// NewBackupManager returns a manager for db's backups in dir (created on
// first use).
func NewBackupManager(db *engine.DB, dir string) *BackupManager {
	return NewBackupManagerWithOptions(db, dir, Options{})
}

// NewBackupManagerWithOptions is NewBackupManager with options.
func NewBackupManagerWithOptions(db *engine.DB, dir string, opts Options) *BackupManager {
	if opts.User == "" {
		opts.User = db.Config().User // the connection's user (the tools' --user)
	}
	return &BackupManager{db: db, dir: dir, opts: opts.withDefaults()}
}

// Dir returns the backup directory.
func (m *BackupManager) Dir() string { return m.dir }

// ListBackups lists the backups in the manager's directory.
func (m *BackupManager) ListBackups() ([]BackupInfo, error) { return listBackups(m.opts.FS, m.dir) }

// VerifyBackup verifies a backup and its chain (see Verify).
func (m *BackupManager) VerifyBackup(name string) (*VerifyResult, error) {
	return Verify(m.dir, name, m.opts)
}

// VerifyBackupContext is VerifyBackup, stopped when ctx is cancelled (see
// VerifyContext).
func (m *BackupManager) VerifyBackupContext(ctx context.Context, name string) (*VerifyResult, error) {
	return VerifyContext(ctx, m.dir, name, m.opts)
}

// RestoreFromBackup restores a backup (with its chain) to target (see Restore).
func (m *BackupManager) RestoreFromBackup(name, target string) (*RestoreResult, error) {
	return Restore(m.dir, name, target, m.opts)
}

// RestoreFromBackupContext is RestoreFromBackup, stopped when ctx is
// cancelled (see RestoreContext).
func (m *BackupManager) RestoreFromBackupContext(ctx context.Context, name, target string) (*RestoreResult, error) {
	return RestoreContext(ctx, m.dir, name, target, m.opts)
}

// RestoreToTime restores the database as of t to target (see RestoreToTime).
func (m *BackupManager) RestoreToTime(t time.Time, target string) (*RestoreResult, error) {
	return RestoreToTime(m.dir, t, target, m.opts)
}

// RestoreToTimeContext is RestoreToTime, stopped when ctx is cancelled.
func (m *BackupManager) RestoreToTimeContext(ctx context.Context, t time.Time, target string) (*RestoreResult, error) {
	return RestoreToTimeContext(ctx, m.dir, t, target, m.opts)
}

// ReplayWALUntil applies archived transactions to a restored database (see
// ReplayWALUntil).
func (m *BackupManager) ReplayWALUntil(targetDB string, t time.Time) (*ReplayResult, error) {
	return ReplayWALUntil(m.dir, targetDB, t, m.opts)
}

// ReplayWALUntilContext is ReplayWALUntil, stopped when ctx is cancelled.
func (m *BackupManager) ReplayWALUntilContext(ctx context.Context, targetDB string, t time.Time) (*ReplayResult, error) {
	return ReplayWALUntilContext(ctx, m.dir, targetDB, t, m.opts)
}

// Prune deletes old backups (see Prune).
func (m *BackupManager) Prune(keepDays, keepFull int) (*PruneResult, error) {
	return Prune(m.dir, keepDays, keepFull, m.opts)
}

// splitName turns "name", "name.backup", "dir/name" or "dir/name.backup"
// into the backup directory (dir when the argument has none) and the name.
func splitName(dir, arg string) (string, string, error) {
	arg = strings.TrimSuffix(arg, Ext)
	if arg == "" || strings.HasSuffix(arg, string(os.PathSeparator)) {
		return "", "", fmt.Errorf("backup name %q: %w", arg, common.ErrInvalid)
	}
	d, name := filepath.Split(arg)
	if d == "" {
		d = dir
	} else if IsRemote(d) {
		d = canonS3(strings.TrimSuffix(d, "/"))
	} else {
		d = filepath.Clean(d)
	}
	if d == "" {
		d = "."
	}
	if strings.HasPrefix(name, ".") || len(name) > maxParentName {
		return "", "", fmt.Errorf("backup name %q (must not start with a dot, at most %d bytes): %w", name, maxParentName, common.ErrInvalid)
	}
	return d, name, nil
}

func backupPath(dir, name string) string { return joinPath(dir, name+Ext) }
