package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sombradb/sombra/engine/internal/procs"
	"github.com/sombradb/sombra/engine/internal/walarchive"
	"github.com/sombradb/sombra/engine/vfs"
)

// A backup directory is either a local directory or a prefix of an
// S3-compatible bucket, named s3://bucket/prefix. Both sit behind Store, so
// that every operation (backup, list, verify, restore, prune, the WAL
// archive) works on either:
//
//   - reads (backup headers and trailers, the catalog, WAL segment headers)
//     and listings go through Store.FS, which for S3 turns ReadAt into
//     ranged GETs and ReadDir into a listing: the catalog is rebuilt from
//     the objects exactly as from the files;
//   - a finished file is published with Store.Publish: locally a rename
//     and fsync of the directory; on S3 a streamed (multipart) upload,
//     verified by checksum, made visible by a marker object written last
//     (see s3.go), so a listing never shows a half-uploaded backup;
//   - a whole backup file is read (verify, restore) from a local copy:
//     Store.Fetch downloads it into a temporary directory first.
//
// Store is the small surface both implement.
type Store interface {
	// FS reads and lists the directory's files and removes them.
	FS() vfs.FS
	// Publish moves the finished local file tmp to path in the store,
	// atomically: path is complete or absent. tmp is gone afterwards.
	Publish(tmp, path string) error
	// PutFile writes small data (the catalog) at path atomically.
	PutFile(path string, data []byte) error
	// Fetch copies path to the local file dst (created, fsynced), checking
	// that what arrived is what was published.
	Fetch(path, dst string) error
	// Remote reports whether the store is off this machine (S3).
	Remote() bool
}

// IsRemote reports whether a backup directory or file names object
// storage (s3://bucket/prefix) rather than a local path. filepath.Join
// and Clean turn "s3://b" into "s3:/b"; both spellings are accepted.
func IsRemote(path string) bool {
	return strings.HasPrefix(path, "s3://") || strings.HasPrefix(path, "s3:/")
}

// joinPath is filepath.Join that keeps an s3:// prefix readable.
func joinPath(dir string, elem ...string) string {
	if !IsRemote(dir) {
		return filepath.Join(append([]string{dir}, elem...)...)
	}
	return canonS3(filepath.Join(append([]string{dir}, elem...)...))
}

// canonS3 spells an S3 path s3://bucket/key whatever Clean made of it.
func canonS3(p string) string {
	if strings.HasPrefix(p, "s3://") {
		return p
	}
	return "s3://" + strings.TrimPrefix(p, "s3:/")
}

// routeFS is the FS the backup package works through: paths on S3 go to
// the S3 store's read-only FS, every other path to the local one.
type routeFS struct {
	vfs.FS // local files (the database, temporary and staged files)
	conn   *s3Conn
	// ctx is the running operation's context (nil: none): every request
	// to the store is made under it, so an interrupt stops a transfer.
	ctx context.Context
}

// s3Conn is the S3 client, made on first use and shared by every
// operation of one Options.
type s3Conn struct {
	cfg  S3Config
	once sync.Once
	s3   *s3Store
	err  error
}

func newRouteFS(local vfs.FS, cfg S3Config) *routeFS {
	return &routeFS{FS: local, conn: &s3Conn{cfg: cfg}}
}

// withContext returns the same routes with requests made under ctx.
func (r *routeFS) withContext(ctx context.Context) *routeFS {
	return &routeFS{FS: r.FS, conn: r.conn, ctx: ctx}
}

// remote returns the S3 store, connecting on first use, bound to r's
// context.
func (r *routeFS) remote() (*s3Store, error) {
	c := r.conn
	c.once.Do(func() { c.s3, c.err = newS3Store(c.cfg) })
	if c.err != nil {
		return nil, c.err
	}
	return c.s3.withContext(r.ctx), nil
}

func (r *routeFS) pick(path string) (vfs.FS, error) {
	if !IsRemote(path) {
		return r.FS, nil
	}
	s, err := r.remote()
	if err != nil {
		return nil, err
	}
	return s.fs, nil
}

func (r *routeFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	fs, err := r.pick(name)
	if err != nil {
		return nil, err
	}
	return fs.OpenFile(name, flag, perm)
}

func (r *routeFS) Remove(name string) error {
	fs, err := r.pick(name)
	if err != nil {
		return err
	}
	return fs.Remove(name)
}

func (r *routeFS) Rename(oldpath, newpath string) error {
	if IsRemote(oldpath) || IsRemote(newpath) {
		return fmt.Errorf("rename %s: objects are published, not renamed: %w", canonS3(newpath), errors.ErrUnsupported)
	}
	return r.FS.Rename(oldpath, newpath)
}

func (r *routeFS) Stat(name string) (os.FileInfo, error) {
	fs, err := r.pick(name)
	if err != nil {
		return nil, err
	}
	return fs.Stat(name)
}

func (r *routeFS) SyncDir(dir string) error {
	fs, err := r.pick(dir)
	if err != nil {
		return err
	}
	return fs.SyncDir(dir)
}

