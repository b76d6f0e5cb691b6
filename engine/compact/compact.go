// Package compact measures fragmentation and rewrites a database densely
// (the guide's DatabaseCompactor).
//
// Compaction rebuilds every tree bottom-up into a new file beside the
// database (NAME.db.compact), fsyncs it, and renames it over the original,
// then fsyncs the directory. A crash before the rename leaves the original
// untouched (the temporary file is removed by the next run); after the
// rename the new file is complete. It needs exclusive access: no other
// connection may have the database open, since they would keep reading the
// old file. The connection that compacts carries on with the new file
// (DatabaseCompactor's handle stays usable), and gives up its exclusive
// hold when the compaction ends, whether it succeeded or not.
//
// Compaction reads and writes as the system, not as a user of the
// database's access control: it changes the layout, never the graph. With
// Options.User set, that user must hold PermissionConfigure to start it.
package compact

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/btree"
	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/pager"
	"github.com/sombradb/sombra/engine/internal/progress"
	"github.com/sombradb/sombra/engine/vfs"
)

// Analysis describes a database's fragmentation. Every figure is the one
// sombra-info and the health check show (engine.Info): what a compaction
// would give back. The Estimated* fields repeat it under the names this
// document has always had.
type Analysis struct {
	Path                        string  `json:"path"`
	FileSize                    int64   `json:"file_size"`
	PageSize                    int     `json:"page_size"`
	PageCount                   uint64  `json:"page_count"`
	FreePages                   uint64  `json:"free_pages"`
	FragmentationPercent        float64 `json:"fragmentation_percent"`
	ReclaimableBytes            int64   `json:"reclaimable_bytes"`
	PageFillPercent             float64 `json:"page_fill_percent"`
	EstimatedPagesAfter         uint64  `json:"estimated_pages_after"`
	EstimatedReclaimableBytes   int64   `json:"estimated_reclaimable_bytes"`
	EstimatedReclaimablePercent float64 `json:"estimated_reclaimable_percent"`
}

// Report describes a finished compaction.
type Report struct {
	Path           string        `json:"path"`
	PagesBefore    uint64        `json:"pages_before"`
	PagesAfter     uint64        `json:"pages_after"`
	PagesMoved     uint64        `json:"pages_moved"`
	SizeBefore     int64         `json:"size_before"`
	SizeAfter      int64         `json:"size_after"`
	BytesReclaimed int64         `json:"bytes_reclaimed"`
	Duration       time.Duration `json:"-"`
	LogicalHash    string        `json:"logical_hash"`

	lsn common.LSN // the state the new file was built from
}

// Options tune Compact.
type Options struct {
	// Wait is how long to wait for other connections to close.
	Wait time.Duration
	// FillPercent is how full rebuilt pages are packed (default 90).
	FillPercent int
	// Progress, if set, is called with pages written and pages expected.
	Progress func(done, total int64)
	// FS is the file layer (default: the OS).
	FS vfs.FS
	// Logger receives warnings (nil: none).
	Logger *slog.Logger
	// Encryption is the key of an encrypted database (nil: plaintext).
	// The compacted file is sealed with it too.
	Encryption engine.PageCipher
	// User, if set, is who asks for the compaction: under access control
	// they need PermissionConfigure (checked and audited before anything
	// is done). Empty: the caller acts as the system.
	User string

	// ctx is the context of the ...Context call running (nil: none),
	// carried in the call's copy of the options to every step.
	ctx context.Context
}

// DatabaseCompactor is the guide's handle for an open database.
type DatabaseCompactor struct{ db *engine.DB }

// NewDatabaseCompactor returns a compactor bound to db.
func NewDatabaseCompactor(db *engine.DB) *DatabaseCompactor { return &DatabaseCompactor{db: db} }

// AnalyzeFragmentation reports fragmentation without changing anything.
func (c *DatabaseCompactor) AnalyzeFragmentation() (Analysis, error) { return analyze(c.db) }

