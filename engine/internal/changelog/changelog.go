// Package changelog keeps NAME.db-changes: a record of which pages every
// checkpoint copied from the WAL into the database file, and for which LSN
// range. Incremental backups use it to find the pages changed since their
// parent without reading the whole database file; pages still in the WAL are
// known from the WAL index.
//
// The log is opt-in: a checkpoint appends only when the file exists (the
// backup package creates it at the first backup). It is advisory: a missing
// or damaged record only creates a hole in the covered LSN range, which
// Changed reports as "not covered", and the caller then falls back to
// scanning page LSNs. It can therefore never make a backup miss a page.
//
// File layout (little endian):
//
//	header, 32 bytes:
//	  [0:8]   magic "SOMBRACL"
//	  [8:12]  version
//	  [12:16] reserved
//	  [16:24] file id of the database the log describes
//	  [24:28] CRC32C of [0:24]
//	  [28:32] reserved
//	records, 32 bytes + 8 per page:
//	  [0:4]   magic "SCLR"
//	  [4:8]   page count n
//	  [8:16]  from LSN (exclusive)
//	  [16:24] to LSN (inclusive)
//	  [24:28] CRC32C of [0:24] and the page numbers
//	  [28:32] reserved
//	  [32:..] n page numbers, 8 bytes each
//
// When the file grows past MaxSize it is renamed to NAME.db-changes.old
// (replacing the previous one) and a new file is started, so at most two
// generations exist. Appends happen under the checkpoint lock, which
// serialises them across processes.
package changelog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/sombradb/sombra/engine/internal/common"
	"github.com/sombradb/sombra/engine/vfs"
)

const (
	// Suffix is appended to the database path to name the log.
	Suffix    = "-changes"
	oldSuffix = "-changes.old"
	magic     = "SOMBRACL"
	recMagic  = "SCLR"
	version   = 1
	hdrSize   = 32
	recHdr    = 32
)

// MaxSize is the size at which the log is rotated (a variable for tests).
var MaxSize int64 = 8 << 20

// Path returns the change log path of a database.
func Path(dbPath string) string { return dbPath + Suffix }

func encodeHeader(fileID uint64) []byte {
	b := make([]byte, hdrSize)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[8:], version)
	binary.LittleEndian.PutUint64(b[16:], fileID)
	binary.LittleEndian.PutUint32(b[24:], common.Checksum(b[:24]))
	return b
}

func decodeHeader(b []byte) (uint64, bool) {
	if len(b) < hdrSize || string(b[:8]) != magic || binary.LittleEndian.Uint32(b[8:]) != version ||
		binary.LittleEndian.Uint32(b[24:]) != common.Checksum(b[:24]) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[16:]), true
}

