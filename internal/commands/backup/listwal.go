package backup

import (
	"strconv"
	"time"

	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/cli"
)

// ListWALResult is the --json document of list --wal.
type ListWALResult struct {
	SchemaVersion int              `json:"schema_version"`
	Dir           string           `json:"dir"`
	ArchiveDir    string           `json:"archive_dir"`
	Segments      []bk.SegmentInfo `json:"segments"`
}

// RunListWAL prints the segments of the WAL archive of opts.Dir. It needs
// no key: sealed segments are listed from their headers.
func RunListWAL(opts *ListOptions) error {
	o := opts.Root
	archDir, segs, err := bk.ListArchive(opts.Dir, engineOptions(o))
	if err != nil {
		return err
	}
	res := ListWALResult{SchemaVersion: cli.SchemaVersion, Dir: opts.Dir, ArchiveDir: archDir, Segments: segs}
	var damaged []bk.SegmentInfo
	for i := range res.Segments {
		s := &res.Segments[i]
		s.FirstCommit, s.LastCommit = cli.Timestamp(s.FirstCommit), cli.Timestamp(s.LastCommit)
		if s.Error != "" {
			damaged = append(damaged, *s)
		}
	}
	err = cli.NewPrinter(o.IO, &o.Globals).Result(res, func(h *cli.Human) { listWALTable(h, res) })
	if err != nil || len(damaged) == 0 {
		return err
	}
	return damagedFiles(damaged[0].Path, "damaged WAL archive segment", damaged[0].Error, len(damaged))
}

func listWALTable(h *cli.Human, res ListWALResult) {
	if len(res.Segments) == 0 {
		h.Line("no WAL archive segments in %s", res.ArchiveDir)
		return
	}
	rows := make([][]string, len(res.Segments))
	for i, s := range res.Segments {
		if s.Error != "" {
			rows[i] = []string{s.Name, "-", "-", "-", h.Bytes(s.Size), "-", h.Bad("DAMAGED: " + s.Error)}
			continue
		}
		kind := "plaintext"
		if s.Sealed {
			kind = "sealed"
		}
		rows[i] = []string{s.Name, s.DBFileID, lsnRange(s.FirstLSN-1, s.LastLSN), strconv.Itoa(s.Transactions), h.Bytes(s.Size),
			s.FirstCommit.Format(time.RFC3339) + " .. " + s.LastCommit.Format(time.RFC3339), kind}
	}
	h.Table([]string{"segment", "db_file_id", "lsn", "transactions", "size", "commits", "status"}, rows)
}
