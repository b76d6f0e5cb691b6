package backup

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/changelog"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/pager"
	"github.com/sombradb/sombra/engine/internal/shm"
	"github.com/sombradb/sombra/engine/internal/wal"
	"github.com/sombradb/sombra/engine/vfs"
)

// RestoreResult reports a restore.
type RestoreResult struct {
	Target    string        `json:"target"`
	Backup    string        `json:"backup"`
	Chain     []string      `json:"chain"` // full backup first
	EndLSN    uint64        `json:"end_lsn"`
	PageCount uint64        `json:"page_count"`
	Pages     uint64        `json:"pages_written"`
	Bytes     int64         `json:"bytes"`
	FileID    string        `json:"db_file_id"`
	Replay    *ReplayResult `json:"replay,omitempty"`
	Duration  time.Duration `json:"duration_ns"`
}

type link struct {
	name    string
	path    string
	hdr     *Header
	records uint64
}

// bytes is the size of the link's page records, what restoring it reads.
func (l link) bytes() int64 { return int64(l.records) * int64(recHdrSize+l.hdr.PageSize) }

// loadChain returns the backups needed to restore name, full backup first,
// after checking every header, trailer and link.
func loadChain(fs vfs.FS, dir, name string) ([]link, error) {
	var rev []link
	seen := map[string]bool{}
	for cur := name; ; {
		if seen[cur] {
			return nil, fmt.Errorf("backup %s: parent cycle at %s: %w", name, cur, ErrBrokenChain)
		}
		seen[cur] = true
		path := backupPath(dir, cur)
		b, err := openFile(fs, path)
		if err != nil {
			if errors.Is(err, common.ErrNotFound) && len(rev) > 0 {
				child := rev[len(rev)-1]
				return nil, fmt.Errorf("backup %s: parent %s of %s is missing (%s): %w", name, cur, child.name, path, ErrBrokenChain)
			}
			return nil, err
		}
		h, records := b.hdr, b.records
		b.Close()
		if len(rev) > 0 {
			child := rev[len(rev)-1].hdr
			switch {
			case child.PageCount > h.PageCount+rev[len(rev)-1].records:
				return nil, &common.CorruptionError{Path: rev[len(rev)-1].path, Page: 0, Offset: 0,
					Reason: fmt.Sprintf("page count %d cannot follow the parent's %d with %d page records", child.PageCount, h.PageCount, rev[len(rev)-1].records)}
			case h.FileID != child.FileID:
				return nil, fmt.Errorf("backup %s: parent %s is of database file %016x, child of %016x: %w", name, cur, h.FileID, child.FileID, ErrBrokenChain)
			case h.EndLSN != child.BaseLSN:
				return nil, fmt.Errorf("backup %s: parent %s ends at LSN %d but %s begins after LSN %d: %w", name, cur, h.EndLSN, rev[len(rev)-1].name, child.BaseLSN, ErrBrokenChain)
			case h.PageSize != child.PageSize:
				return nil, fmt.Errorf("backup %s: parent %s has page size %d, child %d: %w", name, cur, h.PageSize, child.PageSize, ErrBrokenChain)
			case h.Sealed != child.Sealed:
				// One chain is one database file, encrypted or not: a
				// mix would write plaintext and sealed pages into one file.
				return nil, fmt.Errorf("backup %s: parent %s is %s, child %s: %w", name, cur, sealedWord(h.Sealed), sealedWord(child.Sealed), ErrBrokenChain)
			}
		}
		rev = append(rev, link{name: cur, path: path, hdr: h, records: records})
		if h.Type == TypeFull {
			break
		}
		cur = h.Parent
	}
	chain := make([]link, len(rev))
	for i, l := range rev {
		chain[len(rev)-1-i] = l
	}
	return chain, nil
}

func sealedWord(sealed bool) string {
	if sealed {
		return "sealed (encrypted database)"
	}
	return "plaintext"
}

