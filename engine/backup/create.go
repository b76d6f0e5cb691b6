package backup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/changelog"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/pager"
	"github.com/sombradb/sombra/engine/internal/wal"
	"github.com/sombradb/sombra/engine/internal/walarchive"
	"github.com/sombradb/sombra/engine/vfs"
)

// Result reports a backup that was taken.
type Result struct {
	Name        string    `json:"name"`
	Path        string    `json:"path"`
	Type        string    `json:"type"`
	Parent      string    `json:"parent,omitempty"`
	BaseLSN     uint64    `json:"base_lsn"`
	EndLSN      uint64    `json:"end_lsn"`
	PageCount   uint64    `json:"page_count"`
	Pages       uint64    `json:"pages"`      // page records written
	PagesRead   uint64    `json:"pages_read"` // pages read from the database to find them
	Bytes       int64     `json:"bytes"`      // size of the backup file
	LogicalHash string    `json:"logical_hash,omitempty"`
	Created     time.Time `json:"created"`
	// ChangeSource says how an incremental backup found the changed pages:
	// "wal" (all still in the WAL), "wal+changelog" (the checkpoint change
	// log covered the rest), or "scan" (every page's LSN was read).
	ChangeSource string        `json:"change_source"`
	Archived     int           `json:"wal_transactions_archived"`
	Warnings     []string      `json:"warnings,omitempty"`
	Duration     time.Duration `json:"duration_ns"`
}

// CreateFullBackup writes every page of one consistent snapshot to dstPath
// (".backup" is appended when missing; a bare name goes into the manager's
// directory). It refuses an existing output unless Options.Force.
func (m *BackupManager) CreateFullBackup(dstPath string) (*Result, error) {
	return m.create(dstPath, TypeFull)
}

// CreateIncrementalBackup writes the pages changed since the newest backup
// of this database in dstPath's directory (or Options.Base): those whose
// page LSN is above the parent's end LSN, plus the new page count. Its cost
// is proportional to the change when the WAL index and the checkpoint
// change log cover the range since the parent, and to the database size
// otherwise (see the package documentation). With no usable parent it
// fails with ErrNoBase.
func (m *BackupManager) CreateIncrementalBackup(dstPath string) (*Result, error) {
	return m.create(dstPath, TypeIncremental)
}

