package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/internal/walarchive"
)

// PruneResult reports what Prune deleted.
type PruneResult struct {
	Deleted         []string `json:"deleted"`
	Kept            []string `json:"kept"`
	SegmentsDeleted []string `json:"wal_segments_deleted"`
	TempDeleted     []string `json:"temp_files_deleted"`
	BytesFreed      int64    `json:"bytes_freed"`
}

// staleTemp is how old a temporary file must be before Prune removes it
// (younger ones may belong to a backup that is running).
const staleTemp = 24 * time.Hour

// With opts.DryRun, Prune deletes nothing and writes nothing (not even
// the catalog) and returns what it would delete.
//
// Prune deletes the backups in dir created more than keepDays days ago,
// except the keepFull newest full backups with every incremental built on
// them, and never a backup that a kept one depends on (a kept incremental
// keeps its whole chain). It also
// deletes archived WAL segments that no kept backup can use (those ending
// at or before the oldest kept backup's end LSN, per database file) and
// temporary files left by killed backups more than a day ago. At least one
// of keepDays and keepFull must be positive.
func Prune(dir string, keepDays, keepFull int, opts Options) (*PruneResult, error) {
	o := opts.withDefaults()
	if keepDays < 0 || keepFull < 0 || (keepDays == 0 && keepFull == 0) {
		return nil, fmt.Errorf("prune with keep-days %d and keep-full %d would delete every backup: %w", keepDays, keepFull, common.ErrInvalid)
	}
	list, err := listBackups(o.FS, dir)
	if err != nil {
		return nil, err
	}
	now := o.Now()
	cutoff := now.Add(-time.Duration(keepDays) * 24 * time.Hour)
	byName := map[string]*BackupInfo{}
	for i := range list {
		byName[list[i].Name] = &list[i]
	}
	keep := map[string]bool{}
	keepChain := func(b *BackupInfo) {
		for b != nil && !keep[b.Name] {
			keep[b.Name] = true
			if b.Parent == "" {
				return
			}
			b = byName[b.Parent]
		}
	}
	for i := range list {
		if b := &list[i]; keepDays > 0 && !b.Created.Before(cutoff) {
			keepChain(b)
		}
	}
	keptFull := map[string]bool{}
	for i, n := len(list)-1, 0; i >= 0 && n < keepFull; i-- {
		if b := &list[i]; b.Type == TypeFull.String() && b.Error == "" {
			keptFull[b.Name] = true
			n++
		}
	}
	// A kept full backup keeps its chain whole: every incremental built on
	// it (directly or through others) is a newer restore point of the same
	// history, and deleting those would keep the oldest point of the chain
	// and lose the newest.
	for i := range list {
		if root := chainRoot(byName, &list[i]); root != nil && keptFull[root.Name] {
			keepChain(&list[i])
		}
	}
	res := &PruneResult{Deleted: []string{}, Kept: []string{}, SegmentsDeleted: []string{}, TempDeleted: []string{}}
	for _, b := range list {
		if keep[b.Name] {
			res.Kept = append(res.Kept, b.Name)
			continue
		}
		if err := o.remove(b.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("delete %s: %w", b.Path, err)
		}
		res.Deleted = append(res.Deleted, b.Name)
		res.BytesFreed += b.Size
	}
	// Archived WAL older than every kept backup of its database is useless.
	oldest := map[string]uint64{}
	for _, b := range list {
		if keep[b.Name] && b.ChainOK() {
			if v, ok := oldest[b.DBFileID]; !ok || b.EndLSN < v {
				oldest[b.DBFileID] = b.EndLSN
			}
		}
	}
	arch := walarchive.New(o.FS, o.archiveDir(dir))
	segs, _, err := arch.Segments()
	if err != nil {
		return res, err
	}
	for _, s := range segs {
		if v, ok := oldest[fmt.Sprintf("%016x", s.FileID)]; ok && uint64(s.LastLSN) <= v {
			if err := o.remove(s.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return res, fmt.Errorf("delete %s: %w", s.Path, err)
			}
			res.SegmentsDeleted = append(res.SegmentsDeleted, filepath.Base(s.Path))
			res.BytesFreed += s.Size
		}
	}
	// Temporary files of killed backups, restores and verifications.
	for _, d := range []string{dir, arch.Dir} {
		ents, _ := o.FS.ReadDir(d)
		for _, e := range ents {
			n := e.Name()
			if !strings.Contains(n, ".tmp") || e.IsDir() {
				continue
			}
			info, err := e.Info()
			if err != nil || now.Sub(info.ModTime()) < staleTemp {
				continue
			}
			if o.remove(filepath.Join(d, n)) == nil {
				res.TempDeleted = append(res.TempDeleted, n)
				res.BytesFreed += info.Size()
			}
		}
	}
	if o.DryRun {
		return res, nil
	}
	// What uploads interrupted by a kill or a lost connection left in a
	// bucket: incomplete multipart uploads, objects that got no marker.
	if st, err := o.store(dir); err != nil {
		return res, err
	} else if s3, ok := st.(*s3Store); ok {
		gone, err := s3.cleanInterrupted(dir, now)
		res.TempDeleted = append(res.TempDeleted, gone...)
		if err != nil {
			return res, err
		}
	}
	if err := updateCatalog(o, dir, nil); err != nil {
		return res, err
	}
	return res, nil
}

// remove deletes path, or with DryRun does nothing (Prune then reports
// what it would delete).
func (o Options) remove(path string) error {
	if o.DryRun {
		return nil
	}
	return o.FS.Remove(path)
}

// chainRoot returns the full backup b's chain starts from, or nil when a
// link is missing or the parents form a cycle.
func chainRoot(byName map[string]*BackupInfo, b *BackupInfo) *BackupInfo {
	for depth := 0; b != nil && depth <= len(byName); depth++ {
		if b.Type == TypeFull.String() {
			return b
		}
		b = byName[b.Parent]
	}
	return nil
}