// Compact rewrites db's file densely. db must be the only connection to
// the database (ErrBusy otherwise) and have no transaction open. db stays
// usable: its later reads and commits go to the new file.
func (c *DatabaseCompactor) Compact() (*Report, error) {
	return compactOpen(c.db, Options{})
}

// CompactWithOptions is Compact with options (Wait, FillPercent,
// Progress, User; FS and Encryption are the handle's own).
func (c *DatabaseCompactor) CompactWithOptions(opts Options) (*Report, error) {
	return compactOpen(c.db, opts)
}

// CompactContext is CompactWithOptions, stopped when ctx is cancelled:
// until the new file replaces the old one (the last step), a cancel
// removes the new file and returns an error matching ctx.Err(), the
// database as it was. The context is checked at every page read or
// written, so a cancel is noticed within milliseconds.
func (c *DatabaseCompactor) CompactContext(ctx context.Context, opts Options) (*Report, error) {
	opts.ctx = ctx
	return compactOpen(c.db, opts)
}

// AnalyzeFragmentationContext is AnalyzeFragmentation, stopped when ctx is
// cancelled (see AnalyzeContext).
func (c *DatabaseCompactor) AnalyzeFragmentationContext(ctx context.Context, progress func(done, total int64)) (Analysis, error) {
	return analyzeContext(ctx, c.db, progress)
}

// Analyze opens path read-only and reports its fragmentation.
func Analyze(path string) (Analysis, error) {
	return AnalyzeContext(context.Background(), path, nil)
}

// AnalyzeContext is Analyze, stopped when ctx is cancelled. The figures
// come from the header, except for a file written before it kept space
// statistics, whose pages are then read once: progress (if not nil) gets
// the bytes read and the file's size.
func AnalyzeContext(ctx context.Context, path string, progress func(done, total int64)) (Analysis, error) {
	db, err := engine.OpenWithConfig(path, engine.Config{ReadOnly: true})
	if err != nil {
		return Analysis{}, err
	}
	defer db.Close()
	return analyzeContext(ctx, db, progress)
}

func analyze(db *engine.DB) (Analysis, error) { return analyzeContext(context.Background(), db, nil) }

func analyzeContext(ctx context.Context, db *engine.DB, progress func(done, total int64)) (Analysis, error) {
	info, err := db.InfoContext(ctx, progress)
	if err != nil {
		return Analysis{}, err
	}
	return Analysis{Path: info.Path, FileSize: info.FileSize, PageSize: info.PageSize, PageCount: info.PageCount,
		FreePages: info.FreePages, FragmentationPercent: info.FragmentationPercent, ReclaimableBytes: info.ReclaimableBytes,
		PageFillPercent: info.PageFillPercent, EstimatedPagesAfter: info.EstimatedPagesAfter,
		EstimatedReclaimableBytes: info.ReclaimableBytes, EstimatedReclaimablePercent: info.FragmentationPercent}, nil
}

// ErrHashMismatch is returned when the file a compaction built does not hold
// the same graph as the original (a write lost or misplaced on its way to
// the disk, or a bug); the original is kept.
var ErrHashMismatch = errors.New("the compacted file's logical hash differs from the original's")

