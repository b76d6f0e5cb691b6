package backup

import (
	"strconv"
	"time"

	bk "github.com/sombradb/sombra/engine/backup"
	"github.com/sombradb/sombra/internal/cli"
)

// ListWALResult is the --json document of list --wal.
type ListWALResult struct {
	SchemaVersion int          `json:"schema_version"`
	Dir           string       `json:"dir"`
	ArchiveDir    string       `json:"archive_dir"`
	Segments      []WALSegment `json:"segments"`
}

// WALSegment describes one file of the WAL archive (list --wal, verify
// --wal); the fields a damaged file lacks are null.
type WALSegment struct {
	Name         string     `json:"name"`
	Path         string     `json:"path"`
	DBFileID     *string    `json:"db_file_id"`
	FirstLSN     uint64     `json:"first_lsn"`
	LastLSN      uint64     `json:"last_lsn"`
	FirstCommit  *time.Time `json:"first_commit"`
	LastCommit   *time.Time `json:"last_commit"`
	Transactions int        `json:"transactions"`
	Size         int64      `json:"size"`
	Sealed       bool       `json:"sealed"`
	Error        *string    `json:"error"`
}

func walSegments(segs []bk.SegmentInfo) []WALSegment {
	out := make([]WALSegment, len(segs))
	for i, s := range segs {
		out[i] = WALSegment{Name: s.Name, Path: s.Path, DBFileID: strPtr(s.DBFileID), FirstLSN: s.FirstLSN, LastLSN: s.LastLSN,
			Transactions: s.Transactions, Size: s.Size, Sealed: s.Sealed, Error: strPtr(s.Error)}
		if s.DBFileID != "" { // a readable segment: its header's times
			first, last := cli.Timestamp(s.FirstCommit), cli.Timestamp(s.LastCommit)
			out[i].FirstCommit, out[i].LastCommit = &first, &last
		}
	}
	return out
}

// RunListWAL prints the segments of the WAL archive of opts.Dir. It needs
// no key: sealed segments are listed from their headers.
func RunListWAL(opts *ListOptions) error {
	o := opts.Root
	if _, err := listDir(o, opts.Dir); err != nil {
		return err // no such backup directory, said as list says it
	}
	archDir, segs, err := bk.ListArchive(opts.Dir, engineOptions(o))
	if err != nil {
		return err
	}
	res := ListWALResult{SchemaVersion: cli.SchemaVersion, Dir: opts.Dir, ArchiveDir: archDir, Segments: walSegments(segs)}
	var damaged []WALSegment
	for _, s := range res.Segments {
		if s.Error != nil {
			damaged = append(damaged, s)
		}
	}
	err = cli.NewPrinter(o.IO, &o.Globals).Result(res, func(h *cli.Human) { listWALTable(h, res) })
	if err != nil || len(damaged) == 0 {
		return err
	}
	return damagedFiles(damaged[0].Path, "damaged WAL archive segment", *damaged[0].Error, len(damaged))
}

func listWALTable(h *cli.Human, res ListWALResult) {
	if len(res.Segments) == 0 {
		h.Line("no WAL archive segments in %s", res.ArchiveDir)
		return
	}
	rows := make([][]string, len(res.Segments))
	for i, s := range res.Segments {
		if s.Error != nil {
			rows[i] = []string{s.Name, "-", "-", "-", h.Bytes(s.Size), "-", h.Bad("DAMAGED: " + *s.Error)}
			continue
		}
		kind := "plaintext"
		if s.Sealed {
			kind = "sealed"
		}
		rows[i] = []string{s.Name, *s.DBFileID, lsnRange(s.FirstLSN-1, s.LastLSN), strconv.Itoa(s.Transactions), h.Bytes(s.Size),
			s.FirstCommit.Format(time.RFC3339) + " .. " + s.LastCommit.Format(time.RFC3339), kind}
	}
	h.Table([]string{"segment", "db_file_id", "lsn", "transactions", "size", "commits", "status"}, rows)
}
