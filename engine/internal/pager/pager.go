// Package pager gives the engine snapshot reads and atomic, durable writes
// of fixed-size pages. It follows SQLite's WAL design: committed transactions
// append full page images to NAME.db-wal and fsync it; readers see the
// database file overlaid with WAL frames up to the last commit that existed
// when they began; a checkpoint copies frames back into the database file,
// never past what a live reader (in any process) still needs.
package pager

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/shm"
	"github.com/sombradb/sombra/engine/internal/wal"
	"github.com/sombradb/sombra/engine/vfs"
)

// Options configure a pager.
type Options struct {
	FS          vfs.FS
	ReadOnly    bool
	PageSize    int   // for new files
	CacheBytes  int64 // page cache budget
	BusyTimeout time.Duration
	Create      bool // create the file if missing
	Exclusive   bool // fail if the file exists (engine.Create)
	Logger      *slog.Logger
	// Cipher, if set, seals every page but page 0 on disk (data-at-rest
	// encryption). A file is created encrypted when Cipher is set; an
	// encrypted file opens only with the cipher of its key, a plaintext
	// file only without a cipher.
	Cipher Cipher
	// Fallback opens files that are encrypted when Cipher is nil (the key
	// operators export for tools); it never creates or opens plaintext files.
	Fallback Cipher
	// Validate, if set, checks every page read from disk after its
	// checksum: the B+tree's structural check (see Pager.Validate).
	Validate func(b []byte) error
}

// Cipher seals and opens page images. Seal returns a sealed image
// Overhead() bytes longer than plain; Open reverses it and fails when the
// image was altered or sealed with another key or page id.
type Cipher interface {
	Overhead() int
	Seal(pageID uint64, plain []byte) []byte
	Open(pageID uint64, sealed []byte) ([]byte, error)
}

// Pager is one connection's view of a database file and its WAL.
type Pager struct {
	fs       vfs.FS
	path     string // the database file (resolved at open; see Path)
	walPath  string
	db       vfs.File
	walf     vfs.File
	shm      *shm.File
	pageSize int
	readOnly bool
	private  bool // read-only, without the shared coordination file (private.go)
	busy     time.Duration
	log      *slog.Logger
	fileID   uint64
	// cipher seals pages other than page 0 (nil: plaintext file); usable
	// is the number of bytes of such a page the layers above may use
	// (pageSize, or pageSize minus the cipher's overhead).
	cipher Cipher
	usable int

	// mu guards the WAL index, the reader set and the read slot.
	mu          sync.RWMutex
	ix          *wal.Index
	walSize     int64
	walAlloc    int64       // bytes of the WAL reserved by preallocate
	readers     []*Snapshot // live snapshots of this connection
	slot        int         // read slot held while readers exist; -1 none
	slotMark    int
	seenCounter uint64 // shm change counter at the last WAL refresh
	pid         int    // os.Getpid(), cached: it is a system call
	// fastBegins and slowBegins count read snapshots begun without and
	// with the gate (tests check that the fast path is taken).
	fastBegins, slowBegins atomic.Int64
	lastScan               wal.ScanReport

	writeMu sync.Mutex // one writer per connection

	// The shm locks are OFD locks: they exclude other connections, but not
	// other goroutines of this one (same descriptor), and one goroutine's
	// unlock drops the lock for all of them. gateMu and ckptMu give the gate
	// and the checkpoint lock the same exclusion inside the connection that
	// writeMu gives the writer lock. Take them before the shm lock and
	// release them after unlocking it.
	gateMu sync.Mutex
	ckptMu sync.Mutex
	cache  *Cache
	raBufs sync.Pool // *[]byte windows for read-ahead (readahead.go)
	// poisoned is set when an fsync failed: the connection must be
	// reopened. It is written by whichever goroutine ran the fsync (the
	// group-commit syncer, for one) and read by every writer: access it
	// through poison/setPoison.
	poisonMu sync.Mutex
	poisoned error

	// group is the group-commit syncer (nil: off). Committers load it
	// while EnableGroupCommit may swap it; groupMu serialises the swaps.
	groupMu   sync.Mutex
	group     atomic.Pointer[groupCommit]
	commitSeq int64 // commits appended by this connection, for group commit

	// The hooks of the layer above are unexported so that nothing can
	// swap them under a running connection: validatePage comes from
	// Options.Validate, afterCommit and beforeRestart from their setters.
	//
	// validatePage, if set, checks every page read from disk after its
	// checksum (see Validate).
	validatePage func(b []byte) error
	// afterCommit, if set, is called after every durable commit with the
	// number of frames in the WAL not yet checkpointed.
	afterCommit func(pending int)
	// beforeRestart, if set, is called while a WAL is about to be reset, with
	// the frames of the old log still readable. WAL archiving hooks in here.
	beforeRestart func(ix *wal.Index, f vfs.File, pageSize int) error

	repl Replicator // replication hook (replicate.go); nil: none
}