// checkHash reads the new file back from the disk, every page through its
// checksum (and seal), and compares its logical hash with want, so that the
// original is only replaced by a file known to hold the same graph.
func checkHash(ctx context.Context, fsys vfs.FS, p *pager.Pager, tmp, want string) error {
	f, err := fsys.OpenFile(tmp, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := pager.ReadFileHeader(f, tmp)
	if err != nil {
		return fmt.Errorf("read back %s: %w", tmp, err)
	}
	got, err := handle.HashTrees(ctx, fileReader{f: f, p: p, path: tmp, ps: p.PageSize()}, m.Roots)
	if err != nil {
		return fmt.Errorf("read back %s: %w", tmp, err)
	}
	if got != want {
		return fmt.Errorf("%w (new %.12s…, original %.12s…)", ErrHashMismatch, got, want)
	}
	return nil
}

// fileReader reads pages of a database file that no pager has open,
// verified as the pager verifies them.
type fileReader struct {
	f    vfs.File
	p    *pager.Pager
	path string
	ps   int
}

func (r fileReader) Page(id common.PageID) ([]byte, error) {
	b := make([]byte, r.ps)
	off := int64(id) * int64(r.ps)
	if _, err := r.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("read %s page %d: %w", r.path, id, err)
	}
	b, err := r.p.OpenRaw(id, b, r.path, off)
	if err != nil {
		return nil, err
	}
	if !page.Verify(b) {
		return nil, &common.CorruptionError{Path: r.path, Page: id, Offset: off, Reason: "checksum mismatch"}
	}
	if err := r.p.Validate(b); err != nil {
		return nil, &common.CorruptionError{Path: r.path, Page: id, Offset: off, Reason: err.Error()}
	}
	return b, nil
}

// defaultFill is how full compaction packs pages (Options.FillPercent).
const defaultFill = engine.CompactFillPercent

// Compact rewrites the database at path densely.
func Compact(path string, opts Options) (*Report, error) {
	return CompactContext(context.Background(), path, opts)
}

// CompactContext is Compact, stopped when ctx is cancelled (see
// DatabaseCompactor.CompactContext).
func CompactContext(ctx context.Context, path string, opts Options) (*Report, error) {
	opts.ctx = ctx
	db, err := engine.OpenWithConfig(path, engine.Config{BusyTimeout: max(opts.Wait, time.Millisecond), FS: opts.FS, WALAutoCheckpoint: -1,
		Encryption: opts.Encryption})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return compactOpen(db, opts)
}

