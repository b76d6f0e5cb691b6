package repair

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/integrity"
	"github.com/sombradb/sombra/engine/internal/handle"
	"github.com/sombradb/sombra/engine/internal/progress"
	"github.com/sombradb/sombra/engine/vfs"
)

// SalvageOptions tune SalvageToWithOptions.
type SalvageOptions struct {
	// Overwrite replaces an existing output file. The new database is built
	// under a temporary name and renamed over the output only once it is
	// complete and verified, so a failed salvage never loses the old file.
	Overwrite bool
	// SkipDamaged leaves out records read from pages that failed their
	// checksum (see SalvagedNode.Damaged); by default they are kept.
	SkipDamaged bool
	// Progress, if set, is called as the source is scanned with the
	// scan's position in bytes and the file's size: the scan reads every
	// page, then the leaves again, and the position is the share of those
	// reads done, scaled to the file's size.
	Progress func(done, total int64)
	// WriteProgress, if set, is called as the records are written to the
	// new database with records written and records to write.
	WriteProgress func(done, total int64)
	// CheckProgress, if set, is called as the new database is checked,
	// with bytes of it checked and its size (see integrity.Options).
	CheckProgress func(done, total int64)
}

// SalvageReport describes a salvage into a new database.
type SalvageReport struct {
	Source         string `json:"source"`
	Output         string `json:"output"`
	PageSize       int    `json:"page_size"`
	HeaderReadable bool   `json:"header_readable"`
	PagesScanned   uint64 `json:"pages_scanned"`
	WALFramesUsed  int    `json:"wal_frames_used"`
	// DamagedPages counts pages in use that failed their checksum or are
	// missing; DamagedPageList names the first 100.
	DamagedPages    int      `json:"damaged_pages"`
	DamagedPageList []uint64 `json:"damaged_page_list"`
	// UnreadableLeaves are node, edge and catalog leaf pages no record
	// could be read from.
	UnreadableLeaves []uint64 `json:"unreadable_leaves"`
	NodesFound       int      `json:"nodes_found"`
	EdgesFound       int      `json:"edges_found"`
	NodesSalvaged    int      `json:"nodes_salvaged"`
	EdgesSalvaged    int      `json:"edges_salvaged"`
	// RecordsFromDamagedPages counts written records that came from pages
	// that failed their checksum (SkipDamaged leaves them out instead).
	RecordsFromDamagedPages int `json:"records_from_damaged_pages"`
	RecordsSkippedDamaged   int `json:"records_skipped_damaged"`
	// RecordsUndecodable counts leaf cells whose record did not decode.
	RecordsUndecodable int `json:"records_undecodable"`
	// RecordsRejected counts decoded records the engine refused (a label
	// with a NUL byte, say).
	RecordsRejected int `json:"records_rejected"`
	// EdgesSkipped counts edges left out because an endpoint was not salvaged.
	EdgesSkipped int `json:"edges_skipped"`
	// NodesRemapped and EdgesRemapped count records written under a new id
	// (only records whose id was invalid). Every other id is kept.
	NodesRemapped   int      `json:"nodes_remapped"`
	EdgesRemapped   int      `json:"edges_remapped"`
	PropertyIndexes []string `json:"property_indexes"`
	// Verified is true when the new database passed a full integrity check.
	Verified bool          `json:"verified"`
	Warnings []string      `json:"warnings"`
	Duration time.Duration `json:"-"`
}

// SalvageTo writes every record salvage can read into a new database at
// newPath, which must not exist.
func (r *DatabaseRepair) SalvageTo(newPath string) (*SalvageReport, error) {
	return r.SalvageToWithOptions(newPath, SalvageOptions{})
}

// batchSize is how many records one write transaction of a salvage holds.
const batchSize = 5000

// SalvageToWithOptions is SalvageTo with options. Nodes are written in id
// order under their old ids, then edges whose endpoints were salvaged, then
// the property indexes the catalog named are filled; the new database's
// next ids continue after the old database's. The result is checked with a
// full integrity check before it is renamed into place.
func (r *DatabaseRepair) SalvageToWithOptions(newPath string, opts SalvageOptions) (*SalvageReport, error) {
	return r.SalvageToContext(context.Background(), newPath, opts)
}