// restoreChain writes the chain into a new file tmp and fsyncs it. Each
// backup's records are verified as they are read; the result is checked to
// have every page and a header at the chain's end LSN.
func restoreChain(o Options, chain []link, tmp string) (*page.Meta, uint64, error) {
	last := chain[len(chain)-1].hdr
	ps := int64(last.PageSize)
	f, err := o.FS.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("create %s: %w", tmp, err)
	}
	ok := false
	defer func() {
		f.Close()
		if !ok {
			o.FS.Remove(tmp)
		}
	}()
	have := make([]uint64, (last.PageCount+63)/64)
	var written uint64
	var total int64
	for _, l := range chain {
		total += l.bytes()
	}
	tr := o.tracker(total)
	defer tr.Finish()
	for _, l := range chain {
		b, err := openFile(o.FS, l.path)
		if err != nil {
			return nil, 0, err
		}
		var c engine.PageCipher
		if b.hdr.Sealed {
			if c = o.cipher(); c != nil {
				b.open = func(id common.PageID, img []byte) ([]byte, error) { return c.Open(uint64(id), slices.Clone(img)) }
			}
		}
		err = b.each(func(id common.PageID, img []byte) error {
			if err := tr.Add(int64(recHdrSize + len(img))); err != nil {
				return err
			}
			if id == 0 && c != nil {
				if err := checkKey(c, l.path, img); err != nil {
					return err
				}
			}
			if _, err := f.WriteAt(img, int64(id)*ps); err != nil {
				return fmt.Errorf("write %s: %w", tmp, err)
			}
			if uint64(id) < last.PageCount {
				have[id/64] |= 1 << (id % 64)
			}
			written++
			return nil
		})
		b.Close()
		if err != nil {
			return nil, 0, err
		}
	}
	for id := uint64(0); id < last.PageCount; id++ {
		if have[id/64]&(1<<(id%64)) == 0 {
			return nil, 0, fmt.Errorf("backup chain of %s holds no image of page %d: %w", chain[len(chain)-1].name, id, ErrBrokenChain)
		}
	}
	if err := f.Truncate(int64(last.PageCount) * ps); err != nil {
		return nil, 0, fmt.Errorf("truncate %s: %w", tmp, err)
	}
	p0 := make([]byte, ps)
	if _, err := f.ReadAt(p0, 0); err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", tmp, err)
	}
	m, err := page.DecodeMeta(p0)
	if err != nil {
		return nil, 0, &common.CorruptionError{Path: chain[len(chain)-1].path, Page: 0, Offset: -1, Reason: "restored header: " + err.Error()}
	}
	if uint64(m.LastLSN) != last.EndLSN || m.PageCount != last.PageCount || m.FileID != last.FileID {
		return nil, 0, &common.CorruptionError{Path: chain[len(chain)-1].path, Page: 0, Offset: -1,
			Reason: fmt.Sprintf("restored header says LSN %d, %d pages, file %016x; the backup says LSN %d, %d pages, file %016x",
				m.LastLSN, m.PageCount, m.FileID, last.EndLSN, last.PageCount, last.FileID)}
	}
	if o.NewFileID {
		m.FileID = newFileID()
		m.Encode(p0)
		page.Seal(p0)
		if _, err := f.WriteAt(p0, 0); err != nil {
			return nil, 0, fmt.Errorf("write %s: %w", tmp, err)
		}
	}
	if err := f.Sync(); err != nil {
		return nil, 0, fmt.Errorf("fsync %s: %w", tmp, err)
	}
	ok = true
	return m, written, nil
}

// checkKey fails with ErrEncryption unless c is the key page 0 (of a
// sealed backup) was sealed with: a wrong key is not a damaged backup.
func checkKey(c engine.PageCipher, path string, p0 []byte) error {
	m, err := page.DecodeMeta(p0)
	if err != nil {
		return &common.CorruptionError{Path: path, Page: 0, Offset: -1, Reason: "header page: " + err.Error()}
	}
	if pt, err := c.Open(page.KeyCheckPageID, m.KeyCheck[:]); err != nil || string(pt) != page.KeyCheckText {
		return fmt.Errorf("%s was sealed with another key: %w", path, engine.ErrEncryption)
	}
	return nil
}

func newFileID() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return uint64(time.Now().UnixNano())
	}
	return binary.LittleEndian.Uint64(b[:])
}

// tempNear names a temporary file next to path (same file system, so the
// final rename is atomic). The name never ends in ".backup" or ".db".
func tempNear(path, what string) string {
	return filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%s-%d-%d.tmp", filepath.Base(path), what, os.Getpid(), time.Now().UnixNano()))
}

func removeDBFiles(fs vfs.FS, path string) {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fs.Remove(p)
	}
	changelog.Remove(fs, path)
}

func checkTarget(o Options, target string) error {
	if st, err := o.FS.Stat(target); err == nil {
		if st.IsDir() {
			return fmt.Errorf("restore target %s is a directory: %w", target, common.ErrInvalid)
		}
		if !o.Force {
			return fmt.Errorf("%s: restore target %w", target, common.ErrExists)
		}
	}
	return nil
}

