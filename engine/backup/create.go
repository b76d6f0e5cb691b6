package backup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/changelog"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/internal/lhash"
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
	// ChangeSource says how the backup found the pages it copied.
	ChangeSource ChangeSource  `json:"change_source"`
	Archived     int           `json:"wal_transactions_archived"`
	Warnings     []string      `json:"warnings,omitempty"`
	Duration     time.Duration `json:"duration_ns"`
}

// ChangeSource says how a backup found the pages it copied.
type ChangeSource string

// The change sources.
const (
	// ChangeFull: a full backup copies every page.
	ChangeFull ChangeSource = "full"
	// ChangeWAL: every page changed since the parent was still in the WAL.
	ChangeWAL ChangeSource = "wal"
	// ChangeWALChangelog: the checkpoint change log covered the pages
	// checkpointed out of the WAL since the parent.
	ChangeWALChangelog ChangeSource = "wal+changelog"
	// ChangeScan: every page's LSN was read.
	ChangeScan ChangeSource = "scan"
)

// CreateFullBackup writes every page of one consistent snapshot to dstPath
// (".backup" is appended when missing; a bare name goes into the manager's
// directory). It refuses an existing output unless Options.Force.
func (m *BackupManager) CreateFullBackup(dstPath string) (*Result, error) {
	return m.create(context.Background(), dstPath, TypeFull)
}

// CreateFullBackupContext is CreateFullBackup, stopped when ctx is
// cancelled: it then returns an error matching ctx.Err() (checked at every
// page, so within milliseconds), having removed its temporary file; the
// database and the backup directory's earlier backups are as they were.
func (m *BackupManager) CreateFullBackupContext(ctx context.Context, dstPath string) (*Result, error) {
	return m.create(ctx, dstPath, TypeFull)
}

// CreateIncrementalBackup writes the pages changed since the newest backup
// of this database in dstPath's directory (or Options.Base): those whose
// page LSN is above the parent's end LSN, plus the new page count. Its cost
// is proportional to the change when the WAL index and the checkpoint
// change log cover the range since the parent, and to the database size
// otherwise (see the package documentation). With no usable parent it
// fails with ErrNoBase, whose message says what to do, unless
// Options.FullIfNoBase makes it take a full backup (with a warning in
// Result.Warnings) as sombra-backup --full-if-no-base does.
func (m *BackupManager) CreateIncrementalBackup(dstPath string) (*Result, error) {
	return m.create(context.Background(), dstPath, TypeIncremental)
}

// CreateIncrementalBackupContext is CreateIncrementalBackup, stopped when
// ctx is cancelled (see CreateFullBackupContext).
func (m *BackupManager) CreateIncrementalBackupContext(ctx context.Context, dstPath string) (*Result, error) {
	return m.create(ctx, dstPath, TypeIncremental)
}

