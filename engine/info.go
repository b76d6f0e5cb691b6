package engine

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/page"
	"github.com/sombradb/sombra/engine/internal/pager"
)

// LabelCount is a label and how many nodes (or edges) carry it.
type LabelCount struct {
	Label string `json:"label"`
	Count uint64 `json:"count"`
}

// Info summarises a database: sizes, WAL, fragmentation and counts. It
// reads only the header, the WAL index and the catalog, so it is cheap
// whatever the database size.
type Info struct {
	Path          string `json:"path"`
	FormatVersion uint32 `json:"format_version"`
	PageSize      int    `json:"page_size"`
	FileSize      int64  `json:"file_size"`
	PageCount     uint64 `json:"page_count"`
	FreePages     uint64 `json:"free_pages"`
	// FragmentationPercent and ReclaimableBytes are what a compaction
	// would give back (free pages, sparse B+tree pages, file bytes past the
	// end), from the space statistics every commit keeps in the header;
	// PageFillPercent is how full the B+tree pages are and
	// EstimatedPagesAfter the pages a compaction would write.
	FragmentationPercent  float64    `json:"fragmentation_percent"`
	ReclaimableBytes      int64      `json:"reclaimable_bytes"`
	PageFillPercent       float64    `json:"page_fill_percent"`
	EstimatedPagesAfter   uint64     `json:"estimated_pages_after"`
	WALSize               int64      `json:"wal_size"`
	WALFrames             int        `json:"wal_frames"`
	WALFramesCheckpointed int        `json:"wal_frames_checkpointed"`
	LSN                   uint64     `json:"lsn"`
	LastCheckpointLSN     uint64     `json:"last_checkpoint_lsn"`
	LastCheckpoint        *time.Time `json:"last_checkpoint"`
	// OldestPendingCommit is the commit time of the oldest transaction
	// still waiting in the WAL for a checkpoint (nil when none waits).
	OldestPendingCommit *time.Time   `json:"oldest_pending_commit"`
	Created             time.Time    `json:"created"`
	NodeCount           uint64       `json:"node_count"`
	EdgeCount           uint64       `json:"edge_count"`
	Labels              []LabelCount `json:"labels"`
	EdgeLabels          []LabelCount `json:"edge_labels"`
	PropertyIndexes     []string     `json:"property_indexes"`
}

// Info gathers the summary as of the latest commit.
func (db *DB) Info() (Info, error) { return db.InfoContext(context.Background(), nil) }

// InfoContext is Info, stopped when ctx is cancelled. Info is read from
// the header, except for a file written before the header kept space
// statistics: they are then counted from every page once (until the next
// compaction), and progress (if not nil) gets the bytes read and the
// file's size; ctx is checked at every page.
func (db *DB) InfoContext(ctx context.Context, progress func(done, total int64)) (Info, error) {
	var out Info
	err := db.View(func(tx *Tx) error {
		tx.work = progressTracker(ctx, progress, int64(tx.meta.PageCount)*int64(tx.meta.PageSize))
		m := tx.meta
		out = Info{Path: db.p.Path(), FormatVersion: m.Version, PageSize: int(m.PageSize), PageCount: m.PageCount,
			FreePages: m.FreeCount, LSN: uint64(m.LastLSN), NodeCount: m.NodeCount, EdgeCount: m.EdgeCount,
			Created: time.Unix(0, m.Created).UTC()}
		var err error
		if out.FileSize, err = db.p.DBFileSize(); err != nil {
			return err
		}
		st, err := tx.spaceStats()
		if err != nil {
			return err
		}
		sp := estimateSpace(m.PageSize, m.PageCount, out.FileSize, st, usableSize(db, m))
		out.FragmentationPercent, out.ReclaimableBytes = sp.ReclaimablePercent, sp.ReclaimableBytes
		out.PageFillPercent, out.EstimatedPagesAfter = sp.PageFillPercent, sp.PagesAfter
		labels, err := tx.counters(catLabelCount)
		if err != nil {
			return err
		}
		out.Labels = sortedCounts(labels)
		elabels, err := tx.counters(catEdgeCount)
		if err != nil {
			return err
		}
		out.EdgeLabels = sortedCounts(elabels)
		idx, err := tx.propIndexes()
		if err != nil {
			return err
		}
		out.PropertyIndexes = []string{}
		for k := range idx {
			out.PropertyIndexes = append(out.PropertyIndexes, k)
		}
		sort.Strings(out.PropertyIndexes)
		return nil
	})
	if err != nil {
		return out, err
	}
	st, err := db.p.WAL()
	if err != nil {
		return out, err
	}
	out.WALSize, out.WALFrames, out.WALFramesCheckpointed = st.Size, st.Frames, st.Backfilled
	if st.OldestPendingTS != 0 {
		t := time.Unix(0, st.OldestPendingTS).UTC()
		out.OldestPendingCommit = &t
	}
	if fm, err := db.p.FileMeta(); err == nil {
		out.LastCheckpointLSN = uint64(fm.CheckpointLSN)
		if t := fm.CheckpointAt(); !t.IsZero() {
			t = t.UTC()
			out.LastCheckpoint = &t
		}
	}
	return out, nil
}

