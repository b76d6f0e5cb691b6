package engine

import (
	"sort"
	"time"

	"github.com/sombradb/sombra/engine/internal/page"
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
	Path                  string     `json:"path"`
	FormatVersion         uint32     `json:"format_version"`
	PageSize              int        `json:"page_size"`
	FileSize              int64      `json:"file_size"`
	PageCount             uint64     `json:"page_count"`
	FreePages             uint64     `json:"free_pages"`
	FragmentationPercent  float64    `json:"fragmentation_percent"`
	ReclaimableBytes      int64      `json:"reclaimable_bytes"`
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
func (db *DB) Info() (Info, error) {
	var out Info
	err := db.View(func(tx *Tx) error {
		m := tx.meta
		out = Info{Path: db.p.Path, FormatVersion: m.Version, PageSize: int(m.PageSize), PageCount: m.PageCount,
			FreePages: m.FreeCount, LSN: uint64(m.LastLSN), NodeCount: m.NodeCount, EdgeCount: m.EdgeCount,
			Created: time.Unix(0, m.Created).UTC()}
		var err error
		if out.FileSize, err = db.p.DBFileSize(); err != nil {
			return err
		}
		out.FragmentationPercent, out.ReclaimableBytes = fragmentation(m, out.FileSize)
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

// fragmentation is the share of the logical file held by free pages, plus
// any file bytes past the logical end.
func fragmentation(m *page.Meta, fileSize int64) (float64, int64) {
	ps := int64(m.PageSize)
	reclaim := int64(m.FreeCount) * ps
	if extra := fileSize - int64(m.PageCount)*ps; extra > 0 {
		reclaim += extra
	}
	total := max(fileSize, int64(m.PageCount)*ps)
	if total == 0 {
		return 0, 0
	}
	return 100 * float64(reclaim) / float64(total), reclaim
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