func (m *BackupManager) create(ctx context.Context, dst string, typ Type) (*Result, error) {
	start := time.Now()
	o := m.opts
	o = o.withContext(ctx)
	dir, name, err := splitName(m.dir, dst)
	if err != nil {
		return nil, err
	}
	path := backupPath(dir, name)
	if err := m.db.Authorize(o.User, engine.PermissionBackup); err != nil {
		return nil, fmt.Errorf("backup of %s: %w", m.db.Path(), err)
	}
	if _, err := o.FS.Stat(path); err == nil && !o.Force {
		return nil, fmt.Errorf("%s: backup %w", path, common.ErrExists)
	}
	st, err := o.store(dir)
	if err != nil {
		return nil, err
	}
	// tmp is where the backup is written: beside its final name, or for
	// object storage in the local temporary directory, uploaded from there.
	var tmp string
	if st.Remote() {
		if err := st.(*s3Store).checkBucket(dir); err != nil {
			return nil, err
		}
		local := o.tempDir()
		for _, n := range removeStaleNear(o.FS, local, name+Ext, "upload") {
			o.Logger.Info("removed the local file of a killed upload", "file", n)
		}
		tmp = tempNear(backupPath(local, name), "upload")
	} else {
		if err := vfs.MkdirAllDurable(o.FS, dir); err != nil {
			return nil, fmt.Errorf("create backup directory: %w", err)
		}
		for _, n := range removeStaleBackupTemps(o.FS, dir) {
			o.Logger.Info("removed the temporary file of a killed backup", "file", n)
		}
		tmp = fmt.Sprintf("%s.tmp-%d-%d", path, os.Getpid(), time.Now().UnixNano())
	}
	p := handle.Pager(m.db)
	res := &Result{Name: name, Path: path, Type: typ.String(), ChangeSource: ChangeFull}

	var parent *BackupInfo
	if typ == TypeIncremental {
		parent, err = pickParent(o, dir, name, p.FileID())
		switch {
		case errors.Is(err, ErrNoBase) && o.FullIfNoBase:
			typ, parent = TypeFull, nil
			res.Type = typ.String()
			why := err.Error()
			var nb *noBaseError
			if errors.As(err, &nb) {
				why = nb.reason
			}
			res.Warnings = append(res.Warnings, "no base for an incremental backup ("+why+"); took a full backup instead")
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
		arch = walarchive.New(o.FS, archDir).SealedWith(p.Cipher())
		ar, err := arch.ArchiveWALFile(p.WALPath(), p.FileID(), p.PageSize())
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("archive WAL: %v", err))
			o.Logger.Warn("archive WAL before backup", "err", err)
		}
		res.Archived = ar.Txs
	}
	// The change log must exist before the snapshot is taken, so that every
	// checkpoint after the snapshot is recorded.
	if err := changelog.Enable(o.FS, p.Path(), p.FileID()); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("change tracking off, next incremental will scan: %v", err))
	}

	err = m.db.ViewAs(o.User, func(tx *engine.Tx) error {
		snap := handle.Snapshot(tx)
		meta, err := snap.Meta()
		if err != nil {
			return err
		}
		h := &Header{Type: typ, PageSize: p.PageSize(), PageCount: meta.PageCount, EndLSN: uint64(meta.LastLSN),
			FileID: meta.FileID, Created: o.Now().UTC(), Sealed: p.Encrypted()}
		frames := snap.Frames()
		if parent != nil {
			if err := checkParent(parent, h, p.Path()); err != nil {
				return err
			}
			if err := checkSameHistory(parent, frames, arch, meta.FileID, p.Path()); err != nil {
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
		var ids []common.PageID
		if typ == TypeIncremental {
			ids, res.ChangeSource, err = changedPages(o, p, snap, meta, common.LSN(h.BaseLSN))
			if err != nil {
				return err
			}
		}
		// A pass that reads every page computes the logical hash as the
		// pages stream by; one that reads only the changed pages cannot,
		// and walks the node and edge trees for it.
		hashInPass := !o.NoLogicalHash && (typ == TypeFull || res.ChangeSource == ChangeScan)
		if !o.NoLogicalHash && !hashInPass {
			if h.LogicalHash, err = tx.LogicalHashContext(o.context()); err != nil {
				return err
			}
		}
		if err := o.canceled(); err != nil {
			return err
		}
		return writeBackup(o, tmp, h, snap, p, meta, ids, hashInPass, res)
	})
	if err != nil {
		o.FS.Remove(tmp)
		return nil, err
	}
	// The last moment a cancel leaves nothing behind: past the rename (or
	// the upload's publication) the backup is complete and is kept.
	if err := o.canceled(); err != nil {
		o.FS.Remove(tmp)
		return nil, err
	}
	if st.Remote() {
		upStart := time.Now()
		if err := st.Publish(tmp, path); err != nil {
			return nil, fmt.Errorf("backup %s not taken: %w", name, err)
		}
		o.Logger.Info("backup uploaded", "name", name, "to", path, "bytes", res.Bytes, "duration_ms", time.Since(upStart).Milliseconds())
	} else if err := o.FS.Rename(tmp, path); err != nil {
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
	if archDir != "" {
		// A spool beside the database: ship what the bucket lacks, so the
		// bucket's archive reaches this backup too.
		if sent, err := shipArchive(o, archDir); err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("ship the WAL archive: %v", err))
		} else if len(sent) > 0 {
			o.Logger.Info("WAL archive shipped", "segments", len(sent))
		}
	}
	res.Duration = time.Since(start)
	o.Logger.Info("backup created", "name", name, "type", res.Type, "end_lsn", res.EndLSN, "pages", res.Pages,
		"change_source", res.ChangeSource, "bytes", res.Bytes, "duration_ms", res.Duration.Milliseconds())
	return res, nil
}

// noBaseError is ErrNoBase with its reason, which the warning of a
// FullIfNoBase backup repeats. What to do (a full backup first, or
// Options.FullIfNoBase) is the caller's to say: the tool says it in flags.
type noBaseError struct{ reason string }