// Open opens (and with opts.Create, creates) a database file.
func Open(path string, opts Options) (*Pager, error) {
	if err := common.PlatformError(); err != nil {
		return nil, err
	}
	if opts.FS == nil {
		opts.FS = vfs.OS
	}
	if opts.PageSize == 0 {
		opts.PageSize = page.DefaultSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	fs := opts.FS
	// Every file derived from the database's name is named after its real
	// path, so that a process using a link and one using its target share
	// the WAL, the lock file and the change log (vfs.RealPath).
	path, err := vfs.RealPath(path)
	if err != nil {
		return nil, err
	}
	st, err := fs.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return nil, fmt.Errorf("%s: is a directory: %w", path, common.ErrNotADatabase)
	case err == nil && opts.Exclusive:
		return nil, fmt.Errorf("%s: %w", path, common.ErrExists)
	case errors.Is(err, os.ErrNotExist):
		if !opts.Create || opts.ReadOnly {
			return nil, fmt.Errorf("%s: %w", path, common.ErrNotFound)
		}
		if err := create(fs, path, opts.PageSize, opts.Cipher, opts.Exclusive); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	db, err := fs.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	p := &Pager{fs: fs, path: path, walPath: path + "-wal", db: db, readOnly: opts.ReadOnly,
		busy: opts.BusyTimeout, log: opts.Logger, slot: -1, pid: os.Getpid(), validatePage: opts.Validate}
	if err := p.init(opts); err != nil {
		p.closeFiles()
		return nil, err
	}
	return p, nil
}

func (p *Pager) init(opts Options) error {
	meta, err := ReadFileHeader(p.db, p.path)
	if err != nil {
		return err
	}
	p.pageSize = int(meta.PageSize)
	p.fileID = meta.FileID
	p.usable = p.pageSize
	c := opts.Cipher
	if c == nil && meta.Encrypted {
		c = opts.Fallback
	}
	if err := checkKey(p.path, meta, c); err != nil {
		return err
	}
	if meta.Encrypted {
		p.cipher = c
		p.usable = p.pageSize - int(meta.Overhead)
	}
	p.shm, err = shm.Open(p.fs, p.path+"-shm")
	if err != nil {
		if !p.readOnly || !shm.CannotShare(err) {
			return err
		}
		if err := p.openPrivate(err); err != nil {
			return err
		}
	}
	// Every connection holds the open lock shared; compaction and restore
	// take it exclusively, so they never swap a file under a live reader.
	// The first connection (it gets the lock exclusively) does not trust
	// the checkpoint progress the -shm records: it is not durable state.
	// The lock is then downgraded to shared in place.
	first, err := p.shm.TryLock(shm.LockOpen, true)
	if err != nil {
		return err
	}
	if first {
		if err := p.shm.ResetProgress(); err != nil {
			return err
		}
		// Database-wide counters cover the time since the database was
		// last closed by everyone (shm/counters.go).
		p.shm.ResetCounters(time.Now())
	}
	if err := p.shm.LockTimeout(shm.LockOpen, false, p.busy, common.LockExclusive, shm.OffExcl, p.path); err != nil {
		return err
	}
	p.shm.AttachCounters()
	if !p.readOnly {
		// A private reader (see openPrivate) relies on no writer starting
		// while it reads; this connection holds the open byte now, so no
		// new private reader can start either.
		if err := p.waitPrivateReaders(); err != nil {
			return err
		}
	}
	walFlag := os.O_RDWR | os.O_CREATE
	if p.readOnly {
		walFlag = os.O_RDONLY
	}
	_, werr := p.fs.Stat(p.walPath)
	p.walf, err = p.fs.OpenFile(p.walPath, walFlag, 0o644)
	if err != nil && !(p.readOnly && errors.Is(err, os.ErrNotExist)) {
		return fmt.Errorf("open %s: %w", p.walPath, err)
	}
	if err == nil && !p.readOnly && errors.Is(werr, os.ErrNotExist) {
		// A new WAL's name must be durable before a commit is acknowledged
		// from it: fsyncing the file does not make its directory entry
		// durable, and after a power loss the log, and every commit in it,
		// would be gone (SQLite syncs the directory of a new WAL too).
		if err := vfs.SyncParent(p.fs, p.walPath); err != nil {
			return fmt.Errorf("create %s: fsync directory: %w", p.walPath, err)
		}
	}
	p.cache = newCache(int(opts.CacheBytes / int64(p.pageSize)))
	p.cache.check = func(b []byte) bool { return page.Verify(b) && p.Validate(b) == nil }
	p.ix = wal.NewIndex(wal.Header{}, false, p.pageSize)
	if err := p.lockGate(false); err != nil {
		return err
	}
	defer p.unlockGate()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.refreshLocked(); err != nil {
		return err
	}
	if first {
		return p.restoreProgress(meta.CheckpointLSN)
	}
	return nil
}

// restoreProgress re-derives, for the first connection, the checkpoint
// progress it did not trust in the -shm: the log's frames up to the last
// commit at or below the checkpoint LSN stamped in the database file's
// header are in the file. The stamp is durable only after the pages it
// covers are (the checkpoint writes page 0 after an fsync of the others).
// Without this, every tool opening an idle database would report the whole
// log as pending and the next checkpoint would copy it again. It only ever
// raises progress for the log it scanned, under the checkpoint lock; if a
// checkpointer holds that lock it is left to it.
func (p *Pager) restoreProgress(stamp common.LSN) error {
	if !p.ix.Valid || stamp == 0 {
		return nil
	}
	n := 0
	for i, f := range p.ix.Frames[:p.ix.MaxFrame] {
		if f.LSN > stamp {
			break
		}
		if f.Commit {
			n = i + 1
		}
	}
	if n == 0 {
		return nil
	}
	ok, err := p.shm.TryLock(shm.LockCkpt, true)
	if err != nil || !ok {
		return err
	}
	defer p.shm.Unlock(shm.LockCkpt)
	if p.shm.Backfill(p.ix.Header.Salt) >= n {
		return nil
	}
	return p.shm.SetBackfill(p.ix.Header.Salt, n)
}

// ReadFileHeader reads and validates page 0 of a database file.
func ReadFileHeader(f vfs.File, path string) (*page.Meta, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("%s: file is empty: %w", path, common.ErrNotADatabase)
	}
	buf := make([]byte, page.DefaultSize)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	meta, err := page.DecodeMeta(buf[:n])
	if errors.Is(err, common.ErrNotADatabase) {
		// No magic: a foreign file, or a Sombra file whose first bytes
		// were overwritten. If its other pages verify, salvage can read
		// them, and calling it "not a database" would send the operator
		// away from the tool that recovers it.
		if _, n := page.ProbePageSize(f, st.Size(), 0); n > 0 {
			return nil, &common.CorruptionError{Path: path, Page: 0, Offset: 0,
				Reason: fmt.Sprintf("the header is damaged (no Sombra magic), but %d other pages are intact Sombra pages", n)}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int(meta.PageSize) != len(buf) {
		buf = make([]byte, meta.PageSize)
		if n, err = f.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	if n < int(meta.PageSize) {
		return nil, &common.CorruptionError{Path: path, Page: 0, Offset: 0, Reason: fmt.Sprintf("file truncated to %d bytes, shorter than one page", st.Size())}
	}
	if err := page.Check(buf, path, 0); err != nil {
		return nil, err
	}
	return meta, nil
}

func randU64() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return uint64(time.Now().UnixNano())
	}
	return binary.LittleEndian.Uint64(b[:])
}

// create writes a new, empty database: one meta page, fsynced, then the
// directory fsynced so the file survives power loss. The page is written
// under a temporary name and linked into place, which never replaces a
// file: a process that finds the name always finds a whole header, never
// the empty file of a creation in progress. Of two processes creating at
// once, one links and the other opens what it linked (or, with exclusive,
// fails with ErrExists). A file system that cannot link gets the file
// created in place instead.
func create(fs vfs.FS, path string, pageSize int, c Cipher, exclusive bool) error {
	m := NewMeta(pageSize)
	if c != nil {
		if err := SetEncryption(m, c); err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
	}
	buf := make([]byte, pageSize)
	m.Encode(buf)
	page.Seal(buf)
	l, ok := fs.(vfs.Linker)
	if !ok {
		return createInPlace(fs, path, buf, exclusive)
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.create-%d-%d.tmp", filepath.Base(path), os.Getpid(), time.Now().UnixNano()))
	if err := writeNew(fs, tmp, buf); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // name the database, not the temporary file
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer fs.Remove(tmp)
	switch err := l.Link(tmp, path); {
	case errors.Is(err, os.ErrExist):
		if exclusive {
			return fmt.Errorf("%s: %w", path, common.ErrExists)
		}
		return nil // created by another process in the meantime
	case errors.Is(err, errors.ErrUnsupported), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.ENOTSUP):
		return createInPlace(fs, path, buf, exclusive) // no hard links here
	case err != nil:
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := vfs.SyncParent(fs, path); err != nil {
		return fmt.Errorf("create %s: fsync directory: %w", path, err)
	}
	return nil
}

// writeNew creates name (which must not exist) holding b, fsynced.
func writeNew(fs vfs.FS, name string, b []byte) error {
	f, err := fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(b, 0)
	if err == nil {
		if err = f.Sync(); err != nil {
			err = fmt.Errorf("fsync %s: %w", name, err)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fs.Remove(name)
	}
	return err
}

// createInPlace is create for file systems without hard links: the name
// exists, empty, until the header is written.
func createInPlace(fs vfs.FS, path string, b []byte, exclusive bool) error {
	err := writeNew(fs, path, b)
	switch {
	case errors.Is(err, os.ErrExist) && exclusive:
		return fmt.Errorf("%s: %w", path, common.ErrExists)
	case errors.Is(err, os.ErrExist):
		return nil // created by someone else in the meantime
	case err != nil:
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := vfs.SyncParent(fs, path); err != nil {
		return fmt.Errorf("create %s: fsync directory: %w", path, err)
	}
	return nil
}

// NewMeta returns the header of an empty database.
func NewMeta(pageSize int) *page.Meta {
	return &page.Meta{Version: page.FormatVersion, PageSize: uint32(pageSize), PageCount: 1,
		NextNodeID: 1, NextEdgeID: 1, Created: time.Now().UnixNano(), FileID: randU64(),
		Stats: page.SpaceStats{Valid: true}}
}

// SetEncryption marks m as the header of a file sealed with c and stores
// the key check.
func SetEncryption(m *page.Meta, c Cipher) error {
	kc := c.Seal(page.KeyCheckPageID, []byte(page.KeyCheckText))
	if len(kc) != page.KeyCheckSize || c.Overhead() != len(kc)-len(page.KeyCheckText) {
		return fmt.Errorf("page cipher overhead %d is not supported: %w", c.Overhead(), common.ErrEncryption)
	}
	m.Encrypted, m.Overhead = true, uint32(c.Overhead())
	copy(m.KeyCheck[:], kc)
	return nil
}

// checkKey refuses to open an encrypted file without its key, with another
// key, or a plaintext file with a key (no silent mixing).
func checkKey(path string, m *page.Meta, c Cipher) error {
	switch {
	case m.Encrypted && c == nil:
		return fmt.Errorf("%s: database is encrypted; an encryption key is required: %w", path, common.ErrEncryption)
	case !m.Encrypted && c != nil:
		return fmt.Errorf("%s: database is not encrypted; open it without an encryption key: %w", path, common.ErrEncryption)
	case !m.Encrypted:
		return nil
	case int(m.Overhead) != c.Overhead():
		return fmt.Errorf("%s: database was encrypted with a cipher of %d bytes overhead, not %d: %w", path, m.Overhead, c.Overhead(), common.ErrEncryption)
	}
	if pt, err := c.Open(page.KeyCheckPageID, m.KeyCheck[:]); err != nil || string(pt) != page.KeyCheckText {
		return fmt.Errorf("%s: wrong encryption key (key check failed): %w", path, common.ErrEncryption)
	}
	return nil
}

// PageSize returns the page size.
func (p *Pager) PageSize() int { return p.pageSize }

// UsableSize is the number of bytes of a page (other than page 0) that the
// layers above the pager may use: the page size, less the cipher's
// overhead on an encrypted file. Pages they get from the pager are
// slices of this length.
func (p *Pager) UsableSize() int { return p.usable }

// Encrypted reports whether the file's pages are sealed.
func (p *Pager) Encrypted() bool { return p.cipher != nil }

// Cipher returns the key the file's pages are sealed with (nil for a
// plaintext file): what seals this database's WAL archive too.
func (p *Pager) Cipher() Cipher { return p.cipher }

// OpenRaw turns an on-disk image of page id (pageSize bytes) into the
// page the layers above see: on an encrypted file it opens the seal
// (failing with a CorruptionError naming where if the image was altered);
// otherwise it returns raw. where names the file for errors; off is the
// image's offset there (-1 unknown).
func (p *Pager) OpenRaw(id common.PageID, raw []byte, where string, off int64) ([]byte, error) {
	if p.cipher == nil || id == 0 {
		return raw, nil
	}
	b, err := p.cipher.Open(uint64(id), raw[:p.pageSize])
	if err != nil || len(b) != p.usable {
		return nil, &common.CorruptionError{Path: where, Page: id, Offset: off, Reason: "decryption failed (authentication tag mismatch: page altered or sealed with another key)"}
	}
	return b, nil
}

// SealRaw turns page id (as the layers above see it, already checksummed)
// into its on-disk image: sealed on an encrypted file, else b itself.
func (p *Pager) SealRaw(id common.PageID, b []byte) []byte {
	if p.cipher == nil || id == 0 {
		return b
	}
	return p.cipher.Seal(uint64(id), b[:p.usable])
}

// ReadOnly reports whether the connection is read-only.
func (p *Pager) ReadOnly() bool { return p.readOnly }

// refreshLocked brings the WAL index up to date with the file: it rebuilds
// it when the log was restarted (new salt) and otherwise scans only frames
// appended since the last look. Callers hold p.mu and the gate.
func (p *Pager) refreshLocked() error {
	if p.walf == nil {
		return nil
	}
	st, err := p.walf.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", p.walPath, err)
	}
	size := st.Size()
	if size < wal.HeaderSize {
		if p.ix.Valid {
			p.ix = wal.NewIndex(wal.Header{}, false, p.pageSize)
		}
		p.walSize = size
		return nil
	}
	hb := make([]byte, wal.HeaderSize)
	if _, err := p.walf.ReadAt(hb, 0); err != nil {
		return fmt.Errorf("read %s: %w", p.walPath, err)
	}
	h, err := wal.DecodeHeader(hb)
	if err != nil || int(h.PageSize) != p.pageSize || h.FileID != p.fileID {
		// A log that is damaged in its header, or belongs to another file
		// (left behind by a swap), holds nothing this database committed.
		if err == nil {
			p.log.Warn("ignoring WAL that does not belong to this database", "wal", p.walPath)
		}
		p.ix = wal.NewIndex(wal.Header{}, false, p.pageSize)
		p.walSize = size
		return nil
	}
	if !p.ix.Valid || p.ix.Header.Salt != h.Salt || p.ix.Header.CkptSeq != h.CkptSeq {
		p.ix = wal.NewIndex(h, true, p.pageSize)
	}
	rep, err := p.ix.Scan(p.walf, size)
	if err != nil {
		return err
	}
	p.lastScan = rep
	p.walSize = size
	return nil
}

// Close releases the connection. Open snapshots must be closed first.
func (p *Pager) Close() error {
	p.groupMu.Lock()
	p.group.Store(nil)
	p.groupMu.Unlock()
	return p.closeFiles()
}

func (p *Pager) closeFiles() error {
	var first error
	for _, f := range []interface{ Close() error }{p.db, p.walf} {
		if f != nil && !isNilFile(f) {
			if err := f.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	if p.shm != nil {
		p.shm.Close()
	}
	return first
}

func isNilFile(f interface{ Close() error }) bool {
	v, ok := f.(vfs.File)
	return ok && v == nil
}

// ReadBegins returns how many snapshots began without the gate (fast) and
// with it (slow).
func (p *Pager) ReadBegins() (fast, slow int64) { return p.fastBegins.Load(), p.slowBegins.Load() }

// Shm exposes the coordination file (for lock inspection by tools).
func (p *Pager) Shm() *shm.File { return p.shm }

// CacheStats returns the page cache counters.
func (p *Pager) CacheStats() CacheStats { return p.cache.stats() }

// CacheCounters returns the cache's hit and miss counts without taking the
// cache lock (CacheStats does, for the occupancy).
func (p *Pager) CacheCounters() (hits, misses uint64) {
	return p.cache.hits.Load(), p.cache.misses.Load()
}

// ResizeCache changes the page cache budget.
func (p *Pager) ResizeCache(bytes int64) { p.cache.resize(int(bytes / int64(p.pageSize))) }

// WALState is what the pager knows of the log.
type WALState struct {
	Size       int64
	Frames     int // committed frames
	Backfilled int // frames already copied into the database file
	Commits    int
	Scan       wal.ScanReport
	Salt       uint64
	CkptSeq    uint32
	// OldestPendingTS is the commit time (Unix ns) of the oldest
	// transaction whose frames are not checkpointed yet; 0 when none.
	OldestPendingTS int64
}

// WAL reports the log's state after bringing the index up to date.
func (p *Pager) WAL() (WALState, error) {
	if err := p.lockGate(false); err != nil {
		return WALState{}, err
	}
	defer p.unlockGate()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.refreshLocked(); err != nil {
		return WALState{}, err
	}
	st := WALState{Size: p.walSize, Frames: p.ix.MaxFrame, Commits: p.ix.Commits, Scan: p.lastScan,
		Salt: p.ix.Header.Salt, CkptSeq: p.ix.Header.CkptSeq}
	if p.ix.Valid {
		st.Backfilled = min(p.shm.Backfill(p.ix.Header.Salt), p.ix.MaxFrame)
		for i := st.Backfilled; i < p.ix.MaxFrame && i < len(p.ix.Frames); i++ {
			if p.ix.Frames[i].Commit {
				st.OldestPendingTS = p.ix.Frames[i].CommitTS
				break
			}
		}
	}
	return st, nil
}

// DBFileSize returns the size of the database file.
func (p *Pager) DBFileSize() (int64, error) {
	st, err := p.db.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// ExclusiveLock tries to take the open lock exclusively (no other
// connection may have the database open). It gives up the shared hold this
// connection has; ReleaseExclusive returns to shared.
func (p *Pager) ExclusiveLock(wait time.Duration) error {
	return p.ExclusiveLockContext(context.Background(), wait)
}

// ExclusiveLockContext is ExclusiveLock, whose wait ends when ctx is
// cancelled (an error matching ctx.Err()).
func (p *Pager) ExclusiveLockContext(ctx context.Context, wait time.Duration) error {
	if p.private {
		// The exclusive hold is a lock in the -shm, which this connection
		// does not share: it could not keep shared-memory readers out.
		return fmt.Errorf("%s: cannot hold the database exclusively: this process reads it without its coordination file %s-shm, which it cannot write: %w",
			p.path, p.path, common.ErrReadOnly)
	}
	if err := p.shm.LockContext(ctx, shm.LockOpen, true, wait, common.LockOpen, 0, p.path); err != nil {
		// The error names every live process holding the database open
		// (shm.LockTimeout); a connection of this process other than p
		// shows as this pid.
		return fmt.Errorf("database is open in another connection: %w", err)
	}
	_ = p.shm.WriteU64(shm.OffExcl, uint64(os.Getpid()))
	return nil
}

// FileMeta reads page 0 from the database file itself (not the WAL): it
// holds the progress of the last checkpoint.
func (p *Pager) FileMeta() (*page.Meta, error) { return ReadFileHeader(p.db, p.path) }

// Path is the database file's path, resolved once at open (every derived
// file is named after it).
func (p *Pager) Path() string { return p.path }

// WALPath is the path of the WAL file.
func (p *Pager) WALPath() string { return p.walPath }

// FileID is the random id of the database file.
func (p *Pager) FileID() uint64 { return p.fileID }

// lockGate takes the gate (shared or exclusive) for this goroutine; see
// gateMu. Release it with unlockGate.
func (p *Pager) lockGate(excl bool) error {
	p.gateMu.Lock()
	if err := p.shm.LockWait(shm.LockGate, excl); err != nil {
		p.gateMu.Unlock()
		return err
	}
	return nil
}

func (p *Pager) unlockGate() {
	p.shm.Unlock(shm.LockGate)
	p.gateMu.Unlock()
}

// otherReaders lists the pids of other connections' readers. It holds
// p.mu so that the probing (lock then unlock every free slot) cannot race
// with this connection taking its own slot: an unlock by one goroutine
// would drop the slot lock another goroutine just took.
func (p *Pager) otherReaders() []int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.shm.ActiveReaders(p.slot)
}