func (m *BackupManager) create(dst string, typ Type) (*Result, error) {
	start := time.Now()
	o := m.opts
	dir, name, err := splitName(m.dir, dst)
	if err != nil {
		return nil, err
	}
	path := backupPath(dir, name)
	if err := m.db.Authorize(o.User, engine.PermissionBackup); err != nil {
		return nil, fmt.Errorf("backup of %s: %w", m.db.Path(), err)
	}
	if _, err := o.FS.Stat(path); err == nil && !o.Force {
		return nil, fmt.Errorf("%s: backup exists (use --force to overwrite): %w", path, common.ErrExists)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create backup directory: %w", err)
	}
	for _, n := range removeStaleBackupTemps(o.FS, dir) {
		o.Logger.Info("removed the temporary file of a killed backup", "file", n)
	}
	p := m.db.Pager()
	if p.Encrypted() {
		return nil, errEncrypted(p.Path)
	}
	res := &Result{Name: name, Path: path, Type: typ.String(), ChangeSource: "full"}

	var parent *BackupInfo
	if typ == TypeIncremental {
		parent, err = pickParent(o, dir, name, p.FileID())
		switch {
		case errors.Is(err, ErrNoBase) && o.FullIfNoBase:
			typ, parent = TypeFull, nil
			res.Type = typ.String()
			res.Warnings = append(res.Warnings, fmt.Sprintf("no base for an incremental backup (%v); took a full backup instead", err))
		case err != nil:
			return nil, err
		default:
			res.Parent = parent.Name
			res.BaseLSN = parent.EndLSN
		}
	}
	// Archive what the live WAL holds, so the archive reaches the backup.
	archDir, err := m.db.WALArchiveDir()
	if err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("read WAL archive setting: %v", err))
	}
	arch := (*walarchive.Archive)(nil)
	if archDir != "" {
		arch = walarchive.New(o.FS, archDir)
		ar, err := arch.ArchiveWALFile(p.WALPath, p.FileID(), p.PageSize())
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("archive WAL: %v", err))
			o.Logger.Warn("archive WAL before backup", "err", err)
		}
		res.Archived = ar.Txs
	}
	// The change log must exist before the snapshot is taken, so that every
	// checkpoint after the snapshot is recorded.
	if err := changelog.Enable(o.FS, p.Path, p.FileID()); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("change tracking off, next incremental will scan: %v", err))
	}

	tmp := fmt.Sprintf("%s.tmp-%d-%d", path, os.Getpid(), time.Now().UnixNano())
	err = m.db.ViewAs(o.User, func(tx *engine.Tx) error {
		snap := tx.Snapshot()
		meta, err := snap.Meta()
		if err != nil {
			return err
		}
		h := &Header{Type: typ, PageSize: p.PageSize(), PageCount: meta.PageCount, EndLSN: uint64(meta.LastLSN),
			FileID: meta.FileID, Created: o.Now().UTC()}
		frames := snap.Frames()
		if parent != nil {
			if err := checkParent(parent, h, p.Path); err != nil {
				return err
			}
			if err := checkSameHistory(parent, frames, arch, meta.FileID, p.Path); err != nil {
				return err
			}
			h.BaseLSN, h.Parent = parent.EndLSN, parent.Name
		}
		for i := len(frames) - 1; i >= 0; i-- {
			if frames[i].Commit {
				if uint64(frames[i].LSN) == h.EndLSN {
					h.EndTime = time.Unix(0, frames[i].CommitTS).UTC()
				}
				break
			}
		}
		if h.EndTime.IsZero() && arch != nil {
			if ts, ok, _ := arch.CommitTime(meta.FileID, meta.LastLSN); ok {
				h.EndTime = time.Unix(0, ts).UTC()
			}
		}
		if !o.NoLogicalHash {
			if h.LogicalHash, err = tx.LogicalHash(); err != nil {
				return err
			}
		}
		var ids []common.PageID
		if typ == TypeIncremental {
			ids, res.ChangeSource, err = changedPages(o, p, snap, meta, common.LSN(h.BaseLSN))
			if err != nil {
				return err
			}
		}
		return writeBackup(o, tmp, h, snap, p, ids, res)
	})
	if err != nil {
		o.FS.Remove(tmp)
		return nil, err
	}
	if err := o.FS.Rename(tmp, path); err != nil {
		o.FS.Remove(tmp)
		return nil, fmt.Errorf("rename %s: %w", tmp, err)
	}
	// A failed step after the rename must not leave a backup that list
	// shows as complete (and that blocks a retry as "exists"): remove it.
	undo := func(step string, err error) (*Result, error) {
		o.FS.Remove(path)
		_ = o.FS.SyncDir(dir)
		return nil, fmt.Errorf("backup %s: %s (the backup was removed; take it again): %w", name, step, err)
	}
	if err := o.FS.SyncDir(dir); err != nil {
		return undo("fsync "+dir, err)
	}
	if err := updateCatalog(o, dir, nil); err != nil {
		return undo("update the catalog", err)
	}
	res.Duration = time.Since(start)
	o.Logger.Info("backup created", "name", name, "type", res.Type, "end_lsn", res.EndLSN, "pages", res.Pages,
		"change_source", res.ChangeSource, "bytes", res.Bytes, "duration_ms", res.Duration.Milliseconds())
	return res, nil
}