func (e *noBaseError) Error() string { return e.reason + ": " + ErrNoBase.Error() }
func (e *noBaseError) Unwrap() error { return ErrNoBase }

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
			return nil, &noBaseError{dir + " holds backups of another database file (compacted or restored since?)"}
		}
		return nil, &noBaseError{dir + " holds no full backup to base an incremental backup on"}
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
func changedPages(o Options, p *pager.Pager, snap *pager.Snapshot, meta *page.Meta, base common.LSN) ([]common.PageID, ChangeSource, error) {
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
	source := ChangeWAL
	if base < upto {
		pages, covered, err := changelog.Changed(o.FS, p.Path(), p.FileID(), base, upto)
		if err != nil {
			o.Logger.Warn("read change log", "err", err)
		}
		if err != nil || !covered {
			return nil, ChangeScan, nil
		}
		for _, pg := range pages {
			set[pg] = struct{}{}
		}
		source = ChangeWALChangelog
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
//
// On an encrypted database buf holds the sealed image (what a sealed
// backup stores) and the page returned is its opened copy; otherwise both
// are buf.
func readPage(snap *pager.Snapshot, p *pager.Pager, id common.PageID, buf []byte) ([]byte, error) {
	src, off := p.Path(), int64(id)*int64(len(buf))
	var err error
	if f := snap.Source(id); f >= 0 {
		src = p.WALPath()
		err = snap.ReadFrame(f, buf)
	} else {
		err = p.RawDBPage(id, buf)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &common.CorruptionError{Path: src, Page: id, Offset: off, Reason: "page lies beyond the end of the file"}
		}
		return nil, fmt.Errorf("read %s page %d: %w", src, id, err)
	}
	if src == p.WALPath() {
		off = -1
	}
	return openPage(p, id, buf, src, off)
}

// openPage verifies a page image read from src at off (-1: a WAL frame)
// and returns the page it holds: img itself, or on an encrypted database
// (but page 0) its opened copy, img staying sealed.
func openPage(p *pager.Pager, id common.PageID, img []byte, src string, off int64) ([]byte, error) {
	pg := img
	if p.Encrypted() && id != 0 {
		var err error
		if pg, err = p.OpenRaw(id, slices.Clone(img), src, off); err != nil {
			return nil, err
		}
	}
	if !page.Verify(pg) {
		return nil, &common.CorruptionError{Path: src, Page: id, Offset: off, Reason: "checksum mismatch"}
	}
	return pg, nil
}

// writeBackup streams the pages into tmp: all of them (ids nil, full
// backup), the given candidates, or (incremental, ids nil) every page with
// an LSN above the base. With hashInPass it also computes the logical hash
// from the pages it reads (it must read every page).
func writeBackup(o Options, tmp string, h *Header, snap *pager.Snapshot, p *pager.Pager, meta *page.Meta, ids []common.PageID, hashInPass bool, res *Result) (err error) {
	f, err := o.FS.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var lh *leafHasher
	if hashInPass {
		if lh, err = newLeafHasher(snap, meta, p.Path()); err != nil {
			return err
		}
	}
	w := vfs.NewSeqWriter(f, HeaderSize)
	w.Checksum = true
	var rh [recHdrSize]byte
	var records uint64
	// Progress counts database bytes read: every page for a full backup
	// or a scan, the candidate pages otherwise.
	pages := h.PageCount
	if h.Type == TypeIncremental && res.ChangeSource != ChangeScan {
		pages = uint64(len(ids))
	}
	tr := o.tracker(int64(pages) * int64(h.PageSize))
	defer tr.Finish()
	// img is the image as stored (sealed on an encrypted database), pg the
	// page it holds (opened); both are img on a plaintext one.
	emit := func(id common.PageID, img, pg []byte) error {
		if err := tr.Add(int64(len(img))); err != nil {
			return err
		}
		res.PagesRead++
		if lh != nil {
			if err := lh.page(id, pg); err != nil {
				return err
			}
		}
		if h.Type == TypeIncremental && uint64(page.LSN(pg)) <= h.BaseLSN {
			return nil
		}
		if l := uint64(page.LSN(pg)); l > h.EndLSN {
			return &common.CorruptionError{Path: p.Path(), Page: id, Offset: -1, Reason: fmt.Sprintf("page LSN %d is above the snapshot's LSN %d", l, h.EndLSN)}
		}
		putRecordHeader(rh[:], id, img)
		records++
		if err := w.Write(rh[:]); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := w.Write(img); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		return nil
	}
	if h.Type == TypeFull || res.ChangeSource == ChangeScan {
		if err := scanPages(snap, p, h.PageCount, emit); err != nil {
			return err
		}
	} else {
		img := make([]byte, h.PageSize)
		for _, id := range ids {
			pg, err := readPage(snap, p, id, img)
			if err != nil {
				return err
			}
			if err := emit(id, img, pg); err != nil {
				return err
			}
		}
	}
	if lh != nil {
		h.LogicalHash = lh.h.Sum()
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

// scanChunk is how much of the database file scanPages reads at once.
const scanChunk = 1 << 20

// scanPages calls fn with pages [0, count) in order as the snapshot sees
// them, each verified against its checksum (fn gets the image as stored
// and the page it holds; see openPage). It reads the database file in
// scanChunk reads, around the page cache (a page per system call was most
// of a backup's time, and a backup would otherwise evict the application's
// working set), and takes the pages the snapshot has in the WAL from
// there. Memory is one chunk, whatever the file size.
func scanPages(snap *pager.Snapshot, p *pager.Pager, count uint64, fn func(id common.PageID, img, pg []byte) error) error {
	ps := uint64(p.PageSize())
	buf := make([]byte, max(scanChunk/ps, 1)*ps)
	frame := make([]byte, ps)
	for start := uint64(0); start < count; {
		n := min(uint64(len(buf))/ps, count-start)
		got, err := p.RawDBPages(common.PageID(start), buf[:n*ps])
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s at page %d: %w", p.Path(), start, err)
		}
		for i := range n {
			id := common.PageID(start + i)
			img, src, off := buf[i*ps:(i+1)*ps], p.Path(), int64(id)*int64(ps)
			if fr := snap.Source(id); fr >= 0 {
				img, src, off = frame, p.WALPath(), -1
				if err := snap.ReadFrame(fr, img); err != nil {
					if errors.Is(err, io.EOF) {
						return &common.CorruptionError{Path: src, Page: id, Offset: off, Reason: "WAL frame lies beyond the end of the file"}
					}
					return fmt.Errorf("read %s page %d: %w", src, id, err)
				}
			} else if (i+1)*ps > uint64(got) {
				return &common.CorruptionError{Path: src, Page: id, Offset: off, Reason: "page lies beyond the end of the file"}
			}
			pg, err := openPage(p, id, img, src, off)
			if err != nil {
				return err
			}
			if err := fn(id, img, pg); err != nil {
				return err
			}
		}
		start += n
	}
	return nil
}

// leafHasher computes the logical hash in a backup's pass over the pages.
// The node and edge trees' branch pages (about one page in a hundred, read
// through the cache first) say which pages are their leaves; the records
// of those leaves are hashed as the pages stream by, overflow values read
// through the snapshot. The result equals engine.Tx.LogicalHash, which
// does not depend on the order records are visited in. Memory: a bit per
// page for each tree.
type leafHasher struct {
	snap *pager.Snapshot
	live [lhash.Trees][]uint64 // leaf page bitmaps: nodes, edges
	add  [lhash.Trees]func(k, v []byte) error
	h    lhash.Hasher
}

func newLeafHasher(snap *pager.Snapshot, meta *page.Meta, path string) (*leafHasher, error) {
	lh := &leafHasher{snap: snap}
	for t, root := range [lhash.Trees]int{page.RootNodes, page.RootEdges} {
		bm := make([]uint64, meta.PageCount/64+1)
		err := btree.LeafPages(snap, meta.Roots[root], func(id common.PageID) error {
			if uint64(id) >= meta.PageCount {
				return &common.CorruptionError{Path: path, Page: id, Offset: -1, Reason: fmt.Sprintf("tree refers to page %d past the end (%d pages)", id, meta.PageCount)}
			}
			bm[id/64] |= 1 << (id % 64)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("logical hash: %w", err)
		}
		lh.live[t] = bm
		lh.add[t] = func(k, v []byte) error { lh.h.Add(t, k, v); return nil }
	}
	return lh, nil
}

// page hashes the records of page id if it is a node or edge leaf.
func (lh *leafHasher) page(id common.PageID, img []byte) error {
	for t := range lh.live {
		if lh.live[t][id/64]&(1<<(id%64)) != 0 {
			if err := btree.LeafEntries(lh.snap, id, img, lh.add[t]); err != nil {
				return fmt.Errorf("logical hash: %w", err)
			}
		}
	}
	return nil
}

// putRecordHeader fills the record header hdr of page id with image img.
func putRecordHeader(hdr []byte, id common.PageID, img []byte) {
	binary.LittleEndian.PutUint64(hdr[0:], uint64(id))
	binary.LittleEndian.PutUint32(hdr[8:], common.ChecksumUpdate(common.Checksum(hdr[:8]), img))
	binary.LittleEndian.PutUint32(hdr[12:], 0)
}