// CompactFillPercent is how full compaction packs B+tree pages.
const CompactFillPercent = 90

// branchFanout is about how many children a packed branch page holds.
const branchFanout = 100

// Space is what a compaction of a file would leave and give back.
type Space struct {
	PageFillPercent    float64
	PagesAfter         uint64
	ReclaimableBytes   int64
	ReclaimablePercent float64
}

// estimateSpace estimates a dense rewrite from the space statistics: the
// bytes each tree's pages use, packed at CompactFillPercent into pages of
// the usable size, plus overflow pages (copied whole) and the header. What
// it reclaims is the file (or logical database, if larger) minus that.
func estimateSpace(pageSize uint32, pageCount uint64, fileSize int64, st page.SpaceStats, usable int) Space {
	var sp Space
	u := int64(usable)
	var used, pages, dense int64
	for i := range st.TreeUsed {
		if st.TreePages[i] <= 0 {
			continue
		}
		used += st.TreeUsed[i]
		pages += st.TreePages[i]
		// Each tree is rebuilt into pages of its own: at least one leaf,
		// and above more than one a level of branch pages per ~100x
		// (the old branch pages' bytes are in used already, but a
		// rebuilt tree needs its own branch pages whole).
		leaves := max((max(st.TreeUsed[i], 0)*100/CompactFillPercent+u-1)/u, 1)
		dense += leaves
		for n := leaves; n > 1; {
			n = (n + branchFanout - 1) / branchFanout
			dense += n
		}
	}
	if pages > 0 {
		sp.PageFillPercent = 100 * float64(used) / float64(pages*u)
	}
	sp.PagesAfter = min(uint64(1+dense+max(st.OverflowPages, 0)), max(pageCount, 1))
	total := max(fileSize, int64(pageCount)*int64(pageSize))
	if after := int64(sp.PagesAfter) * int64(pageSize); total > after {
		sp.ReclaimableBytes = total - after
		sp.ReclaimablePercent = 100 * float64(sp.ReclaimableBytes) / float64(total)
	}
	return sp
}

// usableSize is the page bytes the trees see (less on an encrypted file).
func usableSize(db *DB, m *page.Meta) int {
	if db.p.PageSize() == int(m.PageSize) {
		return db.p.UsableSize()
	}
	return int(m.PageSize)
}

// spaceStats returns the header's space statistics, or for a file
// written before they were kept, counts them by reading every page once
// (memory stays within the page cache).
func (tx *Tx) spaceStats() (page.SpaceStats, error) {
	if err := tx.settleAll(); err != nil {
		return page.SpaceStats{}, err
	}
	m := tx.meta
	if m.Stats.Valid {
		return m.Stats, nil
	}
	r := tx.reader()
	free, err := pager.FreeListPages(r.Page, m.FreeHead, m.PageCount)
	if err != nil {
		return page.SpaceStats{}, fmt.Errorf("%s: free list: %w", tx.db.p.Path(), err)
	}
	isFree := make(map[common.PageID]bool, len(free))
	for _, id := range free {
		isFree[id] = true
	}
	st := page.SpaceStats{Valid: true}
	for id := common.PageID(1); uint64(id) < m.PageCount; id++ {
		if isFree[id] {
			continue
		}
		if err := tx.work.Add(int64(m.PageSize)); err != nil {
			return page.SpaceStats{}, err
		}
		b, err := r.Page(id)
		if err != nil {
			return page.SpaceStats{}, tx.db.annotate(err)
		}
		st.Add(pager.PageStats(b))
	}
	tx.work.Finish()
	return st, nil
}

func sortedCounts(m map[string]uint64) []LabelCount {
	out := make([]LabelCount, 0, len(m))
	for k, v := range m {
		out = append(out, LabelCount{Label: k, Count: v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Label < out[j].Label
	})
	return out
}
