package backup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/pager"
	"github.com/sombradb/sombra/engine/internal/walarchive"
	"github.com/sombradb/sombra/engine/vfs"
)

// ArchiveResult reports a WAL archiving run.
type ArchiveResult struct {
	Dir          string   `json:"dir"`
	Segments     []string `json:"segments"`
	FirstLSN     uint64   `json:"first_lsn"`
	LastLSN      uint64   `json:"last_lsn"`
	Transactions int      `json:"transactions"`
	Frames       int      `json:"frames"`
	Skipped      int      `json:"skipped_transactions"` // already archived
	// Remote is the object storage archive Dir is shipped to ("" if none),
	// Uploaded the segments uploaded to it by this run.
	Remote   string   `json:"remote,omitempty"`
	Uploaded []string `json:"uploaded,omitempty"`
}

// EnableWALArchiving turns WAL archiving on for the database, into the
// manager's archive directory (Options.ArchiveDir, default DIR/wal). The
// directory is stored in the database, so every connection (in every
// process) archives the log before resetting it.
//
// When that directory is on object storage, the database archives into a
// local spool (DB.walspool) that ArchiveWAL and every backup ship to it.
func (m *BackupManager) EnableWALArchiving() error {
	if url := m.opts.remoteArchiveOf(m.dir); url != "" {
		spool, err := m.spoolFor(url)
		if err != nil {
			return err
		}
		return m.db.SetWALArchiveDir(spool)
	}
	return m.db.SetWALArchiveDir(m.opts.archiveDir(m.dir))
}

// DisableWALArchiving turns WAL archiving off.
func (m *BackupManager) DisableWALArchiving() error { return m.db.SetWALArchiveDir("") }

// ArchiveWAL archives the committed transactions the live WAL holds now
// (those not archived yet) into the database's archive directory, or the
// manager's when archiving is not enabled. Backups run it first.
func (m *BackupManager) ArchiveWAL() (*ArchiveResult, error) {
	dir, err := m.db.WALArchiveDir()
	if err != nil {
		return nil, err
	}
	p := handle.Pager(m.db)
	if dir == "" {
		dir = m.opts.archiveDir(m.dir)
		if url := m.opts.remoteArchiveOf(m.dir); url != "" {
			if dir, err = m.spoolFor(url); err != nil {
				return nil, err
			}
		}
	}
	r, err := walarchive.New(m.opts.FS, dir).SealedWith(p.Cipher()).ArchiveWALFile(p.WALPath(), p.FileID(), p.PageSize())
	if err != nil {
		return nil, err
	}
	out := &ArchiveResult{Dir: dir, Segments: r.Segments, FirstLSN: uint64(r.FirstLSN), LastLSN: uint64(r.LastLSN),
		Transactions: r.Txs, Frames: r.Frames, Skipped: r.Skipped, Remote: readRemote(m.opts.FS, dir)}
	if out.Segments == nil {
		out.Segments = []string{}
	}
	if out.Uploaded, err = shipArchive(m.opts, dir); err != nil {
		return out, fmt.Errorf("ship the WAL archive %s to %s: %w", dir, out.Remote, err)
	}
	if out.Uploaded == nil {
		out.Uploaded = []string{}
	}
	return out, nil
}

// ReplayResult reports a WAL replay.
type ReplayResult struct {
	Target       string     `json:"target"`
	FromLSN      uint64     `json:"from_lsn"` // the target's LSN before
	ToLSN        uint64     `json:"to_lsn"`   // after
	Transactions int        `json:"transactions"`
	Frames       int        `json:"frames"`
	Until        time.Time  `json:"until"`
	LastCommit   *time.Time `json:"last_commit,omitempty"` // commit time of ToLSN, when known
	NextCommit   *time.Time `json:"next_commit,omitempty"` // first archived commit after Until (not applied)
	// ArchiveEnd is true when replay stopped because the archive ends, not
	// because the next commit is after Until: commits made after the last
	// archived one, if any, are not included.
	ArchiveEnd bool     `json:"archive_end"`
	Warnings   []string `json:"warnings,omitempty"`
}