// installTarget moves the restored file tmp to target and returns the
// file id the installed database has. It holds target's open lock
// exclusively meanwhile, so nobody has the old database open.
//
// The old database stays whole until the new file is renamed into place: a
// crash at any point leaves either the old database with its WAL or the
// restored one. Its WAL is removed only after the rename; a WAL a crash
// leaves beside the new file is ignored by every reader, since its header
// names another file id (the pager and salvage both check it). A restore of
// a backup of this very database has the same file id as the old WAL,
// though, so the old WAL is first folded into the old file (a TRUNCATE
// checkpoint: the old database then lies whole in its file and its WAL is
// empty). Where that is impossible (the old file does not open: damaged,
// or encrypted with a key this process lacks) the restored file gets a new
// file id instead.
func installTarget(o Options, tmp, target string) (uint64, error) {
	id, err := fileIDOf(o.FS, tmp)
	if err != nil {
		return 0, err
	}
	old, unlock, err := lockTarget(o, target)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if err := checkTarget(o, target); err != nil {
		return 0, err
	}
	if walID, frames := peekWAL(o.FS, target+"-wal"); frames && walID == id {
		_, statErr := o.FS.Stat(target)
		switch {
		case errors.Is(statErr, os.ErrNotExist) || (old != nil && old.FileID() != id):
			// Not the WAL of an old database (none, or one of another
			// file id): nothing of the old database is lost with it.
			if err := o.FS.Remove(target + "-wal"); err != nil && !errors.Is(err, os.ErrNotExist) {
				return 0, fmt.Errorf("remove %s-wal: %w", target, err)
			}
		case old != nil:
			if err := foldWAL(old); err != nil {
				return 0, fmt.Errorf("fold the WAL of %s into it before replacing it: %w", target, err)
			}
		default:
			o.Logger.Warn("the database being replaced does not open; the restored file gets a new file id so that its old WAL can never be read as the new file's",
				"target", target)
			if id, err = setNewFileID(o.FS, tmp); err != nil {
				return 0, err
			}
		}
	}
	// The change log is advisory (a missing one only makes the next
	// incremental backup read more), so removing it first costs the old
	// database nothing; left beside a restored file of the same id, its
	// records would describe another history.
	if err := changelog.Remove(o.FS, target); err != nil {
		return 0, err
	}
	// Likewise the health check's record of what it verified
	// (health.VerifiedSuffix; health imports this package): without it the
	// next check reads every page, with it a restored file of the same id
	// and LSN but another history would be taken as verified.
	if err := o.FS.Remove(target + "-verified"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("remove %s-verified: %w", target, err)
	}
	if err := o.FS.Rename(tmp, target); err != nil {
		return 0, fmt.Errorf("rename %s to %s: %w", tmp, target, err)
	}
	if err := o.FS.SyncDir(filepath.Dir(target)); err != nil {
		return 0, fmt.Errorf("fsync %s: %w", filepath.Dir(target), err)
	}
	if err := o.FS.Remove(target + "-wal"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("remove %s-wal: %w", target, err)
	}
	return id, nil
}

// lockTarget takes target's open lock exclusively. When target is a
// database that opens, it does so through a pager on it (returned, for
// foldWAL); otherwise through the lock file alone. unlock releases
// whichever it took.
func lockTarget(o Options, target string) (*pager.Pager, func(), error) {
	if _, err := o.FS.Stat(target); err == nil {
		p, err := pager.Open(target, pager.Options{FS: o.FS, CacheBytes: 1 << 20, BusyTimeout: o.BusyTimeout, Logger: o.Logger})
		switch {
		case errors.Is(err, common.ErrBusy):
			return nil, nil, fmt.Errorf("restore target is open in another connection: %w", err)
		case err == nil:
			if err := p.ExclusiveLock(o.BusyTimeout); err != nil {
				p.Close()
				return nil, nil, fmt.Errorf("restore target: %w", err)
			}
			return p, func() { p.Close() }, nil
		}
		o.Logger.Debug("restore target does not open", "target", target, "err", err)
	}
	s, err := shm.Open(o.FS, target+"-shm")
	if err != nil {
		return nil, nil, err
	}
	if err := s.LockTimeout(shm.LockOpen, true, o.BusyTimeout, common.LockOpen, shm.OffExcl, target); err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("restore target is open in another connection: %w", err)
	}
	_ = s.WriteU64(shm.OffExcl, uint64(os.Getpid()))
	return nil, func() { s.Unlock(shm.LockOpen); s.Close() }, nil
}