// pickParent chooses the parent of an incremental backup.
func pickParent(o Options, dir, self string, fileID uint64) (*BackupInfo, error) {
	list, err := listBackups(o.FS, dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	id := fmt.Sprintf("%016x", fileID)
	if o.Base != "" {
		_, base, err := splitName(dir, o.Base)
		if err != nil {
			return nil, err
		}
		if base == self {
			return nil, fmt.Errorf("backup %s cannot be its own base: %w", base, common.ErrInvalid)
		}
		for i := range list {
			if list[i].Name == base {
				b := &list[i]
				if !b.ChainOK() {
					return nil, fmt.Errorf("base %s: %s%s: %w", base, b.Chain, errSuffix(b.Error), ErrBrokenChain)
				}
				return b, nil
			}
		}
		return nil, fmt.Errorf("base backup %s not found in %s: %w", base, dir, ErrNoBase)
	}
	var best, broken *BackupInfo
	other := 0
	for i := range list {
		b := &list[i]
		if dependsOn(list, b, self) { // a forced overwrite never bases on itself
			continue
		}
		if !b.ChainOK() {
			if b.DBFileID == id && (broken == nil || b.EndLSN > broken.EndLSN) {
				broken = b
			}
			continue
		}
		if b.DBFileID != id {
			other++
			continue
		}
		if best == nil || b.EndLSN > best.EndLSN || (b.EndLSN == best.EndLSN && b.Created.After(best.Created)) {
			best = b
		}
	}
	if best == nil {
		if broken != nil {
			// Never build on it: the incremental would verify as broken
			// too (e.g. its full backup was deleted by find -delete).
			return nil, fmt.Errorf("%s: the newest backup of this database, %s, has a broken chain (%s) and no intact one is left: take a full backup first: %w",
				dir, broken.Name, strings.TrimPrefix(broken.Chain, "broken: "), ErrNoBase)
		}
		if other > 0 {
			return nil, fmt.Errorf("%s holds backups of another database file (compacted or restored since?): take a full backup first: %w", dir, ErrNoBase)
		}
		return nil, fmt.Errorf("%s holds no full backup to base an incremental backup on: take a full backup first: %w", dir, ErrNoBase)
	}
	return best, nil
}

// dependsOn reports whether b is name or descends from it.
func dependsOn(list []BackupInfo, b *BackupInfo, name string) bool {
	for depth := 0; b != nil && depth <= len(list); depth++ {
		if b.Name == name {
			return true
		}
		parent := b.Parent
		b = nil
		for i := range list {
			if parent != "" && list[i].Name == parent {
				b = &list[i]
			}
		}
	}
	return false
}

func errSuffix(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func checkParent(parent *BackupInfo, h *Header, dbPath string) error {
	if parent.DBFileID != fmt.Sprintf("%016x", h.FileID) {
		return fmt.Errorf("parent %s is a backup of another database file (%s, this is %016x): take a full backup: %w",
			parent.Name, parent.DBFileID, h.FileID, ErrNoBase)
	}
	if h.EndLSN < parent.EndLSN {
		return fmt.Errorf("%s is at LSN %d, behind its parent backup %s (LSN %d): was it restored? take a full backup: %w",
			dbPath, h.EndLSN, parent.Name, parent.EndLSN, ErrNoBase)
	}
	return nil
}

// checkSameHistory compares the commit time of the parent's end LSN as
// recorded in the parent with the one the database still knows (from its
// WAL or the WAL archive): a difference means the database was restored to
// an earlier point and written since, so the same LSNs name different
// transactions and an incremental on the old chain would be wrong. When
// neither knows the time the check cannot be made (see the package
// documentation).
func checkSameHistory(parent *BackupInfo, frames []wal.Frame, arch *walarchive.Archive, fileID uint64, dbPath string) error {
	if parent.EndTime == nil || parent.EndLSN == 0 {
		return nil
	}
	want := parent.EndTime.UnixNano()
	var got int64
	for _, f := range frames {
		if f.Commit && uint64(f.LSN) == parent.EndLSN {
			got = f.CommitTS
		}
	}
	if got == 0 && arch != nil {
		got, _, _ = arch.CommitTime(fileID, common.LSN(parent.EndLSN))
	}
	if got != 0 && got != want {
		return fmt.Errorf("%s: LSN %d was committed at %s, but parent backup %s recorded %s: the database was restored and has diverged; take a full backup: %w",
			dbPath, parent.EndLSN, fmtTime(got), parent.Name, fmtTime(want), ErrTimeline)
	}
	return nil
}

// changedPages returns the pages that may have changed after base, from
// the snapshot's WAL frames and the checkpoint change log, or nil and
// "scan" when they cannot tell.
func changedPages(o Options, p *pager.Pager, snap *pager.Snapshot, meta *page.Meta, base common.LSN) ([]common.PageID, string, error) {
	frames := snap.Frames()
	set := map[common.PageID]struct{}{}
	upto := meta.LastLSN // LSNs (base, upto] are not in the snapshot's frames
	if len(frames) > 0 {
		upto = frames[0].LSN - 1
	}
	for _, f := range frames {
		if f.LSN > base {
			set[f.Page] = struct{}{}
		}
	}
	source := "wal"
	if base < upto {
		pages, covered, err := changelog.Changed(o.FS, p.Path, p.FileID(), base, upto)
		if err != nil {
			o.Logger.Warn("read change log", "err", err)
		}
		if err != nil || !covered {
			return nil, "scan", nil
		}
		for _, pg := range pages {
			set[pg] = struct{}{}
		}
		source = "wal+changelog"
	}
	ids := make([]common.PageID, 0, len(set))
	for pg := range set {
		if uint64(pg) < meta.PageCount {
			ids = append(ids, pg)
		}
	}
	slices.Sort(ids)
	return ids, source, nil
}

// readPage reads page id as the snapshot sees it, around the page cache
// (a backup would otherwise evict the application's working set), and
// verifies its checksum.
func readPage(snap *pager.Snapshot, p *pager.Pager, id common.PageID, buf []byte) error {
	src, off := p.Path, int64(id)*int64(len(buf))
	var err error
	if f := snap.Source(id); f >= 0 {
		src = p.WALPath
		err = snap.ReadFrame(f, buf)
	} else {
		err = p.RawDBPage(id, buf)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return &common.CorruptionError{Path: src, Page: id, Offset: off, Reason: "page lies beyond the end of the file"}
		}
		return fmt.Errorf("read %s page %d: %w", src, id, err)
	}
	if !page.Verify(buf) {
		if src == p.WALPath {
			off = -1
		}
		return &common.CorruptionError{Path: src, Page: id, Offset: off, Reason: "checksum mismatch"}
	}
	return nil
}

// writeBackup streams the pages into tmp: all of them (ids nil, full
// backup), the given candidates, or (incremental, ids nil) every page with
// an LSN above the base.
func writeBackup(o Options, tmp string, h *Header, snap *pager.Snapshot, p *pager.Pager, ids []common.PageID, res *Result) (err error) {
	f, err := o.FS.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	w := vfs.NewSeqWriter(f, HeaderSize)
	w.Checksum = true
	rec := make([]byte, recHdrSize+h.PageSize)
	img := rec[recHdrSize:]
	var records uint64
	emit := func(id common.PageID) error {
		if err := readPage(snap, p, id, img); err != nil {
			return err
		}
		res.PagesRead++
		if h.Type == TypeIncremental && uint64(page.LSN(img)) <= h.BaseLSN {
			return nil
		}
		if l := uint64(page.LSN(img)); l > h.EndLSN {
			return &common.CorruptionError{Path: p.Path, Page: id, Offset: -1, Reason: fmt.Sprintf("page LSN %d is above the snapshot's LSN %d", l, h.EndLSN)}
		}
		putRecordHeader(rec, id)
		records++
		if err := w.Write(rec); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		return nil
	}
	if h.Type == TypeFull || res.ChangeSource == "scan" {
		for id := uint64(0); id < h.PageCount; id++ {
			if err := emit(common.PageID(id)); err != nil {
				return err
			}
		}
	} else {
		for _, id := range ids {
			if err := emit(id); err != nil {
				return err
			}
		}
	}
	w.Checksum = false
	if err := w.Write(trailer{records: records, bodySum: w.Sum}.encode()); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	hb, err := h.Encode()
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(hb, 0); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	size := w.Pos()
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return fmt.Errorf("close %s: %w", tmp, cerr)
	}
	res.EndLSN, res.PageCount, res.Pages, res.Bytes = h.EndLSN, h.PageCount, records, size
	res.LogicalHash, res.Created = h.LogicalHash, h.Created
	return nil
}

func putRecordHeader(rec []byte, id common.PageID) {
	binary.LittleEndian.PutUint64(rec[0:], uint64(id))
	binary.LittleEndian.PutUint32(rec[8:], common.ChecksumUpdate(common.Checksum(rec[:8]), rec[recHdrSize:]))
	binary.LittleEndian.PutUint32(rec[12:], 0)
}