func fmtTime(ns int64) string {
	if ns == 0 {
		return "an unknown time"
	}
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func timePtr(ns int64) *time.Time {
	if ns == 0 {
		return nil
	}
	t := time.Unix(0, ns).UTC()
	return &t
}

// A target being replayed into carries page 0 with its checksum inverted:
// engine.Open refuses it (corrupt page 0) until replay has written the
// final header, so an interrupted replay never opens as a database.
func isReplayMarker(p0 []byte) bool {
	return len(p0) > 4 && binary.LittleEndian.Uint32(p0) == ^common.Checksum(p0[4:])
}

func markReplaying(f vfs.File, ps int) error {
	p0 := make([]byte, ps)
	if _, err := f.ReadAt(p0, 0); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(p0, ^common.Checksum(p0[4:]))
	if _, err := f.WriteAt(p0, 0); err != nil {
		return err
	}
	return f.Sync()
}

// checkNotInterrupted fails with ErrInterrupted for a file left by an
// interrupted replay.
func checkNotInterrupted(fs vfs.FS, path string) error {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: %w", path, common.ErrNotFound)
		}
		return err
	}
	defer f.Close()
	b := make([]byte, 65536)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	m, err := page.DecodeMeta(b[:n])
	if err != nil || int(m.PageSize) > n {
		return nil // let the pager report it
	}
	if isReplayMarker(b[:m.PageSize]) {
		return fmt.Errorf("%s (at LSN %d): restore it again: %w", path, m.LastLSN, ErrInterrupted)
	}
	return nil
}

// ReplayWALUntil applies to targetDB the archived transactions (from the
// archive of the backup directory dir, or opts.ArchiveDir) with an LSN above
// the target's and a commit time at or before t, in LSN order, stopping at
// the first later commit: the result is the database exactly as it was
// after the last commit at or before t. The target must be a restored
// database of the same file id that nobody has open; its WAL is folded in
// first and none is left behind.
//
// It fails with ErrTooEarly when the target is already past t, and with an
// error matching ErrArchiveGap (a *walarchive.GapError inside, naming the
// last reachable LSN and time) when transactions are missing before t; in
// both cases the target is untouched. If the archive simply ends before t,
// the result says so (ArchiveEnd). Pages are written in place: an
// interruption leaves a target that refuses to open (ErrInterrupted); use
// RestoreToTime for an all-or-nothing restore.
func ReplayWALUntil(dir, targetDB string, t time.Time, opts Options) (*ReplayResult, error) {
	return ReplayWALUntilContext(context.Background(), dir, targetDB, t, opts)
}