func (r *routeFS) MkdirAll(path string, perm os.FileMode) error {
	fs, err := r.pick(path)
	if err != nil {
		return err
	}
	return fs.MkdirAll(path, perm)
}

func (r *routeFS) ReadDir(name string) ([]os.DirEntry, error) {
	fs, err := r.pick(name)
	if err != nil {
		return nil, err
	}
	return fs.ReadDir(name)
}

// store returns the Store of a backup directory.
func (o Options) store(dir string) (Store, error) {
	r, ok := o.FS.(*routeFS)
	if !IsRemote(dir) || !ok {
		return localStore{fs: o.FS}, nil
	}
	return r.remote()
}

// localStore is a backup directory on a local file system.
type localStore struct{ fs vfs.FS }

func (l localStore) FS() vfs.FS   { return l.fs }
func (l localStore) Remote() bool { return false }

func (l localStore) Publish(tmp, path string) error {
	if err := l.fs.Rename(tmp, path); err != nil {
		l.fs.Remove(tmp)
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return l.fs.SyncDir(filepath.Dir(path))
}

func (l localStore) PutFile(path string, data []byte) error {
	return vfs.WriteFileAtomic(l.fs, path, data, 0o644)
}

func (l localStore) Fetch(path, dst string) error {
	return fmt.Errorf("fetch %s: a local backup is read in place: %w", path, errors.ErrUnsupported)
}

// tempDir is the local directory for temporary files (Options.TempDir,
// default the system's).
func (o Options) tempDir() string {
	if o.TempDir != "" {
		return o.TempDir
	}
	return os.TempDir()
}

// staleStageRE matches the directories stageDir makes.
var staleStageRE = regexp.MustCompile(`^\.sombra-[a-z-]+-(\d+)-\d+$`)

// stageDir makes a local temporary directory to download remote backups
// into (under Options.TempDir, default the system's); remove it with the
// function returned.
func (o Options) stageDir(what string) (string, func(), error) {
	base := o.tempDir()
	// Those of killed processes first (the pid is in the name).
	if ents, err := os.ReadDir(base); err == nil {
		for _, e := range ents {
			if m := staleStageRE.FindStringSubmatch(e.Name()); m != nil && e.IsDir() {
				if pid, err := strconv.Atoi(m[1]); err == nil && pid != os.Getpid() && !procs.Alive(pid) {
					os.RemoveAll(filepath.Join(base, e.Name()))
				}
			}
		}
	}
	d, err := os.MkdirTemp(base, fmt.Sprintf(".sombra-%s-%d-", what, os.Getpid()))
	if err != nil {
		return "", nil, fmt.Errorf("create a local directory for the download: %w", err)
	}
	return d, func() { os.RemoveAll(d) }, nil
}

// localArchive returns archDir itself, or, when it is on object storage, a
// local copy of its segments, which cleanup removes.
func (o Options) localArchive(archDir, what string) (string, func(), error) {
	if !IsRemote(archDir) {
		return archDir, func() {}, nil
	}
	local, cleanup, err := o.stageDir(what)
	if err != nil {
		return "", nil, err
	}
	if _, err := stageArchive(o, archDir, local); err != nil {
		cleanup()
		return "", nil, err
	}
	return local, cleanup, nil
}

// stageChain downloads backup name of the remote directory dir and every
// backup it depends on into a local temporary directory, and returns it.
// The chain is read from the remote headers first (ranged GETs), so only
// the needed objects are downloaded.
func stageChain(o Options, dir, name, what string) (string, func(), error) {
	st, err := o.store(dir)
	if err != nil {
		return "", nil, err
	}
	chain, err := loadChain(o.FS, dir, name)
	if err != nil {
		return "", nil, err
	}
	local, cleanup, err := o.stageDir(what)
	if err != nil {
		return "", nil, err
	}
	start := time.Now()
	var bytes int64
	for _, l := range chain {
		dst := backupPath(local, l.name)
		if err := st.Fetch(l.path, dst); err != nil {
			cleanup()
			return "", nil, err
		}
		if fi, err := os.Stat(dst); err == nil {
			bytes += fi.Size()
		}
	}
	o.Logger.Info("downloaded backup chain", "from", dir, "backups", len(chain), "bytes", bytes, "duration_ms", time.Since(start).Milliseconds())
	return local, cleanup, nil
}

// stageArchive downloads the WAL segments of the remote archive dir into
// the local directory local and returns it. Segments are whole objects
// (uploaded complete or not at all) and carry their own checksums, which
// replay verifies.
func stageArchive(o Options, dir, local string) (string, error) {
	st, err := o.store(dir)
	if err != nil {
		return "", err
	}
	ents, err := o.FS.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), walarchive.Ext) {
			continue
		}
		if err := st.Fetch(joinPath(dir, e.Name()), filepath.Join(local, e.Name())); err != nil {
			return "", err
		}
	}
	return local, nil
}
