package wal

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/sombradb/sombra/engine/internal/common"
)

// ReaderAt is what scanning needs from the WAL file.
type ReaderAt interface {
	ReadAt(p []byte, off int64) (int, error)
}

// Index maps pages to the committed frames that hold them. It only ever
// contains frames up to the last valid commit frame (MaxFrame); frames of a
// transaction are added when its commit frame has been read and verified.
type Index struct {
	Header   Header
	Valid    bool // a valid header was read (false: empty or new log)
	Frames   []Frame
	MaxFrame int    // frames [0, MaxFrame) are committed
	LastSum  uint32 // checksum chain value after frame MaxFrame-1
	Commits  int    // commit frames seen
	pages    map[common.PageID][]uint32
	pageSize int
}

// NewIndex returns an empty index for a log with header h.
func NewIndex(h Header, valid bool, pageSize int) *Index {
	return &Index{Header: h, Valid: valid, LastSum: h.Sum, pages: make(map[common.PageID][]uint32), pageSize: pageSize}
}

// Lookup returns the newest frame holding page pg among frames [0, limit).
func (ix *Index) Lookup(pg common.PageID, limit int) (int, bool) {
	fs := ix.pages[pg]
	// frames are ascending; find the last one < limit
	i := sort.Search(len(fs), func(i int) bool { return int(fs[i]) >= limit })
	if i == 0 {
		return 0, false
	}
	return int(fs[i-1]), true
}

// PagesIn returns the distinct pages written by frames [from, to).
func (ix *Index) PagesIn(from, to int) []common.PageID {
	seen := make(map[common.PageID]bool)
	var out []common.PageID
	for i := from; i < to && i < len(ix.Frames); i++ {
		p := ix.Frames[i].Page
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// Append records the frames of one committed transaction.
func (ix *Index) Append(frames []Frame, lastSum uint32) {
	for _, f := range frames {
		n := uint32(len(ix.Frames))
		ix.Frames = append(ix.Frames, f)
		ix.pages[f.Page] = append(ix.pages[f.Page], n)
	}
	ix.MaxFrame = len(ix.Frames)
	ix.LastSum = lastSum
	ix.Commits++
}

// ScanReport describes what a scan found beyond the committed frames.
type ScanReport struct {
	CorruptFrames []int // frame numbers whose salt matched but checksum failed
	Uncommitted   int   // valid frames after the last commit (a torn transaction)
	TailBytes     int64 // bytes after the last committed frame
}

// Scan reads frames from ix.MaxFrame up to size bytes of file and adds every
// complete committed transaction to the index. It stops at the first frame
// that is not valid: an older salt, a checksum mismatch or a short frame.
func (ix *Index) Scan(r ReaderAt, size int64) (ScanReport, error) {
	var rep ScanReport
	if !ix.Valid {
		return rep, nil
	}
	fsz := FrameSize(ix.pageSize)
	buf := make([]byte, fsz)
	var pending []Frame
	sum := ix.LastSum
	next := ix.MaxFrame
	for {
		off := FrameOffset(ix.pageSize, next)
		if off+fsz > size {
			break
		}
		if _, err := r.ReadAt(buf, off); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return rep, fmt.Errorf("read WAL frame %d: %w", next, err)
		}
		f, s, ok, err := DecodeFrame(buf, ix.Header.Salt, sum)
		if err != nil {
			rep.CorruptFrames = append(rep.CorruptFrames, next)
			break
		}
		if !ok {
			break
		}
		sum = s
		pending = append(pending, f)
		next++
		if f.Commit {
			ix.Append(pending, sum)
			pending = pending[:0]
		}
	}
	rep.Uncommitted = len(pending)
	end := FrameOffset(ix.pageSize, ix.MaxFrame)
	if size > end {
		rep.TailBytes = size - end
	}
	return rep, nil
}

// ReadPage reads the page image of frame i into dst.
func ReadPage(r ReaderAt, pageSize int, i int, dst []byte) error {
	off := FrameOffset(pageSize, i) + FrameHeaderSize
	if _, err := r.ReadAt(dst[:pageSize], off); err != nil {
		return fmt.Errorf("read WAL frame %d: %w", i, err)
	}
	return nil
}
