package backup

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/sombradb/sombra/engine"
	"github.com/sombradb/sombra/engine/internal/walarchive"
)

// SegmentInfo describes one file of a WAL archive.
type SegmentInfo struct {
	Name         string    `json:"name"`
	Path         string    `json:"path"`
	DBFileID     string    `json:"db_file_id,omitempty"`
	FirstLSN     uint64    `json:"first_lsn"`
	LastLSN      uint64    `json:"last_lsn"`
	FirstCommit  time.Time `json:"first_commit"`
	LastCommit   time.Time `json:"last_commit"`
	Transactions int       `json:"transactions"`
	Size         int64     `json:"size"`
	// Sealed is set for a segment of an encrypted database: its page images
	// are sealed and the file is authenticated with the database's key.
	Sealed bool `json:"sealed"`
	// Error says why the file is not a readable segment (listing), or why
	// it failed verification.
	Error string `json:"error,omitempty"`
}

// ListArchive lists the segments of the WAL archive of backup directory dir
// (Options.ArchiveDir, default DIR/wal) from their headers and trailers:
// LSN ranges, commit times, whether each is sealed. It needs no key and
// reads no page. Damaged files are listed with Error set. It returns the
// archive directory too; a missing one holds no segment.
func ListArchive(dir string, opts Options) (string, []SegmentInfo, error) {
	o := opts.withDefaults()
	archDir := o.archiveDir(dir)
	segs, bad, err := walarchive.New(o.FS, archDir).Segments()
	if err != nil {
		return archDir, nil, err
	}
	out := make([]SegmentInfo, 0, len(segs)+len(bad))
	for _, s := range segs {
		out = append(out, segmentInfo(s))
	}
	for _, b := range bad {
		si := badSegment(b)
		if st, err := o.FS.Stat(b.Path); err == nil {
			si.Size = st.Size()
		}
		out = append(out, si)
	}
	return archDir, out, nil
}

func segmentInfo(s walarchive.Segment) SegmentInfo {
	return SegmentInfo{Name: filepath.Base(s.Path), Path: s.Path, DBFileID: fmt.Sprintf("%016x", s.FileID),
		FirstLSN: uint64(s.FirstLSN), LastLSN: uint64(s.LastLSN), FirstCommit: time.Unix(0, s.FirstTime).UTC(),
		LastCommit: time.Unix(0, s.LastTime).UTC(), Transactions: s.Txs, Size: s.Size, Sealed: s.Sealed}
}

// badSegment describes a file that is not a readable segment; Error does
// not repeat its path.
func badSegment(b walarchive.BadSegment) SegmentInfo {
	return SegmentInfo{Name: filepath.Base(b.Path), Path: b.Path, Error: strings.TrimPrefix(b.Err.Error(), b.Path+": ")}
}

// ArchiveVerifyResult reports a verification of a WAL archive.
type ArchiveVerifyResult struct {
	Dir      string        `json:"dir"`
	OK       bool          `json:"ok"`
	Segments []SegmentInfo `json:"segments"` // Error set on those that failed
	Verified int           `json:"verified"` // segments that passed
	// Gaps name missing LSN ranges between the segments of one database:
	// point-in-time restore cannot cross them.
	Gaps     []string      `json:"gaps,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// VerifyArchive reads every segment of the WAL archive of dir
// (Options.ArchiveDir, default DIR/wal) and checks all of it: header,
// trailer, every transaction and frame checksum, every page image's own
// checksum and LSN; a sealed segment (of an encrypted database) is first
// authenticated as a whole and its pages opened, which needs the key
// (Options.Encryption, default the engine's fallback key). It also reports
// gaps between the segments of one database. An archive with no segment
// (or no directory) is engine.ErrNotFound.
//
// The error matches engine.ErrCorrupt for the first damaged segment (a
// *engine.CorruptionError naming the file for damage inside one); or ErrCannotVerify, with ErrKeyRequired or a
// wrong-key error inside (matching engine.ErrEncryption), when sealed
// segments could not be checked for want of the right key: that says
// nothing about them. Corruption outranks a missing key.
func VerifyArchive(ctx context.Context, dir string, opts Options) (*ArchiveVerifyResult, error) {
	start := time.Now()
	o := opts.withDefaults()
	o = o.withContext(ctx)
	archDir := o.archiveDir(dir)
	res := &ArchiveVerifyResult{Dir: archDir, Segments: []SegmentInfo{}}
	archDir, cleanup, err := o.localArchive(archDir, "verify-wal")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	arch := walarchive.New(o.FS, archDir)
	if c := o.cipher(); c != nil {
		arch.Cipher = c
	}
	segs, bad, err := arch.Segments()
	if err != nil {
		return nil, err
	}
	if len(segs)+len(bad) == 0 {
		// Nothing checked is no verdict (a wrong --dir, archiving never on).
		return nil, fmt.Errorf("%s holds no WAL archive segments: %w", res.Dir, engine.ErrNotFound)
	}
	var corrupt, keyErr error
	last := map[uint64]walarchive.Segment{}
	for _, s := range segs {
		if err := o.canceled(); err != nil {
			return nil, err
		}
		si := segmentInfo(s)
		if res.Dir != archDir { // staged from object storage: name the remote object
			si.Path = joinPath(res.Dir, si.Name)
		}
		if p, ok := last[s.FileID]; ok && s.FirstLSN > p.LastLSN+1 {
			res.Gaps = append(res.Gaps, fmt.Sprintf("database %016x: LSNs %d-%d are missing between %s and %s",
				s.FileID, p.LastLSN+1, s.FirstLSN-1, filepath.Base(p.Path), si.Name))
		}
		if p, ok := last[s.FileID]; !ok || s.LastLSN > p.LastLSN {
			last[s.FileID] = s
		}
		switch err := arch.Verify(s); {
		case err == nil:
			res.Verified++
		case errors.Is(err, engine.ErrCorrupt):
			si.Error = err.Error()
			if corrupt == nil {
				corrupt = err
			}
		case errors.Is(err, engine.ErrEncryption):
			si.Error = err.Error()
			if keyErr == nil {
				keyErr = err
			}
		default:
			return nil, fmt.Errorf("verify %s: %w", s.Path, err) // I/O: no verdict
		}
		res.Segments = append(res.Segments, si)
	}
	for _, b := range bad {
		res.Segments = append(res.Segments, badSegment(b))
		if corrupt == nil {
			corrupt = fmt.Errorf("%w: %w", b.Err, engine.ErrCorrupt)
		}
	}
	res.Duration = time.Since(start)
	switch {
	case corrupt != nil:
		return res, corrupt
	case keyErr != nil:
		return res, fmt.Errorf("%s: %w: %w", res.Dir, ErrCannotVerify, keyErr)
	}
	res.OK = true
	return res, nil
}