// Enable creates the log for a database if it does not exist yet. From then
// on every checkpoint (in any process) records what it copies.
func Enable(fs vfs.FS, dbPath string, fileID uint64) error {
	path := Path(dbPath)
	f, err := fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.WriteAt(encodeHeader(fileID), 0); err != nil {
		fs.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Durable, name included: a log lost to a power cut costs the next
	// incremental backup a scan of the whole database.
	if err := f.Datasync(); err != nil {
		fs.Remove(path)
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := vfs.SyncParent(fs, path); err != nil {
		return fmt.Errorf("create %s: fsync directory: %w", path, err)
	}
	return nil
}

// Append records that the pages were copied into the database file for the
// LSN range (from, to]. It does nothing when the log does not exist. A log
// that belongs to another file id (left over from a replaced database) is
// started over. The caller holds the checkpoint lock.
func Append(fs vfs.FS, dbPath string, fileID uint64, from, to common.LSN, pages []common.PageID) error {
	path := Path(dbPath)
	st, err := fs.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Size() >= MaxSize {
		if err := fs.Rename(path, dbPath+oldSuffix); err != nil {
			return fmt.Errorf("rotate %s: %w", path, err)
		}
		// (Enable below syncs the directory, making the rename durable.)
		if err := Enable(fs, dbPath, fileID); err != nil {
			return err
		}
	}
	f, err := fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	hb := make([]byte, hdrSize)
	n, _ := f.ReadAt(hb, 0)
	id, ok := decodeHeader(hb[:n])
	end := int64(0)
	if ok && id == fileID {
		st, err := f.Stat()
		if err != nil {
			return err
		}
		end = st.Size()
	}
	if end < hdrSize {
		// New, damaged or foreign: start over.
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.WriteAt(encodeHeader(fileID), 0); err != nil {
			return err
		}
		end = hdrSize
	}
	rec := make([]byte, recHdr+8*len(pages))
	copy(rec, recMagic)
	le := binary.LittleEndian
	le.PutUint32(rec[4:], uint32(len(pages)))
	le.PutUint64(rec[8:], uint64(from))
	le.PutUint64(rec[16:], uint64(to))
	for i, p := range pages {
		le.PutUint64(rec[recHdr+8*i:], uint64(p))
	}
	sum := common.ChecksumUpdate(common.Checksum(rec[:24]), rec[recHdr:])
	le.PutUint32(rec[24:], sum)
	if _, err := f.WriteAt(rec, end); err != nil {
		return fmt.Errorf("append %s: %w", path, err)
	}
	// One small fdatasync per checkpoint (which has just fsynced the
	// database file): without it a power cut loses the records and the
	// next incremental backup falls back to a scan.
	if err := f.Datasync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// Entry is one recorded checkpoint.
type Entry struct {
	From, To common.LSN // LSN range (From, To]
	Pages    []common.PageID
}

// read returns the valid entries of one log file for fileID. A torn or
// damaged record ends the file (later records cannot be trusted to chain).
func read(fs vfs.FS, path string, fileID uint64, fn func(Entry)) error {
	f, err := fs.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	hb := make([]byte, hdrSize)
	n, _ := f.ReadAt(hb, 0)
	if id, ok := decodeHeader(hb[:n]); !ok || id != fileID {
		return nil
	}
	off := int64(hdrSize)
	h := make([]byte, recHdr)
	var body []byte
	le := binary.LittleEndian
	for {
		if _, err := f.ReadAt(h, off); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if string(h[:4]) != recMagic {
			return nil
		}
		cnt := int(le.Uint32(h[4:]))
		if cnt > 1<<24 {
			return nil
		}
		if cap(body) < 8*cnt {
			body = make([]byte, 8*cnt)
		}
		body = body[:8*cnt]
		if _, err := f.ReadAt(body, off+recHdr); err != nil {
			return nil // torn tail
		}
		if le.Uint32(h[24:]) != common.ChecksumUpdate(common.Checksum(h[:24]), body) {
			return nil
		}
		e := Entry{From: common.LSN(le.Uint64(h[8:])), To: common.LSN(le.Uint64(h[16:])), Pages: make([]common.PageID, cnt)}
		for i := range e.Pages {
			e.Pages[i] = common.PageID(le.Uint64(body[8*i:]))
		}
		fn(e)
		off += recHdr + int64(8*cnt)
	}
}

// Changed returns the pages that checkpoints recorded for the LSN range
// (after, upto], sorted and without duplicates, and whether the recorded
// entries cover that whole range without a hole. When covered is false the
// page list is incomplete and must not be relied on. Memory is proportional
// to the number of recorded pages in the range.
func Changed(fs vfs.FS, dbPath string, fileID uint64, after, upto common.LSN) (pages []common.PageID, covered bool, err error) {
	if upto <= after {
		return nil, true, nil
	}
	type span struct{ from, to common.LSN }
	var spans []span
	seen := map[common.PageID]struct{}{}
	collect := func(e Entry) {
		if e.To <= after || e.From >= upto || e.From >= e.To {
			return
		}
		spans = append(spans, span{e.From, e.To})
		for _, p := range e.Pages {
			seen[p] = struct{}{}
		}
	}
	for _, p := range []string{dbPath + oldSuffix, Path(dbPath)} {
		if err := read(fs, p, fileID, collect); err != nil {
			return nil, false, err
		}
	}
	slices.SortFunc(spans, func(a, b span) int {
		switch {
		case a.from < b.from:
			return -1
		case a.from > b.from:
			return 1
		}
		return 0
	})
	cur := after
	for _, s := range spans {
		if s.from > cur {
			break
		}
		cur = max(cur, s.to)
	}
	if cur < upto {
		return nil, false, nil
	}
	pages = make([]common.PageID, 0, len(seen))
	for p := range seen {
		pages = append(pages, p)
	}
	slices.Sort(pages)
	return pages, true, nil
}

// Remove deletes both generations of a database's log (used when a file is
// restored over: its history no longer describes the new content).
func Remove(fs vfs.FS, dbPath string) error {
	var first error
	for _, p := range []string{Path(dbPath), dbPath + oldSuffix} {
		if err := fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = err
		}
	}
	return first
}