func compactOpen(db *engine.DB, opts Options) (*Report, error) {
	start := time.Now()
	if opts.FillPercent <= 0 || opts.FillPercent > 100 {
		opts.FillPercent = defaultFill
	}
	if opts.FS == nil {
		opts.FS = db.Config().FS
	}
	p := handle.Pager(db)
	path := p.Path()
	if opts.User != "" {
		if err := db.Authorize(opts.User, engine.PermissionConfigure); err != nil {
			return nil, fmt.Errorf("compact %s: %w", path, err)
		}
	}
	if n := p.OpenSnapshots(); n > 0 {
		// Their snapshots would pin the WAL and then read a replaced file.
		return nil, fmt.Errorf("compact %s: %d transactions of this connection are open: %w", path, n, engine.ErrBusy)
	}
	if err := p.ExclusiveLockContext(opts.context(), opts.Wait); err != nil {
		return nil, fmt.Errorf("compact %s: %w", path, err)
	}
	// Whatever happens next, other connections may open the database
	// again once this returns.
	defer func() {
		if err := p.ReleaseExclusive(); err != nil && opts.Logger != nil {
			opts.Logger.Warn("compact: release the exclusive lock", "path", path, "err", err)
		}
	}()
	// The pager's checkpoint, not the DB's: it needs no permission.
	if _, err := p.Checkpoint(pager.Truncate); err != nil {
		return nil, fmt.Errorf("compact %s: %w", path, err)
	}
	tmp := path + ".compact"
	_ = opts.FS.Remove(tmp) // left by a crashed run
	rep, err := build(db, opts, tmp)
	if err != nil {
		_ = opts.FS.Remove(tmp)
		return nil, fmt.Errorf("compact %s: %w", path, err)
	}
	// The last moment a cancel keeps the old file.
	if err := progress.New(opts.ctx, nil, 0).Err(); err != nil {
		_ = opts.FS.Remove(tmp)
		return nil, fmt.Errorf("compact %s: %w", path, err)
	}
	// Rename the new file into place and carry on with it; refused (and the
	// old file kept) if this connection committed meanwhile.
	if err := p.ReplaceFile(tmp, rep.lsn); err != nil {
		_ = opts.FS.Remove(tmp)
		return nil, fmt.Errorf("compact %s: %w", path, err)
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// build writes the dense copy of db's file to tmp, from one snapshot.
func build(db *engine.DB, opts Options, tmp string) (*Report, error) {
	p := handle.Pager(db)
	snap, err := p.BeginRead()
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	meta, err := snap.Meta()
	if err != nil {
		return nil, err
	}
	before, err := p.DBFileSize()
	if err != nil {
		return nil, err
	}
	rep := &Report{Path: p.Path(), PagesBefore: meta.PageCount, SizeBefore: before, lsn: meta.LastLSN}
	hash, err := handle.SnapshotLogicalHash(opts.context(), db, snap)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if err := rewrite(opts, p, snap, meta, tmp, rep); err != nil {
		return nil, err
	}
	if err := checkHash(opts.context(), opts.FS, p, tmp, hash); err != nil {
		return nil, fmt.Errorf("%w; the original file is unchanged", err)
	}
	rep.SizeAfter = int64(rep.PagesAfter) * int64(meta.PageSize)
	rep.BytesReclaimed = rep.SizeBefore - rep.SizeAfter
	rep.LogicalHash = hash
	return rep, nil
}

// rewrite builds the new file: every tree rebuilt densely in key order,
// then page 0 with the new roots, then fsync.
// On an encrypted database the trees are built in pages of the usable size
// and sealed on their way to the file; page 0 stays plaintext and keeps the
// key check.
func rewrite(opts Options, p *pager.Pager, snap *pager.Snapshot, meta *page.Meta, tmp string, rep *Report) error {
	f, err := opts.FS.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	ps := int(meta.PageSize)
	next := common.PageID(1)
	alloc := func() common.PageID { id := next; next++; return id }
	expected := int64(meta.PageCount - meta.FreeCount)
	var written int64
	tr := progress.New(opts.ctx, opts.Progress, expected)
	reads := progress.New(opts.ctx, nil, 0) // checks the context, counts nothing shown
	stats := page.SpaceStats{Valid: true}
	sink := func(id common.PageID, b []byte) error {
		if id != 0 {
			stats.Add(pager.PageStats(b))
		}
		page.SetLSN(b, meta.LastLSN)
		page.Seal(b)
		if _, err := f.WriteAt(p.SealRaw(id, b), int64(id)*int64(ps)); err != nil {
			return err
		}
		written++
		return tr.Add(1)
	}
	nm := *meta
	for root := 0; root < page.NumRoots; root++ {
		b := btree.NewBuilder(p.UsableSize(), opts.FillPercent, byte(root)+1, alloc, sink)
		c := btree.NewCursor(reads.Reader(snap), meta.Roots[root])
		for ok := c.First(); ok; ok = c.Next() {
			v, err := c.Value()
			if err != nil {
				return err
			}
			if err := b.Add(c.Key(), v); err != nil {
				return err
			}
		}
		if err := c.Err(); err != nil {
			return err
		}
		r, err := b.Finish()
		if err != nil {
			return err
		}
		nm.Roots[root] = r
	}
	nm.PageCount = uint64(next)
	nm.FreeHead, nm.FreeCount = 0, 0
	nm.FileID = pager.NewMeta(ps).FileID
	nm.CheckpointLSN = meta.LastLSN
	nm.CheckpointTime = time.Now().UnixNano()
	nm.Stats = stats
	b0 := make([]byte, ps)
	nm.Encode(b0)
	if err := sink(0, b0); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if opts.Progress != nil {
		opts.Progress(written, written)
	}
	rep.PagesAfter = nm.PageCount
	rep.PagesMoved = uint64(written - 1)
	return nil
}

// context returns the call's context (Background when none).
func (o Options) context() context.Context {
	if o.ctx == nil {
		return context.Background()
	}
	return o.ctx
}

// ErrBusy is engine.ErrBusy, re-exported for callers of this package.
var ErrBusy = engine.ErrBusy