// SalvageToContext is SalvageToWithOptions, stopped when ctx is cancelled
// (checked at every page scanned and every record written): the new
// database's temporary file is removed and the error matches ctx.Err();
// the source and an existing output are untouched.
func (r *DatabaseRepair) SalvageToContext(ctx context.Context, newPath string, opts SalvageOptions) (*SalvageReport, error) {
	start := time.Now()
	if err := sameFile(r.path, newPath); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(newPath); err == nil && !opts.Overwrite {
		return nil, fmt.Errorf("salvage: output %s: %w", newPath, engine.ErrExists)
	}
	res, err := r.scan(ctx, opts.Progress)
	if err != nil {
		return nil, err
	}
	// Overwriting an output reached through a link replaces its target.
	out, err := vfs.RealPath(newPath)
	if err != nil {
		return nil, err
	}
	rep := &SalvageReport{Source: r.path, Output: newPath, PageSize: res.pageSize, HeaderReadable: res.headerReadable,
		PagesScanned: res.pages, WALFramesUsed: res.walFrames, DamagedPages: res.damagedCount,
		DamagedPageList: nonNil(res.damaged), UnreadableLeaves: nonNil(res.unreadable), NodesFound: len(res.nodes),
		EdgesFound: len(res.edges), RecordsUndecodable: res.undecodable, PropertyIndexes: []string{},
		Warnings: append([]string{}, res.warnings...)}
	for name := range res.indexes {
		rep.PropertyIndexes = append(rep.PropertyIndexes, name)
	}
	sort.Strings(rep.PropertyIndexes)

	fsys := r.fs()
	tmp := out + ".salvage-tmp"
	removeDB(fsys, tmp)
	if err := r.write(ctx, tmp, res, rep, opts); err != nil {
		removeDB(fsys, tmp)
		return nil, fmt.Errorf("salvage %s into %s: %w", r.path, newPath, err)
	}
	if err := progress.Interrupted(ctx); err != nil { // the last moment a cancel changes nothing
		removeDB(fsys, tmp)
		return nil, fmt.Errorf("salvage %s into %s: %w", r.path, newPath, err)
	}
	if err := install(fsys, tmp, out, opts.Overwrite); err != nil {
		return nil, fmt.Errorf("salvage %s into %s: %w", r.path, newPath, err)
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

func nonNil(s []uint64) []uint64 {
	if s == nil {
		return []uint64{}
	}
	return s
}

// sameFile refuses to salvage a database into itself.
func sameFile(src, dst string) error {
	a, errA := filepath.Abs(src)
	b, errB := filepath.Abs(dst)
	same := errA == nil && errB == nil && a == b
	if sa, err := os.Stat(src); err == nil {
		if sb, err := os.Stat(dst); err == nil && os.SameFile(sa, sb) {
			same = true
		}
	}
	if same {
		return fmt.Errorf("salvage: the output %s is the database being salvaged: %w", dst, engine.ErrInvalid)
	}
	return nil
}

func removeDB(fsys vfs.FS, path string) {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		_ = fsys.Remove(p)
	}
}

// install publishes the finished database tmp (closed, its WAL
// checkpointed into it and its file fsynced) as out and makes that durable
// with one fsync of the directory. A new output is linked into place,
// which never replaces a file, so an output someone created meanwhile is
// kept; an output being overwritten is renamed over, and stays whole with
// its WAL until then: the old file's WAL is removed only once the new file
// is in place (until then it cannot be read as the new file's: its header
// names the old file's id). A failure before the publication removes tmp.
func install(fsys vfs.FS, tmp, out string, overwrite bool) error {
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := fsys.Remove(tmp + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			removeDB(fsys, tmp)
			return fmt.Errorf("remove %s%s: %w", tmp, suffix, err)
		}
	}
	if l, ok := fsys.(vfs.Linker); ok && !overwrite {
		err := l.Link(tmp, out)
		switch {
		case err == nil:
			// tmp is now a second name of the output; the one directory
			// fsync makes both the link and this removal durable.
			_ = fsys.Remove(tmp)
			if err := vfs.SyncParent(fsys, out); err != nil {
				return fmt.Errorf("fsync the directory of %s: %w", out, err)
			}
			return nil
		case errors.Is(err, os.ErrExist):
			removeDB(fsys, tmp)
			return fmt.Errorf("output %s: %w", out, engine.ErrExists)
		case !errors.Is(err, errors.ErrUnsupported) && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.ENOTSUP):
			removeDB(fsys, tmp)
			return err
		}
		// No hard links here: renamed, as an overwrite is.
	}
	if err := fsys.Rename(tmp, out); err != nil {
		removeDB(fsys, tmp)
		return err
	}
	if err := vfs.SyncParent(fsys, out); err != nil {
		return fmt.Errorf("fsync the directory of %s: %w", out, err)
	}
	if overwrite {
		// They belong to the file just replaced.
		for _, suffix := range []string{"-wal", "-shm"} {
			if err := fsys.Remove(out + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove %s%s of the replaced output: %w", out, suffix, err)
			}
		}
	}
	return nil
}