// foldWAL copies every committed frame of p's WAL into its database file
// and empties the WAL (p holds the database exclusively).
func foldWAL(p *pager.Pager) error {
	if _, err := p.Checkpoint(pager.Truncate); err != nil {
		return err
	}
	st, err := p.WAL()
	if err != nil {
		return err
	}
	if st.Frames > 0 {
		return fmt.Errorf("%d WAL frames remain after a truncating checkpoint: %w", st.Frames, common.ErrBusy)
	}
	return nil
}

// peekWAL reads the header of a WAL file: the file id it names and whether
// any frame follows the header.
func peekWAL(fs vfs.FS, path string) (uint64, bool) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() <= wal.HeaderSize {
		return 0, false
	}
	hb := make([]byte, wal.HeaderSize)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return 0, false
	}
	h, err := wal.DecodeHeader(hb)
	if err != nil {
		return 0, false
	}
	return h.FileID, true
}

func fileIDOf(fs vfs.FS, path string) (uint64, error) {
	m, err := readMeta(fs, path)
	if err != nil {
		return 0, err
	}
	return m.FileID, nil
}

// setNewFileID gives the database file at path a new file id (fsynced).
func setNewFileID(fs vfs.FS, path string) (uint64, error) {
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	m, err := pager.ReadFileHeader(f, path)
	if err != nil {
		return 0, err
	}
	if err := assignNewFileID(f, int(m.PageSize)); err != nil {
		return 0, fmt.Errorf("new file id for %s: %w", path, err)
	}
	return fileIDOf(fs, path)
}

// Restore restores the backup name in dir (and the backups it depends on,
// full first) to target: every page checksum is verified on the way, the
// file is written under a temporary name, fsynced and renamed. The result
// is a database at the backup's end LSN with no WAL. An existing target is
// refused unless opts.Force, and is never replaced while a connection has
// it open.
func Restore(dir, name, target string, opts Options) (*RestoreResult, error) {
	return RestoreContext(context.Background(), dir, name, target, opts)
}

// RestoreContext is Restore, stopped when ctx is cancelled: up to the
// moment the restored file replaces the target, a cancel removes the
// temporary file and returns an error matching ctx.Err(), the target (if
// any) untouched; a restore that has replaced the target completes.
func RestoreContext(ctx context.Context, dir, name, target string, opts Options) (*RestoreResult, error) {
	start := time.Now()
	o := opts.withDefaults()
	o = o.withContext(ctx)
	dir, name, err := splitName(dir, name)
	if err != nil {
		return nil, err
	}
	chain, err := loadChain(o.FS, dir, name)
	if err != nil {
		return nil, err
	}
	// A target reached through a link: the link's target is replaced.
	if target, err = vfs.RealPath(target); err != nil {
		return nil, err
	}
	if err := checkTarget(o, target); err != nil {
		return nil, err
	}
	if IsRemote(dir) {
		// Restored from a local copy of the chain, checked against the
		// checksums recorded at upload on the way down.
		local, cleanup, err := stageChain(o, dir, name, "restore")
		if err != nil {
			return nil, err
		}
		defer cleanup()
		if chain, err = loadChain(o.FS, local, name); err != nil {
			return nil, err
		}
	}
	if err := vfs.MkdirAllDurable(o.FS, filepath.Dir(target)); err != nil {
		return nil, err
	}
	removeStaleNear(o.FS, filepath.Dir(target), filepath.Base(target), "restore")
	tmp := tempNear(target, "restore")
	meta, pages, err := restoreChain(o, chain, tmp)
	if err != nil {
		return nil, err
	}
	if err := o.canceled(); err != nil {
		o.FS.Remove(tmp)
		return nil, err
	}
	id, err := installTarget(o, tmp, target)
	if err != nil {
		o.FS.Remove(tmp)
		return nil, err
	}
	res := &RestoreResult{Target: target, Backup: name, EndLSN: uint64(meta.LastLSN), PageCount: meta.PageCount,
		Pages: pages, Bytes: int64(meta.PageCount) * int64(meta.PageSize), FileID: fmt.Sprintf("%016x", id)}
	for _, l := range chain {
		res.Chain = append(res.Chain, l.name)
	}
	res.Duration = time.Since(start)
	o.Logger.Info("backup restored", "backup", name, "target", target, "end_lsn", res.EndLSN, "duration_ms", res.Duration.Milliseconds())
	return res, nil
}