// ReplayWALUntilContext is ReplayWALUntil, stopped when ctx is cancelled.
// A cancel before the first page is written leaves the target untouched;
// one during the replay stops it at the next page and leaves the target
// refusing to open (ErrInterrupted), as any interruption does: use
// RestoreToTimeContext for an all-or-nothing restore.
func ReplayWALUntilContext(ctx context.Context, dir, targetDB string, t time.Time, opts Options) (*ReplayResult, error) {
	o := opts.withDefaults()
	o = o.withContext(ctx)
	targetDB, err := vfs.RealPath(targetDB) // its WAL is named after the real file
	if err != nil {
		return nil, err
	}
	if err := checkNotInterrupted(o.FS, targetDB); err != nil {
		return nil, err
	}
	// An encrypted target opens with the key sealed backups are restored
	// with; a plaintext one ignores it.
	p, err := pager.Open(targetDB, pager.Options{FS: o.FS, CacheBytes: 1 << 20, BusyTimeout: o.BusyTimeout, Logger: o.Logger, Fallback: o.cipher()})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if err := p.ExclusiveLock(o.BusyTimeout); err != nil {
		return nil, fmt.Errorf("replay into %s: %w", targetDB, err)
	}
	if st, err := p.WAL(); err != nil {
		return nil, err
	} else if st.Frames > 0 {
		if _, err := p.Checkpoint(pager.Truncate); err != nil {
			return nil, fmt.Errorf("fold %s's WAL before replay: %w", targetDB, err)
		}
	}
	meta, err := p.FileMeta()
	if err != nil {
		return nil, err
	}
	f, err := o.FS.OpenFile(targetDB, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	archDir := o.archiveDir(dir)
	archDir, cleanup, err := o.localArchive(archDir, "replay")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	arch := walarchive.New(o.FS, archDir).SealedWith(p.Cipher())
	if err := checkArchiveKind(arch, meta.FileID, targetDB); err != nil {
		return nil, err
	}
	res, err := replayInto(o, arch, f, targetDB, meta, t)
	if err != nil {
		return nil, err
	}
	if res.Transactions > 0 {
		_ = p.Shm().BumpEpoch()
	}
	if err := o.FS.Remove(targetDB + "-wal"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return res, nil
}

// checkArchiveKind fails with ErrMixedArchive when arch holds a segment of
// database fileID that is not of the database's kind (sealed for an
// encrypted one, plaintext otherwise; what names the database or backup),
// so that no replay starts that would have to stop there.
func checkArchiveKind(arch *walarchive.Archive, fileID uint64, what string) error {
	segs, _, err := arch.Segments()
	if err != nil {
		return err
	}
	for _, s := range segs {
		if s.FileID != fileID {
			continue
		}
		if s.Sealed != arch.Sealed {
			if arch.Sealed {
				return fmt.Errorf("%s is sealed (encrypted database) but %s is plaintext: %w", what, s.Path, ErrMixedArchive)
			}
			return fmt.Errorf("%s is plaintext but %s is sealed (encrypted database): %w", what, s.Path, ErrMixedArchive)
		}
	}
	return nil
}

func replayInto(o Options, arch *walarchive.Archive, f vfs.File, path string, meta *page.Meta, t time.Time) (*ReplayResult, error) {
	from := meta.LastLSN
	res := &ReplayResult{Target: path, FromLSN: uint64(from), ToLSN: uint64(from), Until: t.UTC()}
	tns := t.UnixNano()
	fromTS, known, err := arch.CommitTime(meta.FileID, from)
	if err != nil {
		return nil, err
	}
	if known {
		if fromTS > tns {
			return nil, fmt.Errorf("%s is at LSN %d, committed %s, after %s: restore an older backup: %w",
				path, from, fmtTime(fromTS), t.UTC().Format(time.RFC3339Nano), ErrTooEarly)
		}
		res.LastCommit = timePtr(fromTS)
	}
	stop, stopTS, count, nframes := from, fromTS, 0, 0
	var next int64
	err = arch.Walk(meta.FileID, from, fromTS, func(tx walarchive.TxHeader) (bool, error) {
		if err := o.canceled(); err != nil {
			return false, err
		}
		if tx.CommitTS > tns {
			next = tx.CommitTS
			return false, nil
		}
		stop, stopTS = tx.LSN, tx.CommitTS
		count++
		nframes += tx.Frames
		return true, nil
	})
	var gap *walarchive.GapError
	if errors.As(err, &gap) {
		hint := fmt.Sprintf("restorable up to %s (LSN %d)", fmtTime(gap.AfterTime), gap.After)
		if gap.After == from {
			hint += ", the backup's own end: no archived transaction after it is reachable"
		}
		return nil, &gapError{GapError: gap, hint: hint}
	}
	if err != nil {
		return nil, err
	}
	if next != 0 {
		res.NextCommit = timePtr(next)
	} else {
		// A segment cut short or damaged at the end of the archive is not
		// a gap (nothing follows it), yet it may hold the transactions up
		// to t: stopping here would quietly restore an earlier point.
		if _, bad, err := arch.Segments(); err != nil {
			return nil, err
		} else if len(bad) > 0 {
			return nil, fmt.Errorf("the archive %s ends at LSN %d (%s) but holds a damaged segment, which may hold later transactions (%v): restore to an earlier point in time, or move the segment away to accept the end: %w",
				arch.Dir, stop, fmtTime(stopTS), bad[0].Err, common.ErrCorrupt)
		}
		res.ArchiveEnd = true
		res.Warnings = append(res.Warnings, fmt.Sprintf("the archive %s ends at LSN %d (%s): commits after it, if any, were not archived yet",
			arch.Dir, stop, fmtTime(stopTS)))
	}
	if count == 0 {
		return res, nil
	}
	ps := int(meta.PageSize)
	if err := o.canceled(); err != nil {
		return nil, err // nothing written yet
	}
	tr := o.tracker(int64(nframes) * int64(ps))
	defer tr.Finish()
	if err := markReplaying(f, ps); err != nil {
		return nil, fmt.Errorf("mark %s: %w", path, err)
	}
	var p0 []byte
	frames := 0
	err = arch.Replay(meta.FileID, from, stop, func(tx walarchive.TxHeader, pg common.PageID, img []byte) error {
		if len(img) != ps {
			return fmt.Errorf("archive page size %d, database %d: %w", len(img), ps, common.ErrInvalid)
		}
		if err := tr.Add(int64(len(img))); err != nil {
			return err
		}
		frames++
		if pg == 0 {
			p0 = append(p0[:0], img...)
			return nil
		}
		if _, err := f.WriteAt(img, int64(pg)*int64(ps)); err != nil {
			return fmt.Errorf("write %s page %d: %w", path, pg, err)
		}
		return nil
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("replay into %s (left unusable: restore it again): %w", path, err)
	}
	m, err := page.DecodeMeta(p0)
	if err != nil || m.LastLSN != stop || m.FileID != meta.FileID {
		return nil, &common.CorruptionError{Path: arch.Dir, Page: 0, Offset: -1, Reason: fmt.Sprintf("archived header of LSN %d does not match (target left unusable: restore it again)", stop)}
	}
	if st, err := f.Stat(); err == nil && st.Size() > int64(m.PageCount)*int64(ps) {
		if err := f.Truncate(int64(m.PageCount) * int64(ps)); err != nil {
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("fsync %s: %w", path, err)
	}
	if _, err := f.WriteAt(p0, 0); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("fsync %s: %w", path, err)
	}
	res.ToLSN, res.Transactions, res.Frames, res.LastCommit = uint64(stop), count, frames, timePtr(stopTS)
	o.Logger.Info("WAL replayed", "target", path, "from_lsn", from, "to_lsn", stop, "transactions", count)
	return res, nil
}

// RestoreToTime restores to target the database as it was after the last
// commit at or before t: it restores the newest intact backup chain whose
// point in time (commit time of its end LSN, else its creation time) is at
// or before t, then replays the archived WAL up to t, all in a temporary
// file that is renamed over target only when everything succeeded. It
// fails with ErrTooEarly when t is before the oldest full backup, with
// ErrArchiveGap when archived transactions are missing before t, and with
// ErrUnreachable when t is after the chosen backup but the archive holds
// nothing after it (unless Options.AllowEarlier).
func RestoreToTime(dir string, t time.Time, target string, opts Options) (*RestoreResult, error) {
	return RestoreToTimeContext(context.Background(), dir, t, target, opts)
}

// RestoreToTimeContext is RestoreToTime, stopped when ctx is cancelled:
// until the restored file replaces the target, a cancel removes the
// temporary file and returns an error matching ctx.Err(), the target (if
// any) untouched. Progress counts the chain's bytes restored, then the
// archived pages replayed.
func RestoreToTimeContext(ctx context.Context, dir string, t time.Time, target string, opts Options) (*RestoreResult, error) {
	start := time.Now()
	o := opts.withDefaults()
	o = o.withContext(ctx)
	// A target reached through a link: the link's target is replaced.
	target, err := vfs.RealPath(target)
	if err != nil {
		return nil, err
	}
	list, err := listBackups(o.FS, dir)
	if err != nil {
		return nil, err
	}
	var best, oldest *BackupInfo
	for i := range list {
		b := &list[i]
		if !b.ChainOK() {
			continue
		}
		if b.Type == TypeFull.String() && (oldest == nil || b.PointInTime().Before(oldest.PointInTime())) {
			oldest = b
		}
		if b.PointInTime().After(t) {
			continue
		}
		if best == nil || b.PointInTime().After(best.PointInTime()) ||
			(b.PointInTime().Equal(best.PointInTime()) && b.EndLSN > best.EndLSN) {
			best = b
		}
	}
	if best == nil {
		if oldest == nil {
			return nil, fmt.Errorf("%s holds no restorable backup: %w", dir, common.ErrNotFound)
		}
		return nil, fmt.Errorf("%s is before the oldest full backup %s (LSN %d, %s): %w", t.UTC().Format(time.RFC3339Nano),
			oldest.Name, oldest.EndLSN, oldest.PointInTime().UTC().Format(time.RFC3339Nano), ErrTooEarly)
	}
	if err := checkTarget(o, target); err != nil {
		return nil, err
	}
	src, archDir := dir, o.archiveDir(dir)
	if IsRemote(dir) {
		local, cleanup, err := stageChain(o, dir, best.Name, "pitr")
		if err != nil {
			return nil, err
		}
		defer cleanup()
		src = local
	}
	archDir, cleanup, err := o.localArchive(archDir, "pitr-wal")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	chain, err := loadChain(o.FS, src, best.Name)
	if err != nil {
		return nil, err
	}
	// The archive of a sealed chain is sealed with the same key; refused
	// before anything is written when either is the other kind.
	arch := walarchive.New(o.FS, archDir)
	if last := chain[len(chain)-1].hdr; last.Sealed {
		arch.Sealed, arch.Cipher = true, o.cipher()
	}
	if err := checkArchiveKind(arch, chain[0].hdr.FileID, "backup "+best.Name); err != nil {
		return nil, err
	}
	if err := vfs.MkdirAllDurable(o.FS, filepath.Dir(target)); err != nil {
		return nil, err
	}
	removeStaleNear(o.FS, filepath.Dir(target), filepath.Base(target), "pitr")
	tmp := tempNear(target, "pitr")
	ro := o
	ro.NewFileID = false // the archive is keyed by the original file id
	meta, pages, err := restoreChain(ro, chain, tmp)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*RestoreResult, error) {
		o.FS.Remove(tmp)
		return nil, err
	}
	f, err := o.FS.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return fail(err)
	}
	po := o // the replay's progress continues the restore's
	if o.Progress != nil {
		var chainBytes int64
		for _, l := range chain {
			chainBytes += l.bytes()
		}
		po.Progress = func(done, total int64) { o.Progress(chainBytes+done, chainBytes+total) }
	}
	rr, err := replayInto(po, arch, f, target, meta, t)
	var ge *gapError
	if errors.As(err, &ge) {
		// Name the nearest restorable point after the hole, if a backup
		// covers it.
		var after *BackupInfo
		for i := range list {
			b := &list[i]
			if b.ChainOK() && b.DBFileID == best.DBFileID && b.EndLSN+1 >= uint64(ge.Next) &&
				(after == nil || b.PointInTime().Before(after.PointInTime())) {
				after = b
			}
		}
		if after != nil {
			ge.hint += fmt.Sprintf("; restorable again from %s (backup %s, LSN %d)",
				after.PointInTime().UTC().Format(time.RFC3339Nano), after.Name, after.EndLSN)
		}
	}
	if err == nil {
		if why, rerr := unreachable(o, archDir, best, rr, t); rerr != nil {
			err = rerr
		} else if why != "" {
			at := fmt.Sprintf("backup %s (LSN %d, %s)", best.Name, best.EndLSN, best.PointInTime().UTC().Format(time.RFC3339Nano))
			when := t.UTC().Format(time.RFC3339Nano)
			if !o.AllowEarlier {
				err = &UnreachableError{Newest: best.Name, msg: fmt.Sprintf("%s cannot be reached: %s; the newest restorable point is %s", when, why, at)}
			} else {
				rr.Warnings = []string{fmt.Sprintf("%s cannot be reached: %s; restored the newest earlier point, %s (AllowEarlier)", when, why, at)}
			}
		}
	}
	if err == nil && o.NewFileID {
		err = assignNewFileID(f, int(meta.PageSize))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	m2, err := readMeta(o.FS, tmp)
	if err != nil {
		return fail(err)
	}
	if err := o.canceled(); err != nil {
		return fail(err)
	}
	id, err := installTarget(o, tmp, target)
	if err != nil {
		return fail(err)
	}
	res := &RestoreResult{Target: target, Backup: best.Name, EndLSN: uint64(m2.LastLSN), PageCount: m2.PageCount,
		Pages: pages, Bytes: int64(m2.PageCount) * int64(m2.PageSize), FileID: fmt.Sprintf("%016x", id), Replay: rr}
	for _, l := range chain {
		res.Chain = append(res.Chain, l.name)
	}
	res.Duration = time.Since(start)
	return res, nil
}

// unreachable says why t cannot be reached ("" when it can): t lies after
// backup b's point in time and the WAL archive holds no transaction of the
// database after the backup (WAL archiving off, or the archive lost), so
// the restore would silently stop at the backup, not at t.
func unreachable(o Options, archDir string, b *BackupInfo, rr *ReplayResult, t time.Time) (string, error) {
	if !rr.ArchiveEnd || rr.Transactions > 0 || !b.PointInTime().Before(t) {
		return "", nil
	}
	arch := walarchive.New(o.FS, archDir)
	fileID, err := strconv.ParseUint(b.DBFileID, 16, 64)
	if err != nil {
		return "", fmt.Errorf("backup %s: file id %q: %w", b.Name, b.DBFileID, common.ErrCorrupt)
	}
	last, err := arch.LastLSN(fileID)
	if err != nil {
		return "", err
	}
	switch {
	case uint64(last) > b.EndLSN:
		return "", nil // archived past the backup: ArchiveEnd's warning says the rest
	case last > 0:
		return fmt.Sprintf("the WAL archive %s ends at LSN %d, not after backup %s (is WAL archiving off?)", arch.Dir, last, b.Name), nil
	}
	return fmt.Sprintf("WAL archiving is off (%s holds no archived transaction of this database)", arch.Dir), nil
}

func assignNewFileID(f vfs.File, ps int) error {
	p0 := make([]byte, ps)
	if _, err := f.ReadAt(p0, 0); err != nil {
		return err
	}
	m, err := page.DecodeMeta(p0)
	if err != nil {
		return err
	}
	m.FileID = newFileID()
	m.Encode(p0)
	page.Seal(p0)
	if _, err := f.WriteAt(p0, 0); err != nil {
		return err
	}
	return f.Sync()
}

func readMeta(fs vfs.FS, path string) (*page.Meta, error) {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return pager.ReadFileHeader(f, path)
}