// write builds the new database at path.
func (r *DatabaseRepair) write(ctx context.Context, path string, res *scanResult, rep *SalvageReport, opts SalvageOptions) error {
	enc := r.Encryption
	if enc == nil && res.meta != nil && res.meta.Encrypted {
		enc = engine.FallbackEncryption() // salvage of an encrypted file stays encrypted
	}
	db, err := engine.OpenWithConfig(path, engine.Config{PageSize: res.pageSize, Logger: r.Logger, Encryption: enc, FS: r.FS})
	if err != nil {
		return err
	}
	defer db.Close()
	for _, name := range rep.PropertyIndexes {
		if err := db.CreatePropertyIndex(name); err != nil {
			return err
		}
	}
	b := &batcher{db: db, tr: progress.New(ctx, opts.WriteProgress, int64(len(res.nodes)+len(res.edges)))}
	defer b.abort()

	// Nodes in id order under their own ids; a record whose id is invalid
	// gets a fresh one after all the others.
	mapped := map[engine.NodeID]engine.NodeID{}
	var renumber []SalvagedNode
	for _, n := range res.sortedNodes() {
		if n.Damaged && opts.SkipDamaged {
			rep.RecordsSkippedDamaged++
			continue
		}
		if n.ID == 0 {
			renumber = append(renumber, n)
			continue
		}
		err := b.do(func(tx *engine.Tx) error { return handle.ImportNode(tx, n.ID, n.Labels, n.Properties) })
		if errors.Is(err, engine.ErrInvalid) {
			rep.RecordsRejected++
			continue
		}
		if err != nil {
			return err
		}
		mapped[n.ID] = n.ID
		rep.NodesSalvaged++
		if n.Damaged {
			rep.RecordsFromDamagedPages++
		}
	}
	if m := res.meta; m != nil {
		if err := b.run(func(tx *engine.Tx) error {
			return handle.ReserveIDs(tx, engine.NodeID(m.NextNodeID), engine.EdgeID(m.NextEdgeID))
		}); err != nil {
			return err
		}
	}
	for _, n := range renumber {
		var id engine.NodeID
		err := b.do(func(tx *engine.Tx) (err error) { id, err = tx.CreateNodeWithLabels(n.Labels, n.Properties); return err })
		if errors.Is(err, engine.ErrInvalid) {
			rep.RecordsRejected++
			continue
		}
		if err != nil {
			return err
		}
		mapped[n.ID] = id
		rep.NodesSalvaged++
		rep.NodesRemapped++
		if n.Damaged {
			rep.RecordsFromDamagedPages++
		}
	}

	var renumberEdges []SalvagedEdge
	for _, e := range res.sortedEdges() {
		if e.Damaged && opts.SkipDamaged {
			rep.RecordsSkippedDamaged++
			continue
		}
		from, okFrom := mapped[e.FromID]
		to, okTo := mapped[e.ToID]
		if !okFrom || !okTo {
			rep.EdgesSkipped++
			continue
		}
		e.FromID, e.ToID = from, to
		if e.ID == 0 {
			renumberEdges = append(renumberEdges, e)
			continue
		}
		err := b.do(func(tx *engine.Tx) error { return handle.ImportEdge(tx, e.ID, e.FromID, e.ToID, e.Label, e.Properties) })
		if errors.Is(err, engine.ErrInvalid) {
			rep.RecordsRejected++
			continue
		}
		if err != nil {
			return err
		}
		rep.EdgesSalvaged++
		if e.Damaged {
			rep.RecordsFromDamagedPages++
		}
	}
	for _, e := range renumberEdges {
		err := b.do(func(tx *engine.Tx) error {
			_, err := tx.CreateEdge(e.FromID, e.ToID, e.Label, e.Properties)
			return err
		})
		if errors.Is(err, engine.ErrInvalid) {
			rep.RecordsRejected++
			continue
		}
		if err != nil {
			return err
		}
		rep.EdgesSalvaged++
		rep.EdgesRemapped++
		if e.Damaged {
			rep.RecordsFromDamagedPages++
		}
	}
	if err := b.commit(); err != nil {
		return err
	}
	b.tr.Finish()
	if _, err := db.CheckpointWithMode(engine.CheckpointTruncate); err != nil {
		return err
	}
	chk, err := integrity.CheckDBContext(ctx, db, integrity.Options{Full: true, Progress: opts.CheckProgress})
	if err != nil {
		return err
	}
	if !chk.IsHealthy() {
		return fmt.Errorf("the new database failed its integrity check: %s (%d issues): %w",
			chk.Issues[0].Description, len(chk.Issues), engine.ErrCorrupt)
	}
	rep.Verified = true
	return db.Close()
}

// batcher groups writes into transactions of batchSize operations.
type batcher struct {
	db *engine.DB
	tx *engine.Tx
	n  int
	tr *progress.Tracker // counts records (refused ones too) and checks the context
}

// do writes one record (fn), counted in the progress.
func (b *batcher) do(fn func(*engine.Tx) error) error {
	if err := b.tr.Add(1); err != nil {
		return err
	}
	return b.run(fn)
}

// run adds fn to the batch.
func (b *batcher) run(fn func(*engine.Tx) error) error {
	if b.tx == nil {
		tx, err := b.db.BeginTransaction()
		if err != nil {
			return err
		}
		b.tx = tx
	}
	// ImportNode and ImportEdge check ids, labels and endpoints before they
	// write, so a record they refuse leaves the batch intact.
	if err := fn(b.tx); err != nil {
		return err
	}
	if b.n++; b.n >= batchSize {
		return b.commit()
	}
	return nil
}

func (b *batcher) commit() error {
	if b.tx == nil {
		return nil
	}
	tx := b.tx
	b.tx, b.n = nil, 0
	return tx.Commit()
}

func (b *batcher) abort() {
	if b.tx != nil {
		b.tx.Rollback()
		b.tx = nil
	}
}
